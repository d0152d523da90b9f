"""The task calendar (veo.core.calendar): ticks, the missed-tick rule, daylight-saving changes as
Debian cron has them, run identity, overlap, timeout and history decisions."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from veo.core.calendar import (
    SKIP_COUNT_LIMIT,
    Calendar,
    History,
    Overlap,
    Run,
    due,
    explain,
    overlap_decision,
    prune_history,
    run_instance,
    run_tick,
    timed_out,
)

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.timezone.utc


def at(text: str, tz=UTC) -> float:
    """'2026-03-29 03:00' in ``tz`` (a '+01:00' suffix picks the pass of a repeated hour)."""
    if "+" in text[10:]:
        return dt.datetime.fromisoformat(text).timestamp()
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def paris(t: float) -> str:
    return dt.datetime.fromtimestamp(t, PARIS).isoformat(timespec="minutes")


def ticks(cal: Calendar, start: float, n: int) -> list[str]:
    return [paris(t) for t in itertools.islice(cal.after(start), n)]


# --------------------------------------------------------------------------------------------------
# Daylight saving, as Debian cron (2026: spring forward 29 March 02:00 -> 03:00, fall back
# 25 October 03:00 -> 02:00 in Europe/Paris)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        # a fixed-time job in the skipped hour runs once, right after the jump, then as usual
        ("30 2 * * *", "2026-03-28 12:00",
         ["2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00"]),
        ("0 2 * * *", "2026-03-28 12:00",
         ["2026-03-29T03:00+02:00", "2026-03-30T02:00+02:00"]),
        # a fixed-time job in the repeated hour runs once (the first pass)
        ("30 2 * * *", "2026-10-24 12:00",
         ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"]),
        # a job outside the changed hour is not moved
        ("30 4 * * *", "2026-03-28 12:00",
         ["2026-03-29T04:30+02:00", "2026-03-30T04:30+02:00"]),
        # a wildcard-hour job follows the clock: nothing in the skipped hour...
        ("30 * * * *", "2026-03-29 01:00",
         ["2026-03-29T01:30+01:00", "2026-03-29T03:30+02:00", "2026-03-29T04:30+02:00"]),
        # ...and both passes of the repeated hour (an hour apart in real time)
        ("30 * * * *", "2026-10-25 01:00",
         ["2026-10-25T01:30+02:00", "2026-10-25T02:30+02:00", "2026-10-25T02:30+01:00",
          "2026-10-25T03:30+01:00"]),
    ],
)
def test_dst_like_debian_cron(expr: str, start: str, expected: list[str]) -> None:
    cal = Calendar.of(expr, "Europe/Paris")
    assert ticks(cal, at(start, PARIS), len(expected)) == expected


def test_a_cursor_inside_the_repeated_hour_does_not_run_the_fixed_job_again() -> None:
    cal = Calendar.of("30 2 * * *", "Europe/Paris")
    first = at("2026-10-25T02:30+02:00")
    assert paris(cal.next_after(first)) == "2026-10-26T02:30+01:00"
    # the Scheduler restarts during the second pass: the tick is behind it, nothing is due twice
    now = at("2026-10-25T02:45+01:00")
    d = due(cal, first, now, starting_deadline=None)
    assert d.tick is None and d.skipped is None


def test_the_skipped_hours_run_is_due_once_after_the_jump() -> None:
    cal = Calendar.of("30 2 * * *", "Europe/Paris")
    cursor = at("2026-03-28 12:00", PARIS)
    now = at("2026-03-29 03:00:05", PARIS)
    first = due(cal, cursor, now)
    assert paris(first.tick) == "2026-03-29T03:00+02:00"
    again = due(cal, first.cursor, now + 60)
    assert again.tick is None and paris(again.next_tick) == "2026-03-30T02:30+02:00"


# --------------------------------------------------------------------------------------------------
# Missed ticks
# --------------------------------------------------------------------------------------------------

FIVE = Calendar.of("*/5 * * * *")
T0 = at("2026-06-01 12:00")


@pytest.mark.parametrize(
    ("name", "cursor", "now", "deadline", "run", "skipped"),
    [
        ("new task owes nothing", None, T0 + 7, None, None, None),
        ("before the tick", T0, T0 + 299, None, None, None),
        ("on the tick", T0, T0 + 300, None, T0 + 300, None),
        ("a little late", T0, T0 + 310, 60, T0 + 300, None),
        ("past the deadline", T0, T0 + 400, 60, None, (1, T0 + 300, T0 + 300)),
        # an outage of an hour: the most recent tick runs, the 11 before it are one summary
        ("outage, no deadline", T0, T0 + 3600 + 20, None, T0 + 3600, (11, T0 + 300, T0 + 3300)),
        ("outage, inside deadline", T0, T0 + 3600 + 20, 60, T0 + 3600, (11, T0 + 300, T0 + 3300)),
        ("outage, past deadline", T0, T0 + 3600 + 120, 60, None, (12, T0 + 300, T0 + 3600)),
        ("deadline 0 means on the second", T0, T0 + 300, 0, T0 + 300, None),
        ("cursor ahead of the clock", T0 + 600, T0 + 300, None, None, None),
    ],
)
def test_missed_ticks(name, cursor, now, deadline, run, skipped) -> None:
    d = due(FIVE, cursor, now, deadline)
    assert d.tick == run, name
    got = None if d.skipped is None else (d.skipped.count, d.skipped.first, d.skipped.last)
    assert got == skipped, name
    # the cursor never goes back, and covers every tick considered
    assert d.cursor >= (cursor if cursor is not None else now) or cursor > now
    assert d.next_tick is not None and d.next_tick > now


def test_the_cursor_makes_a_tick_due_only_once() -> None:
    d = due(FIVE, T0, T0 + 301)
    assert d.tick == T0 + 300 and d.cursor == T0 + 300
    assert due(FIVE, d.cursor, T0 + 302).tick is None
    assert due(FIVE, d.cursor, T0 + 601).tick == T0 + 600


def test_a_year_of_missed_minutely_ticks_is_one_bounded_summary() -> None:
    cal = Calendar.of("* * * * *")
    now = T0 + 365 * 86400 + 30
    d = due(cal, T0, now, starting_deadline=300)
    assert d.tick == T0 + 365 * 86400  # the most recent tick, inside the deadline
    assert d.skipped.at_least and d.skipped.count == SKIP_COUNT_LIMIT
    assert d.skipped.first == T0 + 60 and d.skipped.last == d.tick - 60
    assert "at least 1000" in d.skipped.describe()


def test_several_expressions_merge() -> None:
    cal = Calendar.of(["0 8 * * *", "0 20 * * *", "0 8 * * *"])
    start = at("2026-06-01 00:00")
    assert [t - start for t in itertools.islice(cal.after(start), 3)] == [8 * 3600, 20 * 3600, 32 * 3600]


def test_zone_shifts_ticks() -> None:
    utc = Calendar.of("0 9 * * *").next_after(T0)
    tokyo = Calendar.of("0 9 * * *", "Asia/Tokyo").next_after(T0)
    assert utc == at("2026-06-02 09:00") and tokyo == at("2026-06-02 00:00")


def test_explain() -> None:
    assert explain(["*/5 * * * *"]) == "Every fifth minute of every hour"
    assert "12:00" in explain(["@daily", "0 12 * * *"])


# --------------------------------------------------------------------------------------------------
# Run identity, overlap, timeout, history
# --------------------------------------------------------------------------------------------------


def test_run_instance_is_deterministic_and_reversible() -> None:
    tick = int(T0 + 300)
    assert run_instance(tick) == run_instance(float(tick))
    assert run_tick(run_instance(tick, 7)) == (tick, 7)
    assert len({run_instance(tick, c) for c in range(3)} | {run_instance(tick + 60)}) == 4
    with pytest.raises(ValueError):
        run_instance(tick, 100)


@pytest.mark.parametrize(
    ("policy", "runs", "start", "stop"),
    [
        ("forbid", [], True, ()),
        ("forbid", [Run(1, finished=5, outcome="succeeded")], True, ()),
        ("forbid", [Run(1, started=2)], False, ()),
        ("allow", [Run(1, started=2)], True, ()),
        ("replace", [Run(1, started=2), Run(2), Run(0, finished=1, outcome="failed")], True, (1, 2)),
        (Overlap.replace, [], True, ()),
    ],
)
def test_overlap(policy, runs, start, stop) -> None:
    d = overlap_decision(policy, runs)
    assert (d.start, d.stop) == (start, stop)
    if not start:
        assert "still active" in d.reason


def test_timeout() -> None:
    runs = [Run(1, started=100), Run(2, started=150), Run(3), Run(0, started=0, finished=1)]
    assert timed_out(runs, 60, now=200) == [1]
    assert timed_out(runs, 10, now=200) == [1, 2]
    assert timed_out(runs, None, now=10_000) == []


def test_history_keeps_the_most_recent_of_each_outcome() -> None:
    runs = [Run(t, started=t, finished=t + 1, outcome="succeeded") for t in (1, 2, 3, 4, 5)]
    runs += [Run(t, started=t, finished=t + 1, outcome="failed") for t in (6, 7)]
    runs += [Run(8, started=8)]  # active: never pruned
    assert prune_history(runs, History(succeeded=3, failed=1)) == [1, 2, 6]
    assert prune_history(runs, History(succeeded=0, failed=0)) == [1, 2, 3, 4, 5, 6, 7]
    assert prune_history(runs, History(succeeded=10, failed=10)) == []
