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

Blocking Docker calls run in threads (``asyncio.to_thread``); engine mutations take one lock so a
converge and a restart never race on the same container.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass

import ray

from actors.common import EventSink, Handles
from veo.core.converge import identity, plan_converge
from veo.core.errors import Conflict, EngineUnavailable, VeoError
from veo.core.models import Event, EventKind, Health, Instance, InstanceStatus, OnUnhealthy, Settings
from veo.core.reconcile import Assignment
from veo.adapters.docker_api import DockerRuntime
from veo.core.supervision import Death, Decision, Member
from veo.core.names import (LABEL_CLUSTER, LABEL_INSTANCE, LABEL_MANAGED, LABEL_NODE, LABEL_SERVICE,
                            actor_name, docker_host_from)
from veo.core.translate import create_kwargs
from actors import rejoin  # HOOK(actors.rejoin)

log = logging.getLogger("veo.agent")
START_RETRIES = 2
CREATE_PARALLELISM = 4


def _iso(time_nano: int) -> str:
    """Docker's event time (ns since the epoch) in the engine's StartedAt format."""
    seconds, nanos = divmod(int(time_nano), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


@dataclass
class Inst:
    """What this agent knows of one instance on its node."""

    a: Assignment
    status: InstanceStatus = InstanceStatus.starting
    health: Health = Health.none
    restarts: int = 0
    container_id: str | None = None
    started_at: str | None = None
    started_mono: float = 0.0
    exit_code: int | None = None
    reason: str | None = None
    start_errors: int = 0  # consecutive refused starts; reset by a successful start

    def view(self, node: str) -> Instance:
        return Instance(
            service=self.a.service.name, instance=self.a.instance, group=self.a.service.group,
            node=node, status=self.status, health=self.health, restarts=self.restarts,
            generation=self.a.generation, container_id=self.container_id,
            started_at=self.started_at, exit_code=self.exit_code, reason=self.reason,
        )


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class NodeAgent:
    def __init__(self, node: str, cluster: str, docker_host: str | None = None):
        self.node, self.cluster = node, cluster
        self.docker_host = docker_host or docker_host_from()
        self.runtime = DockerRuntime(self.docker_host)
        self.settings = Settings()
        self.insts: dict[str, Inst] = {}
        self.known_services: set[str] = set()
        self.expected_stops: set[str] = set()  # container ids veo itself is stopping
        self.orphan_seen: dict[str, float] = {}
        self.lock = asyncio.Lock()
        self.sink = EventSink()
        self.handles = Handles()
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

    def _follow_events(self, loop: asyncio.AbstractEventLoop) -> None:
        """Thread: feed Docker's container events into the loop; reconnect with ``since`` so a gap
        in the stream loses nothing, then ask for a full converge to catch what the gap hid."""
        while not self.stop_flag.is_set():
            try:
                stream = self.runtime.events(since=self._since, filters={"type": "container"})
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

    # ---- scheduler-facing ----------------------------------------------------------------------

    async def converge(self, desired: list[Assignment], known_services: list[str],
                       removed_services: list[str], settings: Settings, cluster: str) -> None:
        """Make the engine match ``desired``. Idempotent."""
        self._ensure_started()
        # the cluster is named by the first apply, which may come after this agent was made
        self.settings, self.cluster = settings, cluster
        self.known_services = set(known_services) | set(removed_services)
        async with self.lock:
            # HOOK(actors.rejoin): fencing hand-over with this machine's `veo node` process
            await asyncio.to_thread(rejoin.on_converge, self.runtime, self.node, desired, settings)
            containers = await asyncio.to_thread(self._list)
            plan = plan_converge(desired, containers, self.known_services)
            self._forget_undesired({a.key for a in desired})
            for c in plan.remove:
                await self._remove(c, "no longer desired on this node")
            await self._handle_orphans(plan.orphans)
            for a in desired:
                inst = self.insts.get(a.key)
                if inst is None or inst.a.generation != a.generation:
                    inst = self.insts[a.key] = Inst(a)
                inst.a = a
                inst.restarts = max(inst.restarts, a.restarts)
                if a.hold and inst.status not in (InstanceStatus.completed, InstanceStatus.failed):
                    inst.status, inst.reason = InstanceStatus.failed, a.reason
                if a.key in plan.adopt:
                    await self._adopt(inst, plan.adopt[a.key])
            await self._create_units(plan.create)
        self.synced = True
        # a restarted HealthChecker has forgotten its watches: hand it the full list each time
        watches = [self._watch_args(i) for i in self.insts.values()
                   if i.status is InstanceStatus.running and i.a.service.healthcheck and i.container_id]
        self._health().sync.remote(watches)

    async def _create_units(self, create: list[Assignment]) -> None:
        """Create and start what is missing: units side by side (at most CREATE_PARALLELISM at
        once: the engine serialises much of the work, more only queues), the members of one unit
        one after the other in declared order, master first."""
        units: dict[str, list[Assignment]] = {}
        for a in create:
            units.setdefault(a.unit, []).append(a)
        gate = asyncio.Semaphore(CREATE_PARALLELISM)

        async def one(members: list[Assignment]) -> None:
            async with gate:
                for a in members:
                    await self._create_and_start(self.insts[a.key])

        await asyncio.gather(*(one(m) for m in units.values()))

    async def report(self) -> dict:
        self._ensure_started()
        info = await asyncio.to_thread(self.runtime.info)
        return {
            "node": self.node,
            "docker_host": self.docker_host,
            "cpus": info.cpus, "memory": info.memory, "disk": info.disk,
            "instances": [i.view(self.node) for i in self.insts.values()],
            "synced": self.synced,
        }

    async def restart_instance(self, key: str) -> None:
        """Explicit restart (API/UI): stop and start the one instance, counted, no policy."""
        inst = self._inst(key)
        async with self.lock:
            if inst.container_id:
                await self._stop(inst.container_id, inst.a.service.stop_grace_period)
            inst.restarts += 1
            await self._start(inst, restarted=True)

    async def logs(self, key: str, tail: int = 100) -> str:
        inst = self._inst(key)
        if not inst.container_id:
            return ""
        data = await asyncio.to_thread(self.runtime.logs, inst.container_id, tail=tail)
        return data.decode(errors="replace") if isinstance(data, bytes) else str(data)

    async def remove_all(self) -> int:
        """Remove every container of this cluster on this engine (``veo down``)."""
        self._ensure_started()
        async with self.lock:
            self.insts.clear()
            containers = await asyncio.to_thread(self._list)
            for c in containers:
                await self._remove(c, "veo down")
        return len(containers)

    async def stats(self, key: str) -> dict:
        inst = self._inst(key)
        if not inst.container_id or inst.status is not InstanceStatus.running:
            raise Conflict(f"instance {key} is not running")
        return await asyncio.to_thread(self.runtime.stats, inst.container_id)

    # ---- health (called by the HealthChecker) ---------------------------------------------------

    async def health_changed(self, key: str, container_id: str, health: str, action: str | None) -> None:
        inst = self.insts.get(key)
        if inst is None or inst.container_id != container_id:
            return
        inst.health = Health(health)
        kind = {"healthy": EventKind.healthy, "unhealthy": EventKind.unhealthy}.get(health)
        if kind:
            self._emit(kind, inst, reason=f"health check {health}")
        if action == OnUnhealthy.restart.value:
            # a kill makes a death like any other; the policy then restarts (forced)
            inst.reason = "unhealthy"
            await asyncio.to_thread(self.runtime.kill, container_id)
        elif action == OnUnhealthy.kill.value:
            async with self.lock:
                await self._stop(container_id, inst.a.service.stop_grace_period)
            inst.status, inst.reason = InstanceStatus.failed, "killed: health check unhealthy"
            self._emit(EventKind.killed, inst, reason=inst.reason)
            self._health().unwatch.remote(container_id)

    # ---- engine events ---------------------------------------------------------------------------

    async def _on_engine_event(self, ev: dict) -> None:
        marker = ev.get("veo")
        if marker == "connected" and self.synced:
            await self._recheck()  # the stream had a gap: deaths in it show up as exited containers
            return
        if marker == "dead":
            if ev["key"] in self.insts:
                await self._on_death(self.insts[ev["key"]], ev["exit_code"], 0.0)
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
        if cid in self.expected_stops:
            self.expected_stops.discard(cid)
            return
        inst = self._inst_by_container(cid)
        if inst is None or inst.status not in (InstanceStatus.running, InstanceStatus.starting):
            return
        exit_code = int(attrs.get("exitCode", -1))
        await self._on_death(inst, exit_code, time.monotonic() - inst.started_mono)

    async def _recheck(self) -> None:
        containers = {c.id: c for c in await asyncio.to_thread(self._list)}
        for inst in list(self.insts.values()):
            c = containers.get(inst.container_id or "")
            if c is not None and not c.running and inst.status is InstanceStatus.running:
                await self._on_death(inst, c.exit_code if c.exit_code is not None else -1, 0.0)

    async def _on_death(self, inst: Inst, exit_code: int, ran_for: float) -> None:
        a = inst.a
        inst.status, inst.exit_code = InstanceStatus.exited, exit_code
        forced = inst.reason == "unhealthy"
        reason = "unhealthy" if forced else f"exited with code {exit_code}"
        self._emit(EventKind.exited, inst, reason=reason, exit_code=exit_code)
        self._health().unwatch.remote(inst.container_id)
        live = [self.insts[k] for k in a.members if k in self.insts
                and self.insts[k].status not in (InstanceStatus.completed, InstanceStatus.failed)]
        members = [Member.of(i.a.service, i.a.instance) for i in live]
        death = Death(a.key, exit_code, ran_for=ran_for, reason=reason if forced else "",
                      force_restart=forced)
        decision = await self._supervisor().on_death.remote(
            a.unit, members, a.policy, death, self.settings, {i.a.key: i.restarts for i in live})
        inst.reason = decision.reason
        await self._execute(decision)

    async def _execute(self, d: Decision) -> None:
        for key in d.completed:
            self._end(key, InstanceStatus.completed, EventKind.completed, "exited with code 0")
        async with self.lock:
            for key in d.stop:
                inst = self.insts.get(key)
                if inst and inst.container_id and inst.status is InstanceStatus.running:
                    await self._stop(inst.container_id, inst.a.service.stop_grace_period)
                    inst.status = InstanceStatus.exited
        for key, reason in d.failed.items():
            self._end(key, InstanceStatus.failed, EventKind.failed, reason)
        if d.restart:
            for key in d.restart:
                if key in self.insts:
                    self.insts[key].status = InstanceStatus.backoff
            asyncio.get_running_loop().create_task(self._restart_later(d.restart, d.delay))

    async def _restart_later(self, keys: list[str], delay: float) -> None:
        await asyncio.sleep(delay)
        async with self.lock:
            for key in keys:
                inst = self.insts.get(key)
                if inst is None or inst.status is not InstanceStatus.backoff:
                    continue  # removed, moved or ended meanwhile
                inst.restarts += 1
                await self._start(inst, restarted=True)

    def _end(self, key: str, status: InstanceStatus, kind: EventKind, reason: str) -> None:
        inst = self.insts.get(key)
        if inst is None:
            return
        inst.status, inst.reason = status, reason
        self._emit(kind, inst, reason=reason)

    # ---- engine actions (callers hold the lock) --------------------------------------------------

    async def _create_and_start(self, inst: Inst) -> None:
        try:
            await self._create(inst)
        except EngineUnavailable as e:
            inst.reason = str(e)  # no container yet: the next converge creates it again
            return
        except VeoError as e:
            self._fail(inst, str(e))
            return
        await self._start(inst, restarted=False, fresh=True)

    async def _start(self, inst: Inst, *, restarted: bool, fresh: bool = False) -> None:
        """Start the instance's container (re-creating it if it is gone). ``fresh``: it was just
        created, so skip the look-up that finds a vanished container."""
        inst.status, inst.exit_code = InstanceStatus.starting, None
        try:
            state = True if fresh else (
                await asyncio.to_thread(self.runtime.inspect, inst.container_id)
                if inst.container_id else None)
            if state is None:  # gone (auto_remove, removed by hand): make it again, same name
                await self._create(inst)
                await asyncio.to_thread(self.runtime.start, inst.container_id)
                state = await asyncio.to_thread(self.runtime.inspect, inst.container_id)
            else:
                await asyncio.to_thread(self.runtime.start, inst.container_id)
                # a fresh container's start time comes with the engine's start event; a death
                # right after the start comes as a die event either way
                state = None if fresh else await asyncio.to_thread(self.runtime.inspect,
                                                                   inst.container_id)
        except EngineUnavailable as e:
            # temporary (the engine is down, restarting or frozen): try again until it answers
            self._start_later(inst, restarted, 1.0, str(e))
            return
        except VeoError as e:
            # an engine shutting down also refuses starts (libnetwork store closed...), so a
            # refusal is retried twice before it counts as the engine's final word
            inst.start_errors += 1
            if inst.start_errors <= START_RETRIES:
                self._start_later(inst, restarted, float(inst.start_errors), str(e))
            else:
                self._fail(inst, str(e))
            return
        inst.start_errors = 0
        if inst.status is not InstanceStatus.starting:
            return  # its death was handled while we waited for the engine
        inst.started_mono = time.monotonic()
        if state is not None:
            inst.started_at = state.started_at
        if state is not None and not state.running:
            # it already died again: the event stream will report the death
            return
        inst.status, inst.health = InstanceStatus.running, Health.none
        if inst.reason == "unhealthy":
            inst.reason = None
        self._emit(EventKind.restarted if restarted else EventKind.started, inst)
        self._watch_health(inst)

    async def _create(self, inst: Inst) -> None:
        """Create the instance's container (idempotent: a retried create finds its own)."""
        a = inst.a
        kwargs = create_kwargs(a.service, cluster=self.cluster, instance=a.instance,
                               generation=a.generation, node=self.node)
        inst.container_id = await asyncio.to_thread(self.runtime.create, kwargs)

    def _start_later(self, inst: Inst, restarted: bool, delay: float, reason: str) -> None:
        inst.status, inst.reason = InstanceStatus.backoff, reason

        async def later() -> None:
            await asyncio.sleep(delay)
            async with self.lock:
                if self.insts.get(inst.a.key) is inst and inst.status is InstanceStatus.backoff:
                    await self._start(inst, restarted=restarted)

        asyncio.get_running_loop().create_task(later())

    async def _adopt(self, inst: Inst, c) -> None:
        inst.container_id = c.id
        if inst.status in (InstanceStatus.completed, InstanceStatus.failed, InstanceStatus.backoff):
            return
        if c.running:
            if inst.status is not InstanceStatus.running:
                inst.status, inst.started_at = InstanceStatus.running, c.started_at
                inst.started_mono = time.monotonic()
                self._watch_health(inst)
        elif c.status == "created":
            await self._start(inst, restarted=False)
        elif inst.status in (InstanceStatus.running, InstanceStatus.starting):
            # it died while nobody watched (agent restarted, stream gap): handle it after the lock
            inst.status = InstanceStatus.running
            self.queue.put_nowait({"veo": "dead", "key": inst.a.key,
                                   "exit_code": c.exit_code if c.exit_code is not None else -1})

    async def _stop(self, cid: str, timeout: float) -> None:
        self.expected_stops.add(cid)
        await asyncio.to_thread(self.runtime.stop, cid, timeout)

    async def _remove(self, c, reason: str, kind: EventKind = EventKind.removed) -> None:
        self.expected_stops.add(c.id)
        await asyncio.to_thread(self.runtime.remove, c.id)
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

    def _forget_undesired(self, keys: set[str]) -> None:
        for key in [k for k in self.insts if k not in keys]:
            del self.insts[key]

    def _fail(self, inst: Inst, reason: str) -> None:
        inst.status, inst.reason = InstanceStatus.failed, reason
        self._emit(EventKind.failed, inst, reason=reason)

    def _list(self) -> list:
        # several simulated nodes may share one engine: each agent minds its own node's containers
        return self.runtime.list(labels={LABEL_MANAGED: "true", LABEL_CLUSTER: self.cluster,
                                         LABEL_NODE: self.node})

    # ---- helpers ---------------------------------------------------------------------------------

    def _inst(self, key: str) -> Inst:
        inst = self.insts.get(key)
        if inst is None:
            raise VeoError(f"instance {key} does not run on node {self.node}")
        return inst

    def _inst_by_container(self, cid: str) -> Inst | None:
        return next((i for i in self.insts.values() if i.container_id == cid), None)

    def _watch_health(self, inst: Inst) -> None:
        if inst.a.service.healthcheck is not None and inst.container_id:
            self._health().watch.remote(*self._watch_args(inst))

    @staticmethod
    def _watch_args(inst: Inst) -> tuple[str, str, float, str]:
        hc = inst.a.service.healthcheck
        return inst.a.key, inst.container_id, hc.interval, inst.a.service.on_unhealthy.value

    def _emit(self, kind: EventKind, inst: Inst, reason: str | None = None,
              exit_code: int | None = None) -> None:
        self.sink.emit(Event(
            kind=kind, service=inst.a.service.name, instance=inst.a.instance,
            group=inst.a.service.group, container_id=inst.container_id, node=self.node,
            reason=reason, generation=inst.a.generation, exit_code=exit_code,
            restarts=inst.restarts))

    def _supervisor(self):
        return self.handles.get(actor_name("supervisor", self.node))

    def _health(self):
        return self.handles.get(actor_name("health", self.node))
