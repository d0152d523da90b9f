"""GroupSupervisor: one per node; holds the supervision memory of every unit on that node.

A unit is a group copy or an ungrouped instance. The pure ``veo.core.supervision.decide`` turns a
death and the unit's state (restart counts, back-off, budget window) into a Decision. The NodeAgent
evaluates it in its own process on the restart path (a Ray round trip per death was the largest
part of the restart latency: ``actors/agent_perf.LocalSupervision``) and mirrors each unit's state
here with ``remember``; a restarted agent reloads it with ``snapshot``. ``on_death`` decides here,
for a caller without its own copy. It keeps no engine handle: deciding and acting are separate, so
a decision can be tested without Docker and an agent restart loses no budget.

Restart counts and the budget window (restart times) the agent passes in are merged into the
memory here, so a restart of either actor never makes a count go down nor resets the budget.
"""

from __future__ import annotations

import os
import time

import ray

from veo.core.models import GroupPolicy, Settings
from veo.core.supervision import Death, Decision, Member, UnitState, decide, merge_window


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
        window: list[float] = (),
    ) -> Decision:
        """``window``: the unit's restart times from the last decision the agent got (its copy of
        the budget window, so a restart of this actor does not reset the budget)."""
        state = self.units.setdefault(unit, UnitState())
        for key, n in restarts.items():
            state.restarts[key] = max(state.restarts.get(key, 0), n)
        merge_window(state, window)
        # CLOCK_MONOTONIC is machine-wide: a restarted supervisor on this node reads the same clock
        decision = decide(death, members, policy, state, settings, time.monotonic())
        decision.window = list(state.window)
        return decision

    async def remember(self, unit: str, state: UnitState) -> None:
        """The agent decided a death itself: keep its copy of the unit's memory, so a restarted
        agent picks up counts, back-off and budget window."""
        self.units[unit] = state

    async def forget(self, units: list[str]) -> None:
        """Units no longer on this node: their memory goes (a task's runs and moved services would
        otherwise keep one each forever)."""
        for unit in units:
            self.units.pop(unit, None)

    async def snapshot(self) -> dict[str, UnitState]:
        """Every unit's memory, for an agent that (re)starts."""
        return dict(self.units)

    async def pid(self) -> int:
        """The worker process (fault-injection tests kill it)."""
        return os.getpid()
