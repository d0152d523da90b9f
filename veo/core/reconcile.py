"""Desired state -> slots: which instance runs on which node under which generation. Pure.

The Scheduler keeps one ``Slot`` per instance key (``web#0``). Each control-loop step calls
``reconcile`` with the services, the nodes (capacity, liveness) and the current slots; it returns
the next slots, the units still pending with their reasons, and what moved. The Scheduler persists
the result *before* telling any NodeAgent, so a crash between the two repeats the same plan rather
than making a second one.

Generations fence: a slot that moves to another node, or whose service changed, gets
``generation + 1``; agents remove any container of an older generation.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Collection, Mapping

from veo.core.models import GroupPolicy, InstanceStatus, Service, group_policy_of
from veo.core.placement import NodeState, Unit, place, units_for
from veo.core.names import instance_key, service_of


@dataclass(frozen=True)
class Slot:
    """The desired placement of one instance; persisted by the Scheduler."""

    key: str
    service: str
    instance: int
    unit: str
    node: str
    generation: int
    spec_hash: str
    # completed / failed: the instance ended (a terminal lifecycle status); do not start it again
    outcome: InstanceStatus | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        # persisted slots spell the outcome as its value
        if self.outcome is not None and not isinstance(self.outcome, InstanceStatus):
            object.__setattr__(self, "outcome", InstanceStatus(self.outcome))

    def to_json(self) -> dict:
        return {**self.__dict__, "outcome": self.outcome.value if self.outcome else None}

    @classmethod
    def from_json(cls, d: dict) -> Slot:
        return cls(**d)

    def ended(self, outcome: InstanceStatus | None, reason: str | None = None) -> Slot:
        """This slot with ``outcome`` (None: running again)."""
        return replace(self, outcome=outcome, reason=reason if outcome else None)


@dataclass(frozen=True)
class Assignment:
    """What a NodeAgent is told about one instance on its node."""

    key: str
    unit: str
    service: Service
    instance: int
    generation: int
    members: tuple[str, ...]  # instance keys of the unit, declared order (master first)
    policy: GroupPolicy
    # completed / failed: it ended; keep its container, do not start it (a restarted agent
    # re-learns the outcome from here)
    outcome: InstanceStatus | None = None
    restarts: int = 0  # persisted count, so a restarted agent does not count from zero
    reason: str | None = None  # why it ended, when it did


@dataclass
class Result:
    slots: dict[str, Slot]
    pending: dict[str, str] = field(default_factory=dict)  # unit key -> reason
    placed: dict[str, str] = field(default_factory=dict)  # unit key -> node, new this step
    dropped: list[str] = field(default_factory=list)  # instance keys no longer desired
    unit_members: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # an incremental plan (veo.core.incremental): the services it reconciled (None: all), and
    # the slots whose keys ``slots`` replaces (the scope's slots before the plan)
    scope: set[str] | None = None
    replaced: set[str] = field(default_factory=set)
    touched: set[str] | None = None  # after adoption: the keys a partial plan may have changed


def _members(unit: Unit, instance: int) -> tuple[str, ...]:
    return tuple(instance_key(svc, instance) for svc in unit.members)


def _instance_for(unit: Unit, slots: Mapping[str, Slot], given: dict[str, dict[str, int]]) -> int:
    """Instance number of a unit. Pinned ('instances: all') units keep the number they had on
    their node, or take the smallest number free for that service (counting the numbers ``given``
    earlier in this step), so numbers stay stable as nodes come and go."""
    if unit.node is None:
        return unit.copy
    svc = unit.members[0]
    mine = given.setdefault(svc, {})
    if unit.node not in mine:
        for s in slots.values():
            if s.service == svc:
                mine.setdefault(s.node, s.instance)
    if unit.node in mine:
        return mine[unit.node]
    taken = set(mine.values())
    n = 0
    while n in taken:
        n += 1
    mine[unit.node] = n
    return n


def _keep(unit: Unit, keys: tuple[str, ...], slots: Mapping[str, Slot],
          hashes: Mapping[str, str], alive, held: bool = False) -> bool:
    current = [slots.get(k) for k in keys]
    if any(s is None for s in current):
        return False
    nodes = {s.node for s in current}
    if len(nodes) != 1:
        return False
    node = nodes.pop()
    if node not in alive or (unit.node is not None and unit.node != node):
        return False
    # a held unit keeps its old spec while a rolling update has not reached it
    return held or all(s.spec_hash == hashes[s.service] for s in current)


def reconcile(
    services: Mapping[str, Service],
    nodes: list[NodeState],
    slots: Mapping[str, Slot],
    *,
    strategy: str = "spread",
    draining: Collection[str] = (),
    drain_moves: int | None = None,
    hold: Collection[str] = (),
    retiring: Mapping[str, Slot] | None = None,
    runs: Mapping[str, list[int]] | None = None,  # HOOK(tasks): task -> run instances (veo.core.tasks)
    base_usage: Mapping[str, tuple[int, int, int]] | None = None,
) -> Result:
    """``draining`` nodes give up everything they run (placed elsewhere under a new generation),
    at most ``drain_moves`` units per call (None: all at once), so a drain can go one group at a
    time; cordoned nodes keep what they run but receive nothing new.

    ``hold``: units whose spec changed but whose rolling update has not reached them: they keep
    their slots (old spec). ``retiring``: old slots a start-first update keeps running until their
    replacement is healthy: they use their node's resources and count for spread, so the
    replacement goes elsewhere when it can.

    ``base_usage``: node -> (nano-cpus, memory, disk) used by slots outside ``slots`` (an
    incremental plan reconciles only the services that changed, ``veo.core.incremental``)."""
    hold = set(hold)
    retiring = retiring or {}
    draining = set(draining)
    alive = {n.name for n in nodes if n.alive and n.name not in draining}
    cordoned = {n.name for n in nodes if n.cordoned}
    hashes = {name: svc.spec_hash() for name, svc in services.items()}
    units = units_for(services, nodes, runs)  # HOOK(tasks): runs
    kept: dict[str, Slot] = {}
    to_place: list[tuple[Unit, int]] = []
    result = Result(slots={})
    # pinned units of a dead or cordoned node are not generated; their slots stay (the node may
    # return; a cordon keeps what runs) unless the node is being drained
    for s in slots.values():
        if (s.service in services and services[s.service].instances == "all"
                and s.node not in draining and (s.node not in alive or s.node in cordoned)):
            kept[s.key] = s
    given: dict[str, dict[str, int]] = {}
    for unit in units:
        instance = _instance_for(unit, slots, given)
        keys = _members(unit, instance)
        result.unit_members[unit.key] = keys
        leaving = any(k in slots and slots[k].node in draining for k in keys)
        if leaving and drain_moves is not None and drain_moves <= 0 and \
                all(k in slots for k in keys) and unit.node is None:
            kept.update({k: slots[k] for k in keys})  # its turn to move has not come yet
        elif _keep(unit, keys, slots, hashes, alive, held=unit.key in hold):
            kept.update({k: slots[k] for k in keys})
        else:
            if leaving and drain_moves is not None:
                drain_moves -= 1
            to_place.append((unit, instance))
    plan = _place(services, nodes, kept, retiring, units, result.unit_members, to_place,
                  strategy, base_usage)
    for unit, instance in to_place:
        keys = result.unit_members[unit.key]
        node = plan.assignments.get(unit.key)
        if node is None:
            result.pending[unit.key] = plan.pending.get(unit.key, "not placed")
            # keep a stale slot on a lost node: if the node returns, its container is still wanted
            kept.update({k: slots[k] for k in keys if k in slots and slots[k].service in services})
            continue
        result.placed[unit.key] = node
        for key in keys:
            svc = service_of(key)
            old = slots.get(key)
            gen = 1 if old is None else old.generation + 1
            kept[key] = Slot(key, svc, instance, unit.key, node, gen, hashes[svc])
    result.slots = kept
    result.dropped = sorted(set(slots) - set(kept))
    return result


def _place(services, nodes, kept, retiring, units, unit_members, to_place, strategy, base_usage):
    if not to_place:  # nothing to place: no node needs its usage, no planner its heaps
        return place([], [])
    in_use = {**kept, **{f"retiring:{k}": s for k, s in retiring.items()}}
    existing = _spread_map(kept, unit_members, units)
    spread_of = {u.key: u.spread for u in units}
    for s in retiring.values():
        existing[spread_of.get(s.unit, s.unit)].add(s.node)
    used = raw_allocation(in_use, services)
    for name, (c, m, d) in (base_usage or {}).items():
        a = used[name]
        a[0], a[1], a[2] = a[0] + c, a[1] + m, a[2] + d
    return place(_with_usage(nodes, used), [u for u, _ in to_place], strategy=strategy,
                 existing=existing)


NANO = 1_000_000_000  # cpus are summed in nano-cpus (Docker's own unit): an exact integer sum


def slot_usage(svc: Service) -> tuple[int, int, int]:
    """What one running instance of ``svc`` holds: nano-cpus, memory, disk."""
    # compose hook: placement_cpus is the limit or reservation, whichever is larger
    return round(svc.placement_cpus * NANO), svc.placement_memory, svc.disk or 0


def raw_allocation(slots: Mapping[str, Slot], services: Mapping[str, Service]) -> dict[str, list]:
    """nano-cpus, memory, disk allocated per node by instances that have not ended (an ended
    instance holds no resources). Integers: the sum does not depend on the order slots are
    counted in, so a plan that counts part of them incrementally sees the same figures."""
    out: dict[str, list] = defaultdict(lambda: [0, 0, 0])
    usage: dict[str, tuple[int, int, int]] = {}
    for s in slots.values():
        svc = services.get(s.service)
        if svc is None or s.outcome is not None:
            continue
        u = usage.get(s.service)
        if u is None:
            u = usage[s.service] = slot_usage(svc)
        a = out[s.node]
        a[0] += u[0]
        a[1] += u[1]
        a[2] += u[2]
    return out


def allocation(slots: Mapping[str, Slot], services: Mapping[str, Service]) -> dict[str, tuple]:
    """cpus, memory, disk allocated per node by instances that have not ended."""
    return {k: (v[0] / NANO, v[1], v[2]) for k, v in raw_allocation(slots, services).items()}


def _with_usage(nodes: list[NodeState], used: Mapping[str, list]) -> list[NodeState]:
    return [
        replace(n, used_cpus=n.used_cpus + used[n.name][0] / NANO,
                used_memory=n.used_memory + used[n.name][1],
                used_disk=n.used_disk + used[n.name][2]) if n.name in used else n
        for n in nodes
    ]


def _spread_map(kept, unit_members, units) -> dict[str, set[str]]:
    spread_of = {u.key: u.spread for u in units}
    out: dict[str, set[str]] = defaultdict(set)
    for unit_key, keys in unit_members.items():
        for k in keys:
            if k in kept:
                out[spread_of[unit_key]].add(kept[k].node)
    return out


def assignments_for(
    node: str, slots: Mapping[str, Slot], services: Mapping[str, Service],
    unit_members: Mapping[str, tuple[str, ...]], restarts: Mapping[str, int] | None = None,
    *, specs: Mapping[str, Service] | None = None, retiring: Mapping[str, Slot] | None = None,
) -> list[Assignment]:
    """The desired instances of one node (``assignments_by_node`` for that node)."""
    mine = {k: s for k, s in slots.items() if s.node == node}
    retiring = {k: s for k, s in (retiring or {}).items() if s.node == node}
    return assignments_by_node(mine, services, unit_members, restarts, specs=specs,
                               retiring=retiring).get(node, [])


def assignments_by_node(
    slots: Mapping[str, Slot], services: Mapping[str, Service],
    unit_members: Mapping[str, tuple[str, ...]], restarts: Mapping[str, int] | None = None,
    *, specs: Mapping[str, Service] | None = None, retiring: Mapping[str, Slot] | None = None,
    order: Mapping[str, int] | None = None, hashes: dict[str, str] | None = None,
) -> dict[str, list[Assignment]]:
    """Every node's desired instances in one pass over the slots: units together, members in
    declared order. A slot a rolling update has not reached yet runs the spec it was made with
    (``specs``: spec hash -> service, the kept versions); ``retiring`` slots (start-first) are
    desired until replaced. ``order``: ``member_order(unit_members)``, when the caller keeps it;
    ``hashes``: service -> spec hash, a cache the caller shares between calls on one services."""
    hashes = {} if hashes is None else hashes
    policies: dict[str, GroupPolicy] = {}
    out: dict[str, list[Assignment]] = {}
    for s in [*slots.values(), *(retiring or {}).values()]:
        svc = services.get(s.service)
        if svc is None:
            continue
        if s.service not in hashes:
            hashes[s.service] = svc.spec_hash()
        if s.spec_hash != hashes[s.service]:
            svc = (specs or {}).get(s.spec_hash, svc)
        members = unit_members.get(s.unit, (s.key,))
        if s.unit not in policies:
            policies[s.unit] = group_policy_of(
                [services[service_of(k)] for k in members if service_of(k) in services])
        out.setdefault(s.node, []).append(Assignment(
            key=s.key, unit=s.unit, service=svc, instance=s.instance, generation=s.generation,
            members=members, policy=policies[s.unit], outcome=s.outcome,
            restarts=(restarts or {}).get(s.key, 0), reason=s.reason))
    for lst in out.values():  # a key's place in its unit: its members (O(list), not O(units))
        lst.sort(key=(lambda a: (a.unit, order.get(a.key, 0), a.key)) if order is not None
                 else _place_in_unit)
    return out


def _place_in_unit(a: Assignment) -> tuple[str, int, str]:
    # the key last: slots of a unit whose members do not name them (a partly held group) sort
    # the same whatever order the slots were read in
    return a.unit, a.members.index(a.key) if a.key in a.members else 0, a.key


def member_order(unit_members: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    """Each instance key's place in its unit (declared order, master first)."""
    return {k: i for keys in unit_members.values() for i, k in enumerate(keys)}
