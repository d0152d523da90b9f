"""The cluster at a glance: instances by status, capacity totals over live nodes. Pure.

One counting rule for every front door (REST ``/api/cluster``, ``/metrics``, the UI), computed from
what the Scheduler reports.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable

from pydantic import BaseModel, Field

from veo.core.models import ClusterSpec, Policy
from veo.core.records import Instance, InstanceStatus, NodeView


class Totals(BaseModel):
    """Capacity and allocation summed over the live nodes."""

    cpus_total: float = 0.0
    cpus_allocated: float = 0.0
    memory_total: int = 0
    memory_allocated: int = 0
    disk_total: int = 0
    disk_allocated: int = 0


class ClusterSummary(BaseModel):
    """The cluster's name, policy, totals over live nodes, and instances by status."""

    name: str
    policy: Policy
    totals: Totals
    nodes_alive: int
    nodes_total: int
    containers: dict[str, int] = Field(description="Instances by status (every status, 0 too).")


def status_counts(instances: Iterable[Instance]) -> dict[InstanceStatus, int]:
    """Instances by status, every status present (0 when none)."""
    counts = dict.fromkeys(InstanceStatus, 0)
    for inst in instances:
        counts[inst.status] += 1
    return counts


def totals(nodes: Iterable[NodeView]) -> Totals:
    live = [n for n in nodes if n.alive]
    return Totals(**{f: sum(getattr(n, f) for n in live) for f in Totals.model_fields})


def summarize(spec: ClusterSpec, nodes: list[NodeView],
              instances: list[Instance]) -> ClusterSummary:
    return ClusterSummary(name=spec.name, policy=spec.policy, totals=totals(nodes),
                          nodes_alive=sum(1 for n in nodes if n.alive), nodes_total=len(nodes),
                          containers={s.value: n for s, n in status_counts(instances).items()})


def step_stats(durations: Iterable[float]) -> dict:
    """Count, p50, p95 and max of control-loop step durations (seconds); zeros when none."""
    xs = sorted(durations)
    if not xs:
        return {"count": 0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    at = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731 - nearest rank
    return {"count": len(xs), "p50": at(0.50), "p95": at(0.95), "max": xs[-1]}


class StepTimes(deque):
    """The last ``maxlen`` control-loop step durations, numbered: ``total`` counts every step
    ever recorded, so a reader can ask for exactly the steps after the ones it saw (a benchmark
    compares an idle window with a loaded one)."""

    def __init__(self, maxlen: int):
        super().__init__((), maxlen)
        self.total = 0

    def append(self, seconds: float) -> None:
        super().append(seconds)
        self.total += 1

    def stats(self, since: int | None = None) -> dict:
        """``step_stats`` of the kept steps numbered after ``since`` (all kept ones when None),
        with ``total``."""
        xs = list(self)
        if since is not None:
            xs = xs[len(xs) - min(len(xs), max(0, self.total - since)):]
        return {**step_stats(xs), "total": self.total}
