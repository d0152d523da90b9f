"""Placement on a real 3-node Ray cluster with a real engine per node: co-location, roles, hosts,
resources (pending with reasons, placed when capacity frees), 'instances: all' including a node
that joins later. Every claim is checked on the engines themselves, not only in veo's view."""

from __future__ import annotations

import pytest
from ray_world import wait_for

from veo.adapters import ray_local as local
from veo.core.models import InstanceStatus, Service

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(180)]

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


def svc(name: str, **kw) -> Service:
    return Service(name=name, image="veo/busybox", command=LOOP, network_mode="none",
                   stop_grace_period=1, **kw)


def engine_has(world, node: str, service: str) -> list:
    return [c for c in world.runtime(node).list(labels={"veo.service": service}) if c.running]


def test_group_members_share_one_node(world, names):
    g = names("grp")
    members = [names("m"), names("s"), names("t")]
    world.client.add_service(svc(members[0], group=g, group_role="master", group_policy="one_for_one"))
    for m in members[1:]:
        world.client.add_service(svc(m, group=g))
    nodes = {world.wait_running(m)[0].node for m in members}
    assert len(nodes) == 1
    node = nodes.pop()
    for m in members:  # really there, on that node's engine
        assert len(engine_has(world, node, m)) == 1


def test_roles_and_hosts_constrain_placement(world, names):
    back, pinned = names("back"), names("pinned")
    world.client.add_service(svc(back, roles=["back"], instances=2))
    world.client.add_service(svc(pinned, hosts=["tres"]))
    assert {i.node for i in world.wait_running(back, 2)} == {"dos", "tres"}  # spread, role back
    assert world.wait_running(pinned)[0].node == "tres"
    assert not engine_has(world, "uno", back)


def test_exhaustion_is_pending_with_reasons_then_placed_when_capacity_frees(world, names):
    hog, big = names("hog"), names("big")
    # each node has 4g: three hogs of 3g leave 1g everywhere
    world.client.add_service(svc(hog, memory="3g", instances=3))
    world.wait_running(hog, 3)
    world.client.add_service(svc(big, memory="2g"))

    def pending_with_reason():
        insts = world.instances(big)
        return insts and insts[0].status is InstanceStatus.pending and insts[0].reason

    reason = wait_for(pending_with_reason, 20, what="big to be pending with a reason")
    assert "exhausted memory" in reason and "3 nodes" in reason, reason
    world.remove(hog)
    assert world.wait_running(big)[0].node in {"uno", "dos", "tres"}


def test_unknown_role_is_pending_with_reason(world, names):
    nowhere = names("nowhere")
    world.client.add_service(svc(nowhere, roles=["gpu"]))
    insts = wait_for(lambda: [i for i in world.instances(nowhere) if i.reason], 20, what="reason")
    assert insts[0].status is InstanceStatus.pending
    assert "role" in insts[0].reason and "gpu" in insts[0].reason


def test_instances_all_runs_on_every_node_and_on_a_node_that_joins(world, names, engine_pool):
    every = names("every")
    world.client.add_service(svc(every, instances="all", memory="16m"))
    assert {i.node for i in world.wait_running(every, 3)} == {"uno", "dos", "tres"}
    before = {i.node: i.container_id for i in world.instances(every)}

    engine = engine_pool.get("cuatro")
    spec = local.NodeSpec("cuatro", "back", engine.docker_host)
    node = world.cluster.add_node(num_cpus=1, labels=spec.labels(), env_vars=spec.env())
    try:
        running = world.wait_running(every, 4, timeout=60)
        assert {i.node for i in running} == {"uno", "dos", "tres", "cuatro"}
        # the copies that ran before were left alone
        assert all(before[i.node] == i.container_id for i in running if i.node in before)
        assert len(engine_has(world, "cuatro", every)) == 1
    finally:
        world.remove(every)
        world.cluster.remove_node(node)
        wait_for(lambda: not next(n for n in world.client.nodes() if n.name == "cuatro").alive, 30,
                 what="cuatro to be seen as gone")


def test_cluster_policy_refuses_host_powers_through_the_python_api(world, names):
    from veo.core.errors import PolicyError
    from veo.core.policy import Policy

    strict = world.client.spec().model_copy(update={"policy": Policy()})
    world.client.apply(strict)
    try:
        with pytest.raises(PolicyError, match="privileged"):
            world.client.add_service(svc(names("priv"), privileged=True))
        with pytest.raises(PolicyError, match="allow_host_network"):
            world.client.add_service(svc(names("hostnet")).model_copy(update={"network_mode": "host"}))
    finally:
        world.apply_settings()
