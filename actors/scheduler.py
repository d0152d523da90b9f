"""Scheduler: one per Ray cluster, detached, named ``veo-scheduler`` in namespace ``veo``.

It owns the *desired* state — one ``DesiredState`` value (``veo.core.desired``), persisted in the
state store before anything acts on it — and one control loop, every ``tick`` seconds or as soon as
something changes:

    membership (Ray nodes labelled veo.node) -> reports from every NodeAgent (actual state, read
    from the engines) -> plan (pure: placement of what is not placed) -> persist -> converge
    (each agent gets the desired list of its node; agents are idempotent).

This actor keeps only what is not a decision: the loop, Ray membership, the calls to agents and the
event buffer. Every state change is an Event with an increasing index, kept in a bounded buffer;
readers resume from an index. The front doors only call the methods below.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from dataclasses import replace

import ray

from actors import discovery_hook, listing_hook, task_hook  # HOOK(tasks, discovery, listing)
from actors.common import Handles
from actors.group_supervisor import GroupSupervisor
from actors.health_checker import HealthChecker
from actors.node_agent import NodeAgent
from veo.adapters.event_log import EventLog
from veo.adapters.store import open_store
from veo.core import rollout
from veo.core.desired import DesiredState, summary
from veo.core.summary import StepTimes
from veo.core.depends import held_back
from veo.core.errors import Conflict, NotFound, VeoError
from veo.core.models import (AgentReport, ClusterSpec, Event, EventKind, Instance, InstanceStatus,
                             Node, NodeView, Service)
from veo.core.names import ACTOR_NAMESPACE, NODE_LABEL, ROLE_LABEL, actor_name, instance_key
from veo.core.reconcile import allocation
from veo.core.steady import Steady, pick_reports
from veo.core.views import NodeRec, instance_views, node_state

log = logging.getLogger("veo.scheduler")
EVENT_KEEP = 10_000
REPORT_TIMEOUT = 5.0
CONVERGE_TIMEOUT = 120.0
NODE_ACTORS = ("agent", "supervisor", "health")
STEP_KEEP = 1000  # control-loop step durations kept for loop_stats (benchmarks, /metrics)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Scheduler:
    def __init__(self, state_path: str | None = None, tick: float = 1.0):
        self.store = open_store(state_path)
        self.tick = tick
        self.state = DesiredState.load(self.store)
        self.events: deque[Event] = deque(maxlen=EVENT_KEEP)
        # the last EVENT_KEEP events persist in the store; indexes stay monotonic across restarts
        self.event_log = EventLog(self.store, keep=EVENT_KEEP)
        self.event_log.skip_to(self.state.event_index)  # a store from before events persisted
        self.events.extend(self.event_log.recent(EVENT_KEEP))
        # events agents sent (by source) among those kept: a batch sent again is recorded once
        self.seen = {e.source for e in self.events if e.source}
        self.state.event_index = max(self.state.event_index, self.event_log.last_index())
        self.nodes: dict[str, NodeRec] = {}
        self.pending: dict[str, str] = {}  # unit -> why it is not placed (from the last plan)
        self.unit_members: dict[str, tuple[str, ...]] = {}
        self.converging: dict[str, asyncio.Task] = {}  # node -> its converge in flight
        self.agents = Handles()  # agent handles by name: a lookup is a GCS call, made once
        self.new_events = asyncio.Condition()
        self.wake = asyncio.Event()
        self._loop: asyncio.Task | None = None
        # what keeps a step with nothing new cheap: plan gate, list versions, report ages
        self.steady = Steady()
        self.nodes_version = 0  # grows when a node's liveness, role, host or capacity changes
        self.reports_version = 0  # grows with every new report received (any node)
        self._specs: tuple[int, dict] = (-1, {})  # kept spec versions, by the spec index read
        self._node_states: tuple = (None, [])  # HOOK(incplan): placement's nodes, by what they read
        self.step_times = StepTimes(STEP_KEEP)  # seconds, the last steps (numbered)
        self.changes = listing_hook.ChangeCounter()  # HOOK(listing): readers' caches follow it
        # after a restart (kill -9, node failure) nobody may call us for a while: queue a call to
        # ourselves so the control loop resumes as soon as this constructor returns
        ray.get_runtime_context().current_actor.ping.remote()

    def _commit(self, wake: bool = True) -> None:
        """Persist what changed (before anything acts on it) and let the loop act."""
        self.state.save(self.store)
        self.changes.bump()  # HOOK(listing): what the views read may have changed
        if wake:
            self.wake.set()

    # ---- desired state -------------------------------------------------------------------------

    async def apply(self, spec: ClusterSpec, check_index: int | None = None) -> dict[str, list[str]]:
        """Make the cluster's services exactly those of ``spec``. Idempotent. Changed services
        that run are rolled (their ``update:`` rules); ``check_index``: only if the spec index
        is still that (compare-and-set)."""
        self._start()
        # persisted before anything acts on it; a full store leaves everything as it was
        changes = self.state.transact(self.store, lambda: self.state.apply(spec, check_index=check_index))
        self._record([Event(kind=EventKind.applied, reason=summary(changes)), *self._take_notes()])
        self._commit()
        return changes

    async def add_service(self, svc: Service) -> None:
        self._start()
        self.state.transact(self.store, lambda: self.state.add_service(svc))
        self._record(self._take_notes())
        self._commit()

    # ---- updates, versions, plans --------------------------------------------------------------

    async def plan(self, spec: ClusterSpec) -> dict:
        """What ``apply(spec)`` would change; changes nothing."""
        return rollout.plan(self.state, spec, self._states())

    async def updates(self) -> list[dict]:
        return [u.to_json() for u in self.state.updates.values()]

    async def update_control(self, target: str, action: str) -> None:
        """``veo update resume|promote|pause|rollback TARGET``."""
        self.state.pending_notes += rollout.control(self.state, target, action, time.time())
        self._record(self._take_notes())
        self._commit()

    async def history(self, service: str) -> list[dict]:
        return rollout.history(self.state, service)

    async def rollback(self, service: str, to: int | None = None) -> int:
        """Apply an earlier version of ``service`` (rolled like any update); returns the number
        of the version it goes back to."""
        number, spec = rollout.rollback_to(self.state, service, to)
        await self.add_service(spec)
        return number

    async def remove_service(self, name: str) -> None:
        self.state.transact(self.store, lambda: self.state.remove_service(name))
        self._commit()

    async def restart(self, service: str, instance: int = 0) -> None:
        key = instance_key(service, instance)
        if self.state.revive(key):  # an ended instance comes back on an explicit restart
            self._commit()
        await self._agent(self.state.slots[key].node).restart_instance.remote(key)

    async def cordon(self, node: str, on: bool = True) -> None:
        self._known_node(node)
        self.state.cordon(node, on)
        self._commit()

    async def drain(self, node: str) -> list[str]:
        """Move everything off ``node`` (groups as units) and cordon it. Refuses, changing
        nothing, when some unit on it would fit nowhere else. Returns the instances that move."""
        self._known_node(node)
        stuck = self.state.drain_blockers(node, self._states(extra_cordoned={node}))
        if stuck:
            raise Conflict(f"cannot drain {node}: " + "; ".join(f"{u}: {r}" for u, r in stuck.items()))
        moving = sorted(k for k, s in self.state.slots.items() if s.node == node)
        self.state.start_drain(node)
        self._commit()
        return moving

    async def add_node(self, node: Node) -> None:
        """Expect a node: it becomes live when a Ray node labelled veo.node=<name> joins."""
        self.state.add_node(node)
        self._commit()

    async def remove_node(self, name: str) -> list[str]:
        """Drain ``name`` and forget it (the Ray node itself is not stopped)."""
        self._known_node(name)
        moving = await self.drain(name) if name in self.nodes and self.nodes[name].alive else []
        self.state.forget_node(name)
        self._commit()
        return moving

    def _known_node(self, node: str) -> None:
        if node not in self.nodes and node not in self.state.expected:
            raise NotFound(f"no node named {node!r}")

    async def shutdown(self) -> int:
        """``veo down``: forget every service, remove every container of this cluster on every
        node, and stop the per-node actors. Returns how many containers were removed.

        The loop is stopped first and in-flight converges are awaited, so no converge removes
        containers behind our back and the count is the real one."""
        await self._stop_loop()
        self.state.clear()
        self._commit(wake=False)
        removed = 0
        for rec in self.nodes.values():
            if not rec.alive:
                continue
            try:
                removed += await self._agent(rec.name).remove_all.remote()
            except Exception as e:
                log.warning("could not clean node %s: %s", rec.name, e)
            for kind in NODE_ACTORS:
                try:
                    ray.kill(ray.get_actor(actor_name(kind, rec.name), namespace=ACTOR_NAMESPACE))
                except ValueError:
                    pass
        return removed

    async def _stop_loop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            self._loop = None
        busy = [t for t in self.converging.values() if not t.done()]
        if busy:
            await asyncio.wait(busy, timeout=CONVERGE_TIMEOUT)
        self.converging.clear()

    # ---- reads ---------------------------------------------------------------------------------

    async def pid(self) -> int:
        """The worker process (fault-injection tests kill it)."""
        return os.getpid()

    async def loop_stats(self, since: int | None = None) -> dict:
        """Durations of the last control-loop steps (how long the loop's own work takes, not
        the wait between steps): count, p50, p95 and max in seconds, and ``total`` steps so far;
        ``since``: only the steps after that ``total``."""
        return self.step_times.stats(since)

    async def containers_version(self, since: int | None = None, wait: float = 0.0) -> int:
        """HOOK(listing): a counter that moves whenever what ``instances`` shows may have changed
        (each commit: events, state changes, every step's reports); with ``wait``, a long poll
        until it differs from ``since`` (actors/listing_hook.py)."""
        return await self.changes.wait(since, wait)

    async def ping(self) -> str:
        self._start()
        return self.state.cluster

    async def spec(self) -> ClusterSpec:
        return self.state.spec()

    async def services_list(self) -> list[Service]:
        return list(self.state.services.values())

    async def instances(self, service: str | None = None) -> list[Instance]:
        if service is not None and service not in self.state.services:
            raise NotFound(f"no service named {service!r}")
        views = self._views()
        return [v for v in views if service is None or v.service == service]

    def _views(self) -> list[Instance]:
        return instance_views(self.state.slots, self.nodes, self.pending, self.unit_members,
                              self.state.restarts)

    async def node_views(self) -> list[NodeView]:
        alloc = allocation(self.state.slots, self.state.services)
        names = sorted(set(self.nodes) | set(self.state.expected))
        return [self._node_view(n, alloc.get(n)) for n in names]

    async def events_since(self, since: int | None = None, limit: int = 1000,
                           wait: float = 0.0) -> list[Event]:
        """Events with index > since (the last ``limit`` ones when since is None). With ``wait``,
        blocks up to that many seconds for at least one (long poll, for follow)."""
        def pick() -> list[Event]:
            if since is None:
                return list(self.events)[-limit:]
            return [e for e in self.events if e.index > since][:limit]

        found = pick()
        if found or wait <= 0:
            return found
        async with self.new_events:
            try:
                await asyncio.wait_for(self.new_events.wait_for(lambda: bool(pick())), wait)
            except asyncio.TimeoutError:
                pass
        return pick()

    async def logs(self, service: str, instance: int = 0, tail: int = 100) -> str:
        key, node = self._where(service, instance)
        return await self._agent(node).logs.remote(key, tail)

    async def stats(self, service: str, instance: int = 0) -> dict:
        key, node = self._where(service, instance)
        return await self._agent(node).stats.remote(key)

    def _where(self, service: str, instance: int) -> tuple[str, str]:
        key = instance_key(service, instance)
        slot = self.state.slots.get(key)
        if slot is None:
            raise NotFound(f"no instance {key}")
        return key, slot.node

    # ---- HOOK(tasks, discovery): front doors of actors/task_hook.py and discovery_hook.py ---------

    async def tasks(self) -> list[dict]:
        return task_hook.views(self)

    async def run_task(self, name: str) -> dict:
        self._start()
        return task_hook.trigger(self, name)

    async def discovery(self, service: str) -> dict:
        return discovery_hook.lookup(self, service)

    # ---- from agents ---------------------------------------------------------------------------

    async def record(self, events: list[Event]) -> None:
        events = self._fresh(events)  # an agent's batch sent again is recorded once
        events = await task_hook.enrich(self, events)  # HOOK(tasks): exit code, duration, logs
        self._record(events)
        self._commit(wake=False)
        # a lifecycle move or a health change (the DNS answers follow health) makes the next step
        # (fresh reports) happen now, not at the next tick
        if any(e.status is not None for e in events) or discovery_hook.prompts(events):
            self.wake.set()

    def _fresh(self, events: list[Event]) -> list[Event]:
        """The events not recorded yet, by their ``source`` (agents deliver at least once)."""
        fresh = [e for e in events if not e.source or e.source not in self.seen]
        if len(self.seen) > 2 * EVENT_KEEP:  # bounded: only what the buffer still holds counts
            self.seen = {e.source for e in self.events if e.source}
        self.seen.update(e.source for e in fresh if e.source)
        return fresh

    def _record(self, events: list[Event]) -> None:
        """Index, buffer and fold events (the caller commits)."""
        for ev in events:
            ev.index = self.state.next_index()
            self.events.append(ev)
            self.state.fold(ev)
        self.event_log.append(events)  # one atomic write per batch, old rows trimmed
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.new_events:
            self.new_events.notify_all()

    # ---- the control loop ----------------------------------------------------------------------

    def _start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            # steps woken by events come at most every 0.1 s (not part of the step's time)
            await asyncio.sleep(self.steady.pace_delay())
            self.wake.clear()
            began = time.perf_counter()
            try:
                await self._step()
            except Exception:  # the loop must survive any one bad step; the next one retries
                log.exception("control loop step failed")
            self.step_times.append(time.perf_counter() - began)
            try:
                await asyncio.wait_for(self.wake.wait(), self.tick)
            except asyncio.TimeoutError:
                pass

    async def _step(self) -> None:
        # Ray membership (a GCS call listing every node) once per tick, not on every event
        if self.steady.membership_due(self.tick):
            await self._membership()
        await self._collect_reports()
        self._plan()
        await self._push()
        discovery_hook.push(self)  # HOOK(discovery)

    async def _membership(self) -> None:
        seen: dict[str, dict] = {}
        for n in await asyncio.to_thread(ray.nodes):
            name = (n.get("Labels") or {}).get(NODE_LABEL)
            if name and (name not in seen or n.get("Alive")):
                seen[name] = n
        events = []
        for name, n in seen.items():
            rec = self.nodes.get(name)
            alive = bool(n.get("Alive"))
            if rec is None:
                rec = self.nodes[name] = NodeRec(name=name)
            seen_as = (rec.role, rec.host, rec.alive)
            rec.role = (n.get("Labels") or {}).get(ROLE_LABEL)
            rec.host = n.get("NodeManagerAddress")
            if seen_as != (rec.role, rec.host, alive):
                self.nodes_version += 1  # placement sees the node differently: plan again
            if alive != rec.alive:  # a node that joins or is lost: its agent is looked up again
                self.agents.forget(actor_name("agent", name))
            if alive and not rec.alive:
                self._spawn_node_actors(name)
                events.append(Event(kind=EventKind.node_joined, node=name))
            elif not alive and rec.alive:
                rec.report = None
                events.append(Event(kind=EventKind.node_lost, node=name,
                                    reason="Ray marked the node dead"))
            rec.alive = alive
        if events:
            self._record(events)
            self._commit(wake=False)

    def _spawn_node_actors(self, node: str) -> None:
        opts = dict(namespace=ACTOR_NAMESPACE, lifetime="detached", get_if_exists=True,
                    max_restarts=-1, label_selector={NODE_LABEL: node})
        cluster = self.state.cluster
        NodeAgent.options(name=actor_name("agent", node), **opts).remote(node, cluster)
        GroupSupervisor.options(name=actor_name("supervisor", node), **opts).remote(node, cluster)
        HealthChecker.options(name=actor_name("health", node), **opts).remote(node, cluster)

    async def _collect_reports(self) -> None:
        """Reports from the nodes with news (events since the last step, or no report yet) and
        from a bounded few others whose report is oldest; an agent with nothing new since the
        version we hold answers None (veo.core.steady.pick_reports)."""
        alive = {rec.name: rec for rec in self.nodes.values() if rec.alive}
        news = self.steady.nodes_with_news(self.events)
        news |= {name for name, rec in alive.items() if rec.report is None}
        now = self.steady.clock()

        async def one(rec: NodeRec) -> None:
            try:
                since = rec.report.version if rec.report else None
                report: AgentReport | None = await asyncio.wait_for(
                    self._agent(rec.name).report.remote(since), REPORT_TIMEOUT)
                if report is not None:
                    old, rec.report = rec.report, report
                    self.reports_version += 1
                    if old is None or (old.cpus, old.memory, old.disk) != (
                            report.cpus, report.memory, report.disk):
                        self.nodes_version += 1  # capacity as placement sees it moved
                self.steady.reported_at[rec.name] = now
            except Exception as e:  # agent restarting or engine down: plan with what we had
                self.agents.forget(actor_name("agent", rec.name))  # looked up again next time
                log.warning("no report from %s: %s", rec.name, e)

        ask = pick_reports(alive, news, self.steady.reported_at, now, self.tick)
        await asyncio.gather(*(one(alive[name]) for name in ask))

    def _states(self, extra_cordoned: set[str] = frozenset()):
        st = self.state
        # HOOK(incplan): the same list while nothing it reads moved (O(nodes) to build); its
        # inputs: node records (nodes_version), cluster.yml's nodes, cordons
        key = (self.nodes_version, len(self.nodes), tuple(st.expected.values()),
               frozenset(st.cordoned | extra_cordoned))
        if self._node_states[0] != key:
            self._node_states = (key, [
                node_state(name, self.nodes.get(name), st.expected.get(name), name in key[3])
                for name in sorted(set(self.nodes) | set(st.expected))])
        return self._node_states[1]

    def _plan(self) -> None:
        """Placement of what is not placed, only when what it reads changed (``PlanGate``); a
        rolling update in flight plans every step (its waits are deadlines)."""
        st = self.state
        updating = any(u.active for u in st.updates.values())
        runs = task_hook.before_plan(self)  # due runs, persisted first (time-driven: every step)
        held = self._held_back()
        drain = self._drain_budget()  # builds every view while a drain runs: once per step
        inputs = (self.nodes_version, drain, tuple(sorted(held.items())),
                  tuple(sorted((n, tuple(r)) for n, r in runs.items())))
        if not self.steady.gate.due((st.placement_version, inputs), force=updating):
            self._commit(wake=False)  # what before_plan recorded
            return
        states = self._states()
        # until every live node has reported, "pending" reasons would only say "not reported yet"
        reported = all(rec.report for rec in self.nodes.values() if rec.alive)
        if updating:
            views = self._update_views()  # HOOK(incplan): the updates' units only
            st.pending_notes += rollout.advance_updates(st, views, self.unit_members, time.time())
        result = st.plan(states, drain_moves=drain, held=held, runs=runs)
        self.steady.lists.hint(result.touched)  # HOOK(incplan): the slots this plan may have moved
        self.unit_members = result.unit_members
        events = st.unit_events(result, self.pending, with_pending=reported)
        events += self._take_notes()
        self.pending = result.pending
        if events:
            self._record(events)
        self._commit(wake=False)
        self.steady.gate.settle((st.placement_version, inputs))

    def _update_views(self) -> dict[str, Instance]:
        """Views of the instances rolling updates are waiting on (all a step of theirs reads),
        not of every instance: each from its own node's report."""
        st = self.state
        units = {u for up in st.updates.values() if up.active for u in up.in_flight}
        slots = {k: st.slots[k] for u in units for k in self.unit_members.get(u, ()) if k in st.slots}
        nodes = {s.node: self.nodes[s.node] for s in slots.values() if s.node in self.nodes}
        units |= {s.unit for s in slots.values()}
        pending = {u: r for u, r in self.pending.items() if u in units}
        return {instance_key(v.service, v.instance): v
                for v in instance_views(slots, nodes, pending, self.unit_members, st.restarts)}

    def _take_notes(self) -> list[Event]:
        """The update events the desired state decided (rollout notes) as Events."""
        notes, self.state.pending_notes = self.state.pending_notes, []
        out = []
        for kind, target, reason in notes:
            group = target[len("group:"):] if target.startswith("group:") else None
            out.append(Event(kind=kind, service=None if group else target, group=group,
                             reason=reason))
        return out

    def _held_back(self) -> dict[str, str]:
        """Services whose first start waits on a dependency (depends_on, veo.core.depends)."""
        st = self.state
        if not any(svc.depends_on for svc in st.services.values()):
            return {}  # the common case: nothing to look at
        placed = {s.service for s in st.slots.values()}
        if not any(svc.depends_on and name not in placed for name, svc in st.services.items()):
            return {}  # every dependant placed already: no view to build
        return held_back(st.services, placed, self._views())

    def _drain_budget(self) -> int:
        """A drain moves one unit (group) at a time: the next only once nothing is starting."""
        if not self.state.draining:
            return 1
        return 0 if any(v.status is InstanceStatus.starting for v in self._views()) else 1

    async def _push(self) -> None:
        """Send each live node whose desired list changed its new list (with a version); re-check
        a bounded few others by version only (veo.core.steady.PushBook). Not awaited by the loop:
        a node whose engine is slow or frozen keeps its converge in flight and is skipped until it
        returns, while every other node goes on converging each step."""
        book = self.steady.book
        if self.steady.built != self.steady.gate.planned:  # a plan ran: rebuild what changed
            self.steady.built = self.steady.gate.planned
            self._rebuild_lists()
        now = self.steady.clock()
        live = [n for n, rec in self.nodes.items() if rec.alive and
                (n not in self.converging or self.converging[n].done())]
        full, stale = book.due(live, now, self.tick)
        for name, is_full in [(n, True) for n in full] + [(n, False) for n in stale]:
            version = book.nodes[name].version
            book.sent(name, version, now)
            self.converging[name] = asyncio.get_running_loop().create_task(
                self._converge_one(name, version, is_full))

    def _rebuild_lists(self) -> None:
        st, lists = self.state, self.steady.lists
        args = (sorted(st.services), sorted(st.removed), st.settings, st.cluster)
        dirty = lists.changed_nodes(st.slots, st.services, self.unit_members, args,
                                    self._kept_specs(), st.retiring)
        book = self.steady.book
        names = (set(self.nodes) | lists.nodes() | set(book.nodes) if dirty is None
                 else dirty | (set(self.nodes) - set(book.nodes)))
        book.update({n: (lst, args) for n, lst in lists.lists(names).items()})

    def _kept_specs(self) -> dict:
        """The kept spec versions (hash -> service) slots an update has not reached run; read
        from the versions once per spec index, and only while an update or start-first needs it."""
        st = self.state
        if not (rollout.held_units(st) or st.retiring):
            return {}
        if self._specs[0] != st.spec_index:
            self._specs = (st.spec_index, rollout.specs_by_hash(st))
        return self._specs[1]

    async def _converge_one(self, name: str, version: int, full: bool) -> None:
        st, book = self.state, self.steady.book
        try:
            agent = self._agent(name)
            if full:
                desired, (known, removed, settings, cluster) = book.nodes[name].content
                # restart counts move without a plan: send the current ones
                desired = [replace(a, restarts=st.restarts.get(a.key, a.restarts)) for a in desired]
                call = agent.converge.remote(desired, known, removed, settings, cluster, version)
            else:
                call = agent.resync.remote(version)
            if await asyncio.wait_for(call, CONVERGE_TIMEOUT) is False:
                book.lost(name)  # it does not hold this version (restarted): full next step
        except Exception as e:
            book.lost(name)
            self.agents.forget(actor_name("agent", name))
            log.warning("converge on %s failed: %s", name, e)

    # ---- helpers -------------------------------------------------------------------------------

    def _agent(self, node: str):
        try:
            return self.agents.get(actor_name("agent", node))
        except ValueError:
            raise VeoError(f"node {node!r} has no agent (is it part of the Ray cluster?)") from None

    def _node_view(self, name: str, alloc) -> NodeView:
        rec = self.nodes.get(name)
        st = node_state(name, rec, self.state.expected.get(name), name in self.state.cordoned)
        report = rec.report if rec else None
        return NodeView(
            name=name, role=st.role, host=st.host, alive=st.alive,
            expected=name in self.state.expected, cordoned=st.cordoned, cpus_total=st.cpus,
            memory_total=st.memory, disk_total=st.disk,
            cpus_allocated=alloc[0] if alloc else 0.0, memory_allocated=alloc[1] if alloc else 0,
            disk_allocated=alloc[2] if alloc else 0,
            docker_host=report.docker_host if report else None,
            containers=sum(1 for s in self.state.slots.values() if s.node == name),
            dns=report.dns if report else None,
        )
