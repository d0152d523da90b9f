"""Nothing the cluster knows is lost when its actors are killed: events survive a Scheduler
restart (same indexes, still monotonic after it), and the restart budget window survives a
GroupSupervisor restart (the agent keeps the window and hands it back)."""

from __future__ import annotations

import pytest
from ray_world import Faults, wait_for

from veo.core.models import EventKind, InstanceStatus, Service

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.chaos, pytest.mark.timeout(240)]

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


def svc(name: str, **kw) -> Service:
    return Service(name=name, image="veo/busybox", network_mode="none", stop_grace_period=1,
                   command=LOOP, **kw)


@pytest.fixture
def faults(world) -> Faults:
    return Faults(world)


def test_events_survive_a_scheduler_restart(world, names, faults):
    name = names("evkept")
    world.client.add_service(svc(name))
    world.wait_running(name)
    before = [e for e in world.client.events() if e.service == name]
    assert any(e.kind is EventKind.started for e in before)
    last = max(e.index for e in world.client.events())
    faults.kill_actor("scheduler")
    after = {e.index: e for e in world.client.events(since=before[0].index - 1)}
    for ev in before:  # the same events under the same indexes, read from the new Scheduler
        assert after[ev.index].kind == ev.kind and after[ev.index].reason == ev.reason
    inst = world.wait_running(name)[0]
    world.runtime(inst.node).kill(inst.container_id)
    newer = wait_for(lambda: [e for e in world.client.events(since=last)
                              if e.service == name and e.kind is EventKind.restarted], 40,
                     what="a restart event after the Scheduler came back")
    assert all(e.index > last for e in newer)  # indexes continue, never reused


def test_restart_budget_survives_a_supervisor_restart(world, names, faults):
    """budget 3: two restarts, the supervisor is killed, a third is allowed, the fourth death
    exhausts the budget. A supervisor that forgot its window would allow restarts 3, 4 and 5."""
    name = names("budget")
    world.apply_settings(budget_restarts=3, budget_period=300)
    try:
        world.client.add_service(svc(name, hosts=["dos"]))
        for n in range(2):
            inst = world.wait_running(name, pred=lambda r, n=n: r[0].restarts == n)[0]
            world.runtime("dos").kill(inst.container_id)
        world.wait_running(name, pred=lambda r: r[0].restarts == 2)
        faults.kill_actor("supervisor", "dos")
        inst = world.wait_running(name, pred=lambda r: r[0].restarts == 2)[0]
        world.runtime("dos").kill(inst.container_id)
        inst = world.wait_running(name, pred=lambda r: r[0].restarts == 3)[0]
        world.runtime("dos").kill(inst.container_id)
        failed = wait_for(lambda: [i for i in world.instances(name)
                                   if i.status is InstanceStatus.failed], 40,
                          what="the fourth death to exhaust the budget")
        assert "restart budget exhausted" in (failed[0].reason or "")
        assert failed[0].restarts == 3
    finally:
        world.apply_settings()
