"""The Scheduler's own loop step after common changes (bench.scale's simulated cluster: the real
Scheduler class, SQLite, in-process agents that run what they are told): each plan is partial,
leaves nothing a full reconcile would change, and every live agent holds the list a rebuild from
scratch gives. No timings."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace

from bench.scale import make_scheduler, make_spec, _step
from veo.core.incremental import PlanCache
from veo.core.models import Event, EventKind, InstanceStatus
from veo.core.reconcile import assignments_by_node


def _check(sched, agents) -> None:
    st = sched.state
    ref = copy.deepcopy(st)
    ref.planner, ref.plan_dirty = PlanCache(), None
    full = ref.plan(sched._states(), drain_moves=sched._drain_budget(), held=sched._held_back())
    assert ref.slots == st.slots and not full.placed  # the incremental plans left a fixpoint
    assert full.unit_members == sched.unit_members and full.pending == sched.pending
    want = assignments_by_node(st.slots, st.services, sched.unit_members, retiring=st.retiring,
                               specs=sched._kept_specs())
    for name, agent in agents.items():
        if sched.nodes[name].alive:
            got = [replace(a, restarts=0) for a in agent.desired[0]]
            assert got == [replace(a, restarts=0) for a in want.get(name, [])], name


def test_the_loop_after_each_change_plans_partially_and_pushes_what_a_full_plan_would(tmp_path):
    async def scenario() -> None:
        sched, agents, clock = make_scheduler(6, tmp_path)
        spec = make_spec(60)  # 6 services of 10 instances
        names = sorted(spec.services)
        await sched.apply(spec)
        sched._loop.cancel()
        for _ in range(3):
            await _step(sched, clock)
        planner = sched.state.planner

        async def fail() -> None:
            slot = sched.state.slots[f"{names[0]}#3"]
            await sched.record([Event(kind=EventKind.failed, service=slot.service, instance=3,
                                      node=slot.node, generation=slot.generation,
                                      status=InstanceStatus.failed, reason="test")])

        async def apply(name: str, **update) -> None:
            current = dict(sched.state.services)
            await sched.apply(spec.model_copy(update={"services": {
                **current, name: current[name].model_copy(update=update)}}))
            sched._loop.cancel()

        async def lost() -> None:
            sched.dead.add("n00004")
            sched.steady.last_membership = float("-inf")

        changes = [fail, lambda: apply(names[1], instances=11), lambda: sched.remove_service(names[2]),
                   lambda: sched.cordon("n00003"), lost, lambda: apply(names[3], image="veo/httpd:latest")]
        for change in changes:
            full = planner.full
            await change()
            for _ in range(3):
                await _step(sched, clock)
            assert planner.full == full  # no step fell back to a full reconcile
            _check(sched, agents)
        assert planner.partial > 6

    asyncio.run(scenario())
