"""An in-memory stand-in for ``veo.client.Cluster``: the same methods, errors and shapes, no Ray.

It overrides the calls that go to the Scheduler and inherits the rest (lookups by name and ref,
create-vs-replace, the summary), so the API tests run the client's own code for those. Adding a
service checks the policy as the Scheduler does and runs its instances at once on the first nodes
(fake container ids); events are recorded like the Scheduler's, and ``events_batch`` long-polls a
condition variable.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

from veo.client import Cluster
from veo.core.errors import Conflict, NotFound
from veo.core.models import (
    ClusterSpec,
    Event,
    EventKind,
    Health,
    Instance,
    InstanceStatus,
    Node,
    NodeView,
    Service,
)
from veo.core.policy import Policy, enforce
from veo.core.summary import StepTimes

NODES = [("uno", "front"), ("dos", "back"), ("tres", "back")]


class _RolloutFake:
    """Plans, versions and updates for the fake: the real pure functions over a DesiredState made
    from the fake's services (one version each, no update in progress)."""

    def _state(self):
        from veo.core.desired import DesiredState

        st = DesiredState(cluster=self.name)
        st.apply(ClusterSpec(name=self.name, services=dict(self._services), policy=self.policy))
        return st

    def plan(self, spec: ClusterSpec) -> dict:
        from veo.core import rollout
        from veo.core.placement import NodeState

        nodes = [NodeState(name=n.name, role=n.role, alive=True, cpus=n.cpus_total,
                           memory=n.memory_total, disk=n.disk_total) for n in self._nodes.values()]
        return rollout.plan(self._state(), spec, nodes)

    def updates(self) -> list[dict]:
        return []

    def update(self, action: str, target: str) -> None:
        raise NotFound(f"no update in progress for {target!r}")

    def history(self, service: str) -> list[dict]:
        from veo.core import rollout

        return rollout.history(self._state(), service)

    def rollback(self, service: str, to: int | None = None) -> int:
        from veo.core import rollout

        return rollout.rollback_to(self._state(), service, to)[0]


class FakeCluster(_RolloutFake, Cluster):
    def __init__(self, policy: Policy | None = None):
        self.name = "fake"
        self.policy = policy or Policy()
        self._services: dict[str, Service] = {}
        self._instances: dict[str, Instance] = {}
        self._nodes = {n: NodeView(name=n, role=r, alive=True, expected=True, cpus_total=4,
                                   memory_total=4 << 30, disk_total=20 << 30) for n, r in NODES}
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self.calls: list[str] = []
        self._serial = 0
        self.step_times = StepTimes(1000)  # a control loop's step durations: tests add some

    # no change counter: the web server asks the fake on every request (tests change its
    # instances in place), so veo.api.listing keeps no copies of it
    containers_version = None

    # ---- helpers for tests --------------------------------------------------------------------

    def reset(self) -> None:
        """Back to three empty nodes (a stateful run starts each scenario from the same state).
        The condition stays the same object: a request still running on another thread of the
        server may hold it (a new one would be notified without being held)."""
        cond = self._cond
        with cond:
            self.__init__(self.policy)
            self._cond = cond

    def emit(self, kind: EventKind, **fields) -> Event:
        cond = self._cond
        with cond:
            ev = Event(index=len(self._events) + 1, kind=kind, **fields)
            self._events.append(ev)
            cond.notify_all()
        return ev

    def _place(self, svc: Service) -> None:
        count = len(self._nodes) if svc.instances == "all" else svc.instances
        names = list(self._nodes)
        if not names:  # as the Scheduler: pending, with the reason
            for i in range(count):
                self._instances[f"{svc.name}#{i}"] = Instance(
                    service=svc.name, instance=i, group=svc.group, reason="no nodes")
                self.emit(EventKind.pending, service=svc.name, instance=i, reason="no nodes")
            return
        for i in range(count):
            node = names[i % len(names)]
            self._serial += 1  # ids differ per placement, the same in every run
            cid = hashlib.sha256(f"{svc.name}#{i}#{self._serial}".encode()).hexdigest()
            self._instances[f"{svc.name}#{i}"] = Instance(
                service=svc.name, instance=i, group=svc.group, node=node,
                status=InstanceStatus.running, health=Health.none, container_id=cid,
                started_at=time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()))
            self.emit(EventKind.placed, service=svc.name, instance=i, node=node)
            self.emit(EventKind.started, service=svc.name, instance=i, node=node, container_id=cid)

    # ---- the Cluster API ---------------------------------------------------------------------

    def apply(self, spec: ClusterSpec, check_index: int | None = None) -> dict[str, list[str]]:
        changes = {"added": [], "changed": [], "removed": [], "unchanged": []}
        for name, svc in spec.services.items():
            old = self._services.get(name)
            kind = "added" if old is None else "unchanged" if old == svc else "changed"
            changes[kind].append(name)
        changes["removed"] = sorted(set(self._services) - set(spec.services))
        for name in changes["removed"]:
            self.remove_service(name)
        for name in changes["added"] + changes["changed"]:
            self.add_service(spec.services[name])
        self.name, self.policy = spec.name, spec.policy
        return changes

    def add_service(self, service: Service | dict) -> None:
        svc = service if isinstance(service, Service) else Service.model_validate(service)
        enforce([svc], self.policy)  # as the Scheduler's add_service does
        self.calls.append(f"add_service {svc.name}")
        self._drop(svc.name)
        self._services[svc.name] = svc
        self._place(svc)

    def _drop(self, name: str) -> None:
        for key in [k for k, i in self._instances.items() if i.service == name]:
            del self._instances[key]

    def remove_service(self, name: str) -> None:
        if name not in self._services:
            raise NotFound(f"no service named {name!r}")
        del self._services[name]
        self._drop(name)
        self.emit(EventKind.removed, service=name)

    def restart(self, service: str, instance: int = 0) -> None:
        inst = self._instances.get(f"{service}#{instance}")
        if inst is None:
            raise NotFound(f"no instance {service}#{instance}")
        inst.restarts += 1
        self.emit(EventKind.restarted, service=service, instance=instance, node=inst.node,
                  container_id=inst.container_id, restarts=inst.restarts)

    def _node(self, name: str) -> NodeView:
        if name not in self._nodes:
            raise NotFound(f"no node named {name!r}")
        return self._nodes[name]

    def cordon(self, node: str) -> None:
        self._node(node).cordoned = True

    def uncordon(self, node: str) -> None:
        self._node(node).cordoned = False

    def drain(self, node: str) -> list[str]:
        view = self._node(node)
        moving = sorted(k for k, i in self._instances.items() if i.node == node)
        if moving and all(n == node or self._nodes[n].cordoned for n in self._nodes):
            raise Conflict(f"cannot drain {node}: {moving[0]}: no other node")
        view.cordoned = True
        return moving

    def add_node(self, node: Node | dict) -> None:
        node = node if isinstance(node, Node) else Node.model_validate(node)
        self._nodes.setdefault(node.name, NodeView(name=node.name, role=node.role, expected=True))

    def remove_node(self, name: str) -> list[str]:
        moving = self.drain(name)
        del self._nodes[name]
        return moving

    def shutdown(self, timeout: float = 300.0) -> int:
        removed = sum(1 for i in self._instances.values() if i.container_id)
        for name in list(self._services):
            self._drop(name)
        self._services.clear()
        return removed

    def stats(self, service: str, instance: int = 0) -> dict:
        inst = self._instances.get(f"{service}#{instance}")
        if inst is None:
            raise NotFound(f"no instance {service}#{instance}")
        if inst.status is not InstanceStatus.running:
            raise Conflict(f"instance {service}#{instance} is not running")
        return {"cpu_percent": 1.5, "memory_usage": 1 << 20, "memory_limit": 1 << 24,
                "memory_percent": 6.25, "pids": 2}

    def spec(self) -> ClusterSpec:
        nodes = [Node(name=n.name, role=n.role) for n in self._nodes.values()]
        return ClusterSpec.model_construct(name=self.name, nodes=nodes,
                                           services=dict(self._services), policy=self.policy)

    def services(self) -> list[Service]:
        return list(self._services.values())

    def containers(self, service: str | None = None) -> list[Instance]:
        if service is not None and service not in self._services:
            raise NotFound(f"no service named {service!r}")
        return [i.model_copy() for i in self._instances.values()
                if service is None or i.service == service]

    def nodes(self) -> list[NodeView]:
        return [n.model_copy() for n in self._nodes.values()]

    def loop_stats(self, since: int | None = None) -> dict:
        return self.step_times.stats(since)

    def logs(self, service: str, instance: int = 0, tail: int = 100) -> str:
        if f"{service}#{instance}" not in self._instances:
            raise NotFound(f"no instance {service}#{instance}")
        lines = [f"{service} line {n}\n" for n in range(5)]
        return "".join(lines[-tail:]) if tail else ""

    def tasks(self) -> list[dict]:
        from veo.core.calendar import explain

        return [{"name": s.name, "schedule": s.schedule, "words": explain(s.schedule),
                 "time_zone": s.time_zone, "overlap": s.overlap.value, "next_run": None,
                 "last_run": None, "active": 0, "runs": []}
                for s in self._services.values() if s.is_task]

    def run_task(self, name: str) -> dict:
        svc = self._services.get(name)
        if svc is None:
            raise NotFound(f"no service named {name!r}")
        if not svc.is_task:
            raise Conflict(f"{name!r} is a service, not a task (it has no schedule)")
        return {"task": name, "tick": int(time.time()), "instances": []}

    def resolve(self, service: str) -> dict:
        from veo.core.discovery import InstanceRecord, Table, resolve

        records = [InstanceRecord(i.service, i.instance, i.node or "", "10.0.0.1")
                   for i in self._instances.values() if i.service == service]
        return resolve(Table(self.name, 1, frozenset(self._services), tuple(records)), service)

    def events_batch(self, since: int | None = None, limit: int = 1000,
                     wait: float = 0.0) -> list[Event]:
        """As ``Cluster.events_batch``: one long poll (the hub's only call)."""
        with self._cond:
            pick = lambda: (self._events[-limit:] if since is None  # noqa: E731
                            else [e for e in self._events if e.index > since][:limit])
            if not pick() and wait > 0:
                self._cond.wait_for(pick, wait)
            return pick()

    def events(self, since: int | None = None, follow: bool = False,
               poll: float = 10.0) -> Iterator[Event]:
        while True:
            with self._cond:
                batch = (self._events[-1000:] if since is None
                         else [e for e in self._events if e.index > since])
                if not batch and follow:
                    self._cond.wait(poll)
                    continue
            for ev in batch:
                since = ev.index
                yield ev
            if not follow:
                return

