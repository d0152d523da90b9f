"""What the Scheduler shows: instance and node views built from slots and agent reports. Pure.

Actual state comes from the agents' reports (read from the engines); the slots only say what should
be where. An instance whose node is lost shows as pending with that reason until it is re-placed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from veo.core.models import Instance, InstanceStatus
from veo.core.placement import NodeState
from veo.core.reconcile import Slot


@dataclass
class NodeRec:
    """The Scheduler's record of one Ray node labelled veo.node."""

    name: str
    alive: bool = False
    role: str | None = None
    host: str | None = None
    report: dict | None = None  # the agent's last report


def node_state(name: str, rec: NodeRec | None, expected: dict | None, cordoned: bool) -> NodeState:
    """Placement's view of a node: cluster.yml's overrides win over what the engine reports."""
    report = rec.report if rec else None
    exp = expected or {}

    def pick(field: str, default):
        if exp.get(field) is not None:
            return exp[field]
        return report.get(field, default) if report else default

    return NodeState(
        name=name,
        role=exp.get("role") or (rec.role if rec else None),
        host=exp.get("host") or (rec.host if rec else None) or "localhost",
        # a node is placeable once its agent has reported capacity
        alive=bool(rec and rec.alive and report),
        cordoned=cordoned,
        cpus=float(pick("cpus", 0.0)),
        memory=int(pick("memory", 0)),
        disk=int(pick("disk", 0)),
    )


def instance_views(
    slots: Mapping[str, Slot],
    nodes: Mapping[str, NodeRec],
    pending: Mapping[str, str],
    unit_members: Mapping[str, tuple[str, ...]],
    restarts: Mapping[str, int],
) -> list[Instance]:
    reported: dict[str, Instance] = {}
    for rec in nodes.values():
        if rec.alive and rec.report:
            for inst in rec.report.get("instances", []):
                reported[f"{inst.service}#{inst.instance}"] = inst
    out: list[Instance] = []
    for key, s in slots.items():
        out.append(_slot_view(key, s, nodes.get(s.node), reported.get(key), pending, restarts))
    for unit, reason in pending.items():
        for key in unit_members.get(unit, ()):
            if key not in slots:
                svc, _, n = key.rpartition("#")
                out.append(Instance(service=svc, instance=int(n), status=InstanceStatus.pending,
                                    reason=reason, restarts=restarts.get(key, 0)))
    out.sort(key=lambda i: (i.service, i.instance))
    return out


def _slot_view(key, s: Slot, rec, inst, pending, restarts) -> Instance:
    base = dict(service=s.service, instance=s.instance, node=s.node, generation=s.generation,
                restarts=restarts.get(key, 0))
    if rec is None or not rec.alive:
        reason = pending.get(s.unit) or "waiting for the node to come back"
        return Instance(**base, status=InstanceStatus.pending, reason=f"node {s.node} is lost; {reason}")
    if inst is None or inst.generation != s.generation:
        status = InstanceStatus.failed if s.outcome == "failed" else InstanceStatus.starting
        if s.outcome == "completed":
            status = InstanceStatus.completed
        return Instance(**base, status=status, reason=s.reason)
    return inst.model_copy(update={"restarts": max(inst.restarts, restarts.get(key, 0))})
