"""NodeAgent: one per veo node; the only actor that changes that node's Docker engine.

Responsibilities:
* follow the engine's event stream (a thread feeding the actor's asyncio loop), so a death is seen
  in milliseconds, not by polling;
* converge the engine to the assignments the Scheduler sends (create, adopt, remove stale
  generations), idempotently: the same call twice changes nothing;
* on a death, ask the node's GroupSupervisor what the policy says and carry it out (stop in reverse
  order, restart in declared order after the back-off delay);
* apply the HealthChecker's verdicts (restart / kill / leave);
* report instances, capacity and events to the Scheduler.

Every status change is a lifecycle ``move`` (``veo.core.lifecycle``), and what an engine event
means is decided there too (``read_die``, ``read_adopt``, ``read_refused_start``); this class only
carries the decisions out. Blocking Docker calls run in threads (``asyncio.to_thread``). Engine
changes are serialised per unit (a group copy, or one instance), not per node: a slow create of
one unit never delays the restart of another. One converge runs at a time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import ray

from actors import discovery_hook, task_hook  # HOOK(tasks, discovery)
from actors.agent_perf import (SLOW_START, AdaptiveLimit, CapacityCache, LocalSupervision, ReportCache,
                               engine_parallelism, fingerprint, forget_units,
                               ready_images)
from actors.common import EventSink, Handles
from veo.adapters.docker_api import DockerRuntime
from veo.core.converge import identity, plan_converge
from veo.core.errors import Conflict, EngineUnavailable, VeoError
from veo.core.lifecycle import (Act, InstanceRecord, move, read_adopt, read_die,
                                read_refused_start)
from veo.core.models import AgentReport, Event, EventKind, Health, InstanceStatus, OnUnhealthy, Settings
from veo.core.names import (LABEL_CLUSTER, LABEL_INSTANCE, LABEL_MANAGED, LABEL_NODE, LABEL_SERVICE,
                            actor_name, docker_host_from)
from veo.core.reconcile import Assignment
from veo.core.supervision import Death, Decision, Member
from veo.core.translate import create_kwargs
from veo.adapters.images import ensure_image
from veo.adapters.prepare import forget, prepare, release  # networks, volumes, secret files
from actors import rejoin

log = logging.getLogger("veo.agent")
S = InstanceStatus
START_RETRIES = 2
# engine calls at once: creates/starts of unrelated units side by side, bounded by the engine's
# best parallelism measured by `make bench` on these machines (see actors/agent_perf.py)
CREATE_PARALLELISM = engine_parallelism()


class CreateRefused(VeoError):
    """The engine refused to make the container (bad image, clash): final, not retried like a
    refused start."""


def _iso(time_nano: int) -> str:
    """Docker's event time (ns since the epoch) in the engine's StartedAt format."""
    seconds, nanos = divmod(int(time_nano), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class NodeAgent:
    def __init__(self, node: str, cluster: str, docker_host: str | None = None):
        self.node, self.cluster = node, cluster
        self.docker_host = docker_host or docker_host_from()
        self.runtime = DockerRuntime(self.docker_host)
        self.settings = Settings()
        self.insts: dict[str, InstanceRecord] = {}
        self.known_services: set[str] = set()
        self.expected_stops: set[str] = set()  # container ids veo itself is stopping
        self.orphan_seen: dict[str, float] = {}
        self.converge_lock = asyncio.Lock()
        self.unit_locks: dict[str, asyncio.Lock] = {}
        self.sink = EventSink()
        self.handles = Handles()
        # a pool of our own: asyncio's default one has cpu+4 threads (6 here), fewer than the
        # engine calls a converge makes side by side plus the report and the health calls
        self.pool = ThreadPoolExecutor(2 * CREATE_PARALLELISM + 4, thread_name_prefix="engine")
        self.capacity = CapacityCache(self.runtime.info)
        self.reports = ReportCache()
        self.desired: tuple | None = None  # the last converge's arguments, with their version
        self.supervision = LocalSupervision(self._supervisor)
        self.images_ready: set = set()  # (image, pull_policy) ensured by the running converge
        # new containers in flight at the engine: adapted from their latency (agent_perf)
        self.create_limit = AdaptiveLimit(SLOW_START, lo=SLOW_START, hi=2 * CREATE_PARALLELISM)
        self.synced = False
        self._started = False
        self._since = time.time()

    # ---- wiring --------------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._started:
            return
        self._started = True
        loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.stop_flag = threading.Event()
        threading.Thread(target=self._follow_events, args=(loop,), daemon=True, name="docker-events").start()
        loop.create_task(self._consume())
        loop.create_task(self.supervision.load())  # before the first death needs it

    def _follow_events(self, loop: asyncio.AbstractEventLoop) -> None:
        """Thread: feed Docker's container events into the loop; reconnect with ``since`` so a gap
        in the stream loses nothing, then ask for a full converge to catch what the gap hid."""
        while not self.stop_flag.is_set():
            try:
                # only what the agent acts on: the engine serialises less, the loop wakes less
                stream = self.runtime.events(since=self._since, filters={
                    "type": "container", "event": ["start", "die"]})
                loop.call_soon_threadsafe(self.queue.put_nowait, {"veo": "connected"})
                for ev in stream:
                    self._since = max(self._since, ev.get("time", 0) - 1)
                    loop.call_soon_threadsafe(self.queue.put_nowait, ev)
            except Exception as e:  # the engine went away: retry, the loop must not die
                log.warning("event stream of %s broke: %s", self.docker_host, e)
            loop.call_soon_threadsafe(self.queue.put_nowait, {"veo": "disconnected"})
            self.stop_flag.wait(1.0)

    async def _consume(self) -> None:
        while True:
            ev = await self.queue.get()
            try:
                await self._on_engine_event(ev)
            except Exception:  # one bad event must not stop supervision
                log.exception("handling %s", ev)

    async def ready(self) -> str:
        self._ensure_started()
        return self.node

    async def pid(self) -> int:
        """The worker process (fault-injection tests kill it)."""
        return os.getpid()

    def _io(self, fn, *args, **kwargs):
        """A blocking engine call on the agent's own pool."""
        return asyncio.get_running_loop().run_in_executor(
            self.pool, functools.partial(fn, *args, **kwargs))

    def _lock(self, unit: str) -> asyncio.Lock:
        return self.unit_locks.setdefault(unit, asyncio.Lock())

    # ---- scheduler-facing ----------------------------------------------------------------------

    async def resync(self, version: int) -> bool:
        """Converge again to the list of ``version`` we hold (the Scheduler sends only the version
        when the list did not change). False when we do not hold it: send the list."""
        held = self.desired
        if held is None or held[-1] != version:
            return False
        await self.converge(*held)
        return True

    async def converge(self, desired: list[Assignment], known_services: list[str],
                       removed_services: list[str], settings: Settings, cluster: str,
                       version: int | None = None) -> None:
        """Make the engine match ``desired`` (the Scheduler's list ``version``). Idempotent."""
        self._ensure_started()
        self.desired = (desired, known_services, removed_services, settings, cluster, version)
        # the cluster is named by the first apply, which may come after this agent was made
        self.settings, self.cluster = settings, cluster
        self.known_services = set(known_services) | set(removed_services)
        async with self.converge_lock:
            # restarts go on while the engine is listed: a record that moves meanwhile is not
            # judged by this (stale) list
            before = {k: (r, r.moves) for k, r in self.insts.items()}
            # fencing hand-over with this machine's `veo node` process (actors/rejoin.py): what it
            # stopped while cut off is reported, and restarted when still the current generation
            await self._io(rejoin.on_converge, self.runtime, self.node, desired, settings)
            containers = await self._io(self._list)
            plan = plan_converge(desired, containers, self.known_services)
            self._forget_undesired(desired)
            for c in plan.remove:
                await self._remove(c, "no longer desired on this node")
            await self._handle_orphans(plan.orphans)
            for a in desired:
                inst = self._record_for(a)
                snap = before.get(a.key)
                unchanged = snap is None or snap[0] is not inst or snap[1] == inst.moves
                if a.key in plan.adopt and unchanged:
                    await self._adopt(inst, plan.adopt[a.key])
            await self._create_units(plan.create)
        self.synced = True
        # a restarted HealthChecker has forgotten its watches: hand it the full list each time
        watches = [self._watch_args(i) for i in self.insts.values()
                   if i.status is S.running and i.a.service.healthcheck and i.container_id]
        self._health().sync.remote(watches)

    def _record_for(self, a: Assignment) -> InstanceRecord:
        """This agent's record of ``a`` (new for a new generation), with what the Scheduler keeps:
        the restart count and, for an ended instance, its outcome."""
        inst = self.insts.get(a.key)
        if inst is None or inst.a.generation != a.generation:
            inst = self.insts[a.key] = InstanceRecord(a)
        inst.a = a
        inst.restarts = max(inst.restarts, a.restarts)
        if a.outcome is not None and inst.status is S.pending:
            move(inst, a.outcome, self.node, a.reason)  # re-learnt, not news: no event
        return inst

    async def _create_units(self, create: list[Assignment]) -> None:
        """Create and start what is missing: units side by side (as many at once as the engine
        takes without queueing: ``AdaptiveLimit``, between SLOW_START and 2 x CREATE_PARALLELISM),
        the members of one unit one after the other in declared order, master first."""
        units: dict[str, list[Assignment]] = {}
        for a in create:
            units.setdefault(a.unit, []).append(a)
        # each image looked up (built, pulled) once per batch, not once per container
        self.images_ready = await ready_images(
            self._io, self.runtime, {(a.service.image, a.service.pull_policy) for a in create})

        async def one(unit: str, members: list[Assignment]) -> None:
            async with self._lock(unit):
                for a in members:
                    inst = self.insts.get(a.key)
                    # pending: never made; running/exited: its container vanished (removed by
                    # hand); anything else is on its way (starting, backoff) or ended
                    if inst is not None and inst.status in (S.pending, S.running, S.exited):
                        async with self.create_limit.slot():  # a restart's start goes first
                            await self._start(inst, restarted=False, fresh=True)

        try:
            await asyncio.gather(*(one(u, m) for u, m in units.items()))
        finally:
            self.images_ready = set()  # a later create (a restart) looks again

    async def report(self, since: int | None = None) -> AgentReport | None:
        """Capacity and instances; None when ``since`` is the current version (nothing changed
        since the caller's last report). Capacity is the engine's, refreshed every 30 s."""
        self._ensure_started()
        if self.capacity.stale():
            await self._io(self.capacity.refresh)
        info = self.capacity.value
        dns = discovery_hook.report(self)  # where its DNS answers, which table

        def build(version: int) -> AgentReport:
            return AgentReport(node=self.node, docker_host=self.docker_host, cpus=info.cpus,
                               memory=info.memory, disk=info.disk, synced=self.synced,
                               instances=[i.view(self.node) for i in self.insts.values()],
                               version=version, **dns)

        extra = (self.synced, info.cpus, info.memory, info.disk, tuple(sorted(dns.items())))
        return self.reports.get(build, fingerprint(self.insts.values(), extra), since)

    # ---- HOOK(tasks, discovery): see actors/task_hook.py and actors/discovery_hook.py -----------

    async def discovery(self, table: dict, config: dict) -> str | None:
        return await discovery_hook.serve(self, table, config)

    async def stop_run(self, key: str, reason: str) -> bool:
        return await task_hook.stop_run(self, key, reason)

    async def restart_instance(self, key: str) -> None:
        """Explicit restart (API/UI): stop and start the one instance, counted, no policy."""
        inst = self._inst(key)
        async with self._lock(inst.a.unit):
            if inst.container_id:
                await self._stop(inst.container_id, inst.a.service.stop_grace_period)
            inst.restarts += 1
            await self._start(inst, restarted=True)

    async def logs(self, key: str, tail: int = 100) -> str:
        inst = self._inst(key)
        if not inst.container_id:
            return ""
        data = await self._io(self.runtime.logs, inst.container_id, tail=tail)
        return data.decode(errors="replace") if isinstance(data, bytes) else str(data)

    async def remove_all(self) -> int:
        """Remove every container of this cluster on this engine (``veo down``)."""
        self._ensure_started()
        async with self.converge_lock:
            self.insts.clear()
            containers = await self._io(self._list)
            for c in containers:
                await self._remove(c, "veo down")
            await self._io(release, self.runtime, self.cluster)  # compose hook: networks
        return len(containers)

    async def stats(self, key: str) -> dict:
        inst = self._inst(key)
        if not inst.container_id or inst.status is not S.running:
            raise Conflict(f"instance {key} is not running")
        return await self._io(self.runtime.stats, inst.container_id)

    # ---- health (called by the HealthChecker) ---------------------------------------------------

    async def health_changed(self, key: str, container_id: str, health: str, action: str | None) -> None:
        inst = self.insts.get(key)
        if inst is None or inst.container_id != container_id:
            return
        inst.health = Health(health)
        kind = {"healthy": EventKind.healthy, "unhealthy": EventKind.unhealthy}.get(health)
        if kind:
            self.sink.emit(inst.event(kind, self.node, f"health check {health}"))
        if action == OnUnhealthy.restart.value:
            # a kill makes a death like any other; its handling then restarts it (forced)
            inst.killed_unhealthy = True
            await self._io(self.runtime.kill, container_id)
        elif action == OnUnhealthy.kill.value:
            async with self._lock(inst.a.unit):
                await self._stop(container_id, inst.a.service.stop_grace_period)
                self._move(inst, S.failed, "killed: health check unhealthy", kind=EventKind.killed)
            self._health().unwatch.remote(container_id)

    # ---- engine events ---------------------------------------------------------------------------

    async def _on_engine_event(self, ev: dict) -> None:
        marker = ev.get("veo")
        if marker == "connected" and self.synced:
            await self._recheck()  # the stream had a gap: deaths in it show up as exited containers
            return
        if marker == "dead":  # found dead on adopt (queued: the converge held locks then)
            inst = self.insts.get(ev["key"])
            if inst is not None and inst.moves == ev["moves"]:  # nothing happened to it since
                await self._on_death(inst, ev["exit_code"], 0.0)
            return
        if marker:
            return
        attrs = ev.get("Actor", {}).get("Attributes", {})
        if attrs.get(LABEL_CLUSTER) != self.cluster or attrs.get(LABEL_NODE) != self.node:
            return
        cid = ev.get("id") or ev.get("Actor", {}).get("ID")
        if ev.get("Action") == "start":
            inst = self._inst_by_container(cid)
            if inst is not None and ev.get("timeNano"):
                inst.started_at = _iso(ev["timeNano"])  # the engine's own clock, no inspect
            return
        if ev.get("Action") != "die":
            return
        expected = cid in self.expected_stops
        self.expected_stops.discard(cid)
        inst = self._inst_by_container(cid)
        if read_die(inst, expected_stop=expected) is Act.death:
            exit_code = int(attrs.get("exitCode", -1))
            await self._on_death(inst, exit_code, time.monotonic() - inst.started_mono)

    async def _recheck(self) -> None:
        containers = {c.id: c for c in await self._io(self._list)}
        for inst in list(self.insts.values()):
            c = containers.get(inst.container_id or "")
            if c is not None and not c.running and inst.status is S.running:
                await self._on_death(inst, c.exit_code if c.exit_code is not None else -1, 0.0)

    async def _on_death(self, inst: InstanceRecord, exit_code: int, ran_for: float) -> None:
        a = inst.a
        forced = inst.killed_unhealthy
        reason = "unhealthy" if forced else f"exited with code {exit_code}"
        self._move(inst, S.exited, reason, exit_code=exit_code)
        if a.service.healthcheck is not None:  # no watch, no Ray call on the restart path
            self._health().unwatch.remote(inst.container_id)
        if rejoin.cut_off():  # the machine fences itself: its stops are not deaths to undo
            return
        live = [self.insts[k] for k in a.members if k in self.insts
                and self.insts[k].status not in (S.completed, S.failed)]
        members = [Member.of(i.a.service, i.a.instance) for i in live]
        death = Death(a.key, exit_code, ran_for=ran_for, reason=reason if forced else "",
                      force_restart=forced)
        # decided here with the pure rule, mirrored to the GroupSupervisor (no round trip)
        await self.supervision.load()
        decision = self.supervision.decide(a.unit, members, a.policy, death, self.settings,
                                           {i.a.key: i.restarts for i in live})
        inst.reason = decision.reason
        await self._execute(a.unit, decision)

    async def _execute(self, unit: str, d: Decision) -> None:
        for key in d.completed:
            self._end(key, S.completed, "exited with code 0")
        async with self._lock(unit):
            for key in d.stop:
                inst = self.insts.get(key)
                if inst and inst.container_id and inst.status is S.running:
                    await self._stop(inst.container_id, inst.a.service.stop_grace_period)
                    move(inst, S.exited, self.node)  # stopped for the policy: not a death to report
        for key, reason in d.failed.items():
            self._end(key, S.failed, reason)
        if d.restart:
            for key in d.restart:
                inst = self.insts.get(key)
                if inst is not None and inst.status is S.exited:
                    move(inst, S.backoff, self.node)
            asyncio.get_running_loop().create_task(self._restart_later(unit, d.restart, d.delay))

    async def _restart_later(self, unit: str, keys: list[str], delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        # the unit first: a create of this unit holding its lock may be waiting for a slot
        async with self._lock(unit), self.create_limit.held():
            if rejoin.cut_off():
                return
            for key in keys:
                inst = self.insts.get(key)
                if inst is None or inst.status is not S.backoff:
                    continue  # removed, moved or ended meanwhile
                inst.restarts += 1
                await self._start(inst, restarted=True)

    def _end(self, key: str, status: InstanceStatus, reason: str) -> None:
        inst = self.insts.get(key)
        if inst is not None and inst.status is not status:
            self._move(inst, status, reason)

    # ---- engine actions (callers hold the unit's lock) -------------------------------------------

    async def _start(self, inst: InstanceRecord, *, restarted: bool, fresh: bool = False) -> None:
        """Start the instance's container (re-creating it if it is gone). ``fresh``: it is new,
        create it first (an engine that is unavailable for the create: retried like a start)."""
        move(inst, S.starting, self.node)
        try:
            state = await self._start_container(inst, fresh)
        except CreateRefused as e:  # the engine's word on the create itself (bad image, clash)
            self._move(inst, S.failed, str(e))
            return
        except (EngineUnavailable, VeoError) as e:
            unavailable = isinstance(e, EngineUnavailable)
            if not unavailable:
                inst.start_errors += 1
            act, delay = read_refused_start(inst.start_errors, START_RETRIES, unavailable=unavailable)
            if act is Act.retry:
                self._start_later(inst, restarted, delay, str(e))
            else:
                self._move(inst, S.failed, str(e))
            return
        inst.start_errors = 0
        if inst.status is not S.starting:
            return  # its death was handled while we waited for the engine
        inst.started_mono = time.monotonic()
        if state is not None:
            inst.started_at = state.started_at
            if not state.running:
                return  # it already died again: the event stream reports the death
        inst.health, inst.killed_unhealthy = Health.none, False
        self._move(inst, S.running, kind=EventKind.restarted if restarted else EventKind.started)
        self._watch_health(inst)

    async def _start_container(self, inst: InstanceRecord, fresh: bool):
        """The engine calls of a start: one start call when the container is there (its start
        time comes with the engine's start event, a quick death as a die event: no inspect).
        Only a refused start looks whether the container is gone (auto_remove, removed by hand),
        and then makes it again under the same name; that path returns its state."""
        if fresh:  # image, networks, create and start in one hop to the engine threads
            return await self._io(self._make_then_start, inst, self._create_args(inst))
        if inst.container_id:
            try:
                await self._io(self.runtime.start, inst.container_id)
                return None
            except EngineUnavailable:
                raise
            except VeoError:
                if await self._io(self.runtime.inspect, inst.container_id) is not None:
                    raise
        inst.container_id = await self._io(self._make, inst, self._create_args(inst))
        await self._io(self.runtime.start, inst.container_id)
        return await self._io(self.runtime.inspect, inst.container_id)

    def _create_args(self, inst: InstanceRecord) -> dict:
        a = inst.a
        kwargs = create_kwargs(a.service, cluster=self.cluster, instance=a.instance,
                               generation=a.generation, node=self.node)
        kwargs.update(discovery_hook.container_dns(self, a.service))  # dns: the node's veo DNS
        return kwargs

    def _make(self, inst: InstanceRecord, kwargs: dict, image_ready: bool = False) -> str:
        """Engine thread: the image present (built, or pulled per pull_policy: ImageNotFound is
        permanent, RegistryUnavailable an EngineUnavailable retried later), networks, volumes
        and secret files, then the container (idempotent: a retried create finds its own)."""
        a = inst.a
        if not image_ready:
            ensure_image(self.runtime, a.service.image, a.service.pull_policy)
        kwargs = prepare(self.runtime, a.service, self.cluster, kwargs)
        return self.runtime.create(kwargs)

    def _make_then_start(self, inst: InstanceRecord, kwargs: dict) -> None:
        """Engine thread: make, then start. The id is set before the start, so the engine's
        start and die events find the record."""
        a = inst.a
        try:
            inst.container_id = self._make(
                inst, kwargs, (a.service.image, a.service.pull_policy) in self.images_ready)
        except EngineUnavailable:
            raise
        except VeoError as e:
            raise CreateRefused(str(e)) from None
        self.create_limit.before_start()  # a restart's start goes before this one
        self.runtime.start(inst.container_id)

    def _start_later(self, inst: InstanceRecord, restarted: bool, delay: float, reason: str) -> None:
        move(inst, S.backoff, self.node, reason)

        async def later() -> None:
            await asyncio.sleep(delay)
            async with self._lock(inst.a.unit):
                if self.insts.get(inst.key) is inst and inst.status is S.backoff:
                    await self._start(inst, restarted=restarted)

        asyncio.get_running_loop().create_task(later())

    async def _adopt(self, inst: InstanceRecord, c) -> None:
        inst.container_id = c.id
        act = read_adopt(inst, c.running, c.status)
        if act is Act.adopt_running:
            inst.started_at, inst.started_mono = c.started_at, time.monotonic()
            move(inst, S.running, self.node)  # it was running all along: not news
            self._watch_health(inst)
        elif act is Act.start:
            moves = inst.moves
            async with self._lock(inst.a.unit):
                if inst.moves == moves:
                    await self._start(inst, restarted=False)
        elif act is Act.death:
            # it died while nobody watched (agent restarted, stream gap): handled as a death,
            # after this converge (the policy's restarts take locks the converge holds)
            self.queue.put_nowait({"veo": "dead", "key": inst.key, "moves": inst.moves,
                                   "exit_code": c.exit_code if c.exit_code is not None else -1})

    async def _stop(self, cid: str, timeout: float) -> None:
        self.expected_stops.add(cid)
        await self._io(self.runtime.stop, cid, timeout)

    async def _remove(self, c, reason: str, kind: EventKind = EventKind.removed) -> None:
        self.expected_stops.add(c.id)
        await self._io(self.runtime.remove, c.id)
        await self._io(forget, c.name)  # compose hook: the container's secret files
        self._health().unwatch.remote(c.id)
        ident = identity(c)
        self.sink.emit(Event(kind=kind, node=self.node, container_id=c.id, reason=reason,
                             service=c.labels.get(LABEL_SERVICE),
                             instance=int(c.labels[LABEL_INSTANCE]) if ident else None,
                             generation=ident[1] if ident else None))

    async def _handle_orphans(self, orphans: list) -> None:
        now = time.monotonic()
        current = {c.id for c in orphans}
        self.orphan_seen = {cid: t for cid, t in self.orphan_seen.items() if cid in current}
        for c in orphans:
            first = self.orphan_seen.setdefault(c.id, now)
            if now - first >= self.settings.orphan_grace:
                await self._remove(c, "orphan: no desired state names it", EventKind.reaped)
                self.orphan_seen.pop(c.id, None)

    def _forget_undesired(self, desired: list[Assignment]) -> None:
        keys = {a.key for a in desired}
        for key in [k for k in self.insts if k not in keys]:
            del self.insts[key]
        # per-unit memory goes with the unit (task runs bring new units forever)
        forget_units({a.unit for a in desired}, self.supervision, self.unit_locks)

    def _list(self) -> list:
        # several simulated nodes may share one engine: each agent minds its own node's containers
        return self.runtime.list(labels={LABEL_MANAGED: "true", LABEL_CLUSTER: self.cluster,
                                         LABEL_NODE: self.node})

    # ---- helpers ---------------------------------------------------------------------------------

    def _move(self, inst: InstanceRecord, status: InstanceStatus, reason: str | None = None, *,
              kind: EventKind | None = None, exit_code: int | None = None) -> None:
        """A lifecycle move that is news: its event goes to the Scheduler."""
        ev = move(inst, status, self.node, reason, kind=kind, exit_code=exit_code)
        if ev is not None:
            self.sink.emit(ev)

    def _inst(self, key: str) -> InstanceRecord:
        inst = self.insts.get(key)
        if inst is None:
            raise VeoError(f"instance {key} does not run on node {self.node}")
        return inst

    def _inst_by_container(self, cid: str) -> InstanceRecord | None:
        return next((i for i in self.insts.values() if i.container_id == cid), None)

    def _watch_health(self, inst: InstanceRecord) -> None:
        if inst.a.service.healthcheck is not None and inst.container_id:
            self._health().watch.remote(*self._watch_args(inst))

    @staticmethod
    def _watch_args(inst: InstanceRecord) -> tuple[str, str, float, str]:
        hc = inst.a.service.healthcheck
        return inst.key, inst.container_id, hc.interval, inst.a.service.on_unhealthy.value

    def _supervisor(self):
        return self.handles.get(actor_name("supervisor", self.node))

    def _health(self):
        return self.handles.get(actor_name("health", self.node))
