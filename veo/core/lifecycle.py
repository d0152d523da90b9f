"""The lifecycle of one instance, named (supervisord style): one table that governs. Pure.

    pending --create--> starting --engine 'start'--> running --engine 'die'--> exited
    exited --policy says restart--> backoff --delay over--> starting
    exited --policy says stop--> completed (exit 0) | failed (exit != 0, count or budget exhausted)
    running --health 'kill' / engine refusal--> failed

``InstanceRecord`` is what a NodeAgent knows of one instance on its node; ``move`` is the only code
that changes its status: it checks the move against ``TRANSITIONS`` and returns the Event that
reports it (the caller decides whether to send it: a re-learnt state is not news). Terminal
statuses (completed, failed) are the outcomes the Scheduler keeps in its slots, in the same
vocabulary: an event carries the status it moved to, so nobody maps kinds to outcomes by hand.

The functions at the end read what the engine says (a ``die``, a container found on adopt, a
refused start) into an ``Act`` for the agent to carry out; they decide, the agent acts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from veo.core.models import Event, EventKind, Health, Instance
from veo.core.models import InstanceStatus as S
from veo.core.reconcile import Assignment

TERMINAL = frozenset({S.completed, S.failed})
# statuses whose container veo expects to be alive: a 'die' of one of them is a death to handle
WATCHED = frozenset({S.starting, S.running})

# Each move the agent makes, and why it exists.
TRANSITIONS: dict[S, frozenset[S]] = {
    S.pending: frozenset({
        S.starting,  # the create went through; the start follows
        S.running,  # adopt: the container was already running (agent restarted, node rejoined)
        S.exited,  # adopt: the container died while nobody watched; handled like any death
        S.backoff,  # the engine is unavailable: the create is retried later
        S.completed, S.failed,  # the Scheduler's persisted outcome, re-learnt after a restart
    }),
    S.starting: frozenset({
        S.running,  # the engine started it
        S.exited,  # it died before the start call returned
        S.backoff,  # the engine refused or was unavailable: the start is retried later
        S.failed,  # the engine refused for good (bad image, bad config)
    }),
    S.running: frozenset({
        S.exited,  # the engine reported its death, or veo stopped it for the group policy
        S.starting,  # an explicit restart (API/CLI): veo stops it and starts it again
        S.failed,  # the health check's 'kill' action
    }),
    S.exited: frozenset({
        S.backoff,  # the policy restarts it after a delay
        S.completed,  # exit 0 and the policy does not restart it
        S.failed,  # the restart count or the budget is spent
        S.starting,  # restarted at once (no back-off)
    }),
    S.backoff: frozenset({
        S.starting,  # the delay is over
        S.failed,  # the budget ran out while it waited
        S.exited,  # a sibling's death stopped the unit while it waited
    }),
    S.completed: frozenset({S.starting}),  # an explicit restart brings an ended instance back
    S.failed: frozenset({S.starting}),
}

# the event a move reports by default (a caller may name a more precise one: restarted, killed)
_EVENT_OF: dict[S, EventKind] = {
    S.running: EventKind.started, S.exited: EventKind.exited, S.completed: EventKind.completed,
    S.failed: EventKind.failed,
}


class IllegalMove(ValueError):
    """A status change the table does not allow: a bug in the caller, never user input."""


def allowed(old: S, new: S) -> bool:
    """True when ``old -> new`` is a transition of the table (staying put is always allowed)."""
    return old == new or new in TRANSITIONS[old]


def is_terminal(status: S) -> bool:
    return status in TERMINAL


@dataclass
class InstanceRecord:
    """What a NodeAgent knows of one instance on its node. Its status changes only by ``move``."""

    a: Assignment
    status: S = S.pending
    health: Health = Health.none
    restarts: int = 0
    container_id: str | None = None
    started_at: str | None = None
    started_mono: float = 0.0
    exit_code: int | None = None
    reason: str | None = None
    start_errors: int = 0  # consecutive refused starts; reset by a successful start
    # the health check killed it: its death is restarted whatever the policy says
    killed_unhealthy: bool = False
    # how many moves it has made: what was read of the engine before a move is stale after it
    moves: int = 0

    @property
    def key(self) -> str:
        return self.a.key

    def view(self, node: str) -> Instance:
        return Instance(
            service=self.a.service.name, instance=self.a.instance, group=self.a.service.group,
            node=node, status=self.status, health=self.health, restarts=self.restarts,
            generation=self.a.generation, container_id=self.container_id,
            started_at=self.started_at, exit_code=self.exit_code, reason=self.reason,
        )

    def event(self, kind: EventKind, node: str, reason: str | None = None,
              status: S | None = None) -> Event:
        return Event(
            kind=kind, service=self.a.service.name, instance=self.a.instance,
            group=self.a.service.group, container_id=self.container_id, node=node,
            reason=reason, generation=self.a.generation, exit_code=self.exit_code,
            restarts=self.restarts, status=status)


def move(rec: InstanceRecord, status: S, node: str, reason: str | None = None, *,
         kind: EventKind | None = None, exit_code: int | None = None) -> Event | None:
    """Move ``rec`` to ``status`` (checked against the table) and return the Event reporting it,
    or None for a move that is not reported (starting, backoff)."""
    if not allowed(rec.status, status):
        raise IllegalMove(f"{rec.key}: {rec.status.value} -> {status.value} is not a lifecycle move")
    rec.status = status
    rec.moves += 1
    if status is S.starting:
        rec.exit_code = None
    if exit_code is not None:
        rec.exit_code = exit_code
    if reason is not None:
        rec.reason = reason
    kind = kind or _EVENT_OF.get(status)
    return rec.event(kind, node, reason, status) if kind else None


# ---- reading what the engine says ------------------------------------------------------------------


class Act(str, enum.Enum):
    ignore = "ignore"
    death = "death"  # handle as a death: lifecycle move to exited, then the group policy
    start = "start"  # start the (created, never started) container
    adopt_running = "adopt_running"  # it runs: move to running, watch its health
    retry = "retry"  # try the start again later (back-off)
    fail = "fail"  # the engine's final word: failed


def read_die(rec: InstanceRecord | None, *, expected_stop: bool) -> Act:
    """An engine 'die' event for ``rec``'s container. veo's own stops are not deaths, and a
    container veo no longer expects to be alive (ended, in back-off) has nothing more to say."""
    if expected_stop or rec is None or rec.status not in WATCHED:
        return Act.ignore
    return Act.death


def read_adopt(rec: InstanceRecord, running: bool, engine_status: str) -> Act:
    """A container of this instance found on the engine (agent restart, converge, node rejoin)."""
    if rec.status in TERMINAL or rec.status in (S.starting, S.exited, S.backoff):
        # an ended instance keeps its container for its logs; a starting one's start is in
        # flight (its result or its 'die' settles it, not a list read before); an exited one's
        # death is being handled; a backed-off one's restart is on its way
        return Act.ignore
    if running:
        return Act.ignore if rec.status is S.running else Act.adopt_running
    if engine_status == "created":
        return Act.start
    # exited while nobody watched (agent restarted, event-stream gap): a death like any other
    return Act.death


def read_refused_start(start_errors: int, retries: int, *, unavailable: bool) -> tuple[Act, float]:
    """A start the engine did not perform. Unavailable (down, restarting, frozen) is temporary:
    retried every second until it answers. A refusal is retried ``retries`` times, with a growing
    delay, before it counts as the engine's final word: an engine shutting down also refuses
    starts (its network store closed...)."""
    if unavailable:
        return Act.retry, 1.0
    if start_errors <= retries:
        return Act.retry, float(start_errors)
    return Act.fail, 0.0
