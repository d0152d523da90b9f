"""Where units go: feasibility filters, cheapest first, then a scorer (Nomad's feasible.go + rank.go).

Pure: no Ray, no Docker, no I/O. A *unit* is placed as one: an instance of an ungrouped service, or
one copy of a group (all members on one node). A node takes a unit when it is alive, not cordoned,
the pinned node (if any), matches ``hosts`` and ``roles``, and has the cpus, memory and disk free.
Capacity is taken as given: a node with 0 memory takes no unit that asks for memory, while a unit
asking for 0 of a resource fits that resource anywhere.

"spread" (default) prefers the fewest copies of the unit's spread key on the node, then the lowest
allocation (mean of used/total over the resources the node has), then the fewest units placed in
this call, then the name. "binpack" prefers the highest allocation, then the most units, then the
name, and ignores spread keys: packing copies together is what binpack asks for.

Allocation is scored *before* the unit is added, so a node's rank does not depend on the unit. That
lets each role keep one heap of its nodes, and the best feasible node is found near the top instead
of by scanning thousands (Nomad scores after placement over a random sample of log2(n) nodes; ours
is exact for its objective, and deterministic). Per-node reasons are built only for pending units.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter

from veo.core.models import GroupRole, Service
from veo.core.units import format_size

__all__ = ["NodeState", "Plan", "Unit", "explain", "pending_reason", "place", "units_for"]

EPS = 1e-9  # cpus are floats: three 0.1-cpu units must fit in 0.3
SCAN_LIMIT = 16  # heap entries popped (or a quarter of a big pool) before one plain pass instead

_first = itemgetter(0)
_CHECK_ORDER = ("alive", "cordoned", "pinned", "host", "role", "cpus", "memory", "disk")


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node as the scheduler sees it when placing: liveness, capacity, what is already allocated."""

    name: str
    role: str | None = None
    host: str = "localhost"
    alive: bool = True
    cordoned: bool = False
    cpus: float = 0.0  # total capacity
    memory: int = 0  # bytes
    disk: int = 0  # bytes
    used_cpus: float = 0.0  # already allocated
    used_memory: int = 0
    used_disk: int = 0


@dataclass(frozen=True, slots=True)
class Unit:
    """What is placed as one: one instance of an ungrouped service, or one copy of a group."""

    key: str  # unique and stable: "web#0", "group:front#1", "agent@n3" (instances: all)
    spread: str  # units sharing this prefer distinct nodes: the service name or "group:<g>"
    copy: int  # instance index (for instances: all, the node's position among eligible nodes)
    members: tuple[str, ...]  # service names; a group in declared order, master first
    cpus: float = 0.0  # summed over members
    memory: int = 0
    disk: int = 0
    roles: frozenset[str] | None = None  # None = any role; else node.role must be in it
    hosts: frozenset[str] | None = None  # None = any; else node.name or node.host must be in it
    node: str | None = None  # pinned
    unplaceable: str | None = None  # set when the members' own constraints conflict; the reason


@dataclass(slots=True)
class Plan:
    """``rejections`` is filled lazily: per-node reasons cost O(nodes) and most callers read a few."""

    assignments: dict[str, str] = field(default_factory=dict)  # unit key -> node name
    pending: dict[str, str] = field(default_factory=dict)  # unit key -> why
    rejections: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # key -> node -> why


# ---- Expanding services into units ----------------------------------------------------------------


def units_for(services: Mapping[str, Service], nodes: Sequence[NodeState],
              runs: Mapping[str, Sequence[int]] | None = None) -> list[Unit]:
    """Units for ``services``: pinned ones first (they have one possible node, and ``place`` goes in
    order, so nothing movable may take their room), then the rest in declared order.

    ``instances: all`` gives one unit per node passing the static filters (alive, not cordoned,
    roles, hosts; not resources), keyed ``"<svc>@<node>"`` so a unit keeps its key while nodes
    come and go; its ``copy`` is only the node's position among those nodes, sorted by name.
    """
    groups: dict[str, list[Service]] = {}
    for svc in services.values():
        if svc.group:
            groups.setdefault(svc.group, []).append(svc)
    pinned: list[Unit] = []
    movable: list[Unit] = []
    for svc in services.values():
        if svc.schedule is not None:  # a task: one unit per run it wants (veo.core.tasks)
            units = _run_units(svc, (runs or {}).get(svc.name, ()), nodes)
        elif not svc.group:
            units = _expand(svc.name, svc.name, [svc], nodes)
        elif groups[svc.group][0] is svc:
            members = sorted(groups[svc.group], key=lambda s: s.group_role is not GroupRole.master)
            units = _expand(f"group:{svc.group}", f"group:{svc.group}", members, nodes)
        else:
            continue
        (pinned if units and units[0].node is not None else movable).extend(units)
    return pinned + movable


def _run_units(svc: Service, instances: Sequence[int], nodes: Sequence[NodeState]) -> list[Unit]:
    """A task's runs: one unit per run instance (its number derives from the tick)."""
    if not instances:
        return []
    one = _expand(svc.name, svc.name, [svc.model_copy(update={"instances": 1})], nodes)[0]
    return [replace(one, key=f"{svc.name}#{i}", copy=i) for i in instances]


def _expand(prefix: str, spread: str, members: list[Service], nodes: Sequence[NodeState]) -> list[Unit]:
    if len(members) == 1:  # the common case, kept cheap: 100,000 services is a normal input
        m = members[0]
        roles = frozenset(m.roles) if m.roles else None
        hosts = frozenset(m.hosts) if m.hosts else None
        conflict = None
        cpus, memory, disk = m.placement_cpus, m.placement_memory, m.disk or 0
    else:
        roles, hosts, conflict = _constraints(members)
        cpus = sum(m.placement_cpus for m in members)
        memory = sum(m.placement_memory for m in members)
        disk = sum(m.disk or 0 for m in members)
    names = tuple(m.name for m in members)
    count = members[0].instances
    if count != "all":
        return [
            Unit(f"{prefix}#{i}", spread, i, names, cpus, memory, disk, roles, hosts, None, conflict)
            for i in range(count)
        ]
    if conflict:
        return []  # no node can ever be eligible; 'all' over no nodes is no units
    probe = Unit(prefix, spread, 0, names, cpus, memory, disk, roles, hosts)
    eligible = sorted(n.name for n in nodes if _static_failure(n, probe) is None)
    return [
        Unit(f"{prefix}@{name}", spread, i, names, cpus, memory, disk, roles, hosts, name)
        for i, name in enumerate(eligible)
    ]


def _constraints(members: list[Service]) -> tuple[frozenset[str] | None, frozenset[str] | None, str | None]:
    """Intersect the members' roles and hosts; members without a constraint do not narrow it."""
    found: list[str | None] = []
    result: list[frozenset[str] | None] = []
    for attr in ("roles", "hosts"):
        wanted = [(m.name, frozenset(getattr(m, attr))) for m in members if getattr(m, attr)]
        if not wanted:
            result.append(None)
            continue
        common = frozenset.intersection(*(w for _, w in wanted))
        result.append(common)
        if not common:
            detail = "; ".join(f"{name}: {', '.join(sorted(w))}" for name, w in wanted)
            found.append(f"group {members[0].group}: members' {attr} do not overlap ({detail})")
    return result[0], result[1], (found[0] if found else None)


# ---- Feasibility and reasons (work on NodeState and on the planner's own mutable nodes alike) -----


def _static_failure(node: NodeState | _Node, unit: Unit) -> tuple[str, float] | None:
    if not node.alive:
        return ("alive", 0)
    if node.cordoned:
        return ("cordoned", 0)
    if unit.node is not None and node.name != unit.node:
        return ("pinned", 0)
    if unit.hosts is not None and node.name not in unit.hosts and node.host not in unit.hosts:
        return ("host", 0)
    if unit.roles is not None and node.role not in unit.roles:
        return ("role", 0)
    return None


def _first_failure(node: NodeState | _Node, unit: Unit) -> tuple[str, float] | None:
    """The first check ``node`` fails for ``unit`` as (check, free amount), or None if it fits."""
    failed = _static_failure(node, unit)
    return failed if failed is not None else _resource_failure(node, unit)


def _resource_failure(node: NodeState | _Node, unit: Unit) -> tuple[str, float] | None:
    free = node.cpus - node.used_cpus
    if unit.cpus and unit.cpus > free + EPS:
        return ("cpus", free)
    free = node.memory - node.used_memory
    if unit.memory and unit.memory > free:
        return ("memory", free)
    free = node.disk - node.used_disk
    if unit.disk and unit.disk > free:
        return ("disk", free)
    return None


def explain(nodes: Sequence[NodeState], unit: Unit) -> dict[str, str]:
    """Node name -> why it cannot take ``unit``; nodes that can take it are left out."""
    if unit.unplaceable:
        return {n.name: unit.unplaceable for n in nodes}
    out: dict[str, str] = {}
    for n in nodes:
        failed = _first_failure(n, unit)
        if failed is not None:
            out[n.name] = _node_reason(n, unit, *failed)
    return out


def _node_reason(node: NodeState | _Node, unit: Unit, check: str, free: float) -> str:
    if check == "alive":
        return "not alive"
    if check == "cordoned":
        return "cordoned"
    if check == "pinned":
        return f"unit is pinned to {unit.node}"
    if check == "host":
        return f"host {node.host} not allowed (needs one of: {_names(unit.hosts)})"
    if check == "role":
        return f"role {node.role or '(none)'} not allowed (needs one of: {_names(unit.roles)})"
    return f"exhausted {check} (needs {_amount(check, getattr(unit, check))}, has {_amount(check, free)} free)"


def pending_reason(nodes: Sequence[NodeState], unit: Unit) -> str:
    """One line saying why ``unit`` fits nowhere, Nomad style: how many nodes each filter removed."""
    if unit.unplaceable:
        return unit.unplaceable
    if unit.node is not None:
        return _pinned_reason(nodes, unit)
    if not nodes:
        return "no nodes in the cluster"
    if not any(n.alive for n in nodes):
        return "no node alive"
    counts: dict[str, int] = {}
    best: dict[str, float] = {}
    for n in nodes:
        failed = _first_failure(n, unit)
        check, free = failed if failed is not None else ("fits", 0)
        counts[check] = counts.get(check, 0) + 1
        best[check] = max(best.get(check, free), free)
    return _summary(unit, counts, best)


def _summary(unit: Unit, counts: dict[str, int], best: dict[str, float]) -> str:
    if counts.get("fits"):
        return f"fits on {counts['fits']} node{'s' if counts['fits'] > 1 else ''}"
    checks = [c for c in _CHECK_ORDER if counts.get(c)]
    parts = [_summary_part(c, counts[c], best.get(c, 0), unit, i == 0) for i, c in enumerate(checks)]
    prefix = "no node fits"
    if len(unit.members) > 1 and unit.spread.startswith("group:"):
        prefix = f"no node fits the {len(unit.members)} members of group {unit.spread[6:]} together"
    return f"{prefix}: " + ", ".join(parts)


def _summary_part(check: str, count: int, best: float, unit: Unit, first: bool) -> str:
    # "2 nodes filtered by role (...), 1 exhausted memory (...)": the noun only once
    n = f"{count} node{'' if count == 1 else 's'}" if first else str(count)
    if check == "alive":
        return f"{n} not alive"
    if check == "cordoned":
        return f"{n} cordoned"
    if check == "host":
        return f"{n} filtered by host (needs one of: {_names(unit.hosts)})"
    if check == "role":
        return f"{n} filtered by role (needs one of: {_names(unit.roles)})"
    need = _amount(check, getattr(unit, check))
    return f"{n} exhausted {check} (needs {need}, best has {_amount(check, best)} free)"


def _pinned_reason(nodes: Sequence[NodeState], unit: Unit) -> str:
    node = next((n for n in nodes if n.name == unit.node), None)
    if node is None:
        return f"pinned node {unit.node} is not in the cluster"
    failed = _first_failure(node, unit)
    if failed is None:
        return f"fits on pinned node {unit.node}"
    sep = " is " if failed[0] in ("alive", "cordoned") else ": "  # "is not alive", "is cordoned"
    return f"pinned node {unit.node}{sep}{_node_reason(node, unit, *failed)}"


def _amount(check: str, value: float) -> str:
    value = max(value, 0)
    return f"{round(value, 3):g}" if check == "cpus" else format_size(int(value))


def _names(names: Collection[str] | None) -> str:
    return ", ".join(sorted(names or ())) or "(nothing)"


# ---- Placing --------------------------------------------------------------------------------------


class _Node:
    """The planner's mutable copy of a node; attribute names match NodeState so the checks fit both.

    ``entry`` is the node's live heap entry ``[score, tie, name, node]``; a superseded entry gets
    its node slot set to None and is dropped when it surfaces (lazy deletion).
    """

    __slots__ = ("name", "role", "host", "alive", "cordoned", "cpus", "memory", "disk",
                 "used_cpus", "used_memory", "used_disk", "units", "wc", "wm", "wd", "entry", "pool")

    def __init__(self, s: NodeState):
        self.name, self.role, self.host = s.name, s.role, s.host
        self.alive, self.cordoned = s.alive, s.cordoned
        self.cpus, self.memory, self.disk = s.cpus, s.memory, s.disk
        self.used_cpus, self.used_memory, self.used_disk = s.used_cpus, s.used_memory, s.used_disk
        self.units = 0
        # allocation = mean over the resources this node has of used/total, as a dot product
        dims = sum(1 for c in (s.cpus, s.memory, s.disk) if c > 0) or 1
        self.wc, self.wm, self.wd = (1.0 / (c * dims) if c > 0 else 0.0 for c in (s.cpus, s.memory, s.disk))
        self.entry: list = []
        self.pool: _Pool | None = None


def _fits(n: _Node, u: Unit) -> bool:
    return (
        (u.cpus <= n.cpus - n.used_cpus + EPS or not u.cpus)
        and (u.memory <= n.memory - n.used_memory or not u.memory)
        and (u.disk <= n.disk - n.used_disk or not u.disk)
    )


# binpack also splits each role by free space (cpus x memory, steps of 4), so the fullest nodes,
# which refuse most units, sit in their own heaps instead of on top of every search
_CPU_STEPS = (0.25, 1.0, 4.0, 16.0)
_MEM_STEPS = (256 * 1024**2, 1024**3, 4 * 1024**3, 16 * 1024**3)


class _Pool:
    """Schedulable (alive, uncordoned) nodes of one role (and free-space class), in a heap, best first.

    ``free`` is an upper bound on any member's free (cpus, memory, disk): free space only shrinks
    during a call, so a bound stays true once measured and turns units too big for the pool away
    without touching its heap.
    """

    __slots__ = ("nodes", "heap", "free")

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}
        self.heap: list[list] = []
        self.free: tuple[float, int, int] = (0.0, 0, 0)

    def add(self, n: _Node) -> None:
        self.nodes[n.name] = n
        n.pool = self
        heapq.heappush(self.heap, n.entry)
        fc, fm, fd = self.free
        self.free = (
            max(fc, n.cpus - n.used_cpus), max(fm, n.memory - n.used_memory), max(fd, n.disk - n.used_disk)
        )

    def may_fit(self, u: Unit) -> bool:
        fc, fm, fd = self.free
        return (u.cpus <= fc + EPS or not u.cpus) and (u.memory <= fm or not u.memory) and (
            u.disk <= fd or not u.disk
        )


class _Planner:
    """One ``place`` call: nodes in pools by role, copies per spread key, allocation as it grows."""

    def __init__(self, nodes: Sequence[NodeState], binpack: bool, existing: Mapping[str, Collection[str]]):
        self.binpack = binpack
        self.nodes = [_Node(s) for s in nodes]
        self.by_name = {n.name: n for n in self.nodes}
        self.by_host: dict[str, list[_Node]] = {}
        self.pools: dict[tuple, _Pool] = {}
        self.role_pools: dict[str | None, list[_Pool]] = {}
        self.pool_lists: dict[frozenset[str] | None, list[_Pool]] = {}
        for n in self.nodes:
            n.entry = self._entry(n)
            self.by_host.setdefault(n.host, []).append(n)
            if n.alive and not n.cordoned:
                self._pool_for(n).add(n)
        self.unschedulable = {
            "alive": sum(1 for n in self.nodes if not n.alive),
            "cordoned": sum(1 for n in self.nodes if n.alive and n.cordoned),
        }
        self.copies: dict[str, dict[str, int]] = {}
        for spread, names in existing.items():
            for name in names:
                self._count_copy(name, spread)

    def _entry(self, n: _Node) -> list:
        load = n.used_cpus * n.wc + n.used_memory * n.wm + n.used_disk * n.wd  # allocation, see _Node
        return [-load, -n.units, n.name, n] if self.binpack else [load, n.units, n.name, n]

    def _pool_for(self, n: _Node) -> _Pool:
        key: tuple = (n.role,)
        if self.binpack:
            free_c, free_m = n.cpus - n.used_cpus, n.memory - n.used_memory
            key = (n.role, bisect_right(_CPU_STEPS, free_c), bisect_right(_MEM_STEPS, free_m))
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = _Pool()
            self.role_pools.setdefault(n.role, []).append(pool)
            self.pool_lists.clear()
        return pool

    def choose(self, u: Unit) -> _Node | None:
        if u.unplaceable is not None:
            return None
        if u.node is not None:
            n = self.by_name.get(u.node)
            return n if n is not None and _first_failure(n, u) is None else None
        if u.hosts is not None:
            return self._among_hosts(u)
        pools = self.pool_lists.get(u.roles)
        if pools is None:
            roles = sorted(self.role_pools, key=str) if u.roles is None else sorted(u.roles)
            pools = self.pool_lists[u.roles] = [p for r in roles for p in self.role_pools.get(r, ())]
        return self._search_pools(pools, u)

    def commit(self, n: _Node, u: Unit) -> None:
        n.used_cpus += u.cpus
        n.used_memory += u.memory
        n.used_disk += u.disk
        n.units += 1
        old = n.entry
        new = n.entry = self._entry(n)
        pool = n.pool
        target = self._pool_for(n) if self.binpack else pool
        if pool.heap[0] is old:
            if target is pool:
                heapq.heapreplace(pool.heap, new)
                return self._count_copy(n.name, u.spread)
            heapq.heappop(pool.heap)
        else:
            old[3] = None  # superseded; dropped when it surfaces
        if target is pool:
            heapq.heappush(pool.heap, new)
        else:
            del pool.nodes[n.name]
            target.add(n)
        self._count_copy(n.name, u.spread)

    def _count_copy(self, name: str, spread: str) -> None:
        per_node = self.copies.get(spread)
        if per_node is None:
            self.copies[spread] = {name: 1}
        else:
            per_node[name] = per_node.get(name, 0) + 1

    def _search_pools(self, pools: list[_Pool], u: Unit) -> _Node | None:
        if self.binpack:  # the best node is the fullest, which seldom fits: no shortcut to try
            return self._search_all(pools, u, None)
        # the usual spread case, kept short: the best node of all fits and holds no copy yet
        top = None
        for p in pools:
            heap = p.heap
            while heap and heap[0][3] is None:
                heapq.heappop(heap)
            if heap and (top is None or heap[0] < top):
                top = heap[0]
        if top is None:
            return None
        copies = self.copies.get(u.spread)
        if _fits(top[3], u) and not (copies and copies.get(top[2])):
            return top[3]
        return self._search_all(pools, u, copies)

    def _search_all(self, pools: list[_Pool], u: Unit, copies: dict[str, int] | None) -> _Node | None:
        """Best (copies, entry) over several pools, visited by their top entry.

        The best pool top that takes the unit outright bounds the search first: only pools whose
        top is better need a deeper look, and only down to that bound. Under binpack the fullest
        pools refuse most units, so this keeps their scans short.
        """
        tops = []
        for p in pools:
            heap = p.heap
            while heap and heap[0][3] is None:
                heapq.heappop(heap)
            if heap and p.may_fit(u):
                tops.append((heap[0], p))
        tops.sort(key=_first)
        best: tuple[int, list] | None = None
        for top, _ in tops:
            if _fits(top[3], u) and not (copies and copies.get(top[2])):
                best = (0, top)
                break
        for top, p in tops:
            if best is not None and best[0] == 0 and top >= best[1]:
                break
            found = self._search_pool(p, u, copies, best[1] if best and best[0] == 0 else None)
            if found is not None and (best is None or found < best):
                best = found
        return None if best is None else best[1][3]

    def _search_pool(
        self, p: _Pool, u: Unit, copies: dict[str, int] | None, bound: list | None
    ) -> tuple[int, list] | None:
        """Walk ``p``'s heap best first: the first fitting node without a copy wins outright, and
        an entry past ``bound`` ends the walk. Nodes holding copies are kept as a fallback. Popped
        entries go back unchanged, so the heap stays exact."""
        heap, popped = p.heap, []
        limit = max(SCAN_LIMIT, len(p.nodes) >> 2)  # popping beats a pass while it visits < ~1/4
        found: tuple[int, list] | None = None
        try:
            while heap and len(popped) < limit:
                e = heap[0]
                n = e[3]
                if n is None:
                    heapq.heappop(heap)
                    continue
                if bound is not None and e > bound:
                    return found
                if _fits(n, u):
                    c = copies.get(n.name, 0) if copies else 0
                    if c == 0:
                        return (0, e)
                    if found is None or c < found[0]:
                        found = (c, e)
                popped.append(heapq.heappop(heap))
        finally:
            for e in popped:
                heapq.heappush(heap, e)
        # walked too far, or saw the whole pool: one plain pass settles it and re-measures p.free
        return self._linear(p, u, copies)

    def _linear(self, p: _Pool, u: Unit, copies: dict[str, int] | None) -> tuple[int, list] | None:
        """One pass over the pool, also re-measuring its free bound. The fit test is ``_fits``
        written out: this loop is where binpack spends its time once nodes fill up."""
        rc, rm, rd = u.cpus, u.memory, u.disk
        mc, mm, md = 0.0, 0, 0
        best: tuple[int, list] | None = None
        for n in p.nodes.values():
            fc, fm, fd = n.cpus - n.used_cpus, n.memory - n.used_memory, n.disk - n.used_disk
            if fc > mc:
                mc = fc
            if fm > mm:
                mm = fm
            if fd > md:
                md = fd
            if (rc <= fc + EPS or not rc) and (rm <= fm or not rm) and (rd <= fd or not rd):
                cand = (copies.get(n.name, 0) if copies else 0, n.entry)
                if best is None or cand < best:
                    best = cand
        p.free = (mc, mm, md)
        return best

    def reason(self, u: Unit) -> str:
        """``pending_reason`` against the final allocation, by pool: a role that cannot match is
        counted whole, and only the matching roles are walked node by node."""
        if u.unplaceable or u.node is not None or u.hosts is not None or not self.role_pools:
            return pending_reason(self.nodes, u)  # type: ignore[arg-type]
        counts = dict(self.unschedulable)
        best: dict[str, float] = {}
        for role, pools in self.role_pools.items():
            if u.roles is not None and role not in u.roles:
                counts["role"] = counts.get("role", 0) + sum(len(p.nodes) for p in pools)
                continue
            for p in pools:
                for n in p.nodes.values():
                    check, free = _resource_failure(n, u) or ("fits", 0)
                    counts[check] = counts.get(check, 0) + 1
                    if check not in best or free > best[check]:
                        best[check] = free
        return _summary(u, counts, best)

    def _among_hosts(self, u: Unit) -> _Node | None:
        """Few nodes match a ``hosts`` list, so look them up and compare them directly."""
        candidates = {n.name: n for h in u.hosts or () for n in self.by_host.get(h, ())}
        candidates.update((h, self.by_name[h]) for h in u.hosts or () if h in self.by_name)
        copies = None if self.binpack else self.copies.get(u.spread)
        best: tuple[int, list] | None = None
        for n in candidates.values():
            if _first_failure(n, u) is None:
                cand = (copies.get(n.name, 0) if copies else 0, n.entry)
                if best is None or cand < best:
                    best = cand
        return None if best is None else best[1][3]


class _Rejections(Mapping[str, Mapping[str, str]]):
    """Per-node reasons for pending units, built on first read against the final allocation."""

    def __init__(self, nodes: list[_Node], units: dict[str, Unit]):
        self._nodes, self._units, self._done = nodes, units, {}

    def __getitem__(self, key: str) -> Mapping[str, str]:
        if key not in self._done:
            self._done[key] = explain(self._nodes, self._units[key])  # type: ignore[arg-type]
        return self._done[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._units)

    def __len__(self) -> int:
        return len(self._units)


def place(
    nodes: Sequence[NodeState],
    units: Sequence[Unit],
    *,
    strategy: str = "spread",
    existing: Mapping[str, Collection[str]] | None = None,
) -> Plan:
    """Place ``units`` in order. ``existing`` maps a spread key to the nodes already running a copy
    (counted once per name listed); copies placed earlier in the same call count too, and each
    placement shrinks its node's free space for the units after it."""
    if strategy not in ("spread", "binpack"):
        raise ValueError(f"placement strategy must be spread or binpack, got {strategy!r}")
    if len({n.name for n in nodes}) != len(nodes):
        raise ValueError("node names must be unique")
    planner = _Planner(nodes, strategy == "binpack", existing or {})
    plan = Plan()
    waiting: dict[str, Unit] = {}
    for u in units:
        n = planner.choose(u)
        if n is None:
            waiting[u.key] = u
        else:
            planner.commit(n, u)
            plan.assignments[u.key] = n.name
    plan.pending = _pending_reasons(planner, waiting)
    plan.rejections = _Rejections(planner.nodes, waiting)
    return plan


def _pending_reasons(planner: _Planner, waiting: dict[str, Unit]) -> dict[str, str]:
    """Reasons against the final allocation (it only grew, so whatever refused a unit still does);
    units of the same shape, e.g. copies of one service, share one pass over the nodes."""
    seen: dict[tuple, str] = {}
    out: dict[str, str] = {}
    for key, u in waiting.items():
        shape = (u.cpus, u.memory, u.disk, u.roles, u.hosts, u.node, u.unplaceable, u.spread, len(u.members))
        if shape not in seen:
            seen[shape] = planner.reason(u)
        out[key] = seen[shape]
    return out
