"""What the Scheduler shows: instance and node views built from slots and agent reports. Pure.

Actual state comes from the agents' reports (read from the engines); the slots only say what should
be where. An instance whose node is lost shows as pending with that reason until it is re-placed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from veo.core.models import AgentReport, Instance, InstanceStatus, Node
from veo.core.names import instance_key, split_key
from veo.core.placement import NodeState
from veo.core.reconcile import Slot


@dataclass
class NodeRec:
    """The Scheduler's record of one Ray node labelled veo.node."""

    name: str
    alive: bool = False
    role: str | None = None
    host: str | None = None
    report: AgentReport | None = None  # the agent's last report


def node_state(name: str, rec: NodeRec | None, expected: Node | None, cordoned: bool) -> NodeState:
    """Placement's view of a node: cluster.yml's overrides win over what the engine reports."""
    report = rec.report if rec else None
    exp = expected.model_dump() if expected else {}

    def pick(field: str, default):
        if exp.get(field) is not None:
            return exp[field]
        return getattr(report, field) if report else default

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
    # (key, generation): during a start-first update two nodes report the same instance
    reported: dict[tuple[str, int], Instance] = {}
    for rec in nodes.values():
        if rec.alive and rec.report:
            for inst in rec.report.instances:
                reported[(instance_key(inst.service, inst.instance), inst.generation)] = inst
    out: list[Instance] = []
    for key, s in slots.items():
        out.append(_slot_view(key, s, nodes.get(s.node), reported.get((key, s.generation)),
                              pending, restarts))
    for unit, reason in pending.items():
        for key in unit_members.get(unit, ()):
            if key not in slots:
                svc, n = split_key(key)
                out.append(Instance(service=svc, instance=n, status=InstanceStatus.pending,
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
        return Instance(**base, status=s.outcome or InstanceStatus.starting, reason=s.reason)
    return inst.model_copy(update={"restarts": max(inst.restarts, restarts.get(key, 0))})
