"""Scheduled tasks, one control-loop step: which runs each task wants now. Pure.

The Scheduler keeps a ``TaskState`` per task (persisted before it acts): the cursor (last scheduled
time) and the ticks whose runs exist (active, or finished and kept as history). Each step,
``plan_tasks`` takes the states, what the runs are doing and the time, and returns the new states,
the run instances to place (``runs``: they become units like any other, keyed by
``veo.core.calendar.run_instance``), the runs to stop (timeout, overlap: replace) and the events to
record (skipped ticks, as one summary). See ``veo.core.calendar`` for the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from veo.core.calendar import (
    Calendar,
    History,
    Overlap,
    Run,
    due,
    overlap_decision,
    prune_history,
    run_instance,
    timed_out,
)
from veo.core.models import Service


@dataclass(frozen=True)
class TaskState:
    """What the Scheduler persists for one task."""

    cursor: float | None = None  # the last scheduled time considered (run or skipped)
    ticks: tuple[int, ...] = ()  # ticks whose runs exist (active or kept as history)
    manual: tuple[int, ...] = ()  # the ones ``veo run`` asked for
    results: dict[str, dict] = field(default_factory=dict)  # str(tick) -> outcome, exit code...

    def to_json(self) -> dict:
        return {"cursor": self.cursor, "ticks": list(self.ticks), "manual": list(self.manual),
                "results": dict(self.results)}

    @classmethod
    def from_json(cls, d: dict) -> TaskState:
        return cls(d.get("cursor"), tuple(d.get("ticks", ())), tuple(d.get("manual", ())),
                   dict(d.get("results", {})))


@dataclass(frozen=True)
class Stop:
    task: str
    tick: int
    reason: str


@dataclass(frozen=True)
class Note:
    """An event to record: ``kind`` is an EventKind value."""

    kind: str
    task: str
    reason: str


@dataclass
class TaskPlan:
    states: dict[str, TaskState] = field(default_factory=dict)
    runs: dict[str, list[int]] = field(default_factory=dict)  # task -> run instances to place
    stop: list[Stop] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


def calendar_of(svc: Service) -> Calendar:
    return Calendar.of(svc.schedule or (), svc.time_zone)


def instances_of(svc: Service, tick: int) -> list[int]:
    copies = svc.instances if isinstance(svc.instances, int) else 1
    return [run_instance(tick, c) for c in range(copies)]


def plan_tasks(tasks: Mapping[str, Service], states: Mapping[str, TaskState],
               runs: Mapping[str, list[Run]], now: float) -> TaskPlan:
    """``runs``: what each task's existing ticks are doing (from slots and agent reports)."""
    plan = TaskPlan()
    for name, svc in tasks.items():
        if not svc.is_task:
            continue
        state, mine = states.get(name, TaskState()), list(runs.get(name, ()))
        state = _step_one(plan, name, svc, state, mine, now)
        plan.states[name] = state
        plan.runs[name] = [i for t in sorted(state.ticks) for i in instances_of(svc, t)]
    return plan


def _step_one(plan: TaskPlan, name: str, svc: Service, state: TaskState, mine: list[Run],
              now: float) -> TaskState:
    for tick in timed_out(mine, svc.timeout, now):
        plan.stop.append(Stop(name, tick, f"timed out after {svc.timeout:g} s"))
        mine = [replace(r, finished=now, outcome="failed") if r.tick == tick else r for r in mine]
    d = due(calendar_of(svc), state.cursor, now, svc.starting_deadline)
    if d.skipped is not None:
        plan.notes.append(Note("skipped", name, d.skipped.describe()))
    ticks = set(state.ticks)
    if d.tick is not None and int(d.tick) not in ticks:
        decision = overlap_decision(svc.overlap, mine)
        if decision.start:
            for old in decision.stop:
                plan.stop.append(Stop(name, old, f"replaced by the run of tick {int(d.tick)}"))
                mine = [replace(r, finished=now, outcome="failed") if r.tick == old else r
                        for r in mine]
            ticks.add(int(d.tick))
        else:
            plan.notes.append(Note("skipped", name, f"tick {int(d.tick)} skipped (overlap: "
                                   f"{Overlap(svc.overlap).value}): {decision.reason}"))
    keep = History(svc.history.succeeded, svc.history.failed)
    pruned = set(prune_history([r for r in mine if r.tick in ticks], keep))
    ticks -= pruned
    results = {k: v for k, v in state.results.items() if int(k) in ticks}
    return TaskState(d.cursor, tuple(sorted(ticks)),
                     tuple(t for t in state.manual if t in ticks), results)


def trigger(state: TaskState, now: float) -> tuple[TaskState, int]:
    """``veo run TASK``: a run for ``now`` (whole seconds, so a repeated call within the same
    second names the same run instead of making a second one). Overlap does not apply: the user
    asked for this run."""
    tick = int(now)
    if tick in state.ticks:
        return state, tick
    return replace(state, ticks=tuple(sorted({*state.ticks, tick})),
                   manual=tuple(sorted({*state.manual, tick}))), tick
