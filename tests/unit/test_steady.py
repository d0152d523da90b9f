"""What keeps a steady control-loop step cheap (veo.core.steady) and the agent's cost cutters
(actors.agent_perf): plan gate, per-node desired-list versions, report picking, report versions,
capacity cache, supervision decided locally and mirrored."""

from __future__ import annotations

import asyncio

from actors.agent_perf import (MEASURED_PARALLELISM, CapacityCache, LocalSupervision, ReportCache,
                               engine_parallelism)
from veo.core.models import AgentReport, Event, EventKind, GroupPolicy, Service, Settings
from veo.core.placement import NodeState
from veo.core.reconcile import assignments_by_node, assignments_for, reconcile
from veo.core.steady import PlanGate, PushBook, Steady, pick_reports
from veo.core.supervision import Death, Member, UnitState

GB = 1024**3


def _world():
    services = {s.name: s for s in [
        Service(name="web", image="veo/busybox", instances=3),
        Service(name="m", image="veo/busybox", group="g", group_role="master"),
        Service(name="s", image="veo/busybox", group="g")]}
    nodes = [NodeState(n, cpus=4, memory=4 * GB, disk=10 * GB, alive=True) for n in ("uno", "dos")]
    return services, reconcile(services, nodes, {})


def test_assignments_by_node_is_assignments_for_every_node_in_one_pass():
    services, r = _world()
    restarts = {"web#1": 3}
    by_node = assignments_by_node(r.slots, services, r.unit_members, restarts)
    for node in ("uno", "dos"):
        assert by_node.get(node, []) == assignments_for(node, r.slots, services, r.unit_members, restarts)


def test_plan_gate_plans_when_the_inputs_moved_or_when_forced():
    gate = PlanGate()
    assert gate.due((1, ("a",)))
    gate.settle((2, ("a",)))  # the plan's own writes moved the version: that is no news
    assert not gate.due((2, ("a",))) and gate.skipped == 1
    assert gate.due((2, ("a",)), force=True)  # a rolling update's deadlines
    assert gate.due((3, ("a",))) and gate.planned == 3


def test_placement_version_moves_with_what_placement_reads_only():
    from veo.core.desired import DesiredState

    st = DesiredState()
    v = st.placement_version
    st.next_index()
    st.touch_row("restarts", "web#0")
    assert st.placement_version == v  # event indexes and restart counts: no reason to plan
    st.touch_row("slots", "web#0")
    st.cordon("uno", True)
    assert st.placement_version == v + 2


def test_push_book_sends_a_changed_list_in_full_and_only_versions_otherwise():
    book = PushBook()
    book.update({"uno": ["a"], "dos": ["b"]})
    full, stale = book.due(["uno", "dos"], now=0.0, period=1.0)
    assert sorted(full) == ["dos", "uno"] and not stale
    for n in full:
        book.sent(n, book.nodes[n].version, 0.0)
    assert book.due(["uno", "dos"], now=0.5, period=1.0) == ([], [])  # nothing new, synced lately
    book.update({"uno": ["a"], "dos": ["b", "c"]})  # only dos changed
    assert book.nodes["uno"].version == 1 and book.nodes["dos"].version == 2
    assert book.due(["uno", "dos"], now=1.5, period=1.0) == (["dos"], ["uno"])
    book.lost("uno")  # its agent restarted: the full list again
    assert "uno" in book.due(["uno"], now=1.6, period=1.0)[0]


def test_push_book_rechecks_a_bounded_number_oldest_first():
    book = PushBook()
    names = [f"n{i}" for i in range(10)]
    book.update({n: [n] for n in names})
    for i, n in enumerate(names):
        book.sent(n, 1, float(i))
    full, stale = book.due(names, now=100.0, period=1.0, budget=3)
    assert not full and stale == ["n0", "n1", "n2"]


def test_pick_reports_asks_nodes_with_news_and_a_few_oldest():
    at = {"a": 10.0, "b": 9.0, "c": 8.0, "d": 9.9}
    ask = pick_reports(["a", "b", "c", "d", "e"], {"a"}, at, now=10.0, period=1.0, budget=1)
    assert ask == ["a", "e", "c"]  # news, never reported, then the oldest stale one


def test_nodes_with_news_reads_only_new_events():
    steady = Steady()
    evs = [Event(kind=EventKind.started, node=n, index=i) for i, n in enumerate(["x", "y", "z"], 1)]
    assert steady.nodes_with_news(evs) == {"x", "y", "z"}
    assert steady.nodes_with_news(evs) == set()
    evs.append(Event(kind=EventKind.exited, node="y", index=4))
    assert steady.nodes_with_news(evs) == {"y"}


def test_report_cache_versions_only_on_change():
    cache = ReportCache()
    built = []

    def build(v):
        built.append(v)
        return AgentReport(node="n", docker_host="h", version=v)

    first = cache.get(build, ("a",), None)
    assert first.version == 1 and cache.get(build, ("a",), None) is first
    assert cache.get(build, ("a",), 1) is None  # the caller holds the current version
    assert cache.get(build, ("b",), 1).version == 2 and built == [1, 2]


def test_capacity_cache_reads_the_engine_once_per_ttl():
    now = [0.0]
    reads = []
    cache = CapacityCache(lambda: reads.append(1) or len(reads), ttl=30, clock=lambda: now[0])
    assert cache.stale() and cache.refresh() == 1 and not cache.stale()
    now[0] = 29.0
    assert not cache.stale()
    now[0] = 30.0
    assert cache.stale() and cache.refresh() == 2 and cache.value == 2


def test_engine_parallelism_is_the_measured_one_unless_overridden(monkeypatch):
    monkeypatch.delenv("VEO_ENGINE_PARALLELISM", raising=False)
    assert engine_parallelism() == MEASURED_PARALLELISM
    monkeypatch.setenv("VEO_ENGINE_PARALLELISM", "8")
    assert engine_parallelism() == 8
    monkeypatch.setenv("VEO_ENGINE_PARALLELISM", "lots")
    assert engine_parallelism() == MEASURED_PARALLELISM


class _Remote:
    def __init__(self, fn):
        self.fn = fn

    def remote(self, *a):
        return self.fn(*a)


class FakeSupervisor:
    """Stands in for the GroupSupervisor actor: snapshot/remember with Ray's call shape."""

    def __init__(self, units=None):
        self.units = dict(units or {})

        async def snapshot():
            return dict(self.units)

        self.snapshot = _Remote(snapshot)
        self.remember = _Remote(lambda unit, state: self.units.__setitem__(unit, state))


def test_local_supervision_decides_mirrors_and_reloads_after_an_agent_restart():
    settings = Settings(budget_restarts=2, budget_period=60, backoff_initial=0.1)
    sup = FakeSupervisor()
    members = [Member("web#0", "web")]

    async def deaths(local, n):
        await local.load()
        return [local.decide("web#0", members, GroupPolicy.one_for_one, Death("web#0", 1), settings, {})
                for _ in range(n)]

    first = LocalSupervision(lambda: sup)
    d = asyncio.run(deaths(first, 1))
    assert d[0].restart == ["web#0"] and d[0].delay == 0.0  # first restart: immediate
    assert sup.units["web#0"].restarts == {"web#0": 1}  # mirrored
    again = LocalSupervision(lambda: sup)  # the agent restarted: memory comes back
    d = asyncio.run(deaths(again, 2))
    assert d[0].restart and d[0].delay > 0  # a second quick death backs off
    assert d[1].failed  # the budget (2 per 60 s) counted the restart before the agent restart
    assert isinstance(sup.units["web#0"], UnitState)


def test_desired_lists_rebuild_only_the_nodes_whose_slots_changed():
    from dataclasses import replace

    from veo.core.steady import DesiredLists

    services, r = _world()
    lists = DesiredLists()
    args = ("known", "removed")
    ch = lambda slots, svcs, a=args, retiring={}: lists.changed_nodes(  # noqa: E731
        slots, svcs, r.unit_members, a, {}, retiring)
    assert ch(r.slots, services) is None  # first: all
    full = lists.lists(["uno", "dos"])
    for node in ("uno", "dos"):
        assert full[node] == assignments_for(node, r.slots, services, r.unit_members)
    assert ch(dict(r.slots), services) == set()
    moved = dict(r.slots)
    web1 = moved["web#1"]
    other = "dos" if web1.node == "uno" else "uno"
    moved["web#1"] = replace(web1, node=other, generation=2)
    assert ch(moved, services) == {"uno", "dos"}
    assert lists.lists([other])[other] == assignments_for(other, moved, services, r.unit_members)
    del moved["web#0"]
    assert ch(moved, services) == {r.slots["web#0"].node}
    changed = {**services, "m": services["m"].model_copy(update={"command": ["true"]})}
    assert ch(moved, changed) == {r.slots["m#0"].node}
    assert ch(moved, changed, ("other",)) is None
    # start-first: the old slot stays desired on its node beside the new one elsewhere
    old = replace(moved["web#1"], node=web1.node, generation=1)
    assert ch(moved, changed, ("other",), {"web#1": old}) is None
    assert any(a.key == "web#1" for a in lists.lists([web1.node])[web1.node])


def test_steps_are_paced_and_membership_is_read_once_per_tick():
    now = [10.0]
    steady = Steady(clock=lambda: now[0])
    assert steady.pace_delay() == 0.0
    now[0] = 10.03
    assert abs(steady.pace_delay() - 0.07) < 1e-9  # woken again 30 ms later: waits the rest
    now[0] = 11.0
    assert steady.pace_delay() == 0.0
    assert steady.membership_due(1.0) and not steady.membership_due(1.0)
    now[0] = 12.0
    assert steady.membership_due(1.0)


def test_adaptive_limit_grows_while_calls_stay_fast_and_shrinks_when_they_queue():
    from actors.agent_perf import AdaptiveLimit

    lim = AdaptiveLimit(4, lo=2, hi=16)
    for _ in range(20):
        lim.observe(0.10)  # as fast as ever: one more in flight each time, up to hi
    assert lim.limit == 16
    for _ in range(30):
        lim.observe(0.60)  # 6x the fastest: the engine queues them
    assert lim.limit < 4
    for _ in range(30):
        lim.observe(0.12)  # fast again
    assert lim.limit == 16


def test_adaptive_limit_holds_calls_beyond_it():
    from actors.agent_perf import AdaptiveLimit

    lim = AdaptiveLimit(2, lo=2, hi=2)
    peak = 0

    async def call():
        nonlocal peak
        async with lim.slot():
            peak = max(peak, lim.inflight)
            await asyncio.sleep(0.01)

    async def main():
        await asyncio.gather(*(call() for _ in range(8)))

    asyncio.run(main())
    assert peak == 2 and lim.inflight == 0


def test_a_restart_holds_back_creates_already_queued_for_a_slot():
    """While a restart is in flight no create is let in, also those that were waiting for a slot
    before it began (the deploy's queue); those at the engine finish; after it, the queue goes on."""
    from actors.agent_perf import AdaptiveLimit

    lim = AdaptiveLimit(2, lo=2, hi=2)
    admitted: list[tuple[str, float]] = []
    loop_time = None

    async def create(i: int):
        async with lim.slot():
            admitted.append((f"c{i}", loop_time()))
            await asyncio.sleep(0.05)

    async def restart():
        await asyncio.sleep(0.01)  # two creates at the engine, four queued
        async with lim.held():
            began = loop_time()
            await asyncio.sleep(0.2)  # the restart's start
            admitted.append(("restart-done", loop_time()))
        return began

    async def main():
        nonlocal loop_time
        loop_time = asyncio.get_running_loop().time
        out = await asyncio.gather(restart(), *(create(i) for i in range(6)))
        return out[0]

    began = asyncio.run(main())
    done = dict(admitted)["restart-done"]
    during = [n for n, t in admitted if n != "restart-done" and began < t < done]
    assert during == []  # the two at the engine had begun before; none let in while held
    assert len(admitted) == 7 and lim.inflight == 0 and lim.holds == 0


def test_units_no_longer_desired_are_forgotten_here_and_by_the_supervisor():
    """A task's runs and moved services bring new units forever: the agent's per-unit memory
    (supervision state, unit locks not held) goes with the unit, and the supervisor is told."""
    from actors.agent_perf import forget_units

    class Sup:
        def __init__(self):
            self.units = {"a": UnitState(), "b": UnitState(), "run#1": UnitState()}
            self.forget = self

        def remote(self, units):
            for u in units:
                self.units.pop(u, None)

    sup = Sup()
    local = LocalSupervision(lambda: sup)
    local.units = dict(sup.units)
    held, free = asyncio.Lock(), asyncio.Lock()

    async def main():
        await held.acquire()
        locks = {"a": asyncio.Lock(), "run#1": free, "run#2": held}
        gone = forget_units({"a"}, local, locks)
        return gone, locks

    gone, locks = asyncio.run(main())
    assert gone == {"b", "run#1", "run#2"}
    assert set(local.units) == {"a"} and set(sup.units) == {"a"}
    assert set(locks) == {"a", "run#2"}  # a held lock stays until its holder is done


def test_a_create_already_at_the_engine_starts_after_the_held_restart():
    """The engine thread of a create that was let in before the restart waits, between its
    create and its start, until the restart is done (at most HOLD_WAIT_MAX)."""
    import threading
    import time as _time

    from actors.agent_perf import AdaptiveLimit

    lim = AdaptiveLimit(4)
    started: list[float] = []

    def engine_thread():
        lim.before_start(timeout=5.0)
        started.append(_time.monotonic())

    async def main():
        async with lim.held():
            t = threading.Thread(target=engine_thread)
            t.start()
            await asyncio.sleep(0.2)
            assert not started  # still waiting while the restart is held
            released = _time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, t.join)
        return released

    released = asyncio.run(main())
    assert started and started[0] >= released
    lim.before_start(timeout=5.0)  # nothing held: no wait


def test_adaptive_limit_grows_only_while_it_is_used():
    """A call that ends with nothing queued and fewer in flight than the limit (a small batch's
    tail) adds nothing: ten quick creates must not leave the next deploy with sixteen at once."""
    from actors.agent_perf import AdaptiveLimit

    lim = AdaptiveLimit(4, lo=2, hi=16)
    for _ in range(20):
        lim.observe(0.10, used=False)
    assert lim.limit == 4
    lim.observe(0.10, used=True)
    assert lim.limit == 5

    lim = AdaptiveLimit(2, lo=2, hi=16)

    async def call():
        async with lim.slot():
            await asyncio.sleep(0.01)

    async def batch(n):
        await asyncio.gather(*(call() for _ in range(n)))

    asyncio.run(batch(10))
    # a call that ended with others queued behind it raised the limit by one (a deploy's
    # queue uses every slot it gets); the batch's tail, with nothing queued, did not
    after_batch = lim.limit
    assert 2 < after_batch <= 10, after_batch
    for _ in range(5):  # one at a time: one in flight, nothing waiting, the limit unused
        asyncio.run(batch(1))
    assert lim.limit == after_batch


def test_adaptive_limit_starts_again_from_initial_after_idle():
    from actors.agent_perf import AdaptiveLimit

    now = [100.0]
    lim = AdaptiveLimit(4, lo=2, hi=16, idle_reset=2.0, clock=lambda: now[0])
    lim.limit = 12.0  # the peak of an earlier deploy

    async def one():
        async with lim.slot():
            now[0] += 0.1  # the call takes 0.1 s

    now[0] += 1.0  # not idle long enough: the limit stays
    asyncio.run(one())
    assert lim.limit >= 12
    now[0] += 2.5  # idle: the next deploy starts from initial, and learns again
    asyncio.run(one())
    assert lim.limit <= 5


def test_a_call_that_overlapped_a_restart_is_no_sample():
    """A create that waited for a restart's hold took long because of the restart, not the
    engine: it must not shrink the limit (nor move the latency seen)."""
    from actors.agent_perf import AdaptiveLimit

    lim = AdaptiveLimit(4, lo=2, hi=16)
    lim.observe(0.10)
    before = (lim.limit, lim.recent, lim.fastest)

    async def create():
        async with lim.slot():
            await asyncio.sleep(0.15)  # 15x the fastest: it waited for the restart

    async def restart():
        await asyncio.sleep(0.01)
        async with lim.held():
            await asyncio.sleep(0.05)

    async def main():
        await asyncio.gather(create(), restart())

    asyncio.run(main())
    assert (lim.limit, lim.recent, lim.fastest) == before
