"""Scheduled tasks inside the Scheduler: the glue between its control loop and the pure
``veo.core.tasks``. The Scheduler calls these from marked hooks (``HOOK(tasks)``):

* ``before_plan`` at the start of each planning step: asks the calendar which runs are due,
  persists the task states (cursor and run ticks) *before* reconcile places anything, stops runs
  past their timeout or replaced by a newer tick, records skipped ticks as one event, and returns
  the run instances for reconcile (each run is a unit like any other);
* ``enrich`` on events from agents: a run's completed/failed event gets its exit code, duration
  and last log lines, and the result is kept for ``veo tasks``;
* ``views`` and ``trigger`` for ``veo tasks`` and ``veo run``.

Task state (each task's calendar cursor and runs) is part of the Scheduler's ``DesiredState``
(``state.tasks``), saved with it before anything acts on it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from veo.core.calendar import Run, explain, run_tick
from veo.core.errors import Conflict, NotFound
from veo.core.models import Event, EventKind
from veo.core.names import instance_key
from veo.core.tasks import TaskState, calendar_of, instances_of, plan_tasks, trigger as _trigger

log = logging.getLogger("veo.tasks")
LOG_LINES = 10
LOG_TIMEOUT = 2.0


def _now(sched) -> float:
    """The time (a Scheduler may carry a ``clock``: tests drive the calendar with one)."""
    return getattr(sched, "clock", time.time)()


def _states(sched) -> dict[str, TaskState]:
    if not hasattr(sched, "_task_marks"):
        sched._task_marks = {}  # run key -> {"started": t, "exit_code": n}, from agents' events
    return sched.state.tasks


def _save(sched, states: dict[str, TaskState]) -> None:
    """Persist the task states at once: the cursor fences a second start of a tick."""
    sched.state.tasks = states
    sched.state.touch("tasks")
    sched.state.save(sched.store)


def _tasks(sched) -> dict:
    return {n: s for n, s in sched.state.services.items() if s.is_task}


def _reported(sched) -> dict[str, object]:
    out = {}
    for rec in sched.nodes.values():
        if rec.alive and rec.report:
            for inst in rec.report.instances:
                out[instance_key(inst.service, inst.instance)] = inst
    return out


def _epoch(iso: str | None) -> float | None:
    """Docker's StartedAt (RFC 3339, nanoseconds, UTC) in epoch seconds."""
    if not iso:
        return None
    head, _, frac = iso.rstrip("Z").partition(".")
    try:
        t = dt.datetime.fromisoformat(head).replace(tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        return None
    return t + float(f"0.{frac[:6]}") if frac[:6].isdigit() else t


def _runs(sched, name: str, svc, state: TaskState, reported: dict) -> list[Run]:
    """What each tick's run is doing, from the slots (outcomes) and agents' reports (starts)."""
    out = []
    for tick in state.ticks:
        keys = [instance_key(name, i) for i in instances_of(svc, tick)]
        slots = [sched.state.slots.get(k) for k in keys]
        outcomes = [s.outcome for s in slots if s is not None]
        starts = [_epoch(getattr(reported.get(k), "started_at", None)) for k in keys]
        starts += [sched._task_marks.get(k, {}).get("started") for k in keys]
        started = min((t for t in starts if t), default=None)
        if len(outcomes) == len(keys) and all(outcomes):
            result = state.results.get(str(tick), {})
            outcome = "failed" if "failed" in outcomes else "succeeded"
            out.append(Run(tick, started, result.get("finished", _now(sched)), outcome,
                           result.get("exit_code"), tick in state.manual))
        else:
            out.append(Run(tick, started, manual=tick in state.manual))
    return out


def before_plan(sched) -> dict[str, list[int]]:
    """HOOK(tasks) in Scheduler._plan: the run instances reconcile should place."""
    states = _states(sched)
    tasks = _tasks(sched)
    if not tasks and not states:
        return {}
    reported = _reported(sched)
    runs = {n: _runs(sched, n, svc, states.get(n, TaskState()), reported) for n, svc in tasks.items()}
    plan = plan_tasks(tasks, states, runs, _now(sched))
    _drop_unkeepable(sched, tasks, plan)
    if plan.states != states:
        _save(sched, plan.states)  # desired state before acting: the cursor fences a second start
    events = [Event(kind=EventKind(n.kind), service=n.task, reason=n.reason) for n in plan.notes]
    if events:
        sched._record(events)
    for stop in plan.stop:
        _stop_run(sched, stop.task, tasks[stop.task], stop.tick, stop.reason)
    return plan.runs


def _drop_unkeepable(sched, tasks: dict, plan) -> None:
    """A finished run is history only while its container exists where it ran: one whose node is
    lost, or whose task changed (spec hash), is forgotten rather than placed again — placing it
    would run the tick a second time."""
    for name, svc in tasks.items():
        state = plan.states[name]
        gone = set()
        for tick in state.ticks:
            for i in instances_of(svc, tick):
                slot = sched.state.slots.get(instance_key(name, i))
                rec = sched.nodes.get(slot.node) if slot else None
                if slot is not None and slot.outcome and (
                        rec is None or not rec.alive or slot.spec_hash != svc.spec_hash()):
                    gone.add(tick)
        if gone:
            plan.states[name] = TaskState(state.cursor, tuple(t for t in state.ticks if t not in gone),
                                          tuple(t for t in state.manual if t not in gone),
                                          {k: v for k, v in state.results.items() if int(k) not in gone})
            plan.runs[name] = [i for t in plan.states[name].ticks for i in instances_of(svc, t)]


def _stop_run(sched, name: str, svc, tick: int, reason: str) -> None:
    for i in instances_of(svc, tick):
        key = instance_key(name, i)
        slot = sched.state.slots.get(key)
        rec = sched.nodes.get(slot.node) if slot else None
        if slot is None or slot.outcome or rec is None or not rec.alive:
            continue
        try:
            sched._agent(slot.node).stop_run.remote(key, reason)  # idempotent; retried next step
        except Exception as e:
            log.warning("cannot stop %s: %s", key, e)


# ---- events ----------------------------------------------------------------------------------


async def enrich(sched, events: list[Event]) -> list[Event]:
    """HOOK(tasks) in Scheduler.record: exit code, duration and last log lines on a run's
    completed/failed event; the run's result kept for ``veo tasks``."""
    states = _states(sched)
    for ev in events:
        svc = sched.state.services.get(ev.service or "")
        if svc is None or not svc.is_task or ev.instance is None:
            continue
        key = instance_key(ev.service, ev.instance)
        marks = sched._task_marks.setdefault(key, {})
        if ev.kind in (EventKind.started, EventKind.restarted):
            marks.setdefault("started", ev.time)
        elif ev.kind is EventKind.exited and ev.exit_code is not None:
            marks["exit_code"] = ev.exit_code
        elif ev.kind in (EventKind.completed, EventKind.failed, EventKind.killed):
            await _finish(sched, states, ev, key, marks)
    return events


async def _finish(sched, states: dict, ev: Event, key: str, marks: dict) -> None:
    if ev.exit_code is None:
        ev.exit_code = marks.get("exit_code", 0 if ev.kind is EventKind.completed else None)
    started = marks.get("started")
    if started is not None:
        ev.duration = round(max(0.0, ev.time - started), 3)
    if ev.node:
        try:
            text = await asyncio.wait_for(sched._agent(ev.node).logs.remote(key, LOG_LINES), LOG_TIMEOUT)
            ev.logs = text[-4000:]
        except Exception as e:  # the result matters more than its logs
            log.info("no logs for %s: %s", key, e)
    tick, _copy = run_tick(ev.instance)
    state = states.get(ev.service)
    if state is not None and tick in state.ticks:
        results = {**state.results, str(tick): {
            "outcome": "succeeded" if ev.kind is EventKind.completed else "failed",
            "exit_code": ev.exit_code, "duration": ev.duration, "finished": ev.time,
            "reason": ev.reason}}
        _save(sched, {**states, ev.service: TaskState(state.cursor, state.ticks, state.manual, results)})


# ---- front doors -----------------------------------------------------------------------------


def trigger(sched, name: str) -> dict:
    """HOOK(tasks) Scheduler.run_task: ``veo run TASK``."""
    svc = sched.state.services.get(name)
    if svc is None:
        raise NotFound(f"no service named {name!r}")
    if not svc.is_task:
        raise Conflict(f"{name!r} is a service, not a task (it has no schedule)")
    states = _states(sched)
    now = _now(sched)
    state, tick = _trigger(states.get(name, TaskState(cursor=now)), now)
    _save(sched, {**states, name: state})
    sched.wake.set()
    return {"task": name, "tick": tick,
            "instances": [instance_key(name, i) for i in instances_of(svc, tick)]}


def views(sched) -> list[dict]:
    """HOOK(tasks) Scheduler.tasks: ``veo tasks``."""
    states = _states(sched)
    reported = _reported(sched)
    out = []
    now = _now(sched)
    for name, svc in sorted(_tasks(sched).items()):
        state = states.get(name, TaskState())
        runs = _runs(sched, name, svc, state, reported)
        history = []
        for r in sorted(runs, key=lambda r: r.tick, reverse=True):
            result = state.results.get(str(r.tick), {})
            history.append({
                "tick": r.tick, "scheduled": _iso(r.tick), "manual": r.manual,
                "state": "active" if r.active else r.outcome,
                "started": _iso(r.started) if r.started else None,
                "duration": result.get("duration"), "exit_code": result.get("exit_code"),
                "instances": [instance_key(name, i) for i in instances_of(svc, r.tick)],
            })
        nxt = calendar_of(svc).next_after(max(now, state.cursor or now))
        out.append({
            "name": name, "schedule": list(svc.schedule or ()), "words": explain(svc.schedule or ()),
            "time_zone": svc.time_zone, "overlap": svc.overlap.value,
            "next_run": _iso(nxt) if nxt else None,
            "last_run": next((h for h in history if h["state"] != "active"), None),
            "active": sum(1 for h in history if h["state"] == "active"),
            "runs": history,
        })
    return out


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

# ---- agent side --------------------------------------------------------------------------------


async def stop_run(agent, key: str, reason: str) -> bool:
    """HOOK(tasks) NodeAgent.stop_run: stop a run (timeout, overlap: replace); it counts as
    failed. Idempotent: a run that is not running any more is left alone. Holds the run's unit
    lock so a pending restart cannot fire in between."""
    from veo.core.models import InstanceStatus

    inst = agent.insts.get(key)
    live = (InstanceStatus.running, InstanceStatus.starting, InstanceStatus.backoff)
    if inst is None or inst.status not in live:
        return False
    async with agent._lock(inst.a.unit):
        exit_code = None
        if inst.container_id:
            await agent._stop(inst.container_id, inst.a.service.stop_grace_period)
            state = await asyncio.to_thread(agent.runtime.inspect, inst.container_id)
            exit_code = getattr(state, "exit_code", None)
        agent._health().unwatch.remote(inst.container_id)
        agent._move(inst, InstanceStatus.failed, reason, exit_code=exit_code)
    return True
