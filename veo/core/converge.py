"""What a NodeAgent must do to make its engine match the desired instances. Pure.

Input: the assignments the Scheduler sent for this node and the containers the engine reports
(veo-labelled, this cluster). Output: containers to remove now, instances to create, containers to
adopt, instances found dead that nobody saw die, and orphan candidates (veo containers of services
the Scheduler does not know, removed only after a grace period by the agent).

Identity is (service, instance, generation) read from labels: a container of an older or newer
generation than desired is stale and goes, whatever its state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol

from veo.core.reconcile import Assignment
from veo.core.names import LABEL_GENERATION, LABEL_INSTANCE, LABEL_SERVICE, instance_key



class ContainerLike(Protocol):
    id: str
    labels: Mapping[str, str]
    running: bool
    status: str


def identity(c: ContainerLike) -> tuple[str, int] | None:
    """(instance key, generation) of a veo container, or None if its labels are unreadable."""
    try:
        key = instance_key(c.labels[LABEL_SERVICE], int(c.labels[LABEL_INSTANCE]))
        return key, int(c.labels[LABEL_GENERATION])
    except (KeyError, ValueError):
        return None


@dataclass
class ConvergePlan:
    remove: list[ContainerLike] = field(default_factory=list)  # stale or no longer wanted here
    orphans: list[ContainerLike] = field(default_factory=list)  # service unknown to the Scheduler
    create: list[Assignment] = field(default_factory=list)  # in unit order, members in order
    adopt: dict[str, ContainerLike] = field(default_factory=dict)  # key -> its container


def plan_converge(
    desired: Iterable[Assignment],
    containers: Iterable[ContainerLike],
    known_services: set[str],
) -> ConvergePlan:
    wanted = {a.key: a for a in desired}
    plan = ConvergePlan()
    for c in containers:
        ident = identity(c)
        if ident is None:
            plan.orphans.append(c)
            continue
        key, gen = ident
        a = wanted.get(key)
        if a is not None and a.generation == gen and key not in plan.adopt:
            plan.adopt[key] = c
        elif c.labels.get(LABEL_SERVICE) in known_services:
            plan.remove.append(c)
        else:
            plan.orphans.append(c)
    plan.create = [a for a in wanted.values() if a.key not in plan.adopt and a.outcome is None]
    return plan
