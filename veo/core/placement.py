"""Where units go: feasibility filters, cheapest first, then a scorer (Nomad's feasible.go + rank.go).

Pure: no Ray, no Docker, no I/O. The parts: ``placement_units`` expands services into units (an
instance of an ungrouped service, or one copy of a group, all members on one node);
``placement_feasible`` holds the filters and the reasons a node refuses a unit;
``placement_rank`` scores nodes and keeps them in heaps; this module is the planner that places
units in order. Callers import everything from here.

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
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from veo.core.placement_feasible import (
    EPS,
    NodeState,
    Unit,
    explain,
    first_failure,
    pending_reason,
    resource_failure,
    summary,
)
from veo.core.placement_rank import PlanNode, Pool, fits, pool_key, rank_entry
from veo.core.placement_units import units_for

__all__ = ["NodeState", "Plan", "Unit", "explain", "pending_reason", "place", "units_for"]

SCAN_LIMIT = 16  # heap entries popped (or a quarter of a big pool) before one plain pass instead

_first = itemgetter(0)


@dataclass(slots=True)
class Plan:
    """``rejections`` is filled lazily: per-node reasons cost O(nodes) and most callers read a few."""

    assignments: dict[str, str] = field(default_factory=dict)  # unit key -> node name
    pending: dict[str, str] = field(default_factory=dict)  # unit key -> why
    rejections: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # key -> node -> why



class _Planner:
    """One ``place`` call: nodes in pools by role, copies per spread key, allocation as it grows."""

    def __init__(self, nodes: Sequence[NodeState], binpack: bool, existing: Mapping[str, Collection[str]]):
        self.binpack = binpack
        self.nodes = [PlanNode(s) for s in nodes]
        self.by_name = {n.name: n for n in self.nodes}
        self.by_host: dict[str, list[PlanNode]] = {}
        self.pools: dict[tuple, Pool] = {}
        self.role_pools: dict[str | None, list[Pool]] = {}
        self.pool_lists: dict[frozenset[str] | None, list[Pool]] = {}
        for n in self.nodes:
            n.entry = rank_entry(n, self.binpack)
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

    def _pool_for(self, n: PlanNode) -> Pool:
        key = pool_key(n, self.binpack)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = Pool()
            self.role_pools.setdefault(n.role, []).append(pool)
            self.pool_lists.clear()
        return pool

    def choose(self, u: Unit) -> PlanNode | None:
        if u.unplaceable is not None:
            return None
        if u.node is not None:
            n = self.by_name.get(u.node)
            return n if n is not None and first_failure(n, u) is None else None
        if u.hosts is not None:
            return self._among_hosts(u)
        pools = self.pool_lists.get(u.roles)
        if pools is None:
            roles = sorted(self.role_pools, key=str) if u.roles is None else sorted(u.roles)
            pools = self.pool_lists[u.roles] = [p for r in roles for p in self.role_pools.get(r, ())]
        return self._search_pools(pools, u)

    def commit(self, n: PlanNode, u: Unit) -> None:
        n.used_cpus += u.cpus
        n.used_memory += u.memory
        n.used_disk += u.disk
        n.units += 1
        old = n.entry
        new = n.entry = rank_entry(n, self.binpack)
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

    def _search_pools(self, pools: list[Pool], u: Unit) -> PlanNode | None:
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
        if fits(top[3], u) and not (copies and copies.get(top[2])):
            return top[3]
        return self._search_all(pools, u, copies)

    def _search_all(self, pools: list[Pool], u: Unit, copies: dict[str, int] | None) -> PlanNode | None:
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
            if fits(top[3], u) and not (copies and copies.get(top[2])):
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
        self, p: Pool, u: Unit, copies: dict[str, int] | None, bound: list | None
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
                if fits(n, u):
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

    def _linear(self, p: Pool, u: Unit, copies: dict[str, int] | None) -> tuple[int, list] | None:
        """One pass over the pool, also re-measuring its free bound. The fit test is ``fits``
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
                    check, free = resource_failure(n, u) or ("fits", 0)
                    counts[check] = counts.get(check, 0) + 1
                    if check not in best or free > best[check]:
                        best[check] = free
        return summary(u, counts, best)

    def _among_hosts(self, u: Unit) -> PlanNode | None:
        """Few nodes match a ``hosts`` list, so look them up and compare them directly."""
        candidates = {n.name: n for h in u.hosts or () for n in self.by_host.get(h, ())}
        candidates.update((h, self.by_name[h]) for h in u.hosts or () if h in self.by_name)
        copies = None if self.binpack else self.copies.get(u.spread)
        best: tuple[int, list] | None = None
        for n in candidates.values():
            if first_failure(n, u) is None:
                cand = (copies.get(n.name, 0) if copies else 0, n.entry)
                if best is None or cand < best:
                    best = cand
        return None if best is None else best[1][3]


class _Rejections(Mapping[str, Mapping[str, str]]):
    """Per-node reasons for pending units, built on first read against the final allocation."""

    def __init__(self, nodes: list[PlanNode], units: dict[str, Unit]):
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
