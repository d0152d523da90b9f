"""Rolling updates as a value that advances: which units may take the new spec now. Pure.

A changed service (or group: groups update as units) gets a ``RollingUpdate``. Each control-loop
step the Scheduler tells it how the units it let go are doing (``UnitHealth``) and calls
``advance``; the update answers with events and keeps the set of units allowed to run the new spec
(``allowed``). Every other unit keeps its old spec and its container: reconcile holds it.

Every wait has a deadline, the pending one included (Swarm waits forever on a task that cannot be
placed): ``healthy_deadline`` per unit, from the moment it is let go; ``progress_deadline`` for the
update as a whole, reset by each unit that turns healthy. A failure counts against
``max_failure_ratio``; past it, ``on_failure`` decides: ``rollback`` reverts at once to the last
version whose instances were all healthy — no canary phase, no deadlines, only the replaced units
move back, the untouched ones are never restarted — ``pause`` waits for ``veo update resume`` or
``veo update rollback``, ``continue`` goes on. Absolute deadlines and counters are part of the
value, so a Scheduler killed mid-update resumes exactly where it was.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field

from veo.core.models import EventKind, OnUpdateFailure, UpdatePolicy


class UpdateState(str, enum.Enum):
    running = "running"
    canary = "canary"  # the canaries are healthy: waiting for `veo update promote`
    paused = "paused"  # on_failure: pause, or `veo update pause`
    done = "done"
    rolled_back = "rolled_back"
    failed = "failed"  # on_failure: continue ran out of units, or a revert was refused


class UnitHealth(str, enum.Enum):
    waiting = "waiting"  # pending, starting, running but not yet healthy
    ready = "ready"  # every member on the new spec, running, healthy where checked
    failed = "failed"  # a member ended failed, or is crash-looping past its restart budget


ACTIVE = frozenset({UpdateState.running, UpdateState.canary, UpdateState.paused})


@dataclass
class RollingUpdate:
    target: str  # the service, or "group:<name>"
    services: list[str]
    units: list[str]  # the unit keys to replace, in order
    from_version: dict[str, int]  # service -> the version being replaced
    to_version: dict[str, int]
    policy: UpdatePolicy
    started: float
    progress_deadline: float  # absolute
    state: UpdateState = UpdateState.running
    done: list[str] = field(default_factory=list)
    in_flight: dict[str, float] = field(default_factory=dict)  # unit -> absolute deadline
    ready_since: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    not_before: float = 0.0  # `delay` after a batch
    promoted: bool = False  # the canaries were promoted (or auto_promote)
    reason: str | None = None

    # ---- what reconcile needs ------------------------------------------------------------------

    def allowed(self) -> set[str]:
        """Units that may run the new spec now."""
        return set(self.done) | set(self.in_flight) | set(self.failed)

    def held(self) -> set[str]:
        return set(self.units) - self.allowed()

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    # ---- the step ------------------------------------------------------------------------------

    def advance(self, health: dict[str, UnitHealth], now: float) -> list[tuple[EventKind, str]]:
        """One control-loop step. Returns the events to record (kind, reason)."""
        events: list[tuple[EventKind, str]] = []
        if not self.active:
            return events
        self._watch_in_flight(health, now, events)
        if self.state is UpdateState.running and now > self.progress_deadline:
            self._fail(f"no progress in {self.policy.progress_deadline:g}s", events)
        if self.state is UpdateState.running:
            self._let_go(now, events)
        if self.state is UpdateState.running and self._finished():
            self.state = UpdateState.done
            events.append((EventKind.update_done, f"{len(self.done)} of {len(self.units)} "
                           f"unit(s) replaced" + (f", {len(self.failed)} failed" if self.failed else "")))
        return events

    def _watch_in_flight(self, health, now, events) -> None:
        for unit, deadline in list(self.in_flight.items()):
            h = health.get(unit, UnitHealth.waiting)
            if h is UnitHealth.ready:
                since = self.ready_since.setdefault(unit, now)
                if now - since >= self.policy.min_healthy:
                    del self.in_flight[unit]
                    self.done.append(unit)
                    self.progress_deadline = now + self.policy.progress_deadline
                    self.not_before = now + self.policy.delay
                    events.append((EventKind.instance_replaced, f"{unit} replaced and healthy"))
                continue
            self.ready_since.pop(unit, None)  # healthy for min_healthy in one stretch
            why = ("failed" if h is UnitHealth.failed else
                   f"not running and healthy within {self.policy.healthy_deadline:g}s"
                   if now > deadline else None)
            if why:
                del self.in_flight[unit]
                self.failed.append(unit)
                events.append((EventKind.update_failed, f"{unit} {why}"))
                if len(self.failed) > self.policy.max_failure_ratio * len(self.units):
                    self._fail(f"{unit} {why}", events)
                    return

    def _let_go(self, now: float, events) -> None:
        if now < self.not_before:
            return
        waiting = [u for u in self.units if u not in self.allowed()]
        if not waiting:
            return
        if self.policy.canary and not self.promoted:
            started = len(self.units) - len(waiting)
            if started < self.policy.canary:  # the canaries go first, beside the old units
                for unit in waiting[:self.policy.canary - started]:
                    self.in_flight[unit] = now + self.policy.healthy_deadline
                return
            if self.in_flight:
                return  # the canaries are still proving themselves
            if not self.policy.auto_promote:
                self.state = UpdateState.canary
                events.append((EventKind.update_paused,
                               f"{len(self.done)} canary unit(s) healthy: `veo update promote "
                               f"{self.target}` to go on"))
                return
            self.promoted = True
        for unit in waiting[:max(0, self.policy.parallel - len(self.in_flight))]:
            self.in_flight[unit] = now + self.policy.healthy_deadline

    def _finished(self) -> bool:
        return not self.in_flight and len(self.done) + len(self.failed) == len(self.units)

    def _fail(self, why: str, events) -> None:
        action = self.policy.on_failure
        self.reason = why
        if action is OnUpdateFailure.pause:
            self.state = UpdateState.paused
            events.append((EventKind.update_paused, f"paused: {why}; `veo update resume|rollback "
                           f"{self.target}`"))
        elif action is OnUpdateFailure.rollback:
            self.state = UpdateState.rolled_back  # the caller reverts the spec
        # continue: the failure was counted; the update goes on

    # ---- operator commands ---------------------------------------------------------------------

    def resume(self, now: float) -> None:
        if self.state in (UpdateState.paused, UpdateState.canary):
            self.promoted = self.promoted or self.state is UpdateState.canary
            self.state = UpdateState.running
            self.progress_deadline = now + self.policy.progress_deadline
            # units that failed while paused were counted already; their deadlines start over
            self.in_flight = {u: now + self.policy.healthy_deadline for u in self.in_flight}

    def to_json(self) -> dict:
        d = asdict(self)
        d["policy"] = self.policy.model_dump(mode="json")
        d["state"] = self.state.value
        return d

    @classmethod
    def from_json(cls, d: dict) -> RollingUpdate:
        return cls(**{**d, "policy": UpdatePolicy.model_validate(d["policy"]),
                      "state": UpdateState(d["state"])})
