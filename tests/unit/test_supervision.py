"""Supervision decisions: the policy table of README, row by row."""

from __future__ import annotations

import pytest

from veo.core.lifecycle import allowed, is_terminal
from veo.core.models import GroupPolicy, GroupRole, InstanceStatus, RestartPolicy, Settings
from veo.core.names import split_key
from veo.core.supervision import Death, Member, UnitState, backoff_delay, decide, merge_window

SETTINGS = Settings(budget_restarts=5, budget_period=60, backoff_initial=0.1, backoff_max=10)
MASTER = Member("web#0", "web", role=GroupRole.master)
SLAVE = Member("side#0", "side", role=GroupRole.slave)
OTHER = Member("log#0", "log", role=GroupRole.slave)
GROUP = [MASTER, SLAVE, OTHER]


def run(death, members=GROUP, policy=GroupPolicy.one_for_one, state=None, now=100.0):
    return decide(death, members, policy, state or UnitState(), SETTINGS, now)


@pytest.mark.parametrize(
    "policy, dead, restarted, stopped",
    [
        (GroupPolicy.one_for_one, "web#0", ["web#0"], []),
        (GroupPolicy.one_for_one, "side#0", ["side#0"], []),
        (GroupPolicy.one_kills_all, "side#0", ["web#0", "side#0", "log#0"], ["log#0", "web#0"]),
        (GroupPolicy.one_kills_all, "web#0", ["web#0", "side#0", "log#0"], ["log#0", "side#0"]),
        (GroupPolicy.master_kills_all, "web#0", ["web#0", "side#0", "log#0"], ["log#0", "side#0"]),
        (GroupPolicy.master_kills_all, "side#0", ["side#0"], []),
    ],
)
def test_policy_table(policy, dead, restarted, stopped):
    d = run(Death(dead, exit_code=1), policy=policy)
    assert d.restart == restarted  # declared order, master first
    assert d.stop == stopped  # reverse order, the dead one is already stopped
    assert not d.failed and not d.completed


def test_restarts_are_counted_for_every_restarted_member():
    state = UnitState()
    run(Death("web#0", 1), policy=GroupPolicy.master_kills_all, state=state)
    run(Death("side#0", 1), policy=GroupPolicy.master_kills_all, state=state)
    assert state.restarts == {"web#0": 1, "side#0": 2, "log#0": 1}
    assert len(state.window) == 2  # the budget counts restart events, not containers


def test_never_ends_alone_completed_or_failed():
    m = Member("job#0", "job", restart=RestartPolicy.never)
    ok = run(Death("job#0", 0), members=[m])
    assert ok.completed == ["job#0"] and not ok.restart
    bad = run(Death("job#0", 3), members=[m])
    assert bad.failed == {"job#0": "exited with code 3"} and not bad.restart


def test_never_member_of_kill_all_group_leaves_the_others_alone():
    temp = Member("side#0", "side", role=GroupRole.slave, restart=RestartPolicy.never)
    d = run(Death("side#0", 1), members=[MASTER, temp], policy=GroupPolicy.one_kills_all)
    assert d.failed == {"side#0": "exited with code 1"} and not d.stop and not d.restart


def test_on_failure_does_not_restart_a_clean_exit():
    m = Member("job#0", "job", restart_on_success=False)
    assert run(Death("job#0", 0), members=[m]).completed == ["job#0"]
    assert run(Death("job#0", 2), members=[m]).restart == ["job#0"]


def test_exactly_restart_count_restarts_then_failed():
    m = Member("job#0", "job", restart_count=3)
    state = UnitState()
    outcomes = [run(Death("job#0", 1), members=[m], state=state, now=100 + i) for i in range(5)]
    assert [bool(o.restart) for o in outcomes] == [True, True, True, False, False]
    assert "restart_count 3 reached" in outcomes[3].failed["job#0"]
    assert state.restarts["job#0"] == 3


@pytest.mark.parametrize("count", [None, 0])
def test_restart_count_zero_or_none_is_unlimited(count):
    m = Member("job#0", "job", restart_count=count)
    state = UnitState()
    settings = Settings(budget_restarts=1000)
    for i in range(50):
        assert decide(Death("job#0", 1), [m], GroupPolicy.one_for_one, state, settings, i).restart


def test_master_exhausting_its_count_fails_the_whole_group():
    master = Member("web#0", "web", role=GroupRole.master, restart_count=1)
    state = UnitState(restarts={"web#0": 1})
    d = run(Death("web#0", 1), members=[master, SLAVE], policy=GroupPolicy.master_kills_all, state=state)
    assert d.stop == ["side#0"]
    assert set(d.failed) == {"web#0", "side#0"}
    assert d.failed["side#0"].startswith("group failed: restart_count 1 reached")


def test_budget_exhaustion_stops_the_unit():
    state = UnitState()
    results = [run(Death("side#0", 1), state=state, now=100 + i) for i in range(6)]
    assert all(r.restart for r in results[:5])
    last = results[5]
    assert not last.restart and set(last.failed) == {"web#0", "side#0", "log#0"}
    assert "restart budget exhausted: more than 5 restarts in 60s" in last.reason
    assert last.stop == ["log#0", "web#0"]


def test_budget_window_slides():
    state = UnitState()
    for i in range(5):
        assert run(Death("web#0", 1), state=state, now=i).restart
    # 61 s later the old restarts have left the window
    assert run(Death("web#0", 1), state=state, now=70).restart


def test_budget_window_rebuilt_from_times_kept_elsewhere():
    """A restarted supervisor starts with an empty state; the times the agent kept (the window of
    the last decision) make the budget continue instead of starting afresh."""
    first = UnitState()
    kept: list[float] = []
    for i in range(3):
        merge_window(first, kept)
        decision = run(Death("web#0", 1), state=first, now=100 + i)
        kept = list(first.window)
    fresh = UnitState()  # the supervisor was restarted
    merge_window(fresh, kept)
    merge_window(fresh, kept)  # the same times handed back twice count once
    assert list(fresh.window) == [100, 101, 102]
    assert run(Death("web#0", 1), state=fresh, now=103).restart
    assert run(Death("web#0", 1), state=fresh, now=104).restart
    exhausted = run(Death("web#0", 1), state=fresh, now=105)
    assert not exhausted.restart and "restart budget exhausted" in exhausted.reason
    assert decision.restart


def test_backoff_grows_then_caps_and_resets_after_a_long_run():
    assert backoff_delay(0, SETTINGS) == 0.0  # the first restart is immediate
    assert backoff_delay(1, SETTINGS) == pytest.approx(0.1)
    assert backoff_delay(2, SETTINGS) == pytest.approx(0.2)
    assert backoff_delay(4, SETTINGS) == pytest.approx(0.8)
    assert backoff_delay(20, SETTINGS) == 10
    m = Member("job#0", "job")
    state = UnitState()
    settings = Settings(budget_restarts=100, backoff_initial=0.1, backoff_max=10)
    delays = [decide(Death("job#0", 1, ran_for=0.1), [m], GroupPolicy.one_for_one, state, settings, i).delay
              for i in range(4)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.4])
    long_run = decide(Death("job#0", 1, ran_for=10), [m], GroupPolicy.one_for_one, state, settings, 5)
    assert long_run.delay == 0.0


def test_forced_restart_restarts_a_never_member():
    m = Member("job#0", "job", restart=RestartPolicy.never)
    d = run(Death("job#0", 137, reason="unhealthy", force_restart=True), members=[m])
    assert d.restart == ["job#0"]


def test_unknown_member_is_ignored():
    assert run(Death("ghost#0", 1)).nothing


def test_keys_and_lifecycle():
    assert split_key("my#svc#3") == ("my#svc", 3)
    assert allowed(InstanceStatus.running, InstanceStatus.exited)
    assert not allowed(InstanceStatus.completed, InstanceStatus.running)
    assert is_terminal(InstanceStatus.failed) and not is_terminal(InstanceStatus.backoff)
