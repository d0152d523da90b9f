"""Expanding services into placement units: an instance of an ungrouped service, or one copy of
a group (all members on one node), or one run of a task. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from veo.core.models import GroupRole, Service
from veo.core.placement_feasible import NodeState, Unit, static_failure

__all__ = ["units_for"]


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
    eligible = sorted(n.name for n in nodes if static_failure(n, probe) is None)
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
