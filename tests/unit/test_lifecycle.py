"""The instance lifecycle: the table that governs every status change, the Event each move
reports, and what engine events mean for a record — table-driven, no Ray, no Docker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from veo.core.lifecycle import (TERMINAL, TRANSITIONS, Act, IllegalMove, InstanceRecord, allowed,
                                move, read_adopt, read_die, read_refused_start)
from veo.core.models import EventKind, GroupPolicy, InstanceStatus, Service
from veo.core.reconcile import Assignment

S = InstanceStatus
ROOT = Path(__file__).resolve().parents[2]


def record(status: S = S.pending) -> InstanceRecord:
    svc = Service(name="web", image="veo/busybox")
    a = Assignment("web#0", "web#0", svc, 0, 3, ("web#0",), GroupPolicy.one_for_one)
    return InstanceRecord(a, status=status)


def test_every_status_has_a_row_and_terminal_ones_only_leave_by_an_explicit_restart():
    assert set(TRANSITIONS) == set(S)
    for status in TERMINAL:
        assert TRANSITIONS[status] == {S.starting}


@pytest.mark.parametrize("old, new, kind, reported", [
    (S.pending, S.starting, None, False),
    (S.starting, S.running, None, True),
    (S.running, S.exited, None, True),
    (S.exited, S.backoff, None, False),
    (S.backoff, S.starting, None, False),
    (S.starting, S.running, EventKind.restarted, True),
    (S.exited, S.completed, None, True),
    (S.exited, S.failed, None, True),
    (S.running, S.failed, EventKind.killed, True),
    (S.starting, S.backoff, None, False),  # the engine refused: retried later
    (S.pending, S.exited, None, True),  # died while nobody watched
    (S.pending, S.failed, None, True),  # an outcome re-learnt after an agent restart
    (S.failed, S.starting, None, False),  # an explicit restart
])
def test_allowed_moves_report_their_event(old, new, kind, reported):
    rec = record(old)
    ev = move(rec, new, "uno", "why", kind=kind)
    assert rec.status is new
    if not reported:
        assert ev is None
        return
    assert ev.status is new  # the event speaks the lifecycle's vocabulary
    assert ev.kind is (kind or {S.running: EventKind.started, S.exited: EventKind.exited,
                                S.completed: EventKind.completed, S.failed: EventKind.failed}[new])
    assert (ev.service, ev.instance, ev.generation, ev.node) == ("web", 0, 3, "uno")


@pytest.mark.parametrize("old, new", [
    (S.completed, S.running),
    (S.failed, S.exited),
    (S.running, S.backoff),  # a running container goes through exited first
    (S.backoff, S.running),  # ... and back-off through starting
    (S.starting, S.completed),
])
def test_forbidden_moves_raise_and_change_nothing(old, new):
    rec = record(old)
    with pytest.raises(IllegalMove, match=f"{old.value} -> {new.value}"):
        move(rec, new, "uno")
    assert rec.status is old and not allowed(old, new)


def test_starting_clears_the_exit_code_and_exited_sets_it():
    rec = record(S.running)
    ev = move(rec, S.exited, "uno", "exited with code 3", exit_code=3)
    assert rec.exit_code == 3 and ev.exit_code == 3 and rec.reason == "exited with code 3"
    move(rec, S.backoff, "uno")
    move(rec, S.starting, "uno")
    assert rec.exit_code is None


@pytest.mark.parametrize("status, expected_stop, act", [
    (S.running, False, Act.death),
    (S.starting, False, Act.death),  # died before the start call returned
    (S.running, True, Act.ignore),  # veo stopped it
    (S.backoff, False, Act.ignore),
    (S.completed, False, Act.ignore),
    (S.failed, False, Act.ignore),
    (None, False, Act.ignore),  # not ours
])
def test_read_die(status, expected_stop, act):
    rec = None if status is None else record(status)
    assert read_die(rec, expected_stop=expected_stop) is act


@pytest.mark.parametrize("status, running, engine_status, act", [
    (S.pending, True, "running", Act.adopt_running),  # agent restarted: it kept running
    (S.running, True, "running", Act.ignore),
    (S.pending, False, "created", Act.start),  # created, then the agent died before the start
    (S.pending, False, "exited", Act.death),  # died while nobody watched
    (S.running, False, "exited", Act.death),
    (S.starting, False, "exited", Act.ignore),  # a start is in flight: the list is stale
    (S.completed, False, "exited", Act.ignore),  # ended: the container stays for its logs
    (S.failed, False, "exited", Act.ignore),
    (S.backoff, False, "exited", Act.ignore),  # a restart is already on its way
    (S.exited, False, "exited", Act.ignore),  # its death is being handled: not a second one
])
def test_read_adopt(status, running, engine_status, act):
    assert read_adopt(record(status), running, engine_status) is act


@pytest.mark.parametrize("errors, unavailable, act, delay", [
    (0, True, Act.retry, 1.0),  # the engine is down: temporary, however often
    (9, True, Act.retry, 1.0),
    (1, False, Act.retry, 1.0),
    (2, False, Act.retry, 2.0),
    (3, False, Act.fail, 0.0),  # the third refusal is the engine's final word
])
def test_read_refused_start(errors, unavailable, act, delay):
    assert read_refused_start(errors, 2, unavailable=unavailable) == (act, delay)


def test_the_table_is_the_only_writer_of_statuses():
    """No code outside veo/core/lifecycle.py assigns an instance's status."""
    pattern = re.compile(r"\.status\s*(?:,[^=\n]*)?=(?!=)")
    offenders = []
    for folder in ("veo", "actors"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "lifecycle.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
