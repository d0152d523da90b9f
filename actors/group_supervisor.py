"""GroupSupervisor: one per node; holds the supervision memory of every unit on that node.

A unit is a group copy or an ungrouped instance. The NodeAgent reports a death; this actor applies
the pure ``veo.core.supervision.decide`` to the unit's state (restart counts, back-off, budget window)
and returns the Decision for the agent to carry out. It keeps no engine handle: deciding and acting
are separate, so a decision can be tested without Docker and an agent restart loses no budget.

Restart counts the agent passes in are merged (max) into the memory here, so a restart of either
actor never makes a count go down.
"""

from __future__ import annotations

import os
import time

import ray

from veo.core.models import GroupPolicy, Settings
from veo.core.supervision import Death, Decision, Member, UnitState, decide


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class GroupSupervisor:
    def __init__(self, node: str, cluster: str):
        self.node, self.cluster = node, cluster
        self.units: dict[str, UnitState] = {}

    async def on_death(
        self,
        unit: str,
        members: list[Member],
        policy: GroupPolicy,
        death: Death,
        settings: Settings,
        restarts: dict[str, int],
    ) -> Decision:
        state = self.units.setdefault(unit, UnitState())
        for key, n in restarts.items():
            state.restarts[key] = max(state.restarts.get(key, 0), n)
        return decide(death, members, policy, state, settings, time.monotonic())

    async def pid(self) -> int:
        """The worker process (fault-injection tests kill it)."""
        return os.getpid()
