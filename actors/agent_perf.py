"""The NodeAgent's cost-cutting pieces, kept apart so the agent stays a thin shell.

* ``engine_parallelism`` - how many engine calls the agent makes at once, from measurement;
* ``CapacityCache`` - the engine's capacity (``docker info``: a slow call that takes the engine's
  own locks) read once and refreshed rarely, not on every report;
* ``ReportCache`` - a report is rebuilt only when an instance changed, and a caller that already
  has the current version gets ``None`` (a few bytes) instead of every instance again;
* ``AdaptiveLimit`` - how many new containers are in flight at the engine, from their latency;
  a restart holds back the deploy's next creates until its start is done;
* ``LocalSupervision`` - supervision decided in the agent with the pure ``decide`` (no Ray round
  trip between a death and its restart), its memory mirrored to the node's GroupSupervisor so an
  agent restart loses no count, back-off or budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from typing import Callable

from veo.core.models import AgentReport, GroupPolicy, Settings
from veo.core.supervision import Death, Decision, Member, UnitState, decide

log = logging.getLogger("veo.agent")

# Measured by `make bench` (bench/e2e.py, raw docker-py create+start at 1/4/8/16 threads) on these
# 2-core machines: 40 containers - x4 16.9 s, x8 15.8 s, x16 22.0 s (load ~40); 200 containers -
# x4 50.3 s, x8 35.5 s, x16 30.9 s (load ~2); an earlier 40-container run had x4 fastest (9.6 s vs
# x8 11.1 s). 8 is within 15 % of the fastest in every run; 16 loses badly under load.
# VEO_ENGINE_PARALLELISM overrides it for an engine measured otherwise.
MEASURED_PARALLELISM = 8
HOLD_WAIT_MAX = 5.0  # seconds a new container's start waits at most for a restart's
# A deploy starts with this many new containers in flight and grows from what it measures: the
# first calls see the engine lightly loaded (``fastest``), and a crash early in a deploy does not
# find the engine's whole parallelism queued ahead of its restart (bench: restart during a
# deploy). It is also the floor: raw docker-py at 4 threads was within a few % of the fastest
# thread count in every run, while a limit that fell to 2-3 made a 200-service start 10 % slower
# (paired runs: 22.3 s at a floor of 2 against 20.2 s at 4, raw x4 18.6 s).
SLOW_START = 4
IDLE_RESET_S = 2.0  # seconds with no create in flight after which the limit starts again
CAPACITY_TTL = 30.0  # seconds: capacity changes when the machine does, not between two steps


def engine_parallelism() -> int:
    raw = os.environ.get("VEO_ENGINE_PARALLELISM", "")
    try:
        return max(1, int(raw)) if raw else MEASURED_PARALLELISM
    except ValueError:
        log.warning("VEO_ENGINE_PARALLELISM=%r is not a number; using %d", raw, MEASURED_PARALLELISM)
        return MEASURED_PARALLELISM


async def ready_images(io: Callable, runtime, wanted: set) -> set:
    """The (image, pull_policy) pairs made present on the engine now, each looked up (built,
    pulled) once per converge batch rather than once per container (``io``: the agent's engine
    pool). One that fails is left out: each of its containers' creates tries again and reports
    the error."""
    from veo.adapters.images import ensure_image
    from veo.core.errors import VeoError

    async def one(image_policy):
        try:
            await io(ensure_image, runtime, *image_policy)
            return image_policy
        except VeoError:
            return None

    return {ip for ip in await asyncio.gather(*(one(ip) for ip in wanted)) if ip}


class CapacityCache:
    """``read()`` is the engine's info call (blocking; run it off the loop)."""

    def __init__(self, read: Callable, ttl: float = CAPACITY_TTL, clock=time.monotonic):
        self._read, self._ttl, self._clock = read, ttl, clock
        self._value = None
        self._at = 0.0

    def stale(self) -> bool:
        return self._value is None or self._clock() - self._at >= self._ttl

    def refresh(self):
        """Blocking: read the engine's capacity now."""
        self._value, self._at = self._read(), self._clock()
        return self._value

    @property
    def value(self):
        return self._value


def fingerprint(insts, extra: tuple = ()) -> tuple:
    """What an instance view is made of, cheaply: equal fingerprints give equal reports.
    ``extra``: the report's other fields (capacity, DNS)."""
    return extra + tuple((i.key, i.status, i.health, i.restarts, i.container_id, i.started_at,
                          i.exit_code, i.reason, i.a.generation) for i in insts)


class ReportCache:
    """Versions of the agent's report: the version grows only when the report would differ."""

    def __init__(self) -> None:
        self.version = 0
        self._fp: tuple | None = None
        self._report: AgentReport | None = None

    def get(self, build: Callable[[int], AgentReport], fp: tuple, since: int | None) -> AgentReport | None:
        """The current report, or None when ``since`` is already its version."""
        if fp != self._fp or self._report is None:
            self.version += 1
            self._fp, self._report = fp, build(self.version)
        return None if since == self.version else self._report


class LocalSupervision:
    """The unit states the GroupSupervisor keeps, decided here and mirrored there.

    ``decide`` is pure and the state is small, so the agent decides at once on a death; the
    decision's new state goes to the supervisor without waiting (``remember``). A restarted agent
    loads the supervisor's copy before its first decision (``load``), so counts only grow and the
    budget window is not forgotten; a restarted supervisor gets each unit's state again with the
    unit's next decision."""

    def __init__(self, supervisor: Callable) -> None:
        self._supervisor = supervisor  # -> the GroupSupervisor handle (looked up lazily)
        self.units: dict[str, UnitState] = {}
        self.loaded = False

    async def load(self) -> None:
        if self.loaded:
            return
        try:
            theirs = await self._supervisor().snapshot.remote()
        except Exception as e:  # no supervisor yet (first start): nothing to remember
            log.info("no supervision memory to load: %s", e)
            theirs = {}
        for unit, state in theirs.items():
            self.units.setdefault(unit, state)
        self.loaded = True

    def forget(self, keep: set[str], also: set[str] = frozenset()) -> set[str]:
        """Drop the memory of every unit not in ``keep``, here and (without waiting) in the
        GroupSupervisor, with ``also`` (units the agent knew otherwise); the units dropped."""
        gone = (set(self.units) | also) - keep
        for unit in gone:
            self.units.pop(unit, None)
        if gone:
            try:  # a supervisor that misses it keeps a few stale units: harmless, small
                self._supervisor().forget.remote(sorted(gone))
            except Exception as e:
                log.info("could not tell the supervisor to forget %d units: %s", len(gone), e)
        return gone

    def decide(self, unit: str, members: list[Member], policy: GroupPolicy, death: Death,
               settings: Settings, restarts: dict[str, int]) -> Decision:
        state = self.units.setdefault(unit, UnitState())
        for key, n in restarts.items():
            state.restarts[key] = max(state.restarts.get(key, 0), n)
        decision = decide(death, members, policy, state, settings, time.monotonic())
        try:
            self._supervisor().remember.remote(unit, state)
        except Exception as e:  # mirrored on the next death; this one's decision stands
            log.warning("could not mirror supervision of %s: %s", unit, e)
        return decision


def forget_units(keep: set[str], supervision: LocalSupervision, locks: dict) -> set[str]:
    """Drop what the agent keeps per unit (supervision memory, here and in the GroupSupervisor;
    the unit's lock unless held) for every unit not in ``keep``; the units dropped."""
    gone = supervision.forget(keep, also=set(locks))
    for unit in gone:
        if unit in locks and not locks[unit].locked():
            del locks[unit]
    return gone


class AdaptiveLimit:
    """How many new containers the agent has in flight at the engine (image, create, start),
    adapted from how long each takes: the gradient rule of Netflix's concurrency-limits.

    An engine serialises much of a create; past its knee, more calls at once only queue inside
    dockerd, so each takes longer while the throughput stays flat — and a restart's start queues
    behind them (a crash during a deploy). The limit grows by one per call while the recent
    latency stays within ``tolerance`` x the fastest seen, and shrinks in proportion when it
    rises above: ``limit <- limit * min(1, tolerance * fastest / recent) + 1``. It settles
    where one more call in flight would mostly add queueing. ``fastest`` creeps up slowly
    (``drift`` per call) so an engine that became slower for good is not judged by an old best.

    As in TCP's congestion window (RFC 7661, RFC 2861), the limit grows only while it is used:
    a call that ends with no other call waiting and fewer in flight than the limit (the end of a
    small batch) adds nothing. After ``idle_reset`` seconds with nothing in flight it starts
    again from ``initial``, so a deploy after a quiet spell does not begin at an old peak (ten
    quick creates used to leave the next deploy with sixteen at once, ahead of any restart). A
    call that overlapped a restart's hold is not a sample: it waited for the restart, not the
    engine.
    """

    def __init__(self, initial: int, lo: int = 2, hi: int = 16, tolerance: float = 1.5,
                 alpha: float = 0.3, drift: float = 1.002, idle_reset: float = IDLE_RESET_S,
                 clock: Callable[[], float] = time.monotonic):
        self.limit, self.initial, self.lo, self.hi = float(initial), float(initial), lo, hi
        self.tolerance, self.alpha, self.drift, self.clock = tolerance, alpha, drift, clock
        self.idle_reset = idle_reset
        self.fastest = float("inf")
        self.recent: float | None = None
        self.inflight = 0
        self.waiting = 0  # calls queued for a slot
        self.idle_since = clock()  # when the last call in flight ended
        self.holds = 0  # restarts in flight: no new create is let in while one is
        self.holds_begun = 0  # every hold ever taken: a call that saw it change is no sample
        self.unheld = threading.Event()  # for the engine threads: set while no restart is held
        self.unheld.set()
        self._free = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self):
        async with self._free:
            self.waiting += 1
            try:
                await self._free.wait_for(lambda: not self.holds and self.inflight < int(self.limit))
            finally:
                self.waiting -= 1
            if not self.inflight and self.clock() - self.idle_since >= self.idle_reset:
                self.limit = min(self.limit, self.initial)  # idle: start again, not at the old peak
            self.inflight += 1
        began, holds = self.clock(), self.holds_begun
        try:
            yield
        finally:
            if self.holds_begun == holds and not self.holds:
                # used: more calls wait for a slot (a deploy's queue), or all slots are busy
                self.observe(self.clock() - began,
                             used=bool(self.waiting) or self.inflight >= int(self.limit))
            async with self._free:
                self.inflight -= 1
                if not self.inflight:
                    self.idle_since = self.clock()
                self._free.notify_all()

    @contextlib.asynccontextmanager
    async def held(self):
        """A restart goes before the creates of a deploy: while one is in flight no create is let
        in, including those already queued for a slot (those at the engine finish). The engine
        serves the restart's start with fewer calls competing. A create already at the engine
        waits before its own start (``before_start``), the heavy half of a create+start."""
        self.holds += 1
        self.holds_begun += 1
        self.unheld.clear()
        try:
            yield
        finally:
            self.holds -= 1
            if not self.holds:
                self.unheld.set()
            async with self._free:
                self._free.notify_all()

    def before_start(self, timeout: float = HOLD_WAIT_MAX) -> None:
        """Engine thread, between a new container's create and its start: while a restart is
        held, wait for it (at most ``timeout``: a stuck restart must not stop a deploy)."""
        self.unheld.wait(timeout)

    def observe(self, latency: float, used: bool = True) -> None:
        """One call's latency (seconds): the limit moves. ``used``: the call ended with the limit
        full (more were in flight or waiting), so one more in flight would have been used."""
        self.fastest = min(latency, self.fastest * self.drift)
        self.recent = latency if self.recent is None else (
            (1 - self.alpha) * self.recent + self.alpha * latency)
        gradient = min(1.0, self.tolerance * self.fastest / max(self.recent, 1e-9))
        self.limit = max(self.lo, min(self.hi, self.limit * gradient + (1 if used else 0)))
