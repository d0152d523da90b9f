"""The task calendar: when a scheduled task's runs are due, and what to do about the runs it has.
Pure: times are epoch seconds in, decisions out; no clock is read here.

Cron arithmetic is cronsim's, which follows Debian cron on daylight-saving changes: a job with a
fixed time (no ``*`` in its minute or hour field) whose time falls in the hour a spring change
skips runs once right after the jump; one whose time falls in the hour an autumn change repeats
runs once, in the first pass. Jobs with a ``*`` in the minute or hour field follow the wall clock
(an hourly job runs in both passes of a repeated hour: an hour apart in real time).

The rules the Scheduler applies with these functions:

* **Missed ticks.** The Scheduler persists the last scheduled time (the *cursor*). At each step,
  the ticks in ``(cursor, now]`` are considered: at most one run starts, for the most recent of
  them, and only if ``now - tick <= starting_deadline`` (no deadline: however late). Every other
  tick is *skipped*, reported as one summary (count, first, last), never one event per tick — and
  the count is bounded, so a year of minutely ticks costs a bounded walk, not Kubernetes' "too many
  missed start times" wedge.
* **Never twice.** A run's identity derives from its tick (``run_instance``); the cursor and the
  run's slot are persisted together before anything starts, and a retried create meets the first
  attempt's container (same name), so a restarted Scheduler cannot start a tick twice.
* **Overlap** (``overlap_decision``), **history** (``prune_history``), **timeout** (``timed_out``).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

# Debian cron's macros (crontab(5)); @reboot has no meaning for a cluster that outlives machines
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# A walk over missed ticks stops counting here; the summary then says "at least".
SKIP_COUNT_LIMIT = 1000

# Run instance numbers: tick (epoch seconds) * RUN_COPIES + copy, so a tick's copies are distinct
# and the tick can be read back from a container's instance label.
RUN_COPIES = 100


# --------------------------------------------------------------------------------------------------
# Expressions and zones
# --------------------------------------------------------------------------------------------------


def cron_text(expr: str) -> str:
    """The 5-field form of an expression (macros expanded). Raises ValueError with a message for
    the user."""
    text = " ".join(str(expr).split())
    if text.lower() == "@reboot":
        raise ValueError("@reboot is not supported: a task runs on a calendar; use a service")
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise ValueError(f"unknown macro {text!r}; expected one of {', '.join(MACROS)}")
        return MACROS[text.lower()]
    if len(text.split()) != 5:
        raise ValueError(
            f"expected 5 cron fields (minute hour day-of-month month day-of-week) or a macro like "
            f"@daily, got {expr!r}"
        )
    try:
        CronSim(text, dt.datetime(2000, 1, 1))
    except CronSimError as e:
        raise ValueError(f"bad cron expression {expr!r}: {e}") from None
    return text


def zone(name: str) -> ZoneInfo:
    """An IANA zone. Raises ValueError with a message for the user."""
    try:
        return _zone(str(name))
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError):
        raise ValueError(f"unknown time zone {name!r}; expected an IANA name like Europe/Paris") from None


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def explain(expressions: Sequence[str]) -> str:
    """The schedule in words, e.g. 'Every fifth minute of every hour'."""
    words = []
    for expr in expressions:
        text = cron_text(expr)
        words.append(CronSim(text, dt.datetime(2000, 1, 1)).explain())
    return "; ".join(words)


# --------------------------------------------------------------------------------------------------
# Ticks
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calendar:
    """A task's schedule: one or more cron expressions in one zone."""

    expressions: tuple[str, ...]
    time_zone: str = "UTC"

    @classmethod
    def of(cls, schedule: str | Iterable[str], time_zone: str = "UTC") -> Calendar:
        exprs = (schedule,) if isinstance(schedule, str) else tuple(schedule)
        if not exprs:
            raise ValueError("a schedule needs at least one cron expression")
        zone(time_zone)
        return cls(tuple(cron_text(e) for e in exprs), time_zone)

    def after(self, t: float) -> Iterator[float]:
        """Ticks strictly after ``t``, ascending, the expressions merged (a time two expressions
        share is one tick)."""
        tz = zone(self.time_zone)
        start = dt.datetime.fromtimestamp(t, tz)
        iters = [CronSim(e, start) for e in self.expressions]
        inf = float("inf")
        heads = [_head(it) for it in iters]
        last = None
        while True:
            i = min(range(len(heads)), key=heads.__getitem__)
            tick = heads[i]
            if tick == inf:
                return  # no expression fires again (e.g. 0 0 30 2 *)
            heads[i] = _head(iters[i])
            if tick != last and tick > t:
                last = tick
                yield tick

    def next_after(self, t: float) -> float | None:
        return next(self.after(t), None)

    def latest_at_or_before(self, t: float) -> float | None:
        """The most recent tick <= ``t``, found backwards (then confirmed forwards, so it is the
        same tick the forward walk would give, DST included)."""
        tz = zone(self.time_zone)
        start = dt.datetime.fromtimestamp(t + 1, tz)
        candidates = []
        for e in self.expressions:
            try:
                candidates.append(next(CronSim(e, start, reverse=True)).timestamp())
            except StopIteration:
                pass
        if not candidates:
            return None
        best = None
        # forward from a little before the backward answer: cronsim's forward walk is the reference
        for tick in self.after(max(candidates) - 2 * 3600):
            if tick > t:
                break
            best = tick
        return best


@dataclass(frozen=True)
class Skipped:
    """Ticks that will not run, as one summary."""

    count: int
    first: float
    last: float
    at_least: bool = False  # the count stopped at SKIP_COUNT_LIMIT
    reason: str = "missed"  # "missed": past starting_deadline; "overlap": a run was active

    def describe(self) -> str:
        n = f"at least {self.count}" if self.at_least else str(self.count)
        return f"{n} tick(s) skipped ({self.reason}) from {_iso(self.first)} to {_iso(self.last)}"


@dataclass(frozen=True)
class Due:
    """What the calendar says at ``now``."""

    tick: float | None  # the scheduled time of the run to start now, if any
    cursor: float  # the last scheduled time to persist
    next_tick: float | None
    skipped: Skipped | None = None


def due(cal: Calendar, cursor: float | None, now: float,
        starting_deadline: float | None = None) -> Due:
    """The run due at ``now`` given the persisted ``cursor`` (None: the task is new, and no tick
    before ``now`` is owed)."""
    if cursor is None or cursor >= now:
        start = now if cursor is None else cursor
        return Due(None, start, _next(cal, max(start, now)))
    ticks: list[float] = []
    for tick in cal.after(cursor):
        if tick > now or len(ticks) == SKIP_COUNT_LIMIT:
            break
        ticks.append(tick)
    at_least = bool(ticks) and len(ticks) == SKIP_COUNT_LIMIT and _next(cal, ticks[-1]) <= now
    if not ticks:
        return Due(None, cursor, _next(cal, now))
    latest = cal.latest_at_or_before(now) if at_least else ticks[-1]
    assert latest is not None
    run = latest if starting_deadline is None or now - latest <= starting_deadline else None
    if at_least:
        last = latest if run is None else cal.latest_at_or_before(latest - 1)
        skipped = Skipped(SKIP_COUNT_LIMIT, ticks[0], last or latest, at_least=True)
    else:
        missed = ticks if run is None else ticks[:-1]
        skipped = Skipped(len(missed), missed[0], missed[-1]) if missed else None
    return Due(run, latest, _next(cal, now), skipped)


def _next(cal: Calendar, t: float) -> float | None:
    return cal.next_after(t)


def _head(it: CronSim) -> float:
    try:
        return next(it).timestamp()
    except StopIteration:  # cronsim gives up on a date that cannot exist (30 February)
        return float("inf")


# --------------------------------------------------------------------------------------------------
# Run identity
# --------------------------------------------------------------------------------------------------


def run_instance(tick: float, copy: int = 0) -> int:
    """The instance number of copy ``copy`` of the run for ``tick``: deterministic, so the same
    tick always names the same container."""
    if not 0 <= copy < RUN_COPIES:
        raise ValueError(f"a task run has at most {RUN_COPIES} copies")
    return int(tick) * RUN_COPIES + copy


def run_tick(instance: int) -> tuple[int, int]:
    """``(tick, copy)`` of a run's instance number."""
    return divmod(int(instance), RUN_COPIES)


# --------------------------------------------------------------------------------------------------
# Runs: overlap, timeout, history
# --------------------------------------------------------------------------------------------------


class Overlap(str, enum.Enum):
    """What a tick does while an earlier run is still active (Kubernetes' concurrencyPolicy)."""

    allow = "allow"
    forbid = "forbid"
    replace = "replace"


@dataclass(frozen=True)
class Run:
    """One run of a task, as the Scheduler tracks it."""

    tick: int
    started: float | None = None  # None: placed, not started yet
    finished: float | None = None
    outcome: str | None = None  # "succeeded" / "failed" once finished
    exit_code: int | None = None
    manual: bool = False

    @property
    def active(self) -> bool:
        return self.finished is None


@dataclass(frozen=True)
class OverlapDecision:
    start: bool
    stop: tuple[int, ...] = ()  # ticks of active runs to stop first (replace)
    reason: str | None = None


def overlap_decision(policy: Overlap | str, runs: Iterable[Run]) -> OverlapDecision:
    """Whether a due tick starts, given the task's runs."""
    active = sorted(r.tick for r in runs if r.active)
    policy = Overlap(policy)
    if not active or policy is Overlap.allow:
        return OverlapDecision(True)
    if policy is Overlap.forbid:
        return OverlapDecision(False, reason=f"the run of {_iso(active[-1])} is still active")
    return OverlapDecision(True, tuple(active), reason="replaces the active run")


def timed_out(runs: Iterable[Run], timeout: float | None, now: float) -> list[int]:
    """Ticks of the active runs that started more than ``timeout`` seconds ago: stop them, they
    count as failed."""
    if timeout is None:
        return []
    return sorted(r.tick for r in runs
                  if r.active and r.started is not None and now - r.started > timeout)


@dataclass(frozen=True)
class History:
    succeeded: int = 3
    failed: int = 1


def prune_history(runs: Iterable[Run], keep: History) -> list[int]:
    """Ticks of the finished runs to remove: all but the ``keep.succeeded`` most recent successes
    and the ``keep.failed`` most recent failures. Active runs are never pruned."""
    out: list[int] = []
    for outcome, limit in (("succeeded", keep.succeeded), ("failed", keep.failed)):
        done = sorted((r for r in runs if not r.active and r.outcome == outcome),
                      key=lambda r: r.tick, reverse=True)
        out.extend(r.tick for r in done[limit:])
    return sorted(out)


@dataclass
class TaskView:
    """What ``veo tasks`` shows for one task."""

    name: str
    schedule: list[str]
    words: str
    time_zone: str
    next_run: float | None
    last_run: dict | None = None
    active: int = 0
    history: list[dict] = field(default_factory=list)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
