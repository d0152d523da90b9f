"""The lifecycle of one instance, named (supervisord style): states and the transitions allowed.

    pending --placed--> starting --engine 'start'--> running --engine 'die'--> exited
    exited --policy says restart--> backoff --delay over--> starting
    exited --policy says stop--> completed (exit 0) | failed (exit != 0, count or budget exhausted)
    running --health 'kill' / budget / engine refusal--> failed
    any non-terminal --node lost / drained--> pending (re-placed under a new generation)

Terminal states (completed, failed) are left alone by reconciliation: only a new apply of the
service (new spec hash) or an explicit restart brings such an instance back.
"""

from __future__ import annotations

from veo.core.models import InstanceStatus as S

TERMINAL = frozenset({S.completed, S.failed})

TRANSITIONS: dict[S, frozenset[S]] = {
    S.pending: frozenset({S.starting, S.failed}),
    S.starting: frozenset({S.running, S.exited, S.failed, S.pending}),
    S.running: frozenset({S.exited, S.failed, S.pending, S.starting}),
    S.exited: frozenset({S.backoff, S.starting, S.completed, S.failed, S.pending}),
    S.backoff: frozenset({S.starting, S.failed, S.pending, S.exited}),
    S.completed: frozenset({S.pending, S.starting}),
    S.failed: frozenset({S.pending, S.starting}),
}


def allowed(old: S, new: S) -> bool:
    """True when ``old -> new`` is a transition of the table (staying put is always allowed)."""
    return old == new or new in TRANSITIONS[old]


def is_terminal(status: S) -> bool:
    return status in TERMINAL
