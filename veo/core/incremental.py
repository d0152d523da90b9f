"""The plan after a change, at the cost of what changed. Pure (no ray, no docker, no I/O).

A full ``reconcile`` walks every service and slot. But a plan is a fixpoint for what it kept: run
again on the same inputs, every unit it placed is kept as it is. So the next plan only has to
reconcile the *scope* — the services whose units a full reconcile could treat differently:

* services whose definition or slots changed since the last plan (``DesiredState.plan_dirty``,
  kept where the state marks its changes: ``touch`` / ``touch_row``), added or removed ones, and
  those entering or leaving the held set (depends_on), or whose task runs changed;
* services with a unit pending: they are retried every plan (an ended slot frees its resources,
  so a pending unit of *any* service may fit now);
* services with slots on a node whose placement view changed (liveness, capacity, cordon, role,
  host, joined, gone) or that is draining; every ``instances: all`` service when any node changed
  (which nodes it pins to depends on them);
* services of units a rolling update holds or a start-first update retires (now or last plan);
* closed over groups: a unit is all members of a group, so all of them (as grouped now, and as
  the last plan's units grouped them).

Everything else is kept as it is, object for object. The scope goes through the same
``reconcile``, given the usage every other slot holds on each node (``base_usage``, kept here per
node in integers, so it equals what a full pass would sum). Units of one spread key all belong to
one service or group, so the spread counts of the scope come from the scope alone; units are
placed in the order a full pass would place them (``units_for`` keeps declared order on a subset).

A full reconcile still runs for: the first plan (and after a restart from the store), a change
the state cannot name (``touch("slots")``, ``clear``, a rollback's revert, a transaction undone),
and a change of placement strategy. ``tests/unit/test_incremental.py`` checks, over random
sequences of changes, that both give the same slots, pending reasons and unit members.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Collection, Mapping

from veo.core.models import Service
from veo.core.names import service_of
from veo.core.placement import NodeState
from veo.core.reconcile import Result, Slot, raw_allocation, reconcile, slot_usage


class PlanCache:
    """What the last plan saw and left, indexed by service and node."""

    def __init__(self) -> None:
        self.ready = False
        self.full = 0  # plans that reconciled everything (benchmarks and tests read these)
        self.partial = 0
        self.last_scope: set[str] | None = None  # None: the last plan was full

    # ---- the plan ------------------------------------------------------------------------------

    def plan(self, services: Mapping[str, Service], nodes: list[NodeState],
             slots: Mapping[str, Slot], dirty: set[str] | None, *, strategy: str,
             draining: Collection[str], drain_moves: int | None, hold: Collection[str],
             retiring: Mapping[str, Slot], runs: Mapping[str, list[int]] | None) -> Result:
        """The next plan. ``result.scope`` is None when it is a full one; else only the scope's
        slots are in ``result.slots`` and ``result.replaced`` names the slots they replace."""
        runs = runs or {}
        scope = None
        if self.ready and dirty is not None and strategy == self.strategy:
            scope = self._scope(services, nodes, dirty, set(draining), set(hold), retiring, runs)
        self._seen = (services, nodes, strategy, set(draining), set(hold), dict(retiring),
                      {t: list(r) for t, r in runs.items()})
        if scope is None:
            self.full += 1
            result = reconcile(services, nodes, slots, strategy=strategy, draining=draining,
                               drain_moves=drain_moves, hold=hold, retiring=retiring, runs=runs)
            result.scope = None
            return result
        self.partial += 1
        sub_services = {n: s for n, s in services.items() if n in scope}
        sub_slots = {k: slots[k] for svc in scope for k in self.slots_of.get(svc, ()) if k in slots}
        base = self._base(scope)
        result = reconcile(sub_services, nodes, sub_slots, strategy=strategy, draining=draining,
                           drain_moves=drain_moves, hold=hold, retiring=retiring, runs=runs,
                           base_usage=base)
        self._sub_members, self._sub_slots = result.unit_members, result.slots
        members = dict(self.unit_members)
        for svc in scope:
            for unit in self.units_of.get(svc, ()):
                members.pop(unit, None)
        members.update(result.unit_members)
        result.unit_members = members
        result.scope, result.replaced = scope, set(sub_slots)
        self._base_after = base
        return result

    def _scope(self, services, nodes, dirty, draining, hold, retiring, runs) -> set[str]:
        scope = set(dirty) | (services.keys() ^ self.services.keys()) | self.pending_services
        scope |= {t for t in runs.keys() | self.runs.keys() if runs.get(t) != self.runs.get(t)}
        moved, gone = self._moved_nodes(nodes)
        # what a plan keeps reads only whether its node is alive and not draining (a cordon,
        # role or capacity change moves nothing); which nodes pin "instances: all" reads them all
        for node in gone | draining | (draining ^ self.draining):
            scope.update(self.on_node.get(node, ()))
        if moved or draining != self.draining:
            scope |= {n for n, s in services.items() if s.instances == "all"}
        scope |= self.update_services
        scope |= {s.service for s in retiring.values()}
        scope |= {svc for unit in hold for svc in self._unit_services(unit, services)}
        return self._close_groups(scope, services)

    def _moved_nodes(self, nodes: list[NodeState]) -> tuple[set[str], set[str]]:
        """Nodes placement sees differently since the last plan, and those among them that were
        or are now not alive (or not listed at all)."""
        if nodes == self.node_list:
            return set(), set()
        now, was = {n.name: n for n in nodes}, self.nodes
        moved = {name for name in now.keys() | was.keys() if now.get(name) != was.get(name)}
        gone = {name for name in moved if name not in now or name not in was
                or now[name].alive != was[name].alive}
        return moved, gone

    def _unit_services(self, unit: str, services: Mapping[str, Service]) -> set[str]:
        keys = self.unit_members.get(unit)
        if keys:
            return {service_of(k) for k in keys}
        name = unit.split("@")[0].split("#")[0]
        if name.startswith("group:"):  # a unit the last plan did not have (rare): by its group
            return {n for n, s in services.items() if s.group == name[len("group:"):]}
        return {name}

    def _close_groups(self, scope: set[str], services: Mapping[str, Service]) -> set[str]:
        """Every member of a group in scope, as grouped now and in the last plan's units."""
        groups: dict[str, set[str]] | None = None
        todo = list(scope)
        while todo:
            svc = todo.pop()
            near = {service_of(k) for unit in self.units_of.get(svc, ())
                    for k in self.unit_members.get(unit, ())}
            group = services[svc].group if svc in services else None
            if group:
                if groups is None:
                    groups = defaultdict(set)
                    for n, s in services.items():
                        if s.group:
                            groups[s.group].add(n)
                near |= groups[group]
            for other in near - scope:
                scope.add(other)
                todo.append(other)
        return scope

    def _base(self, scope: set[str]) -> dict[str, tuple[int, int, int]]:
        """Usage per node by every slot outside ``scope``, as the last plan left them."""
        base = dict(self.alloc)
        for svc in scope:
            old = self.services.get(svc)
            if old is None:
                continue
            c, m, d = slot_usage(old)
            for s in self.slots_of.get(svc, {}).values():
                if s.outcome is None:
                    a = base[s.node]
                    base[s.node] = (a[0] - c, a[1] - m, a[2] - d)
        return base

    # ---- after the state adopted the plan ------------------------------------------------------

    def settle(self, slots: Mapping[str, Slot], result: Result) -> None:
        """Index the slots as the state holds them after adopting ``result`` (outcomes carried)."""
        services, nodes, strategy, draining, hold, retiring, runs = self._seen
        if result.scope is None:
            self._index_all(slots, services)
        else:
            self._index_scope(slots, result, services)
        self.unit_members = result.unit_members
        self.units_of = _units_of(result.unit_members) if result.scope is None else self.units_of
        self.pending_services = {service_of(k) for u in result.pending
                                 for k in result.unit_members.get(u, ())}
        self.services, self.strategy, self.node_list = services, strategy, nodes
        self.nodes = {n.name: n for n in nodes}
        self.draining, self.runs = draining, runs
        self.update_services = {s.service for s in retiring.values()}
        self.update_services |= {svc for u in hold for svc in self._unit_services(u, services)}
        self.last_scope = result.scope
        self.ready = True

    def _index_all(self, slots: Mapping[str, Slot], services: Mapping[str, Service]) -> None:
        self.slots_of: dict[str, dict[str, Slot]] = defaultdict(dict)
        self.on_node: dict[str, dict[str, int]] = defaultdict(dict)
        for k, s in slots.items():
            self.slots_of[s.service][k] = s
            per = self.on_node[s.node]
            per[s.service] = per.get(s.service, 0) + 1
        self.alloc = {n: tuple(a) for n, a in raw_allocation(slots, services).items()}

    def _index_scope(self, slots: Mapping[str, Slot], result: Result,
                     services: Mapping[str, Service]) -> None:
        """Re-index the scope's services only. Their slots stay in the order the state holds
        them (old ones in place, new ones appended as ``adopt`` inserted them): the order a
        full pass would read them in."""
        alloc, on_node = self._base_after, self.on_node
        new_keys: dict[str, list[str]] = defaultdict(list)
        for k, s in self._sub_slots.items():  # the scope's slots (``result.slots`` is now all)
            new_keys[s.service].append(k)
        for svc in result.scope:
            old = self.slots_of.pop(svc, {})
            for s in old.values():
                _count(on_node, s.node, svc, -1)
            self.units_of.pop(svc, None)
            mine = {k: slots[k] for k in old if k in slots}
            mine.update((k, slots[k]) for k in new_keys.get(svc, ()) if k not in mine)
            if not mine:
                continue
            self.slots_of[svc] = mine
            usage = slot_usage(services[svc]) if svc in services else None
            for s in mine.values():
                _count(on_node, s.node, svc, 1)
                if usage is not None and s.outcome is None:
                    a = alloc.get(s.node, (0, 0, 0))
                    alloc[s.node] = (a[0] + usage[0], a[1] + usage[1], a[2] + usage[2])
        self.alloc = alloc
        for svc, units in _units_of(self._sub_members).items():
            self.units_of.setdefault(svc, set()).update(units)


def _count(on_node: dict[str, dict[str, int]], node: str, svc: str, delta: int) -> None:
    per = on_node.setdefault(node, {})
    n = per.get(svc, 0) + delta
    if n:
        per[svc] = n
    else:
        per.pop(svc, None)


def _units_of(unit_members: Mapping[str, tuple[str, ...]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for unit, keys in unit_members.items():
        for k in keys:
            out.setdefault(service_of(k), set()).add(unit)
    return out
