"""Placement: filters, scorers and pending reasons, table-driven (in the manner of Nomad's Harness),
plus random clusters checked against invariants and against a brute-force reference."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from veo.core import placement
from veo.core.models import Service
from veo.core.placement import NodeState, Plan, Unit, explain, pending_reason, place, units_for

M = 1024**2
G = 1024**3


def node(name: str, role: str | None = None, **kw) -> NodeState:
    kw.setdefault("cpus", 4.0)
    kw.setdefault("memory", 8 * G)
    kw.setdefault("disk", 100 * G)
    return NodeState(name=name, role=role, **kw)


def unit(key: str = "web#0", spread: str | None = None, **kw) -> Unit:
    spread = spread or key.split("#")[0].split("@")[0]
    return Unit(key=key, spread=spread, copy=0, members=(spread,), **kw)


def svc(name: str, **kw) -> Service:
    return Service(name=name, image="veo/busybox:latest", **kw)


def services(*items: Service) -> dict[str, Service]:
    return {s.name: s for s in items}


# --------------------------------------------------------------------------------------------------
# Filters and pending reasons
# --------------------------------------------------------------------------------------------------

FILTER_CASES = [
    # (case, nodes, unit, expected node or None, expected pending reason or None)
    ("role match", [node("a", "web"), node("b", "db")], unit(roles=frozenset({"db"})), "b", None),
    ("role any of", [node("a", "web"), node("b", "db")], unit(roles=frozenset({"db", "x"})), "b", None),
    (
        "role filtered and memory exhausted",
        [node("a", "web"), node("b", "web"), node("c", "db", memory=1 * G, used_memory=924 * M)],
        unit(roles=frozenset({"db"}), memory=512 * M),
        None,
        "no node fits: 2 nodes filtered by role (needs one of: db), "
        "1 exhausted memory (needs 512M, best has 100M free)",
    ),
    (
        "node without a role never matches a role",
        [node("a")],
        unit(roles=frozenset({"db"})),
        None,
        "no node fits: 1 node filtered by role (needs one of: db)",
    ),
    ("hosts by name", [node("a"), node("b")], unit(hosts=frozenset({"b"})), "b", None),
    ("hosts by host", [node("a", host="m1"), node("b", host="m2")], unit(hosts=frozenset({"m2"})), "b", None),
    (
        "hosts none match",
        [node("a", host="m1"), node("b", host="m2")],
        unit(hosts=frozenset({"m3"})),
        None,
        "no node fits: 2 nodes filtered by host (needs one of: m3)",
    ),
    ("pinned", [node("a"), node("b")], unit(node="b"), "b", None),
    ("pinned dead", [node("dos", alive=False)], unit(node="dos"), None, "pinned node dos is not alive"),
    ("pinned cordoned", [node("dos", cordoned=True)], unit(node="dos"), None, "pinned node dos is cordoned"),
    ("pinned unknown", [node("a")], unit(node="dos"), None, "pinned node dos is not in the cluster"),
    (
        "pinned exhausted",
        [node("dos", memory=1 * G)],
        unit(node="dos", memory=2 * G),
        None,
        "pinned node dos: exhausted memory (needs 2G, has 1G free)",
    ),
    (
        "pinned but role filtered",
        [node("dos", "web")],
        unit(node="dos", roles=frozenset({"db"})),
        None,
        "pinned node dos: role web not allowed (needs one of: db)",
    ),
    (
        "cpus exhausted",
        [node("a", cpus=2.0, used_cpus=1.5), node("b", cpus=1.0)],
        unit(cpus=2.0),
        None,
        "no node fits: 2 nodes exhausted cpus (needs 2, best has 1 free)",
    ),
    (
        "disk exhausted",
        [node("a", disk=10 * G, used_disk=5 * G)],
        unit(disk=6 * G),
        None,
        "no node fits: 1 node exhausted disk (needs 6G, best has 5G free)",
    ),
    (
        "checks in order: first failure counts",
        [node("a", cpus=1.0), node("b", memory=1 * G), node("c", disk=1 * G)],
        unit(cpus=2.0, memory=2 * G, disk=2 * G),
        None,
        "no node fits: 1 node exhausted cpus (needs 2, best has 1 free), "
        "1 exhausted memory (needs 2G, best has 1G free), 1 exhausted disk (needs 2G, best has 1G free)",
    ),
    ("no nodes", [], unit(), None, "no nodes in the cluster"),
    ("all dead", [node("a", alive=False), node("b", alive=False)], unit(), None, "no node alive"),
    (
        "dead, cordoned and role",
        [node("a", "db", alive=False), node("b", "db", cordoned=True), node("c", "web")],
        unit(roles=frozenset({"db"})),
        None,
        "no node fits: 1 node not alive, 1 cordoned, 1 filtered by role (needs one of: db)",
    ),
    ("dead skipped", [node("a", alive=False), node("b")], unit(), "b", None),
    ("cordoned skipped", [node("a", cordoned=True), node("b", used_cpus=3.0)], unit(), "b", None),
    ("zero request fits an empty-capacity node", [node("a", cpus=0.0, memory=0, disk=0)], unit(), "a", None),
    ("zero request fits overcommitted cpus", [node("a", cpus=1.0, used_cpus=2.0)], unit(memory=M), "a", None),
    (
        "capacity 0 is taken as given",
        [node("a", cpus=0.0)],
        unit(cpus=0.5),
        None,
        "no node fits: 1 node exhausted cpus (needs 0.5, best has 0 free)",
    ),
    ("float cpus fit exactly", [node("a", cpus=0.3, used_cpus=0.1 + 0.1)], unit(cpus=0.1), "a", None),
]


@pytest.mark.parametrize("case,nodes,u,want_node,want_reason", FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filters(case, nodes, u, want_node, want_reason):
    plan = place(nodes, [u])
    assert plan.assignments.get(u.key) == want_node
    assert plan.pending.get(u.key) == want_reason
    if want_reason is not None:
        assert pending_reason(nodes, u) == want_reason  # the public function agrees with place()
        assert set(plan.rejections) == {u.key}
        assert set(plan.rejections[u.key]) == {n.name for n in nodes}
    else:
        assert dict(plan.rejections) == {}


def test_rejections_per_node():
    nodes = [
        node("a", "web"),
        node("b", "db", alive=False),
        node("c", "db", cpus=1.0),
        node("d", "db", cordoned=True),
    ]
    u = unit(roles=frozenset({"db"}), cpus=2.0)
    assert place(nodes, [u]).rejections[u.key] == {
        "a": "role web not allowed (needs one of: db)",
        "b": "not alive",
        "c": "exhausted cpus (needs 2, has 1 free)",
        "d": "cordoned",
    }


def test_explain_leaves_out_fitting_nodes():
    nodes = [node("a", cpus=1.0), node("b", cpus=8.0), node("c", host="m9")]
    assert explain(nodes, unit(cpus=2.0)) == {"a": "exhausted cpus (needs 2, has 1 free)"}
    assert explain(nodes, unit(node="b")) == {"a": "unit is pinned to b", "c": "unit is pinned to b"}
    assert explain(nodes, unit(hosts=frozenset({"m9"}))) == {
        "a": "host localhost not allowed (needs one of: m9)",
        "b": "host localhost not allowed (needs one of: m9)",
    }


def test_unknown_strategy_and_duplicate_nodes_are_errors():
    with pytest.raises(ValueError, match="spread or binpack"):
        place([node("a")], [unit()], strategy="random")
    with pytest.raises(ValueError, match="unique"):
        place([node("a"), node("a")], [unit()])


# --------------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------------


def test_group_is_one_unit_with_summed_resources_and_master_first():
    spec = services(
        svc("web", group="front", cpus=1, memory="512m"),
        svc("proxy", group="front", group_role="master", cpus=0.5, memory="256m", disk="1g"),
        svc("solo"),
    )
    units = units_for(spec, [node("a")])
    assert [u.key for u in units] == ["group:front#0", "solo#0"]
    g = units[0]
    assert g.members == ("proxy", "web")
    assert (g.cpus, g.memory, g.disk, g.spread) == (1.5, 768 * M, 1 * G, "group:front")


def test_group_constraints_intersect():
    spec = services(
        svc("a", group="g", roles=["web", "db"], hosts=["m1", "m2"]),
        svc("b", group="g", roles=["db", "cache"]),
        svc("c", group="g"),
    )
    (g,) = units_for(spec, [])
    assert g.roles == frozenset({"db"})
    assert g.hosts == frozenset({"m1", "m2"})
    assert g.unplaceable is None


def test_group_roles_that_do_not_overlap_are_unplaceable():
    spec = services(svc("app", group="front", roles=["web"]), svc("store", group="front", roles="db"))
    (g,) = units_for(spec, [node("a", "web"), node("b", "db")])
    plan = place([node("a", "web"), node("b", "db")], [g])
    want = "group front: members' roles do not overlap (app: web; store: db)"
    assert plan.pending == {"group:front#0": want}
    assert plan.rejections["group:front#0"] == {"a": want, "b": want}


def test_group_hosts_that_do_not_overlap_are_unplaceable():
    spec = services(svc("app", group="g", hosts=["m1"]), svc("store", group="g", hosts=["m2", "m3"]))
    (g,) = units_for(spec, [])
    assert g.unplaceable == "group g: members' hosts do not overlap (app: m1; store: m2, m3)"
    assert units_for({k: v.model_copy(update={"instances": "all"}) for k, v in spec.items()}, [node("a")]) == []


def test_group_lands_on_one_node_only_if_the_sum_fits():
    nodes = [node("a", memory=1 * G), node("b", memory=1 * G)]
    spec = services(svc("x", group="front", memory="768m"), svc("y", group="front", memory="768m"))
    (g,) = units_for(spec, nodes)
    plan = place(nodes, [g])
    assert plan.pending == {
        "group:front#0": "no node fits the 2 members of group front together: "
        "2 nodes exhausted memory (needs 1.5G, best has 1G free)"
    }
    alone = units_for(services(svc("x", memory="768m"), svc("y", memory="768m")), nodes)
    assert len(place(nodes, alone).assignments) == 2  # each member alone fits


def test_group_copies_spread_and_stay_whole():
    nodes = [node("a"), node("b"), node("c")]
    spec = services(svc("x", group="g", instances=2, cpus=1), svc("y", group="g", instances=2, cpus=1))
    plan = place(nodes, units_for(spec, nodes))
    assert plan.assignments == {"group:g#0": "a", "group:g#1": "b"}


# --------------------------------------------------------------------------------------------------
# Instances
# --------------------------------------------------------------------------------------------------


def test_instances_go_to_distinct_nodes():
    nodes = [node("a"), node("b"), node("c")]
    plan = place(nodes, units_for(services(svc("web", instances=3, cpus=0.1)), nodes))
    assert sorted(plan.assignments.values()) == ["a", "b", "c"]


def test_more_instances_than_nodes_share_nodes_evenly():
    nodes = [node("a"), node("b")]
    plan = place(nodes, units_for(services(svc("web", instances=5)), nodes))
    counts = sorted(list(plan.assignments.values()).count(n) for n in ("a", "b"))
    assert counts == [2, 3] and not plan.pending


def test_copies_share_a_node_when_only_one_fits():
    nodes = [node("a", cpus=8.0), node("b", cpus=1.0), node("c", role="db")]
    units = [unit(f"web#{i}", cpus=2.0) for i in range(3)]  # b is too small
    plan = place(nodes, units)
    assert plan.assignments == {"web#0": "a", "web#1": "c", "web#2": "a"}


def test_instances_all_one_pinned_unit_per_eligible_node():
    nodes = [node("n2", "web"), node("n1", "web"), node("n3", "db"), node("n4", "web", alive=False)]
    spec = services(svc("agent", instances="all", roles=["web"]), svc("app"))
    units = units_for(spec, nodes)
    assert [(u.key, u.node, u.copy) for u in units] == [
        ("agent@n1", "n1", 0),
        ("agent@n2", "n2", 1),
        ("app#0", None, 0),
    ]
    plan = place(nodes, units)
    assert plan.assignments["agent@n1"] == "n1" and plan.assignments["agent@n2"] == "n2"


def test_instances_all_keys_are_stable_when_a_node_joins():
    nodes = [node("b"), node("d")]
    spec = services(svc("agent", instances="all"))
    before = {u.key for u in units_for(spec, nodes)}
    after = {u.key for u in units_for(spec, [*nodes, node("a")])}
    assert before == {"agent@b", "agent@d"}
    assert after == before | {"agent@a"}


def test_instances_all_for_a_group():
    nodes = [node("a", "web"), node("b", "db")]
    spec = services(svc("x", group="g", instances="all", roles=["db"]), svc("y", group="g", instances="all"))
    assert [(u.key, u.members) for u in units_for(spec, nodes)] == [("group:g@b", ("x", "y"))]


def test_pinned_units_are_placed_before_movable_ones():
    nodes = [node("a", cpus=1.0)]
    spec = services(svc("app", cpus=1), svc("agent", instances="all", cpus=1))
    units = units_for(spec, nodes)
    assert [u.key for u in units] == ["agent@a", "app#0"]
    assert place(nodes, units).assignments == {"agent@a": "a"}


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------


def test_spread_prefers_least_allocated_and_binpack_most():
    nodes = [node("a", used_cpus=2.0), node("b", used_cpus=1.0), node("c", used_cpus=3.0)]
    assert place(nodes, [unit()]).assignments == {"web#0": "b"}
    assert place(nodes, [unit()], strategy="binpack").assignments == {"web#0": "c"}


def test_spread_uses_both_nodes_binpack_packs_one():
    nodes = [node("a"), node("b")]
    units = [unit("web#0", cpus=1.0), unit("api#0", cpus=1.0)]
    assert place(nodes, units).assignments == {"web#0": "a", "api#0": "b"}
    assert place(nodes, units, strategy="binpack").assignments == {"web#0": "a", "api#0": "a"}


def test_binpack_ignores_spread_keys():
    nodes = [node("a"), node("b")]
    units = [unit(f"web#{i}", cpus=1.0) for i in range(3)]
    assert set(place(nodes, units, strategy="binpack").assignments.values()) == {"a"}


def test_zero_request_units_still_spread():
    nodes = [node(n) for n in "abc"]
    plan = place(nodes, [unit(f"s{i}#0") for i in range(6)])
    assert sorted(plan.assignments.values()) == ["a", "a", "b", "b", "c", "c"]


def test_existing_copies_repel_new_ones():
    nodes = [node("a"), node("b", used_cpus=3.0)]
    assert place(nodes, [unit("web#1")], existing={"web": ["a"]}).assignments == {"web#1": "b"}
    assert place(nodes, [unit("web#1")], existing={"api": ["a"]}).assignments == {"web#1": "a"}
    # two copies already on a, one on b: the fewest copies wins over allocation
    both = place(nodes, [unit("web#3")], existing={"web": ["a", "a", "b"]})
    assert both.assignments == {"web#3": "b"}


def test_allocation_accumulates_within_a_call():
    nodes = [node("a", cpus=2.0)]
    units = [unit(f"s{i}#0", cpus=1.0) for i in range(3)]
    plan = place(nodes, units)
    assert plan.assignments == {"s0#0": "a", "s1#0": "a"}
    assert plan.pending == {"s2#0": "no node fits: 1 node exhausted cpus (needs 1, best has 0 free)"}


def test_deterministic_and_independent_of_node_order():
    rng = random.Random(3)
    nodes, units = random_cluster(rng, 40, 300)
    first = place(nodes, units)
    again = place(list(reversed(nodes)), units)
    assert first.assignments == again.assignments
    assert first.pending == again.pending
    assert dict(first.rejections) == dict(again.rejections)


# --------------------------------------------------------------------------------------------------
# Random clusters: invariants, and agreement with a brute-force reference
# --------------------------------------------------------------------------------------------------


def random_cluster(rng: random.Random, n_nodes: int, n_units: int) -> tuple[list[NodeState], list[Unit]]:
    roles = ["web", "db", "cache", None]
    nodes = []
    for i in range(n_nodes):
        cpus = float(rng.choice((1, 2, 4, 8)))
        memory = rng.choice((0, 1, 2, 4)) * G
        nodes.append(
            NodeState(
                name=f"n{i:03d}",
                role=rng.choice(roles),
                host=f"m{i // 3}",
                alive=rng.random() > 0.1,
                cordoned=rng.random() < 0.05,
                cpus=cpus,
                memory=memory,
                disk=rng.choice((10, 50)) * G,
                used_cpus=rng.choice((0.0, cpus / 2)),
                used_memory=rng.choice((0, memory // 4)),
            )
        )
    units = []
    names = [n.name for n in nodes]
    for i in range(n_units):
        spread = f"s{rng.randrange(n_units // 3 + 1)}"
        roll = rng.random()
        roles = frozenset(rng.sample(["web", "db", "cache"], rng.randint(1, 2)))
        hosts = frozenset({rng.choice(names), f"m{rng.randrange(n_nodes // 3 + 1)}"})
        units.append(
            Unit(
                key=f"{spread}#{i}",
                spread=spread,
                copy=i,
                members=(spread,),
                cpus=rng.choice((0.0, 0.1, 0.25, 0.5, 1.0, 3.0)),
                memory=rng.choice((0, 64 * M, 512 * M, 1 * G)),
                disk=rng.choice((0, 0, 1 * G, 20 * G)),
                roles=roles if roll < 0.3 else None,
                hosts=hosts if 0.3 <= roll < 0.4 else None,
                node=rng.choice(names) if 0.4 <= roll < 0.45 else None,
            )
        )
    return nodes, units


def reference_place(nodes: list[NodeState], units: list[Unit], strategy: str, existing: dict) -> Plan:
    """The documented objective by brute force: every node, every unit."""
    state = {n.name: n for n in nodes}
    placed = {n.name: 0 for n in nodes}
    copies: dict[str, dict[str, int]] = {k: {} for k in existing}
    for k, names in existing.items():
        for name in names:
            copies[k][name] = copies[k].get(name, 0) + 1
    plan = Plan()
    for u in units:
        fitting = [n for n in state.values() if not explain([n], u) and u.unplaceable is None]
        if not fitting:
            plan.pending[u.key] = "?"
            continue

        def score(n: NodeState):
            load = reference_load(n)
            if strategy == "binpack":
                return (-load, -placed[n.name], n.name)
            return (copies.get(u.spread, {}).get(n.name, 0), load, placed[n.name], n.name)

        best = min(fitting, key=score)
        state[best.name] = add(best, u)
        placed[best.name] += 1
        copies.setdefault(u.spread, {})[best.name] = copies.get(u.spread, {}).get(best.name, 0) + 1
        plan.assignments[u.key] = best.name
    return plan


def add(n: NodeState, u: Unit) -> NodeState:
    return replace(
        n, used_cpus=n.used_cpus + u.cpus, used_memory=n.used_memory + u.memory, used_disk=n.used_disk + u.disk
    )


def reference_load(n: NodeState) -> float:
    dims = sum(1 for c in (n.cpus, n.memory, n.disk) if c > 0) or 1
    w = [1.0 / (c * dims) if c > 0 else 0.0 for c in (n.cpus, n.memory, n.disk)]
    return n.used_cpus * w[0] + n.used_memory * w[1] + n.used_disk * w[2]


def check_invariants(nodes: list[NodeState], units: list[Unit], plan: Plan) -> None:
    state = {n.name: n for n in nodes}
    for u in units:  # replay in order: every assignment passed every check at its time
        if u.key in plan.pending:
            assert u.key not in plan.assignments
            continue
        name = plan.assignments[u.key]
        assert explain([state[name]], u) == {}, (u, state[name])
        if u.node is not None:
            assert name == u.node
        n = state[name]
        state[name] = add(n, u)
    assert len(plan.assignments) + len(plan.pending) == len(units)
    for before in nodes:  # nothing placed here pushed a node over capacity
        after = state[before.name]
        for used, total, old in (
            (after.used_cpus, after.cpus, before.used_cpus),
            (after.used_memory, after.memory, before.used_memory),
            (after.used_disk, after.disk, before.used_disk),
        ):
            assert used == old or used <= total + 1e-9


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
@pytest.mark.parametrize("scan_limit", [1, 3, 16])
@pytest.mark.parametrize("seed", range(12))
def test_random_clusters(seed, scan_limit, strategy, monkeypatch):
    monkeypatch.setattr(placement, "SCAN_LIMIT", scan_limit)  # small limits force the linear path
    rng = random.Random(seed)
    nodes, units = random_cluster(rng, rng.randint(1, 60), rng.randint(1, 400))
    existing = {f"s{i}": [rng.choice(nodes).name] for i in range(5)}
    plan = place(nodes, units, strategy=strategy, existing=existing)
    check_invariants(nodes, units, plan)
    ref = reference_place(nodes, units, strategy, existing)
    assert plan.assignments == ref.assignments
    assert set(plan.pending) == set(ref.pending)
    for key in plan.pending:
        assert plan.pending[key]
        assert set(plan.rejections[key]) == {n.name for n in nodes}


def test_bench_quick_smoke():
    from bench.placement import run

    rows = run(quick=True)
    assert rows and all(r["placed"] > 0.9 * r["units"] for r in rows)
