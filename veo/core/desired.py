"""The Scheduler's desired state as one value, with the pure operations on it. No I/O but the
store it is given.

``DesiredState`` holds everything the cluster has been told (services, settings, policy, expected
nodes) and everything the Scheduler decided (slots: instance -> node + generation, terminal
outcomes, restart counts, cordons and drains). ``load(store)`` reads it back after a restart;
``save(store)`` writes what changed since the last save in one transaction, so the state is
written before anything acts on it and a crash between the two repeats the same plan.

The operations here are the decisions the Scheduler actor used to make inline: what an apply
changes, what an agent's event means for the slots (``fold``), whether a drain can succeed, the
next plan, which pending reasons are news. The actor keeps the loop, Ray membership, the calls to
agents and the event buffer.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Iterable, Mapping, Protocol, TypeVar

from veo.core.errors import Conflict, NotFound
from veo.core.lifecycle import TERMINAL
from veo.core.models import ClusterSpec, Event, EventKind, InstanceStatus, Node, Service, Settings
from veo.core.models import Policy
from veo.core.names import instance_key, service_of, split_key
from veo.core.placement import NodeState
from veo.core.policy import enforce
from veo.core import rollout
from veo.core.depends import show_held
from veo.core.incremental import PlanCache
from veo.core.reconcile import Result, Slot, reconcile
from veo.core.tasks import TaskState
from veo.core.update import RollingUpdate

T = TypeVar("T")

# the parts of the state written whole, each one key of the store (a spec is applied whole)
_PARTS = ("cluster", "services", "settings", "policy", "nodes", "removed", "cordoned", "draining",
          "event_index", "spec_index", "versions", "updates", "retiring", "tasks")
# the parts that change per event, one row per instance: an event costs one row, not the lot
_ROWS = {"slots": "slot/", "restarts": "restart/"}
REMOVED_KEEP = 3600.0  # seconds a removed service's name is kept (see DesiredState.removed)
# parts placement never reads: changing them is no reason to plan again (``placement_version``)
NOT_PLACEMENT = frozenset({"event_index", "restarts"})


class Store(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def scan(self, prefix: str = "") -> dict[str, Any]: ...
    def write(self, puts: dict[str, Any] | None = None, deletes: Iterable[str] = ()) -> None: ...


def dump_service(svc: Service) -> dict:
    """Only the fields the user set: defaults re-read as 'set' would trip the cross-field rules.
    Secret contents are kept (the state is the Scheduler's own; every other dump masks them)."""
    return svc.model_dump(mode="json", exclude_unset=True, context={"secrets": "plain"})


def load_service(data: dict) -> Service:
    """Validated when it was applied; reloading must not fail on a rule tightened since."""
    return Service.model_validate(data, context={"defer_rules": True})


@dataclass
class DesiredState:
    cluster: str = "veo"
    services: dict[str, Service] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    policy: Policy = field(default_factory=Policy)
    expected: dict[str, Node] = field(default_factory=dict)  # nodes named in cluster.yml
    slots: dict[str, Slot] = field(default_factory=dict)
    # services removed -> when: their containers go at once. Forgotten after REMOVED_KEEP: by
    # then every agent has removed them, and a straggler is an orphan the agent reaps anyway
    removed: dict[str, float] = field(default_factory=dict)
    cordoned: set[str] = field(default_factory=set)
    draining: set[str] = field(default_factory=set)
    restarts: dict[str, int] = field(default_factory=dict)  # instance key -> restarts so far
    event_index: int = 0  # the last event index handed out: indexes stay monotonic
    spec_index: int = 0  # one more per apply: `veo up --check-index` compares it
    versions: dict[str, list[dict]] = field(default_factory=dict)  # service -> kept versions
    updates: dict[str, RollingUpdate] = field(default_factory=dict)  # target -> its update
    retiring: dict[str, Slot] = field(default_factory=dict)  # start-first: old slots still desired
    tasks: dict[str, TaskState] = field(default_factory=dict)  # task -> its calendar cursor, runs
    # grows with every change a plan reads (all but NOT_PLACEMENT): the Scheduler plans again
    # only when it moved or the world did (veo.core.steady.PlanGate); restored by ``transact``
    placement_version: int = field(default=0, compare=False)
    # services whose definition or slots changed since the last plan (None: what changed is not
    # known, plan everything): the next plan reconciles only those (veo.core.incremental)
    plan_dirty: set[str] | None = field(default=None, repr=False, compare=False)
    planner: PlanCache = field(default_factory=PlanCache, repr=False, compare=False)
    _held_shown: bool = field(default=False, repr=False, compare=False)  # the last plan's held
    _dirty: set[str] = field(default_factory=set, repr=False, compare=False)
    # row part -> the keys changed since the last save (None: all of them)
    _dirty_rows: dict[str, set[str] | None] = field(default_factory=dict, repr=False, compare=False)
    _legacy: list[str] = field(default_factory=list, repr=False, compare=False)  # blobs to drop
    # update events decided inside an operation, for the Scheduler to record (not persisted)
    pending_notes: list = field(default_factory=list, repr=False, compare=False)

    # ---- persistence ---------------------------------------------------------------------------

    @classmethod
    def load(cls, store: Store) -> DesiredState:
        rows = {part: {k[len(prefix):]: v for k, v in store.scan(prefix).items()}
                for part, prefix in _ROWS.items()}
        legacy = [part for part in _ROWS if store.get(part) is not None]  # one blob, before rows
        for part in legacy:
            rows[part] = {**store.get(part), **rows[part]}
        st = cls(
            cluster=store.get("cluster", "veo"),
            services={n: load_service(d) for n, d in store.get("services", {}).items()},
            settings=Settings.model_validate(store.get("settings", {})),
            policy=Policy.model_validate(store.get("policy", {})),
            expected={d["name"]: Node.model_validate(d) for d in store.get("nodes", [])},
            slots={k: Slot.from_json(v) for k, v in rows["slots"].items()},
            removed=_removed(store.get("removed", [])),
            cordoned=set(store.get("cordoned", [])),
            draining=set(store.get("draining", [])),
            restarts=dict(rows["restarts"]),
            event_index=store.get("event_index", 0),
            spec_index=store.get("spec_index", 0),
            versions=store.get("versions", {}),
            updates={t: RollingUpdate.from_json(u) for t, u in store.get("updates", {}).items()},
            retiring={k: Slot.from_json(v) for k, v in store.get("retiring", {}).items()},
            tasks={n: TaskState.from_json(d) for n, d in (store.get("tasks") or {}).items()},
        )
        st._legacy = legacy
        st.touch(*legacy)
        return st

    def touch(self, *parts: str, services: Iterable[str] | None = None) -> None:
        """Mark parts changed; the next ``save`` writes them (row parts: every row).
        ``services``: the services whose definition changed, when "services" is one of the parts
        (without it, or with "slots", the next plan reconciles everything)."""
        if set(parts) - NOT_PLACEMENT:
            self.placement_version += 1
        if "slots" in parts or ("services" in parts and services is None):
            self.plan_dirty = None
        elif services is not None and self.plan_dirty is not None:
            self.plan_dirty.update(services)
        for part in parts:
            if part in _ROWS:
                self._dirty_rows[part] = None
            else:
                self._dirty.add(part)

    def touch_row(self, part: str, key: str) -> None:
        """Mark one row of a row part (``slots``, ``restarts``) changed."""
        if part not in NOT_PLACEMENT:
            self.placement_version += 1
        if part == "slots" and self.plan_dirty is not None:
            self.plan_dirty.add(service_of(key))
        keys = self._dirty_rows.setdefault(part, set())
        if keys is not None:
            keys.add(key)

    def save(self, store: Store) -> None:
        """Write every part changed since the last save, in one transaction."""
        if not self._dirty and not self._dirty_rows:
            return
        puts = {part: self._dump(part) for part in _PARTS if part in self._dirty}
        deletes: list[str] = list(self._legacy)
        for part, keys in self._dirty_rows.items():
            prefix, current = _ROWS[part], getattr(self, part)
            if keys is None:  # rewritten whole: rows that are gone go too
                keys = set(current) | {k[len(prefix):] for k in store.scan(prefix)}
            for key in keys:
                if key in current:
                    puts[prefix + key] = self._row(part, current[key])
                else:
                    deletes.append(prefix + key)
        store.write(puts, deletes)
        self._dirty.clear()
        self._dirty_rows.clear()
        self._legacy = []

    def transact(self, store: Store, change: Callable[[], T]) -> T:
        """Run ``change`` and save it. If it or the save fails (a bad spec, a full disk), the
        value goes back to what it was: an operation either happened, in memory and in the
        store, or did not happen at all."""
        before = self._snapshot()
        try:
            out = change()
            self.save(store)
            return out
        except BaseException:
            for f in fields(self):
                setattr(self, f.name, getattr(before, f.name))
            self.plan_dirty = None  # undone: the next plan reconciles everything, to be sure
            raise

    def _snapshot(self) -> DesiredState:
        # containers copied one level (their items are immutable or replaced, never mutated),
        # versions and updates in depth (they are mutated in place)
        deep = {"versions", "updates", "_dirty_rows"}
        return replace(self, **{f.name: (copy.deepcopy if f.name in deep else copy.copy)(
            getattr(self, f.name)) for f in fields(self)
            if isinstance(getattr(self, f.name), (dict, set, list)) and f.init})

    @staticmethod
    def _row(part: str, value: Any) -> Any:
        return value.to_json() if part == "slots" else value

    def _dump(self, part: str) -> Any:
        if part == "services":
            return {n: dump_service(s) for n, s in self.services.items()}
        if part in ("settings", "policy"):
            return getattr(self, part).model_dump(mode="json")
        if part == "nodes":
            return [n.model_dump(mode="json") for n in self.expected.values()]
        if part == "retiring":
            return {k: s.to_json() for k, s in self.retiring.items()}
        if part in ("updates", "tasks"):
            return {t: u.to_json() for t, u in getattr(self, part).items()}
        value = getattr(self, part)
        return sorted(value) if isinstance(value, set) else value

    # ---- what the cluster is told --------------------------------------------------------------

    def spec(self) -> ClusterSpec:
        return ClusterSpec.model_construct(
            name=self.cluster, services=dict(self.services), settings=self.settings,
            policy=self.policy, nodes=list(self.expected.values()))

    def apply(self, spec: ClusterSpec, now: float | None = None,
              check_index: int | None = None) -> dict[str, list[str]]:
        """Make the services exactly those of ``spec``; returns what changed, by kind. Changed
        services that run get a rolling update (``rollout.start_updates``); ``check_index``
        makes it a compare-and-set on the spec index (two operators)."""
        if check_index is not None and check_index != self.spec_index:
            if check_index + 1 == self.spec_index and self._holds(spec):
                # this very apply again: Ray re-sends a call whose Scheduler was killed after
                # the write and before the answer (max_task_retries); it landed, say so
                return {"added": [], "changed": [], "removed": [], "unchanged": list(spec.services)}
            raise Conflict(f"the cluster's spec index is {self.spec_index}, not {check_index}: "
                           "someone applied since you planned (plan again)")
        if spec.name != self.cluster and self.services:
            raise Conflict(f"this veo cluster is named {self.cluster!r}; the spec says {spec.name!r}")
        # the same rule as the loader's, for specs that never went through a file (API, Python)
        enforce(spec.services, spec.policy)
        changes: dict[str, list[str]] = {"added": [], "changed": [], "removed": [], "unchanged": []}
        for name, svc in spec.services.items():
            old = self.services.get(name)
            kind = "added" if old is None else "unchanged" if old == svc else "changed"
            changes[kind].append(name)
        changes["removed"] = sorted(set(self.services) - set(spec.services))
        self.cluster = spec.name
        self.services = dict(spec.services)
        self.settings, self.policy = spec.settings, spec.policy
        self.expected = {n.name: n for n in spec.nodes}
        now = time.time() if now is None else now
        self._mark_removed(changes["removed"], now)
        for name in self.services:
            self.removed.pop(name, None)
        self._forget_counts(changes["removed"])
        self._forget_history(changes["removed"])
        for name in changes["added"] + changes["changed"]:
            rollout.record_version(self, self.services[name], now)
        self.pending_notes += rollout.start_updates(self, changes["changed"], now)
        self.spec_index += 1
        self.touch("cluster", "services", "settings", "policy", "nodes", "removed", "spec_index",
                   services=changes["added"] + changes["changed"] + changes["removed"])
        return changes

    def _holds(self, spec: ClusterSpec) -> bool:
        """The state already is exactly ``spec`` (every part an apply writes)."""
        return (spec.name == self.cluster and spec.services == self.services
                and spec.settings == self.settings and spec.policy == self.policy
                and spec.nodes == list(self.expected.values()))

    def add_service(self, svc: Service) -> None:
        enforce([svc], self.policy)
        # validate the cluster-wide rules (groups) with the new member in place
        ClusterSpec(name=self.cluster, nodes=list(self.expected.values()),
                    services={**self.services, svc.name: svc}, settings=self.settings)
        new = svc.name not in self.services
        changed = not new and self.services[svc.name] != svc
        self.services[svc.name] = svc
        self.removed.pop(svc.name, None)
        now = time.time()
        if new or changed:
            rollout.record_version(self, svc, now)
        if changed:
            self.pending_notes += rollout.start_updates(self, [svc.name], now)
        self.spec_index += 1
        self.touch("services", "removed", "spec_index", services=[svc.name])

    def remove_service(self, name: str) -> None:
        if name not in self.services:
            raise NotFound(f"no service named {name!r}")
        del self.services[name]
        self._mark_removed([name], time.time())
        self._forget_counts([name])
        self._forget_history([name])
        self.spec_index += 1
        self.touch("services", "removed", "spec_index", services=[name])

    def _mark_removed(self, names: Iterable[str], now: float) -> None:
        """Remember removed services (their containers go at once), forgetting old removals."""
        self.removed = {n: t for n, t in self.removed.items() if now - t < REMOVED_KEEP}
        self.removed.update({n: now for n in names})

    def _forget_counts(self, services: Iterable[str]) -> None:
        """A removed service's restart counts go with it: a new service of the same name starts
        from zero."""
        gone = set(services)
        if gone and any(service_of(k) in gone for k in self.restarts):
            self.restarts = {k: n for k, n in self.restarts.items() if service_of(k) not in gone}
            self.touch("restarts")

    def _forget_history(self, services: Iterable[str]) -> None:
        """A removed service's versions, updates and task calendar go with it."""
        for name in services:
            if self.versions.pop(name, None) is not None:
                self.touch("versions")
            if self.tasks.pop(name, None) is not None:
                self.touch("tasks")
            for target in [t for t, u in self.updates.items() if name in u.services]:
                del self.updates[target]
                self.touch("updates")

    def clear(self) -> None:
        """``veo down``: nothing of this cluster is left — services, slots, counts, cordons,
        versions and updates."""
        self._mark_removed(list(self.services), time.time())
        removed = self.removed
        self.services, self.slots, self.restarts = {}, {}, {}
        self.versions, self.updates, self.retiring, self.tasks = {}, {}, {}, {}
        self.cordoned, self.draining, self.removed = set(), set(), removed
        self.touch("services", "slots", "restarts", "cordoned", "draining", "removed", "versions",
                   "updates", "retiring", "tasks")

    def add_node(self, node: Node) -> None:
        self.expected[node.name] = node
        self.touch("nodes")

    def forget_node(self, name: str) -> None:
        self.expected.pop(name, None)
        self.touch("nodes")

    def cordon(self, node: str, on: bool) -> None:
        (self.cordoned.add if on else self.cordoned.discard)(node)
        if not on:
            self.draining.discard(node)
        self.touch("cordoned", "draining")

    def start_drain(self, node: str) -> None:
        self.draining.add(node)
        self.cordon(node, True)

    # ---- what the agents report ----------------------------------------------------------------

    def next_index(self) -> int:
        self.event_index += 1
        self.touch("event_index")
        return self.event_index

    def fold(self, ev: Event) -> None:
        """An agent's event, folded into the slots: a terminal status becomes the slot's outcome
        (kept across agent restarts), a start clears it, restart counts only grow."""
        if ev.service is None or ev.instance is None:
            return
        key = instance_key(ev.service, ev.instance)
        slot = self.slots.get(key)
        if slot is None or (ev.generation is not None and ev.generation != slot.generation):
            return
        if ev.restarts is not None and ev.restarts > self.restarts.get(key, 0):
            self.restarts[key] = ev.restarts
            self.touch_row("restarts", key)
        if ev.status in TERMINAL:
            self.slots[key] = slot.ended(ev.status, ev.reason)
            self.touch_row("slots", key)
        elif ev.status is InstanceStatus.running and slot.outcome:
            self.slots[key] = slot.ended(None)
            self.touch_row("slots", key)

    def revive(self, key: str) -> bool:
        """An explicit restart of an ended instance: clear its outcome. False if it had none."""
        slot = self.slots.get(key)
        if slot is None:
            raise NotFound(f"no instance {key}")
        if slot.outcome is None:
            return False
        self.slots[key] = slot.ended(None)
        self.touch_row("slots", key)
        return True

    # ---- decisions -----------------------------------------------------------------------------

    def plan(self, nodes: list[NodeState], drain_moves: int | None,
             held: Mapping[str, str] | None = None,
             runs: Mapping[str, list[int]] | None = None) -> Result:
        """The next slots (placement of what is not placed), adopted into the state; outcomes of
        instances that did not move are carried over. ``held``: services whose first start waits
        on a dependency (``veo.core.depends``): left unplaced, shown pending with the reason.
        ``runs``: task -> the run instances to place (``veo.core.tasks``). Only the services a
        change since the last plan touched are reconciled (``veo.core.incremental``: the same
        result as a full pass, which still runs for the first plan and changes it cannot name)."""
        held = held or {}
        services = {k: v for k, v in self.services.items() if k not in held}
        # HOOK(incplan): only what changed since the last plan is reconciled (veo.core.incremental)
        result = self.planner.plan(services, nodes, self.slots, self.plan_dirty,
                                   strategy=self.settings.placement.value, draining=self.draining,
                                   drain_moves=drain_moves, hold=rollout.held_units(self),
                                   retiring=self.retiring, runs=runs)
        self._adopt(result)
        self.planner.settle(self.slots, result)
        self.plan_dirty = set()  # this plan's own writes are what it decided, not news
        if held or self._held_shown:  # it rewrites unit members the planner does not follow:
            result.touched = None  # the desired lists compare every slot
        self._held_shown = bool(held)
        if held:  # the planner keeps the result's dicts: the held ones go into copies
            result.unit_members, result.pending = dict(result.unit_members), dict(result.pending)
            show_held(result, self.services, held, nodes)
        self.pending_notes += rollout.after_plan(self)
        return result

    def _adopt(self, result: Result) -> None:
        """The plan's slots into the state; outcomes of instances that did not move are kept.
        A partial plan replaces only the slots of its scope (``result.replaced``)."""
        if result.scope is None:
            new_slots = {k: _carry_outcome(self.slots.get(k), s) for k, s in result.slots.items()}
            if new_slots != self.slots:
                for key in set(new_slots) | set(self.slots):
                    if new_slots.get(key) != self.slots.get(key):
                        self.touch_row("slots", key)
                self.slots = new_slots
        else:
            copied = False
            result.touched = result.replaced | result.slots.keys()
            for key in [*result.replaced, *result.slots]:
                old, new = self.slots.get(key), result.slots.get(key)
                new = None if new is None else _carry_outcome(old, new)
                if new == old:
                    continue
                if not copied:  # a plan replaces the slots when it changes them: readers
                    self.slots, copied = dict(self.slots), True  # compare them by identity
                if new is None:
                    del self.slots[key]
                else:
                    self.slots[key] = new
                self.touch_row("slots", key)
        result.slots = self.slots

    def drain_blockers(self, node: str, nodes: list[NodeState]) -> dict[str, str]:
        """Units on ``node`` that would fit nowhere else if it were drained (unit -> reason)."""
        result = reconcile(self.services, nodes, self.slots, strategy=self.settings.placement.value,
                           draining=self.draining | {node})
        return {unit: reason for unit, reason in result.pending.items()
                if any(self.slots.get(k) and self.slots[k].node == node
                       for k in result.unit_members.get(unit, ()))}

    def unit_events(self, result: Result, previous_pending: Mapping[str, str],
                    with_pending: bool) -> list[Event]:
        """placed events for what was placed this step; pending events only for reasons that are
        new (a unit pending for the same reason is not news every second)."""
        events = [self._unit_event(EventKind.placed, key, node, f"placed on {node}")
                  for unit, node in result.placed.items() for key in result.unit_members[unit]]
        if with_pending:
            events += [self._unit_event(EventKind.pending, key, None, reason)
                       for unit, reason in result.pending.items()
                       if previous_pending.get(unit) != reason
                       for key in result.unit_members.get(unit, ())]
        return events

    def _unit_event(self, kind: EventKind, key: str, node: str | None, reason: str) -> Event:
        service, instance = split_key(key)
        svc = self.services.get(service)
        slot = self.slots.get(key)
        return Event(kind=kind, service=service, instance=instance, node=node, reason=reason,
                     group=svc.group if svc else None, generation=slot.generation if slot else None)


def _removed(stored: Any) -> dict[str, float]:
    """The removed services as stored: name -> time (a list of names before times were kept:
    taken as removed now)."""
    if isinstance(stored, dict):
        return {n: float(t) for n, t in stored.items()}
    now = time.time()
    return {n: now for n in stored}


def _carry_outcome(old: Slot | None, new: Slot) -> Slot:
    if old is not None and old.generation == new.generation and old.outcome and not new.outcome:
        return new.ended(old.outcome, old.reason)
    return new


def summary(changes: dict[str, list[str]]) -> str:
    return ", ".join(f"{k}: {', '.join(v)}" for k, v in changes.items() if v) or "no services"
