"""Rolling updates, pure: the update value step by step, and the desired state holding units the
update has not reached, rolling back only what it replaced, plans."""

from __future__ import annotations

import pytest

from veo.core import rollout
from veo.core.desired import DesiredState
from veo.core.errors import Conflict, NotFound
from veo.core.models import (ClusterSpec, EventKind, Health, Instance, InstanceStatus, Service,
                             UpdatePolicy)
from veo.core.placement import NodeState
from veo.core.update import RollingUpdate, UnitHealth, UpdateState

R, W, F = UnitHealth.ready, UnitHealth.waiting, UnitHealth.failed


def update(n: int = 3, **policy) -> RollingUpdate:
    p = UpdatePolicy(**{"min_healthy": 0, **policy})
    return RollingUpdate(target="web", services=["web"], units=[f"web#{i}" for i in range(n)],
                         from_version={"web": 1}, to_version={"web": 2}, policy=p, started=0.0,
                         progress_deadline=p.progress_deadline)


def test_parallel_one_replaces_one_unit_at_a_time_in_order():
    up = update()
    up.advance({}, 0.0)
    assert up.in_flight == {"web#0": 120.0} and up.held() == {"web#1", "web#2"}
    up.advance({"web#0": W}, 1.0)
    assert list(up.in_flight) == ["web#0"]  # still waiting: nothing else goes
    events = up.advance({"web#0": R}, 2.0)
    assert up.done == ["web#0"] and list(up.in_flight) == ["web#1"]
    assert [k for k, _ in events] == [EventKind.instance_replaced]
    up.advance({"web#1": R}, 3.0)
    events = up.advance({"web#2": R}, 4.0)
    assert up.state is UpdateState.done and EventKind.update_done in [k for k, _ in events]


def test_min_healthy_must_be_one_stretch():
    up = update(min_healthy=10)
    up.advance({}, 0.0)
    up.advance({"web#0": R}, 1.0)
    up.advance({"web#0": W}, 5.0)  # not healthy any more: the clock starts over
    up.advance({"web#0": R}, 6.0)
    up.advance({"web#0": R}, 15.0)
    assert up.done == []
    up.advance({"web#0": R}, 16.0)
    assert up.done == ["web#0"]


def test_a_unit_stuck_pending_hits_its_deadline_and_the_update_rolls_back():
    up = update(healthy_deadline=30)
    up.advance({}, 0.0)
    assert up.advance({"web#0": W}, 29.0) == []
    events = up.advance({"web#0": W}, 31.0)
    assert up.state is UpdateState.rolled_back and up.failed == ["web#0"]
    assert "not running and healthy within 30s" in events[0][1]


def test_pause_waits_and_resume_goes_on_with_fresh_deadlines():
    up = update(on_failure="pause", healthy_deadline=30)
    up.advance({}, 0.0)
    up.advance({"web#0": F}, 1.0)
    assert up.state is UpdateState.paused and up.in_flight == {}
    assert up.advance({}, 500.0) == []  # paused: no deadline fires, nothing is let go
    up.resume(600.0)
    up.advance({}, 600.0)
    assert up.in_flight == {"web#1": 630.0}


def test_continue_counts_failures_up_to_the_ratio():
    up = update(n=4, on_failure="continue", max_failure_ratio=0.5)
    up.advance({}, 0.0)
    up.advance({"web#0": F}, 1.0)
    assert up.state is UpdateState.running and up.failed == ["web#0"]
    for t, unit in ((2.0, "web#1"), (3.0, "web#2"), (4.0, "web#3")):
        up.advance({unit: R}, t)
    assert up.state is UpdateState.done


def test_progress_deadline_is_reset_by_each_healthy_unit():
    up = update(n=2, progress_deadline=100, healthy_deadline=1000)
    up.advance({}, 0.0)
    up.advance({"web#0": R}, 90.0)
    up.advance({"web#1": W}, 150.0)  # 90 + 100 > 150: still in time
    assert up.state is UpdateState.running
    up.advance({"web#1": W}, 191.0)
    assert up.state is UpdateState.rolled_back and "no progress in 100s" in up.reason


def test_canaries_go_first_then_wait_for_promote():
    up = update(n=4, canary=1, parallel=2)
    up.advance({}, 0.0)
    assert list(up.in_flight) == ["web#0"]
    events = up.advance({"web#0": R}, 1.0)
    assert up.state is UpdateState.canary and events[-1][0] is EventKind.update_paused
    up.resume(2.0)
    up.advance({}, 2.0)
    assert list(up.in_flight) == ["web#1", "web#2"]  # promoted: `parallel` at a time


def test_auto_promote_goes_on_by_itself():
    up = update(n=3, canary=1, auto_promote=True)
    up.advance({}, 0.0)
    up.advance({"web#0": R}, 1.0)
    assert up.state is UpdateState.running and list(up.in_flight) == ["web#1"]


def test_the_value_round_trips_through_json():
    up = update(canary=1)
    up.advance({}, 5.0)
    assert RollingUpdate.from_json(up.to_json()) == up


# ---- the desired state under an update ----------------------------------------------------------


def spec(image: str, n: int = 3, **update) -> ClusterSpec:
    return ClusterSpec(name="demo", services={"web": Service(
        name="web", image=image, instances=n, update=UpdatePolicy(min_healthy=0, **update))})


NODES = [NodeState(name=n, alive=True, cpus=8, memory=16 << 30) for n in ("uno", "dos", "tres")]


def deployed(**update) -> DesiredState:
    st = DesiredState()
    st.apply(spec("veo/busybox", **update), now=0.0)
    st.plan(NODES, None)
    return st


def views(st: DesiredState, status=InstanceStatus.running) -> dict[str, Instance]:
    return {k: Instance(service=s.service, instance=s.instance, node=s.node, status=status,
                        generation=s.generation, health=Health.none) for k, s in st.slots.items()}


def members(st):
    return {s.unit: (s.key,) for s in st.slots.values()}


def test_an_apply_holds_every_unit_the_update_has_not_reached():
    st = deployed()
    before = {k: (s.generation, s.spec_hash) for k, s in st.slots.items()}
    st.apply(spec("veo/httpd"), now=10.0)
    assert [n[0] for n in st.pending_notes] == [EventKind.update_started]
    rollout.advance_updates(st, views(st), members(st), 10.0)
    st.plan(NODES, None)
    moved = [k for k, s in st.slots.items() if (s.generation, s.spec_hash) != before[k]]
    assert moved == ["web#0"]  # one unit at a time; the others keep their old spec
    assert st.versions["web"][-1]["outcome"] == "current" and len(st.versions["web"]) == 2


def test_a_failed_update_reverts_only_what_it_replaced():
    st = deployed()
    untouched = {k: st.slots[k] for k in ("web#1", "web#2")}
    st.apply(spec("veo/no-such-image"), now=10.0)
    rollout.advance_updates(st, views(st), members(st), 10.0)
    st.plan(NODES, None)
    failed = views(st)
    failed["web#0"] = failed["web#0"].model_copy(update={"status": InstanceStatus.failed})
    notes = rollout.advance_updates(st, failed, members(st), 11.0)
    assert EventKind.rolled_back in [n[0] for n in notes]
    assert st.services["web"].image == "veo/busybox"
    st.plan(NODES, None)
    assert {k: st.slots[k] for k in untouched} == untouched  # never touched: same generation
    assert st.slots["web#0"].spec_hash == untouched["web#1"].spec_hash  # moved back
    assert [v["outcome"] for v in st.versions["web"]] == ["current", "failed"]


def test_an_update_resumes_from_its_persisted_state(tmp_path):
    from veo.adapters.store import SqliteStore

    store = SqliteStore(tmp_path / "s.db")
    st = deployed()
    st.apply(spec("veo/httpd"), now=10.0)
    rollout.advance_updates(st, views(st), members(st), 10.0)
    st.save(store)
    back = DesiredState.load(store)
    assert back.updates == st.updates and back.updates["web"].in_flight == {"web#0": 130.0}


def test_check_index_is_a_compare_and_set():
    st = deployed()
    with pytest.raises(Conflict, match="spec index is 1, not 0"):
        st.apply(spec("veo/httpd"), check_index=0)
    st.apply(spec("veo/httpd"), check_index=1)


def test_plan_shows_what_would_change_and_changes_nothing():
    st = deployed()
    before = (dict(st.services), dict(st.slots), st.spec_index)
    out = rollout.plan(st, spec("veo/httpd", n=4), NODES)
    assert (dict(st.services), dict(st.slots), st.spec_index) == before
    web = out["services"]["web"]
    assert out["changed"] and web["change"] == "replaced"
    assert web["diff"]["image"] == ["veo/busybox", "veo/httpd"] and web["diff"]["instances"] == [3, 4]
    assert web["instances"]["placed"] == ["web#0", "web#1", "web#2", "web#3"]
    assert rollout.plan(st, spec("veo/busybox"), NODES)["changed"] is False
    huge = ClusterSpec(name="demo", services={"big": Service(name="big", image="x", cpus=64)})
    assert "cpu" in rollout.plan(st, huge, NODES)["services"]["big"]["problems"][0]


def test_history_and_rollback_targets():
    st = deployed()
    st.apply(spec("veo/httpd"), now=10.0)
    assert [v["number"] for v in rollout.history(st, "web")] == [1, 2]
    number, svc = rollout.rollback_to(st, "web", None)
    assert number == 1 and svc.image == "veo/busybox"
    with pytest.raises(NotFound, match="kept versions: 1, 2"):
        rollout.rollback_to(st, "web", 7)
