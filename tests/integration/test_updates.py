"""Rolling updates on real Ray nodes and engines: no downtime, roll back without touching the
healthy, a deadline for a pending instance, start-first vs stop-first seen on the engines, a
Scheduler killed mid-update, plan exit codes."""

from __future__ import annotations

import threading
import time

import pytest
from ray_world import Faults, containers_of, wait_for
from typer.testing import CliRunner

from veo.cli.app import app
from veo.core.models import HealthCheck, InstanceStatus, Service, UpdatePolicy

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(300)]
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
# generous timeout and retries: a loaded CI machine must not make a healthy container flap
OK = HealthCheck(test=["CMD", "true"], interval=0.5, timeout=5, retries=3)
FAILING = HealthCheck(test=["CMD", "false"], interval=0.5, timeout=1, retries=1)


def svc(name: str, n: int = 3, marker: str = "v1", hc=OK, **update) -> Service:
    policy = UpdatePolicy(**{"min_healthy": 1, "healthy_deadline": 20, **update})
    return Service(name=name, image="veo/busybox", command=LOOP, network_mode="none",
                   stop_grace_period=1, instances=n, environment={"VERSION": marker},
                   healthcheck=hc, on_unhealthy="leave", update=policy)


def healthy(world, name: str) -> list:
    return [i for i in world.instances(name)
            if i.status is InstanceStatus.running and i.health.value == "healthy"]


class Sampler:
    """Samples, every 100 ms, how many instances veo shows running and healthy, how many veo
    containers of the service run on the engines, and how many of those Docker says are healthy
    (what serves, whatever veo shows: a start-first update keeps old containers beside new
    ones)."""

    def __init__(self, world, name: str):
        self.world, self.name = world, name
        self.healthy: list[int] = []
        self.on_engines: list[int] = []
        self.healthy_on_engines: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.healthy.append(len(healthy(self.world, self.name)))
            running = [c for c in containers_of(self.world, [self.name]) if c.running]
            self.on_engines.append(len(running))
            self.healthy_on_engines.append(sum(1 for c in running if _docker_health(self.world, c)))
            time.sleep(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def _docker_health(world, c) -> bool:
    node = c.labels["veo.node"]
    state = world.runtime(node).inspect(c.id)
    return state is not None and state.health == "healthy"


def engine_ids(world, name: str) -> dict[int, tuple[str, str]]:
    """instance -> (container id, StartedAt) of its running container, as the engines say."""
    out = {}
    for node in world.engines:
        rt = world.runtime(node)
        for c in rt.list(labels={"veo.managed": "true", "veo.service": name}):
            if c.running:
                out[int(c.labels["veo.instance"])] = (c.id, rt.inspect(c.id).started_at)
    return out


def done(world, name: str, state: str = "done"):
    ups = [u for u in world.client.updates() if u["target"] == name]
    return ups and ups[0]["state"] == state


def test_a_good_update_never_drops_below_n_minus_one_healthy(world, names):
    name = names("roll")
    world.client.add_service(svc(name))
    wait_for(lambda: len(healthy(world, name)) == 3, 60, what="3 healthy instances")
    with Sampler(world, name) as s:
        world.client.add_service(svc(name, marker="v2"))
        wait_for(lambda: done(world, name), 120, what="the update to finish")
    assert min(s.healthy) >= 2, s.healthy
    assert min(s.healthy_on_engines) >= 2, s.healthy_on_engines
    assert max(s.on_engines) <= 3  # stop-first: never more containers than instances
    history = world.client.history(name)
    assert [v["outcome"] for v in history] == ["superseded", "stable"]


def test_a_failing_healthcheck_rolls_back_and_the_untouched_keep_their_containers(world, names):
    name = names("bad")
    world.client.add_service(svc(name))
    wait_for(lambda: len(healthy(world, name)) == 3, 60, what="3 healthy instances")
    before = engine_ids(world, name)
    world.client.add_service(svc(name, marker="v2", hc=FAILING, healthy_deadline=6))
    wait_for(lambda: done(world, name, "rolled_back"), 90, what="the rollback")
    wait_for(lambda: len(healthy(world, name)) == 3, 60, what="3 healthy instances again")
    after = engine_ids(world, name)
    untouched = [i for i in before if after.get(i) == before[i]]
    assert len(untouched) == 2, (before, after)  # parallel 1: only the first was replaced
    spec = next(s for s in world.client.services() if s.name == name)
    assert spec.environment["VERSION"] == "v1"
    assert [v["outcome"] for v in world.client.history(name)] == ["current", "failed"]


def test_a_new_instance_stuck_pending_hits_its_deadline(world, names):
    name = names("stuck")
    world.client.add_service(svc(name, n=2))
    wait_for(lambda: len(healthy(world, name)) == 2, 60, what="2 healthy instances")
    before = engine_ids(world, name)
    big = svc(name, n=2, marker="v2", healthy_deadline=4).model_copy(update={"cpus": 64.0})
    world.client.add_service(big)
    wait_for(lambda: done(world, name, "rolled_back"), 60, what="the deadline and the rollback")
    events = [e for e in world.client.events() if e.service == name and e.kind.value == "update_failed"]
    assert "within 4s" in events[-1].reason
    wait_for(lambda: len(healthy(world, name)) == 2, 60, what="2 healthy instances again")
    # the replacement never found a node, so the old container was never stopped: both untouched
    assert engine_ids(world, name) == before


def test_start_first_keeps_the_old_instance_until_the_new_one_is_healthy(world, names):
    name = names("sf")
    world.client.add_service(svc(name, n=2))
    wait_for(lambda: len(healthy(world, name)) == 2, 60, what="2 healthy instances")
    with Sampler(world, name) as s:
        world.client.add_service(svc(name, n=2, marker="v2", order="start-first"))
        wait_for(lambda: done(world, name), 120, what="the update to finish")
    assert max(s.on_engines) == 3  # old and new side by side, on different nodes
    assert min(s.healthy_on_engines) >= 2, s.healthy_on_engines  # never fewer serving
    wait_for(lambda: len(engine_ids(world, name)) == 2, 30, what="the old containers to go")


def test_a_scheduler_killed_mid_update_finishes_it_exactly_once(world, names):
    name = names("kill")
    world.client.add_service(svc(name))
    wait_for(lambda: len(healthy(world, name)) == 3, 60, what="3 healthy instances")
    world.client.add_service(svc(name, marker="v2", min_healthy=3))
    wait_for(lambda: any(u["target"] == name and u["done"] for u in world.client.updates()), 60,
             what="one unit replaced")
    Faults(world).kill_actor("scheduler")
    wait_for(lambda: done(world, name), 120, what="the update to finish after the restart")
    finished = [e for e in world.client.events() if e.service == name and e.kind.value == "update_done"]
    assert len(finished) <= 1  # events before the kill may be gone; never two afterwards
    ups = [u for u in world.client.updates() if u["target"] == name][0]
    assert len(ups["done"]) == 3 and not ups["failed"]
    wait_for(lambda: len(healthy(world, name)) == 3, 30)
    gens = sorted(i.generation for i in world.instances(name))
    assert gens == [2, 2, 2]  # each replaced exactly once


def test_plan_exit_codes(world, names, tmp_path):
    name = names("plan")
    world.client.add_service(svc(name, n=1))
    wait_for(lambda: len(healthy(world, name)) == 1, 60)
    runner = CliRunner()
    spec = world.client.spec()
    from veo.core.desired import dump_service
    import yaml

    def write(services) -> str:
        doc = {"name": spec.name, "policy": spec.policy.model_dump(),
               "nodes": [n.model_dump(mode="json", exclude_none=True) for n in spec.nodes],
               "settings": spec.settings.model_dump(mode="json"),
               "services": {s.name: {k: v for k, v in dump_service(s).items() if k != "name"}
                            for s in services}}
        path = tmp_path / f"c{len(list(tmp_path.iterdir()))}.yml"
        path.write_text(yaml.safe_dump(doc))
        return str(path)

    current = world.client.services()
    addr = ["--address", world.cluster.address]
    same = runner.invoke(app, ["plan", write(current), *addr])
    assert same.exit_code == 0, same.output
    changed = [s if s.name != name else svc(name, n=1, marker="v2") for s in current]
    diff = runner.invoke(app, ["plan", write(changed), *addr])
    assert diff.exit_code == 1 and f"~ {name}: replaced" in diff.output
    assert 'environment.VERSION: "v1" -> "v2"' in diff.output
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  x: {image: 3, nope: 1}\n")
    invalid = runner.invoke(app, ["plan", str(bad), *addr])
    assert invalid.exit_code == 2 and "bad.yml:2" in invalid.output
