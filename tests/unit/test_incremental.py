"""The plan after a change reconciles only what changed (veo.core.incremental): over random
sequences of changes, it must decide exactly what a full ``reconcile`` decides on the same state —
the same slots (and rows to write), pending reasons, unit members, placements and drops."""

from __future__ import annotations

import copy
import random

import pytest

from veo.core import rollout
from veo.core.desired import DesiredState
from veo.core.errors import VeoError
from veo.core.incremental import PlanCache
from veo.core.models import ClusterSpec, Event, EventKind, InstanceStatus, Service
from veo.core.placement import NodeState
from veo.core.reconcile import assignments_by_node
from veo.core.settings import Settings
from veo.core.steady import DesiredLists

GB = 1 << 30
S = InstanceStatus


class World:
    """Random services and nodes, and the changes an operator, an agent or Ray makes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.st = DesiredState(cluster="t")
        self.st.test_hold = set()
        self.defs: dict[str, dict] = {}
        self.nodes = {f"n{i}": self._random_node(rng, f"n{i}") for i in range(rng.randint(2, 6))}
        self.held: dict[str, str] = {}
        self.drain_moves: int | None = None
        self.runs: dict[str, list[int]] = {}  # task -> the run instances due
        self.last = None  # the last plan's result
        for _ in range(rng.randint(1, 6)):
            self._new_service()
        self._apply()

    def _new_service(self) -> None:
        r = self.rng
        name = f"s{r.randint(0, 11)}"
        d = {"instances": r.choice([0, 1, 2, 3, 5, "all"]), "cpus": r.choice([None, 0.1, 0.25, 0.5, 1]),
             "memory": r.choice([None, 256 << 20, GB]), "image": r.choice(["veo/busybox", "veo/httpd"])}
        if r.random() < 0.15:
            d["hosts"] = [r.choice(["n0", "n1", "hn2"])]
        if r.random() < 0.15:
            d["roles"] = ["db"]
        if r.random() < 0.3:
            group = r.choice(["g0", "g1"])
            mates = [n for n, m in self.defs.items() if m.get("group") == group and n != name]
            d["group"] = group
            if mates:
                d["instances"] = self.defs[mates[0]]["instances"]
            else:
                d["group_role"] = "master"
        self.defs[name] = d

    def _apply(self) -> None:
        try:  # a random change may make an invalid spec: then nothing changes
            services = {n: Service(name=n, **d) for n, d in self.defs.items()}
            self.st.apply(ClusterSpec(name="t", services=services, settings=self.st.settings))
        except (VeoError, ValueError):
            self.defs = {n: s.model_dump(exclude_unset=True, exclude={"name"})
                         for n, s in self.st.services.items()}

    # ---- changes ---------------------------------------------------------------------------

    def change(self) -> str:
        kind = self.rng.choice([
            "add", "remove", "scale", "image", "fail", "fail", "run", "revive", "node", "node",
            "cordon", "drain", "capacity", "node_set", "held", "hold", "retiring", "strategy",
            "moves", "task", "runs", "runs"])
        getattr(self, f"_{kind}")()
        return kind

    def _pick_service(self) -> str | None:
        return self.rng.choice(sorted(self.defs)) if self.defs else None

    def _pick_slot(self):
        return self.st.slots[self.rng.choice(sorted(self.st.slots))] if self.st.slots else None

    def _add(self) -> None:
        self._new_service()
        self._apply()

    def _remove(self) -> None:
        name = self._pick_service()
        if name is None:
            return
        if self.rng.random() < 0.5:
            self.defs.pop(name)
            self._apply()
        elif name in self.st.services:
            self.defs.pop(name)
            self.st.remove_service(name)

    def _scale(self) -> None:
        name = self._pick_service()
        if name is None:
            return
        n = self.rng.choice([0, 1, 2, 4, "all"])
        group = self.defs[name].get("group")
        for other, d in self.defs.items():
            if other == name or (group and d.get("group") == group):
                d["instances"] = n
        self._apply()

    def _image(self) -> None:
        name = self._pick_service()
        if name is not None:
            d = self.defs[name]
            d["image"] = "veo/httpd" if d["image"] == "veo/busybox" else "veo/busybox"
            d["cpus"] = self.rng.choice([None, 0.1, 0.5])
            self._apply()

    def _event(self, status: S) -> None:
        slot = self._pick_slot()
        if slot is not None:
            self.st.fold(Event(kind=EventKind.failed if status is S.failed else EventKind.started,
                               service=slot.service, instance=slot.instance, node=slot.node,
                               generation=slot.generation, status=status, reason="test"))

    def _fail(self) -> None:
        self._event(self.rng.choice([S.failed, S.completed]))

    def _run(self) -> None:
        self._event(S.running)

    def _revive(self) -> None:
        slot = self._pick_slot()
        if slot is not None:
            self.st.revive(slot.key)

    @staticmethod
    def _random_node(r: random.Random, name: str) -> NodeState:
        return NodeState(name=name, role=r.choice([None, None, "db"]), host=f"h{name}",
                         alive=r.random() > 0.1, cpus=r.choice([0.5, 1, 2, 4]),
                         memory=r.choice([1, 2, 4]) * GB, disk=10 * GB)

    def _flip(self, kw) -> None:
        name = self.rng.choice(sorted(self.nodes))
        n = self.nodes[name]
        self.nodes[name] = NodeState(**{**{f: getattr(n, f) for f in n.__slots__}, **kw(n)})

    def _node(self) -> None:  # lost or back
        self._flip(kw=lambda n: {"alive": not n.alive})

    def _cordon(self) -> None:
        name = self.rng.choice(sorted(self.nodes))
        self.st.cordon(name, name not in self.st.cordoned)

    def _drain(self) -> None:
        name = self.rng.choice(sorted(self.nodes))
        self.st.start_drain(name)

    def _capacity(self) -> None:
        self._flip(kw=lambda n: {"cpus": self.rng.choice([0.5, 1, 2, 4]),
                                 "memory": self.rng.choice([1, 2, 4]) * GB,
                                 "role": self.rng.choice([n.role, "db", None])})

    def _node_set(self) -> None:
        name = f"n{self.rng.randint(0, 7)}"
        if name in self.nodes and len(self.nodes) > 1:
            del self.nodes[name]
        else:
            self.nodes[name] = self._random_node(self.rng, name)

    def _held(self) -> None:
        name = self._pick_service()
        if name is None:
            return
        if name in self.held:
            del self.held[name]
        else:
            self.held[name] = "waiting on something"

    def _hold(self) -> None:
        units = sorted(self.last.unit_members) if self.last else []
        self.st.test_hold = set(self.rng.sample(units, min(len(units), self.rng.randint(0, 2))))

    def _retiring(self) -> None:
        slot = self._pick_slot()
        if slot is None or self.rng.random() < 0.3:
            self.st.retiring = {}
        else:
            self.st.retiring[slot.key] = slot
        self.st.touch("retiring")

    def _strategy(self) -> None:
        if self.rng.random() < 0.3:
            current = self.st.settings.placement.value
            self.st.settings = Settings(placement="binpack" if current == "spread" else "spread")
            self.st.touch("settings")

    def _task(self) -> None:
        if "t0" in self.defs:
            del self.defs["t0"]
        else:
            self.defs["t0"] = {"image": "veo/busybox", "schedule": "*/5 * * * *",
                               "cpus": self.rng.choice([None, 0.5])}
        self._apply()

    def _runs(self) -> None:
        self.runs = {"t0": sorted(self.rng.sample(range(1000, 1006), self.rng.randint(0, 3)))}

    def _moves(self) -> None:
        self.drain_moves = self.rng.choice([None, 0, 1])

    def states(self) -> list[NodeState]:
        return [NodeState(**{**{f: getattr(n, f) for f in n.__slots__},
                             "cordoned": n.name in self.st.cordoned})
                for _, n in sorted(self.nodes.items())]


def plan_both(world: World):
    """The incremental plan on the world's state, and a full one on a copy of it."""
    ref = copy.deepcopy(world.st)
    ref.planner, ref.plan_dirty = PlanCache(), None
    nodes = world.states()
    world.held = {n: r for n, r in world.held.items() if n in world.st.services}
    runs = {t: r for t, r in world.runs.items() if t in world.st.services}
    want = ref.plan(nodes, drain_moves=world.drain_moves, held=dict(world.held), runs=runs)
    got = world.st.plan(nodes, drain_moves=world.drain_moves, held=dict(world.held), runs=dict(runs))
    world.last = got
    return got, want, ref


def _lists_follow(world: World, result, lists: DesiredLists, before: dict, where: str) -> dict:
    """Desired lists rebuilt from the plan's hint equal lists built from scratch, and every node
    whose list changed is among those the hint names."""
    st = world.st
    lists.hint(result.touched)
    args = (sorted(st.services), sorted(st.removed))
    # the kept specs as the Scheduler passes them: only while slots are held or retiring
    specs = rollout.specs_by_hash(st) if st.test_hold or st.retiring else {}
    dirty = lists.changed_nodes(st.slots, st.services, result.unit_members, args, specs, st.retiring)
    fresh = assignments_by_node(st.slots, st.services, result.unit_members, retiring=st.retiring,
                                specs=specs)
    names = set(fresh) | set(before) | lists.nodes()
    assert lists.lists(names) == {n: fresh.get(n, []) for n in names}, where
    if dirty is not None:
        assert {n for n in names if fresh.get(n) != before.get(n)} <= dirty, where
    return fresh


@pytest.fixture(autouse=True)
def random_hold(monkeypatch):
    """Units a rolling update holds, chosen by the test (the real ones come from updates)."""
    monkeypatch.setattr(rollout, "held_units", lambda st: set(getattr(st, "test_hold", ())))


@pytest.mark.parametrize("seed", range(60))
def test_an_incremental_plan_equals_a_full_one_after_any_changes(seed):
    rng = random.Random(seed)
    world = World(rng)
    kinds = []
    lists, before = DesiredLists(), {}
    for step in range(40):
        for _ in range(rng.randint(1, 3)):
            kinds.append(world.change())
        got, want, ref = plan_both(world)
        where = f"seed {seed} step {step} after {kinds[-3:]}"
        assert world.st.slots == ref.slots, where
        assert got.pending == want.pending, where
        assert got.unit_members == want.unit_members, where
        assert got.placed == want.placed, where
        assert sorted(got.dropped) == sorted(want.dropped), where
        assert world.st._dirty_rows.get("slots") == ref._dirty_rows.get("slots"), where
        world.st._dirty_rows.clear()
        before = _lists_follow(world, got, lists, before, where)
    assert world.st.planner.partial > world.st.planner.full  # the partial path is what ran


def test_a_failure_plans_only_its_service():
    st = DesiredState(cluster="t")
    st.apply(ClusterSpec(name="t", services={
        n: Service(name=n, image="veo/busybox", instances=2, cpus=0.1) for n in ("a", "b", "c")}))
    nodes = [NodeState(name=f"n{i}", cpus=4, memory=4 * GB) for i in range(3)]
    st.plan(nodes, drain_moves=1)
    slot = st.slots["b#1"]
    st.fold(Event(kind=EventKind.failed, service="b", instance=1, node=slot.node,
                  generation=slot.generation, status=S.failed))
    st.plan(nodes, drain_moves=1)
    assert st.planner.last_scope == {"b"} and st.slots["b#1"].outcome is S.failed
