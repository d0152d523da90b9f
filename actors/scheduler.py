"""Scheduler: one per Ray cluster, detached, named ``veo-scheduler`` in namespace ``veo``.

It owns the *desired* state (services, settings, slots = instance -> node + generation), persisted in
the state store before anything acts on it. One control loop reconciles, every ``tick`` seconds or
as soon as something changes:

    membership (Ray nodes labelled veo.node) -> reports from every NodeAgent (actual state, read
    from the engines) -> reconcile (pure: placement of what is not placed) -> persist -> converge
    (each agent gets the full desired list of its node; agents are idempotent).

Every state change is an Event with an increasing index, kept in a bounded buffer; readers resume
from an index. The front doors only call the methods below.
"""

from __future__ import annotations

import asyncio
import os
import logging
from collections import deque

import ray

from actors import discovery_hook, task_hook  # HOOK(tasks, discovery)
from actors.group_supervisor import GroupSupervisor
from actors.health_checker import HealthChecker
from actors.node_agent import NodeAgent
from veo.core.errors import Conflict, NotFound, VeoError
from veo.core.models import (ClusterSpec, Event, EventKind, Instance, InstanceStatus, Node, NodeView,
                        Service, Settings)
from veo.core.policy import Policy, enforce
from veo.core.reconcile import Slot, allocation, assignments_for, reconcile
from veo.adapters.store import dump_service, load_service, open_store
from veo.core.views import NodeRec, instance_views, node_state
from veo.core.names import ACTOR_NAMESPACE, NODE_LABEL, ROLE_LABEL, actor_name, split_key

log = logging.getLogger("veo.scheduler")
_PROMPT = frozenset({EventKind.started, EventKind.restarted, EventKind.exited, EventKind.failed,
                     EventKind.completed, EventKind.killed})
EVENT_KEEP = 10_000
REPORT_TIMEOUT = 5.0
CONVERGE_TIMEOUT = 120.0


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Scheduler:
    def __init__(self, state_path: str | None = None, tick: float = 1.0):
        self.store = open_store(state_path)
        self.tick = tick
        self.cluster: str = self.store.get("cluster", "veo")
        self.services = {n: load_service(d) for n, d in self.store.get("services", {}).items()}
        self.settings = Settings.model_validate(self.store.get("settings", {}))
        self.policy = Policy.model_validate(self.store.get("policy", {}))
        self.expected = {n["name"]: n for n in self.store.get("nodes", [])}
        self.slots = {k: Slot.from_json(v) for k, v in self.store.get("slots", {}).items()}
        self.removed: set[str] = set(self.store.get("removed", []))
        self.cordoned: set[str] = set(self.store.get("cordoned", []))
        self.draining: set[str] = set(self.store.get("draining", []))
        self.restarts: dict[str, int] = self.store.get("restarts", {})
        self.events: deque[Event] = deque(maxlen=EVENT_KEEP)
        # indexes stay monotonic across restarts: continue after the last one persisted
        self.next_index = self.store.get("event_index", 0) + 1
        self.nodes: dict[str, NodeRec] = {}
        self.pending: dict[str, str] = {}
        self.unit_members: dict[str, tuple[str, ...]] = {}
        self.converging: dict[str, asyncio.Task] = {}  # node -> its converge in flight
        self.new_events = asyncio.Condition()
        self.wake = asyncio.Event()
        self._loop: asyncio.Task | None = None
        # after a restart (kill -9, node failure) nobody may call us for a while: queue a call to
        # ourselves so the control loop resumes as soon as this constructor returns
        ray.get_runtime_context().current_actor.ping.remote()

    # ---- desired state -------------------------------------------------------------------------

    async def apply(self, spec: ClusterSpec) -> dict[str, list[str]]:
        """Make the cluster's services exactly those of ``spec``. Idempotent."""
        self._start()
        if spec.name != self.cluster and self.services:
            raise Conflict(f"this veo cluster is named {self.cluster!r}; the spec says {spec.name!r}")
        # the same rule as the loader's, for specs that never went through a file (API, Python)
        enforce(spec.services, spec.policy)
        self.cluster = spec.name
        changes: dict[str, list[str]] = {"added": [], "changed": [], "removed": [], "unchanged": []}
        for name, svc in spec.services.items():
            old = self.services.get(name)
            kind = "added" if old is None else "unchanged" if old == svc else "changed"
            changes[kind].append(name)
        changes["removed"] = sorted(set(self.services) - set(spec.services))
        self.services = dict(spec.services)
        self.settings, self.policy = spec.settings, spec.policy
        self.expected = {n.name: n.model_dump(mode="json") for n in spec.nodes}
        self.removed = (self.removed | set(changes["removed"])) - set(self.services)
        self._persist_spec()
        self._record([Event(kind=EventKind.applied, reason=_summary(changes))])
        self.wake.set()
        return changes

    async def add_service(self, svc: Service) -> None:
        self._start()
        enforce([svc], self.policy)
        spec = self._spec()
        services = {**spec.services, svc.name: svc}
        # validate the cluster-wide rules (groups) with the new member in place
        ClusterSpec(name=self.cluster, nodes=spec.nodes, services=services, settings=self.settings)
        self.services[svc.name] = svc
        self.removed.discard(svc.name)
        self._persist_spec()
        self.wake.set()

    async def remove_service(self, name: str) -> None:
        if name not in self.services:
            raise NotFound(f"no service named {name!r}")
        del self.services[name]
        self.removed.add(name)
        self._persist_spec()
        self.wake.set()

    async def restart(self, service: str, instance: int = 0) -> None:
        key = f"{service}#{instance}"
        slot = self.slots.get(key)
        if slot is None:
            raise NotFound(f"no instance {key}")
        if slot.outcome is not None:  # an ended instance comes back on an explicit restart
            self.slots[key] = Slot(**{**slot.to_json(), "outcome": None, "reason": None})
            self._persist_slots()
            self.wake.set()
            return
        await self._agent(slot.node).restart_instance.remote(key)

    async def cordon(self, node: str, on: bool = True) -> None:
        self._known_node(node)
        (self.cordoned.add if on else self.cordoned.discard)(node)
        if not on:
            self.draining.discard(node)
        self.store.put_many({"cordoned": sorted(self.cordoned), "draining": sorted(self.draining)})
        self.wake.set()

    async def drain(self, node: str) -> list[str]:
        """Move everything off ``node`` (groups as units) and cordon it. Refuses, changing
        nothing, when some unit on it would fit nowhere else. Returns the instances that move."""
        self._known_node(node)
        moving = sorted(k for k, s in self.slots.items() if s.node == node)
        result = reconcile(self.services, self._states(extra_cordoned={node}), self.slots,
                           strategy=self.settings.placement.value, draining=self.draining | {node})
        stuck = {unit: reason for unit, reason in result.pending.items()
                 if any(self.slots.get(k) and self.slots[k].node == node
                        for k in result.unit_members.get(unit, ()))}
        if stuck:
            raise Conflict(f"cannot drain {node}: " + "; ".join(f"{u}: {r}" for u, r in stuck.items()))
        self.draining.add(node)
        await self.cordon(node, True)
        return moving

    async def add_node(self, node: Node) -> None:
        """Expect a node: it becomes live when a Ray node labelled veo.node=<name> joins."""
        self.expected[node.name] = node.model_dump(mode="json")
        self._persist_spec()
        self.wake.set()

    async def remove_node(self, name: str) -> list[str]:
        """Drain ``name`` and forget it (the Ray node itself is not stopped)."""
        self._known_node(name)
        moving = await self.drain(name) if name in self.nodes and self.nodes[name].alive else []
        self.expected.pop(name, None)
        self._persist_spec()
        return moving

    def _known_node(self, node: str) -> None:
        if node not in self.nodes and node not in self.expected:
            raise NotFound(f"no node named {node!r}")

    async def shutdown(self) -> int:
        """``veo down``: forget every service, remove every container of this cluster on every
        node, and stop the per-node actors. Returns how many containers were removed."""
        self.services, self.slots = {}, {}
        self._persist_spec()
        self._persist_slots()
        removed = 0
        for rec in self.nodes.values():
            if not rec.alive:
                continue
            try:
                removed += await self._agent(rec.name).remove_all.remote()
            except Exception as e:
                log.warning("could not clean node %s: %s", rec.name, e)
            for kind in ("agent", "supervisor", "health"):
                try:
                    ray.kill(ray.get_actor(actor_name(kind, rec.name), namespace=ACTOR_NAMESPACE))
                except ValueError:
                    pass
        return removed

    # ---- reads ---------------------------------------------------------------------------------

    async def pid(self) -> int:
        """The worker process (fault-injection tests kill it)."""
        return os.getpid()

    async def ping(self) -> str:
        self._start()
        return self.cluster

    async def spec(self) -> ClusterSpec:
        return self._spec()

    async def services_list(self) -> list[Service]:
        return list(self.services.values())

    async def instances(self, service: str | None = None) -> list[Instance]:
        if service is not None and service not in self.services:
            raise NotFound(f"no service named {service!r}")
        views = instance_views(self.slots, self.nodes, self.pending, self.unit_members, self.restarts)
        return [v for v in views if service is None or v.service == service]

    async def node_views(self) -> list[NodeView]:
        alloc = allocation(self.slots, self.services)
        names = sorted(set(self.nodes) | set(self.expected))
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
        key = f"{service}#{instance}"
        slot = self.slots.get(key)
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
        events = await task_hook.enrich(self, events)  # HOOK(tasks): exit code, duration, logs
        self._record(events)
        # a lifecycle change makes the next step (fresh reports) happen now, not at the next tick
        if any(e.kind in _PROMPT for e in events) or discovery_hook.prompts(events):  # HOOK(discovery)
            self.wake.set()

    def _record(self, events: list[Event]) -> None:
        for ev in events:
            ev.index = self.next_index
            self.next_index += 1
            self.events.append(ev)
            self._note(ev)
        self.store.put("event_index", self.next_index - 1)
        asyncio.get_running_loop().create_task(self._notify())

    def _note(self, ev: Event) -> None:
        """Fold an agent's event into desired state: outcomes and restart counts persist."""
        if ev.service is None or ev.instance is None:
            return
        key = f"{ev.service}#{ev.instance}"
        slot = self.slots.get(key)
        if slot is None or (ev.generation is not None and ev.generation != slot.generation):
            return
        if ev.restarts is not None and ev.restarts > self.restarts.get(key, 0):
            self.restarts[key] = ev.restarts
            self.store.put("restarts", self.restarts)
        outcome = {EventKind.failed: "failed", EventKind.completed: "completed",
                   EventKind.killed: "failed"}.get(ev.kind)
        if outcome:
            self.slots[key] = Slot(**{**slot.to_json(), "outcome": outcome, "reason": ev.reason})
            self._persist_slots()
        elif ev.kind in (EventKind.started, EventKind.restarted) and slot.outcome:
            self.slots[key] = Slot(**{**slot.to_json(), "outcome": None, "reason": None})
            self._persist_slots()

    async def _notify(self) -> None:
        async with self.new_events:
            self.new_events.notify_all()

    # ---- the control loop ----------------------------------------------------------------------

    def _start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.wake.clear()
            try:
                await self._step()
            except Exception:  # the loop must survive any one bad step; the next one retries
                log.exception("control loop step failed")
            try:
                await asyncio.wait_for(self.wake.wait(), self.tick)
            except asyncio.TimeoutError:
                pass

    async def _step(self) -> None:
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
        for name, n in seen.items():
            rec = self.nodes.get(name)
            alive = bool(n.get("Alive"))
            if rec is None:
                rec = self.nodes[name] = NodeRec(name=name)
            rec.role = (n.get("Labels") or {}).get(ROLE_LABEL)
            rec.host = n.get("NodeManagerAddress")
            if alive and not rec.alive:
                self._spawn_node_actors(name)
                self._record([Event(kind=EventKind.node_joined, node=name)])
            elif not alive and rec.alive:
                rec.report = None
                self._record([Event(kind=EventKind.node_lost, node=name, reason="Ray marked the node dead")])
            rec.alive = alive

    def _spawn_node_actors(self, node: str) -> None:
        opts = dict(namespace=ACTOR_NAMESPACE, lifetime="detached", get_if_exists=True,
                    max_restarts=-1, label_selector={NODE_LABEL: node})
        NodeAgent.options(name=actor_name("agent", node), **opts).remote(node, self.cluster)
        GroupSupervisor.options(name=actor_name("supervisor", node), **opts).remote(node, self.cluster)
        HealthChecker.options(name=actor_name("health", node), **opts).remote(node, self.cluster)

    async def _collect_reports(self) -> None:
        alive = [rec for rec in self.nodes.values() if rec.alive]

        async def one(rec: NodeRec) -> None:
            try:
                rec.report = await asyncio.wait_for(self._agent(rec.name).report.remote(), REPORT_TIMEOUT)
            except Exception as e:  # agent restarting or engine down: plan with what we had
                log.warning("no report from %s: %s", rec.name, e)

        await asyncio.gather(*(one(rec) for rec in alive))

    def _states(self, extra_cordoned: set[str] = frozenset()):
        return [node_state(name, self.nodes.get(name), self.expected.get(name),
                           name in self.cordoned or name in extra_cordoned)
                for name in sorted(set(self.nodes) | set(self.expected))]

    def _plan(self) -> None:
        runs = task_hook.before_plan(self)  # HOOK(tasks): due runs, persisted before placing
        result = reconcile(self.services, self._states(), self.slots,
                           strategy=self.settings.placement.value, draining=self.draining,
                           drain_moves=self._drain_budget(), runs=runs)
        self.unit_members = result.unit_members
        new_slots = {k: self._carry_outcome(k, s) for k, s in result.slots.items()}
        if new_slots != self.slots:
            self.slots = new_slots
            self._persist_slots()
        events = [self._unit_event(EventKind.placed, key, node, f"placed on {node}")
                  for unit, node in result.placed.items() for key in result.unit_members[unit]]
        # until every live node has reported, "pending" reasons would only say "not reported yet"
        if all(rec.report for rec in self.nodes.values() if rec.alive):
            events += [self._unit_event(EventKind.pending, key, None, reason)
                       for unit, reason in result.pending.items() if self.pending.get(unit) != reason
                       for key in result.unit_members.get(unit, ())]
        self.pending = result.pending
        if events:
            self._record(events)

    def _drain_budget(self) -> int:
        """A drain moves one unit (group) at a time: the next only once nothing is starting."""
        views = instance_views(self.slots, self.nodes, self.pending, self.unit_members, self.restarts)
        return 0 if any(v.status is InstanceStatus.starting for v in views) else 1

    def _unit_event(self, kind: EventKind, key: str, node: str | None, reason: str) -> Event:
        service, instance = split_key(key)
        svc = self.services.get(service)
        slot = self.slots.get(key)
        return Event(kind=kind, service=service, instance=instance, node=node, reason=reason,
                     group=svc.group if svc else None, generation=slot.generation if slot else None)

    def _carry_outcome(self, key: str, slot: Slot) -> Slot:
        old = self.slots.get(key)
        if old is not None and old.generation == slot.generation and old.outcome and not slot.outcome:
            return Slot(**{**slot.to_json(), "outcome": old.outcome, "reason": old.reason})
        return slot

    async def _push(self) -> None:
        """Send each live node its desired instances. Not awaited by the loop: a node whose
        engine is slow or frozen keeps its converge in flight and is skipped until it returns,
        while every other node goes on converging each step."""
        known = sorted(self.services)
        removed = sorted(self.removed)

        async def one(rec: NodeRec, desired) -> None:
            try:
                await asyncio.wait_for(
                    self._agent(rec.name).converge.remote(desired, known, removed, self.settings,
                                                         self.cluster),
                    CONVERGE_TIMEOUT)
            except Exception as e:
                log.warning("converge on %s failed: %s", rec.name, e)

        for rec in self.nodes.values():
            busy = self.converging.get(rec.name)
            if not rec.alive or (busy is not None and not busy.done()):
                continue
            desired = assignments_for(rec.name, self.slots, self.services, self.unit_members,
                                      self.restarts)
            self.converging[rec.name] = asyncio.get_running_loop().create_task(one(rec, desired))

    # ---- helpers -------------------------------------------------------------------------------

    def _agent(self, node: str):
        try:
            return ray.get_actor(actor_name("agent", node), namespace=ACTOR_NAMESPACE)
        except ValueError:
            raise VeoError(f"node {node!r} has no agent (is it part of the Ray cluster?)") from None

    def _spec(self) -> ClusterSpec:
        return ClusterSpec.model_construct(
            name=self.cluster, services=dict(self.services), settings=self.settings, policy=self.policy,
            nodes=[_node(d) for d in self.expected.values()])

    def _node_view(self, name: str, alloc) -> NodeView:
        rec = self.nodes.get(name)
        st = node_state(name, rec, self.expected.get(name), name in self.cordoned)
        report = rec.report if rec else None
        return NodeView(
            name=name, role=st.role, host=st.host, alive=st.alive, expected=name in self.expected,
            cordoned=st.cordoned, cpus_total=st.cpus, memory_total=st.memory, disk_total=st.disk,
            cpus_allocated=alloc[0] if alloc else 0.0, memory_allocated=alloc[1] if alloc else 0,
            disk_allocated=alloc[2] if alloc else 0,
            docker_host=report.get("docker_host") if report else None,
            containers=sum(1 for s in self.slots.values() if s.node == name),
            dns=report.get("dns") if report else None,  # HOOK(discovery)
        )

    def _persist_spec(self) -> None:
        self.store.put_many({
            "cluster": self.cluster,
            "services": {n: dump_service(s) for n, s in self.services.items()},
            "settings": self.settings.model_dump(mode="json"),
            "policy": self.policy.model_dump(mode="json"),
            "nodes": list(self.expected.values()),
            "removed": sorted(self.removed),
        })

    def _persist_slots(self) -> None:
        self.store.put("slots", {k: s.to_json() for k, s in self.slots.items()})


def _node(d: dict) -> Node:
    return Node.model_validate(d)


def _summary(changes: dict[str, list[str]]) -> str:
    return ", ".join(f"{k}: {', '.join(v)}" for k, v in changes.items() if v) or "no services"
