"""Feasibility filters for placement, cheapest first, and the reasons a node refuses a unit
(Nomad's feasible.go): the "why is my service pending?" answer.

Pure. A node takes a unit when it is alive, not cordoned, the pinned node (if any), matches
``hosts`` and ``roles``, and has the cpus, memory and disk free. Capacity is taken as given: a node
with 0 memory takes no unit that asks for memory, while a unit asking for 0 of a resource fits that
resource anywhere. The checks read any ``NodeLike``: a ``NodeState`` or the planner's own mutable
copy (``veo.core.placement_rank.PlanNode``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from veo.core.units import format_size

__all__ = ["EPS", "NodeLike", "NodeState", "Unit", "explain", "first_failure", "pending_reason",
           "resource_failure", "static_failure", "summary"]

EPS = 1e-9  # cpus are floats: three 0.1-cpu units must fit in 0.3
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


class NodeLike(Protocol):
    """What the checks read of a node (``NodeState`` and the planner's ``PlanNode`` both have it)."""

    name: str
    role: str | None
    host: str
    alive: bool
    cordoned: bool
    cpus: float
    memory: int
    disk: int
    used_cpus: float
    used_memory: int
    used_disk: int


def static_failure(node: NodeLike, unit: Unit) -> tuple[str, float] | None:
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


def first_failure(node: NodeLike, unit: Unit) -> tuple[str, float] | None:
    """The first check ``node`` fails for ``unit`` as (check, free amount), or None if it fits."""
    failed = static_failure(node, unit)
    return failed if failed is not None else resource_failure(node, unit)


def resource_failure(node: NodeLike, unit: Unit) -> tuple[str, float] | None:
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
        failed = first_failure(n, unit)
        if failed is not None:
            out[n.name] = _node_reason(n, unit, *failed)
    return out


def _node_reason(node: NodeLike, unit: Unit, check: str, free: float) -> str:
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
        failed = first_failure(n, unit)
        check, free = failed if failed is not None else ("fits", 0)
        counts[check] = counts.get(check, 0) + 1
        best[check] = max(best.get(check, free), free)
    return summary(unit, counts, best)


def summary(unit: Unit, counts: dict[str, int], best: dict[str, float]) -> str:
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
    failed = first_failure(node, unit)
    if failed is None:
        return f"fits on pinned node {unit.node}"
    sep = " is " if failed[0] in ("alive", "cordoned") else ": "  # "is not alive", "is cordoned"
    return f"pinned node {unit.node}{sep}{_node_reason(node, unit, *failed)}"


def _amount(check: str, value: float) -> str:
    value = max(value, 0)
    return f"{round(value, 3):g}" if check == "cpus" else format_size(int(value))


def _names(names: Collection[str] | None) -> str:
    return ", ".join(sorted(names or ())) or "(nothing)"
