"""The fault matrix: real faults against real Ray nodes and real Docker engines.

Each row injects one fault, waits for a settle period, and asserts the invariants of
``ray_world.converged``: the desired instances run, one container per service/instance across all
engines, no orphan or stale generation, restart counts never decrease. Anchors: Kubernetes'
DaemonRestart e2e test, Nomad's e2e/clientstate (kill -9 the agent; the task survives untouched),
Nomad's reaper of dangling labelled containers.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from ray_world import Faults, containers_of, converged, wait_for

from veo.core.errors import Conflict
from veo.core.models import ClusterSpec, EventKind, InstanceStatus, Service

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.chaos, pytest.mark.timeout(240)]

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
SETTLE = 60


def svc(name: str, **kw) -> Service:
    kw.setdefault("command", LOOP)
    return Service(name=name, image="veo/busybox", network_mode="none", stop_grace_period=1, **kw)


@pytest.fixture
def faults(world) -> Faults:
    return Faults(world)


def started_at(world, inst) -> str:
    return world.runtime(inst.node).inspect(inst.container_id).started_at


def restarts(world, service: str) -> dict[str, int]:
    return {f"{i.service}#{i.instance}": i.restarts for i in world.instances(service)}


def test_1_scheduler_killed_five_times_during_a_crash_loop(world, names, faults):
    steady, crash = names("steady"), names("crashloop")
    world.client.add_service(svc(steady, instances=2))
    world.client.add_service(svc(crash, command=["sh", "-c", "sleep 0.5; exit 1"]))
    before = {i.instance: (i.container_id, started_at(world, i)) for i in world.wait_running(steady, 2)}
    floor: dict[str, int] = {}
    for _ in range(5):
        faults.kill_actor("scheduler")
        now = restarts(world, crash)
        for k, v in now.items():
            assert v >= floor.get(k, 0), f"restart count went down: {now} after {floor}"
        floor = now
        time.sleep(1)
    views = wait_for(lambda: converged(world, {steady: 2}), SETTLE, what="steady to converge")
    # the steady service was never touched: same containers, same start times, no restarts
    for inst in (v for v in views.values() if v.service == steady):
        assert (inst.container_id, started_at(world, inst)) == before[inst.instance]
        assert inst.restarts == 0
    assert max(restarts(world, crash).values()) >= max(floor.values())
    assert len(containers_of(world, {crash})) == 1


def test_2_node_agent_killed(world, names, faults):
    name = names("adopted")
    world.client.add_service(svc(name, instances=3))
    running = world.wait_running(name, 3)
    before = {i.instance: (i.container_id, started_at(world, i)) for i in running}
    node = running[0].node
    faults.kill_actor("agent", node)
    views = wait_for(lambda: converged(world, {name: 3}), SETTLE, what="convergence")
    for inst in views.values():
        assert (inst.container_id, started_at(world, inst)) == before[inst.instance]
        assert inst.restarts == 0
    # the restarted agent follows the engine's events again: a kill is still handled
    victim = next(i for i in views.values() if i.node == node)
    world.runtime(node).kill(victim.container_id)
    wait_for(lambda: converged(world, {name: 3}) and restarts(world, name)[f"{name}#{victim.instance}"] == 1,
             SETTLE, what="the kill to be handled by the new agent")


def test_3_worker_raylet_killed_services_move_and_stale_copies_go_when_it_returns(world, names, faults):
    g, m, s, solo = names("mg"), names("mm"), names("ms"), names("solo")
    world.client.add_service(svc(m, group=g, group_role="master", group_policy="master_kills_all", hosts=["tres", "dos"]))
    world.client.add_service(svc(s, group=g, hosts=["tres", "dos"]))
    world.client.add_service(svc(solo, hosts=["tres", "dos"]))
    wait_for(lambda: converged(world, {m: 1, s: 1, solo: 1}), SETTLE, what="initial placement")
    # put everything on tres first, so that losing tres moves all of it
    expected = {m: 1, s: 1, solo: 1}
    world.client.drain("dos")
    try:
        views = wait_for(lambda: _all_on(converged(world, expected), "tres"), SETTLE, what="all on tres")
    finally:
        world.client.uncordon("dos")
    old = {k: v.generation for k, v in views.items()}
    faults.kill_node("tres")
    try:
        moved = wait_for(lambda: (v := _live_only(world, {m: 1, s: 1, solo: 1}))
                         and all(i.node == "dos" for i in v.values()) and v, SETTLE,
                         what="services to move to dos")
        assert moved[(m, 0)].node == moved[(s, 0)].node == "dos"  # the group moved as a unit
        assert all(moved[k].generation == old[k] + 1 for k in old)
        events = [e.kind for e in world.client.events()]
        assert EventKind.node_lost in events
    finally:
        faults.revive_node("tres", "back")
    # tres is back with its old containers still on its engine: they are fenced and removed
    views = wait_for(lambda: converged(world, {m: 1, s: 1, solo: 1}), SETTLE, what="stale copies removed")
    assert {v.node for v in views.values()} == {"dos"}
    assert not [c for c in containers_of(world, {m, s, solo}) if c.labels["veo.node"] == "tres"]


def _all_on(views, node: str):
    return views if views and {v.node for v in views.values()} == {node} else None


def _live_only(world, expected):
    """Like converged, but ignoring containers on engines whose node is down (they are stale
    until that node comes back and its agent removes them)."""
    out = {}
    for svc_name, n in expected.items():
        running = [i for i in world.instances(svc_name) if i.status is InstanceStatus.running]
        if len(running) != n:
            return None
        out.update({(i.service, i.instance): i for i in running})
    return out


def test_4_dockerd_restarted(world, names, faults):
    name = names("survivor")
    world.client.add_service(svc(name, hosts=["dos"], instances=2))
    world.wait_running(name, 2)
    floor = restarts(world, name)
    faults.restart_engine("dos")
    views = wait_for(lambda: converged(world, {name: 2}, floor), SETTLE, what="recovery after dockerd restart")
    assert all(v.node == "dos" for v in views.values())


def test_5_dockerd_frozen_20s_nothing_declared_dead(world, names, faults):
    name = names("frozen")
    world.client.add_service(svc(name, hosts=["dos"]))
    inst = world.wait_running(name)[0]
    started = started_at(world, inst)
    pid = faults.engine_pid("dos")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(20)
    finally:
        os.kill(pid, signal.SIGCONT)
    views = wait_for(lambda: converged(world, {name: 1}), SETTLE, what="convergence after SIGCONT")
    after = views[(name, 0)]
    assert after.container_id == inst.container_id and after.restarts == 0
    assert started_at(world, after) == started
    assert not [e for e in world.client.events() if e.service == name and e.kind is EventKind.exited]


def test_6_container_killed_while_its_agent_is_down(world, names, faults):
    name = names("lonely")
    world.client.add_service(svc(name, hosts=["uno"]))
    inst = world.wait_running(name)[0]
    faults.kill_actor("agent", "uno", wait=False)
    world.runtime("uno").kill(inst.container_id)
    wait_for(lambda: converged(world, {name: 1}) and restarts(world, name)[f"{name}#0"] == 1,
             SETTLE, what="the death noticed at recovery and handled by policy")
    assert world.instances(name)[0].container_id == inst.container_id


def test_7_orphan_reaped_unlabelled_container_untouched(world):
    rt = world.runtime("uno")
    orphan = rt.create({"image": "veo/busybox", "command": LOOP, "name": "veo_ghost_0_g1",
                        "network_mode": "none", "labels": {
                            "veo.managed": "true", "veo.cluster": "veo", "veo.node": "uno",
                            "veo.service": "ghost", "veo.instance": "0", "veo.generation": "1"}})
    stranger = rt.create({"image": "veo/busybox", "command": LOOP, "name": "not-veo",
                          "network_mode": "none", "labels": {"app": "mine"}})
    try:
        rt.start(orphan)
        rt.start(stranger)
        wait_for(lambda: rt.inspect(orphan) is None, 30, what="the orphan to be reaped")
        assert any(e.kind is EventKind.reaped and e.container_id == orphan for e in world.client.events())
        time.sleep(2)
        assert rt.inspect(stranger).running
    finally:
        rt.remove(stranger)
        rt.remove(orphan)


def test_8_same_apply_sent_twice_concurrently(world, names):
    name = names("twice")
    current = world.client.spec()
    spec = ClusterSpec.model_construct(
        name="veo", nodes=world.base_nodes, settings=current.settings, policy=current.policy,
        services={**current.services, name: svc(name, instances=2)})
    errors = []
    threads = [threading.Thread(target=lambda: _try(errors, world.client.apply, spec)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    wait_for(lambda: converged(world, {name: 2}), SETTLE, what="one set of containers")
    world.client.apply(spec)  # and a third time, sequentially: nothing changes
    time.sleep(2)
    assert len(containers_of(world, {name})) == 2


def _try(errors, fn, *args):
    try:
        fn(*args)
    except Exception as e:  # collected for the assertion in the test thread
        errors.append(e)


def test_9_missing_image_fails_without_a_crash_loop(world, names):
    name = names("noimage")
    # pull_policy never: the image is not on the engine and no registry is asked (this machine has
    # none; an unreachable registry would be a temporary error, retried)
    world.client.add_service(Service(name=name, image="veo/does-not-exist:1", network_mode="none",
                                     pull_policy="never"))
    inst = wait_for(lambda: next((i for i in world.instances(name) if i.status is InstanceStatus.failed), None),
                    30, what="failed")
    assert "image 'veo/does-not-exist:1' is not on engine" in inst.reason and "pull_policy" in inst.reason
    time.sleep(3)
    assert world.instances(name)[0].restarts == 0
    assert not containers_of(world, {name})


def test_10_crash_loop_hits_restart_count_and_privileged_refusal_is_a_clear_failure(world, names):
    crash, priv = names("crash"), names("priv")
    world.client.add_service(svc(crash, command=["sh", "-c", "exit 2"], restart_count=3))
    world.client.add_service(svc(priv, privileged=True))
    done = wait_for(lambda: next((i for i in world.instances(crash) if i.status is InstanceStatus.failed), None),
                    60, what="restart_count reached")
    assert done.restarts == 3 and "restart_count 3 reached" in done.reason
    refused = wait_for(lambda: next((i for i in world.instances(priv) if i.status is InstanceStatus.failed), None),
                       30, what="the engine's refusal")
    assert "cannot start" in refused.reason and "privileges" in refused.reason
    assert refused.restarts == 0


def test_11_drain_moves_a_group_as_a_unit_and_refuses_when_it_cannot(world, names):
    g, m, s = names("dg"), names("dm"), names("ds")
    world.client.add_service(svc(m, group=g, group_role="master", hosts=["uno", "dos"]))
    world.client.add_service(svc(s, group=g, hosts=["uno", "dos"]))
    views = wait_for(lambda: converged(world, {m: 1, s: 1}), SETTLE, what="placement")
    src = views[(m, 0)].node
    dst = "dos" if src == "uno" else "uno"
    world.client.drain(src)
    try:
        moved = wait_for(lambda: (v := converged(world, {m: 1, s: 1})) and v[(m, 0)].node == dst and v,
                         SETTLE, what="the group to move")
        assert moved[(s, 0)].node == dst
        with pytest.raises(Conflict, match=f"cannot drain {dst}"):
            world.client.drain(dst)  # hosts allow only uno and dos, and src is cordoned
    finally:
        world.client.uncordon(src)


def test_12_unschedulable_service_placed_when_a_node_joins(world, names, faults, engine_pool):
    name = names("gpujob")
    world.client.add_service(svc(name, roles=["gpu"]))
    wait_for(lambda: next((i for i in world.instances(name) if i.reason and "role" in i.reason), None),
             30, what="pending with a reason")
    faults.revive_node("gpu1", "gpu")
    try:
        views = wait_for(lambda: converged(world, {name: 1}), SETTLE, what="placement on the new node")
        assert views[(name, 0)].node == "gpu1"
    finally:
        world.remove(name)
        faults.kill_node("gpu1")


def test_2b_supervisor_and_health_checker_killed(world, names, faults):
    """The other per-node actors: after kill -9 the supervisor still restarts (counts kept) and
    the health checker re-learns its watches from the agent and still acts."""
    crash, sick = names("sup"), names("sick")
    world.client.add_service(svc(crash, hosts=["dos"]))
    world.client.add_service(svc(sick, hosts=["dos"], on_unhealthy="restart",
                                 command=["sh", "-c", "trap 'exit 0' TERM; touch /tmp/ok; while :; do sleep 1 & wait $!; done"],
                                 healthcheck={"test": ["test", "-f", "/tmp/ok"], "interval": "300ms",
                                              "timeout": "1s", "retries": 1}))
    inst = world.wait_running(crash)[0]
    world.runtime("dos").kill(inst.container_id)
    world.wait_running(crash, pred=lambda r: r[0].restarts == 1)
    faults.kill_actor("supervisor", "dos")
    world.runtime("dos").kill(inst.container_id)
    wait_for(lambda: converged(world, {crash: 1}, {f"{crash}#0": 1}) and restarts(world, crash)[f"{crash}#0"] == 2,
             SETTLE, what="a restart decided by the new supervisor, counted after the old ones")

    healthy = wait_for(lambda: next((i for i in world.instances(sick) if i.health.value == "healthy"), None), 30)
    faults.kill_actor("health", "dos")
    time.sleep(2)  # the agent hands the new checker its watches on the next converge
    code, _ = world.runtime("dos").exec(healthy.container_id, ["rm", "/tmp/ok"])
    assert code == 0
    wait_for(lambda: converged(world, {sick: 1}) and restarts(world, sick)[f"{sick}#0"] == 1,
             SETTLE, what="the unhealthy container restarted by the new checker")
