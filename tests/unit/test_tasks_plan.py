"""One control-loop step of the tasks (veo.core.tasks.plan_tasks): due runs become run
instances, overlap and timeout stop runs, history prunes ticks, skipped ticks are one note."""

from __future__ import annotations

from veo.core.calendar import Run, run_instance
from veo.core.models import Service
from veo.core.tasks import TaskState, plan_tasks, trigger

T0 = 1_780_000_000 - 1_780_000_000 % 3600  # on the hour


def task(**kw) -> Service:
    return Service(name="job", image="veo/busybox", schedule=kw.pop("schedule", "*/5 * * * *"), **kw)


def step(svc: Service, state: TaskState, runs: list[Run], now: float):
    return plan_tasks({"job": svc, "web": Service(name="web", image="veo/httpd")},
                      {"job": state}, {"job": runs}, now)


def test_a_new_task_starts_with_the_cursor_at_now_and_owes_nothing() -> None:
    plan = plan_tasks({"job": task()}, {}, {}, T0 + 7)
    assert plan.states["job"] == TaskState(cursor=T0 + 7)
    assert plan.runs == {"job": []} and not plan.notes  # services without schedule are not tasks


def test_a_due_tick_becomes_its_run_instances() -> None:
    plan = step(task(instances=2), TaskState(cursor=T0), [], T0 + 301)
    tick = T0 + 300
    assert plan.states["job"].ticks == (tick,) and plan.states["job"].cursor == tick
    assert plan.runs["job"] == [run_instance(tick, 0), run_instance(tick, 1)]
    # the same step again (a restarted Scheduler with the persisted state) adds nothing
    again = step(task(instances=2), plan.states["job"], [Run(tick)], T0 + 302)
    assert again.states["job"].ticks == (tick,) and not again.notes


def test_forbid_skips_a_tick_while_a_run_is_active() -> None:
    state = TaskState(cursor=T0, ticks=(T0,))
    plan = step(task(), state, [Run(T0, started=T0 + 1)], T0 + 301)
    assert plan.states["job"].ticks == (T0,) and plan.states["job"].cursor == T0 + 300
    assert [n.kind for n in plan.notes] == ["skipped"] and "overlap: forbid" in plan.notes[0].reason


def test_replace_stops_the_active_run_and_starts_the_new_one() -> None:
    state = TaskState(cursor=T0, ticks=(T0,))
    plan = step(task(overlap="replace"), state, [Run(T0, started=T0 + 1)], T0 + 301)
    assert [(s.tick, s.reason) for s in plan.stop] == [(T0, f"replaced by the run of tick {T0 + 300}")]
    assert plan.states["job"].ticks == (T0, T0 + 300)


def test_allow_runs_side_by_side() -> None:
    plan = step(task(overlap="allow"), TaskState(cursor=T0, ticks=(T0,)), [Run(T0, started=T0)], T0 + 301)
    assert plan.states["job"].ticks == (T0, T0 + 300) and not plan.stop


def test_timeout_stops_a_run_and_frees_the_next_tick() -> None:
    state = TaskState(cursor=T0, ticks=(T0,))
    plan = step(task(timeout="60s"), state, [Run(T0, started=T0 + 1)], T0 + 301)
    assert [(s.tick, s.reason) for s in plan.stop] == [(T0, "timed out after 60 s")]
    assert plan.states["job"].ticks == (T0, T0 + 300)  # the stopped run no longer blocks forbid


def test_missed_ticks_past_the_deadline_are_one_note() -> None:
    plan = step(task(starting_deadline="1m"), TaskState(cursor=T0), [], T0 + 3600 + 120)
    assert plan.states["job"].ticks == () and plan.states["job"].cursor == T0 + 3600
    assert len(plan.notes) == 1 and plan.notes[0].reason.startswith("12 tick(s) skipped (missed)")


def test_history_prunes_old_finished_runs() -> None:
    done = [Run(T0 + 300 * i, started=1, finished=2, outcome="succeeded") for i in range(4)]
    done.append(Run(T0 + 1200 + 1, started=1, finished=2, outcome="failed"))
    state = TaskState(cursor=T0 + 1500, ticks=tuple(r.tick for r in done))
    plan = step(task(history={"succeeded": 2, "failed": 0}), state, done, T0 + 1501)
    assert plan.states["job"].ticks == (T0 + 600, T0 + 900)


def test_manual_trigger_is_idempotent_within_a_second() -> None:
    state, tick = trigger(TaskState(cursor=T0), T0 + 10.4)
    again, same = trigger(state, T0 + 10.9)
    assert tick == same == T0 + 10 and again == state and state.manual == (T0 + 10,)
    plan = step(task(), state, [Run(tick)], T0 + 11)
    assert plan.runs["job"] == [run_instance(T0 + 10)]


def test_state_round_trips() -> None:
    s = TaskState(T0, (T0,), (T0,), {str(T0): {"outcome": "failed", "exit_code": 3}})
    assert TaskState.from_json(s.to_json()) == s
