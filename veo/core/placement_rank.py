"""How the planner ranks nodes: its mutable node copies, their score, and the heaps (pools) that
keep the best node on top (Nomad's rank.go, made exact; see ``veo.core.placement``).

"spread" ranks by the lowest allocation (mean of used/total over the resources the node has), then
the fewest units placed in this call, then the name; "binpack" by the highest allocation, then the
most units, then the name. Spread keys are counted by the planner, not here. Pure.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right

from veo.core.placement_feasible import EPS, NodeState, Unit

__all__ = ["CPU_STEPS", "MEM_STEPS", "PlanNode", "Pool", "fits", "pool_key", "rank_entry"]


class PlanNode:
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
        self.pool: Pool | None = None


def fits(n: PlanNode, u: Unit) -> bool:
    return (
        (u.cpus <= n.cpus - n.used_cpus + EPS or not u.cpus)
        and (u.memory <= n.memory - n.used_memory or not u.memory)
        and (u.disk <= n.disk - n.used_disk or not u.disk)
    )


# binpack also splits each role by free space (cpus x memory, steps of 4), so the fullest nodes,
# which refuse most units, sit in their own heaps instead of on top of every search
CPU_STEPS = (0.25, 1.0, 4.0, 16.0)
MEM_STEPS = (256 * 1024**2, 1024**3, 4 * 1024**3, 16 * 1024**3)


class Pool:
    """Schedulable (alive, uncordoned) nodes of one role (and free-space class), in a heap, best first.

    ``free`` is an upper bound on any member's free (cpus, memory, disk): free space only shrinks
    during a call, so a bound stays true once measured and turns units too big for the pool away
    without touching its heap.
    """

    __slots__ = ("nodes", "heap", "free")

    def __init__(self) -> None:
        self.nodes: dict[str, PlanNode] = {}
        self.heap: list[list] = []
        self.free: tuple[float, int, int] = (0.0, 0, 0)

    def add(self, n: PlanNode) -> None:
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


def rank_entry(n: PlanNode, binpack: bool) -> list:
    """``n``'s heap entry ``[score, tie, name, node]``, smallest best. Scored *before* a unit is
    added, so a node's rank does not depend on the unit and one heap serves every unit."""
    load = n.used_cpus * n.wc + n.used_memory * n.wm + n.used_disk * n.wd  # allocation, see PlanNode
    return [-load, -n.units, n.name, n] if binpack else [load, n.units, n.name, n]


def pool_key(n: PlanNode, binpack: bool) -> tuple:
    """Which pool ``n`` belongs in: its role, and under binpack also its free-space class."""
    if not binpack:
        return (n.role,)
    free_c, free_m = n.cpus - n.used_cpus, n.memory - n.used_memory
    return (n.role, bisect_right(CPU_STEPS, free_c), bisect_right(MEM_STEPS, free_m))
