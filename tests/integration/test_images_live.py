"""Images through the whole system: services whose image lives only in a real registry (Debian's
docker-registry on loopback) run on the Ray world's nodes, each node's agent pulling it on its own
engine; a name that does not exist fails with a reason naming image and registry; a stopped
registry is waited for (temporary), and the instance runs once the registry is back."""

from __future__ import annotations

import time

import docker
import pytest
from ray_world import wait_for

from veo.core.models import InstanceStatus, Service

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(240)]

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


def svc(name: str, image: str, **kw) -> Service:
    return Service(name=name, image=image, command=LOOP, network_mode="none",
                   stop_grace_period=1, **kw)


@pytest.fixture(scope="module")
def pusher(engine):
    client = docker.DockerClient(base_url=engine.docker_host)
    yield client
    client.close()


def test_every_node_pulls_the_image_it_runs(world, names, registry, pusher):
    ref = registry.push(pusher, "veo/busybox:latest", "demo/app", "1")
    name = names("pulled")
    world.client.add_service(svc(name, ref, instances="all"))
    running = world.wait_running(name, 3, timeout=90)
    for inst in running:  # on each node's own engine, from that engine's pull
        rt = world.runtime(inst.node)
        assert rt.image_exists(ref)
        assert rt.inspect(inst.container_id).running


def test_no_such_image_fails_naming_image_and_registry(world, names, registry):
    ref = f"{registry.host}/demo/app:does-not-exist"
    name = names("nosuch")
    world.client.add_service(svc(name, ref))

    def failed():
        insts = world.instances(name)
        return insts and insts[0].status is InstanceStatus.failed and insts[0]

    inst = wait_for(failed, 60, what=f"{name} failed")
    assert f"image '{ref}' does not exist in registry {registry.host}" in inst.reason
    time.sleep(3)  # a few converges later: failed once, not asked again and again
    fails = [e for e in world.client.events_batch() if e.service == name and e.kind == "failed"]
    assert len(fails) == 1 and inst.restarts == 0, fails


def test_never_with_a_missing_image_fails(world, names, registry, pusher):
    ref = registry.push(pusher, "veo/busybox:latest", "demo/never", "1")
    name = names("never")
    world.client.add_service(svc(name, ref, pull_policy="never"))

    def failed():
        insts = world.instances(name)
        return insts and insts[0].status is InstanceStatus.failed and insts[0]

    inst = wait_for(failed, 60, what=f"{name} failed")
    assert "pull_policy is never" in inst.reason and ref in inst.reason


def test_stopped_registry_is_retried_until_it_is_back(world, names, registry, pusher):
    ref = registry.push(pusher, "veo/busybox:latest", "demo/later", "1")
    name = names("later")
    registry.stop()
    try:
        world.client.add_service(svc(name, ref))

        def waiting():
            insts = world.instances(name)
            reason = insts[0].reason if insts else None
            return reason and "did not answer the pull" in reason and insts[0]

        inst = wait_for(waiting, 60, what=f"{name} waiting for the registry")
        assert inst.status is not InstanceStatus.failed
        assert registry.host in inst.reason and "connection refused" in inst.reason
    finally:
        registry.start()
    running = world.wait_running(name, 1, timeout=90)
    assert world.runtime(running[0].node).image_exists(ref)
