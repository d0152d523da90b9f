"""Supervision on real Ray nodes and engines: each group policy (which containers were replaced,
by container id and StartedAt on the engine), exact restart_count, 'never', the group budget,
health actions, and the event stream's order."""

from __future__ import annotations

import time

import pytest
from ray_world import wait_for

from veo.core.models import EventKind, InstanceStatus, Service

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(180)]

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


def svc(name: str, command=LOOP, **kw) -> Service:
    return Service(name=name, image="veo/busybox", command=command, network_mode="none",
                   stop_grace_period=1, **kw)


def deploy_group(world, names, policy: str):
    g = names("g")
    m, s1, s2 = names("master"), names("slave"), names("slave")
    world.client.add_service(svc(m, group=g, group_role="master", group_policy=policy))
    world.client.add_service(svc(s1, group=g, group_role="slave"))
    world.client.add_service(svc(s2, group=g, group_role="slave"))
    members = [m, s1, s2]
    node = {world.wait_running(x)[0].node for x in members}.pop()
    return members, node


def engine_view(world, node: str, services: list[str]) -> dict[str, tuple[str, str]]:
    """service -> (container id, StartedAt), as the engine reports it."""
    out = {}
    rt = world.runtime(node)
    for c in rt.list(labels={"veo.managed": "true"}):
        if c.labels.get("veo.service") in services:
            out[c.labels["veo.service"]] = (c.id, rt.inspect(c.id).started_at)
    assert all(v[1] for v in out.values())
    return out


def kill_and_settle(world, node, members, victim):
    before = engine_view(world, node, members)
    world.runtime(node).kill(before[victim][0])
    world.wait_running(victim, pred=lambda r: r[0].restarts >= 1)
    time.sleep(1.5)  # let any wrongly restarted sibling show up
    for m in members:
        world.wait_running(m)
    return before, engine_view(world, node, members)


@pytest.mark.parametrize(
    "policy, victim, replaced",
    [
        ("one_for_one", 1, {1}),
        ("one_kills_all", 1, {0, 1, 2}),
        ("master_kills_all", 0, {0, 1, 2}),
        ("master_kills_all", 2, {2}),
    ],
)
def test_group_policy_restarts_exactly_the_right_members(world, names, policy, victim, replaced):
    members, node = deploy_group(world, names, policy)
    before, after = kill_and_settle(world, node, members, members[victim])
    for i, m in enumerate(members):
        assert after[m][0] == before[m][0], "veo restarts in place: same container"
        if i in replaced:
            assert after[m][1] != before[m][1], f"{m} should have been restarted"
        else:
            assert after[m][1] == before[m][1], f"{m} should have been left alone"
    restarts = {m: world.instances(m)[0].restarts for m in members}
    assert restarts == {m: (1 if i in replaced else 0) for i, m in enumerate(members)}


def test_exact_restart_count_then_failed(world, names):
    job = names("crash")
    world.client.add_service(svc(job, command=["sh", "-c", "sleep 0.3; exit 3"], restart_count=2))
    inst = wait_for(lambda: next((i for i in world.instances(job) if i.status is InstanceStatus.failed), None),
                    40, what="the crash loop to fail")
    assert inst.restarts == 2
    assert "restart_count 2 reached" in inst.reason
    starts = [e for e in world.client.events() if e.service == job and e.kind in
              (EventKind.started, EventKind.restarted)]
    assert [e.kind for e in starts] == [EventKind.started, EventKind.restarted, EventKind.restarted]
    time.sleep(1.5)
    assert world.instances(job)[0].restarts == 2  # and nothing more happens


def test_restart_never_stays_dead(world, names):
    ok, bad = names("oneshot"), names("oneshotbad")
    world.client.add_service(svc(ok, command=["true"], restart="never"))
    world.client.add_service(svc(bad, command=["sh", "-c", "exit 4"], restart="no"))
    done = wait_for(lambda: [i for i in world.instances(ok) if i.status is InstanceStatus.completed], 30)
    failed = wait_for(lambda: [i for i in world.instances(bad) if i.status is InstanceStatus.failed], 30)
    assert done[0].restarts == 0 and failed[0].restarts == 0
    assert "code 4" in failed[0].reason


def test_group_budget_exhaustion_fails_the_whole_group(world, names):
    world.apply_settings(budget_restarts=3, budget_period=60)
    try:
        g, m, s = names("bg"), names("flaky"), names("calm")
        world.client.add_service(svc(m, command=["sh", "-c", "sleep 0.3; exit 1"], group=g,
                                     group_role="master", group_policy="one_kills_all"))
        world.client.add_service(svc(s, group=g))
        def both_failed():
            insts = [i for x in (m, s) for i in world.instances(x)]
            return len(insts) == 2 and all(i.status is InstanceStatus.failed for i in insts)

        failed = wait_for(both_failed, 60, what="the group to fail")
        assert failed
        reason = world.instances(m)[0].reason
        assert "restart budget exhausted: more than 3 restarts in 60s" in reason
        assert world.instances(s)[0].reason.startswith("group failed")
        node = world.instances(m)[0].node
        assert not [c for c in world.runtime(node).list(labels={"veo.group": g}) if c.running]
    finally:
        world.apply_settings()


HEALTHY = ["sh", "-c", "trap 'exit 0' TERM; touch /tmp/ok; while :; do sleep 1 & wait $!; done"]
RESTORE = ["sh", "-c", "trap 'exit 0' TERM; touch /tmp/ok; while :; do sleep 1 & wait $!; done"]


def health_svc(name, action):
    return svc(name, command=HEALTHY, on_unhealthy=action,
               healthcheck={"test": ["test", "-f", "/tmp/ok"], "interval": "300ms", "timeout": "1s",
                            "retries": 1})


def make_unhealthy(world, name):
    inst = wait_for(lambda: next((i for i in world.instances(name) if i.health.value == "healthy"), None),
                    30, what=f"{name} healthy")
    code, _ = world.runtime(inst.node).exec(inst.container_id, ["rm", "/tmp/ok"])
    assert code == 0
    return inst


@pytest.mark.parametrize("action", ["restart", "kill", "leave"])
def test_health_actions(world, names, action):
    name = names(f"hc{action}")
    world.client.add_service(health_svc(name, action))
    inst = make_unhealthy(world, name)
    kinds = lambda: [e.kind for e in world.client.events() if e.service == name]  # noqa: E731
    wait_for(lambda: EventKind.unhealthy in kinds(), 20, what="unhealthy event")
    if action == "restart":
        after = world.wait_running(name, pred=lambda r: r[0].restarts == 1 and r[0].health.value == "healthy")
        assert after[0].container_id == inst.container_id
    elif action == "kill":
        gone = wait_for(lambda: next((i for i in world.instances(name) if i.status is InstanceStatus.failed), None), 20)
        assert "unhealthy" in gone.reason
        assert not world.runtime(inst.node).inspect(inst.container_id).running
        assert EventKind.killed in kinds()
    else:
        time.sleep(1.5)
        now = world.instances(name)[0]
        assert now.status is InstanceStatus.running and now.health.value == "unhealthy"
        assert now.restarts == 0


def test_events_come_in_order_with_increasing_indexes(world, names):
    name = names("evt")
    first = max((e.index for e in world.client.events()), default=0)
    world.client.add_service(svc(name))
    inst = world.wait_running(name)[0]
    world.runtime(inst.node).kill(inst.container_id)
    world.wait_running(name, pred=lambda r: r[0].restarts == 1)
    evs = [e for e in world.client.events(since=first) if e.service == name]
    kinds = [e.kind for e in evs]
    assert kinds[:1] == [EventKind.placed]
    assert [k for k in kinds if k in (EventKind.started, EventKind.exited, EventKind.restarted)] == \
        [EventKind.started, EventKind.exited, EventKind.restarted]
    indexes = [e.index for e in evs]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
    exited = next(e for e in evs if e.kind is EventKind.exited)
    assert exited.exit_code == 137 and exited.node == inst.node and exited.container_id == inst.container_id
