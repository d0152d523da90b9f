"""The pure steps between placement and the engines: slots (reconcile) and an agent's converge plan."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from veo.core.converge import plan_converge
from veo.core.models import InstanceStatus, Service
from veo.core.placement import NodeState
from veo.core.reconcile import assignments_for, reconcile

GB = 1024**3


def svc(name: str, **kw) -> Service:
    return Service(name=name, image="veo/busybox", **kw)


def nodes(*names: str, dead: tuple[str, ...] = (), cordoned: tuple[str, ...] = ()) -> list[NodeState]:
    return [NodeState(n, cpus=4, memory=4 * GB, disk=10 * GB, alive=n not in dead,
                      cordoned=n in cordoned) for n in names]


def run(services, ns, slots=None, **kw):
    return reconcile({s.name: s for s in services}, ns, slots or {}, **kw)


def test_first_placement_makes_generation_one_slots():
    r = run([svc("web", instances=2)], nodes("uno", "dos"))
    assert {s.node for s in r.slots.values()} == {"uno", "dos"}  # spread: distinct nodes
    assert {s.generation for s in r.slots.values()} == {1}
    assert set(r.placed) == {"web#0", "web#1"} and not r.pending


def test_second_step_keeps_everything_as_it_is():
    services = [svc("web", instances=2), svc("m", group="g", group_role="master"), svc("s", group="g")]
    first = run(services, nodes("uno", "dos"))
    second = run(services, nodes("uno", "dos"), first.slots)
    assert second.slots == first.slots and not second.placed and not second.dropped


def test_a_group_is_one_unit_on_one_node():
    r = run([svc("m", group="g", group_role="master"), svc("s", group="g")], nodes("uno", "dos"))
    assert r.slots["m#0"].node == r.slots["s#0"].node
    assert r.slots["m#0"].unit == r.slots["s#0"].unit == "group:g#0"


def test_a_lost_node_moves_its_units_under_a_new_generation():
    services = [svc("m", group="g", group_role="master"), svc("s", group="g"), svc("solo", hosts=["uno"])]
    first = run(services, nodes("uno", "dos"), strategy="binpack")
    lost = first.slots["m#0"].node
    after = run(services, nodes("uno", "dos", dead=(lost,)), first.slots)
    assert after.slots["m#0"].node != lost and after.slots["m#0"].generation == 2
    assert after.slots["s#0"].node == after.slots["m#0"].node


def test_a_unit_that_cannot_move_keeps_its_stale_slot_and_is_pending():
    services = [svc("solo", hosts=["uno"])]
    first = run(services, nodes("uno", "dos"))
    after = run(services, nodes("uno", "dos", dead=("uno",)), first.slots)
    assert after.slots["solo#0"] == first.slots["solo#0"]  # if uno returns, nothing churns
    assert "solo#0" in after.pending


def test_a_changed_service_gets_a_new_generation_others_do_not():
    first = run([svc("a"), svc("b")], nodes("uno"))
    after = run([svc("a", command=["sleep", "9"]), svc("b")], nodes("uno"), first.slots)
    assert after.slots["a#0"].generation == 2 and after.slots["b#0"].generation == 1


def test_removed_services_and_instances_are_dropped():
    first = run([svc("a", instances=3), svc("b")], nodes("uno", "dos"))
    after = run([svc("a", instances=1)], nodes("uno", "dos"), first.slots)
    assert sorted(after.slots) == ["a#0"] and after.dropped == ["a#1", "a#2", "b#0"]


def test_instances_all_keeps_numbers_and_slots_of_lost_or_cordoned_nodes():
    every = [svc("mon", instances="all")]
    first = run(every, nodes("a", "b", "c"))
    numbers = {s.node: s.instance for s in first.slots.values()}
    assert sorted(numbers.values()) == [0, 1, 2]
    after = run(every, nodes("a", "b", "c", dead=("b",), cordoned=("c",)), first.slots)
    assert {s.node: s.instance for s in after.slots.values()} == numbers
    joined = run(every, nodes("a", "b", "c", "d"), first.slots)
    assert {s.node: s.instance for s in joined.slots.values()} == {**numbers, "d": 3}


def test_drain_moves_everything_or_one_unit_at_a_time():
    services = [svc("a", hosts=["uno", "dos"]), svc("b", hosts=["uno", "dos"])]
    on_uno = run(services, nodes("uno", "dos", cordoned=("dos",)))
    assert {s.node for s in on_uno.slots.values()} == {"uno"}
    ns = nodes("uno", "dos", cordoned=("uno",))
    all_at_once = run(services, ns, on_uno.slots, draining={"uno"})
    assert {s.node for s in all_at_once.slots.values()} == {"dos"}
    one = run(services, ns, on_uno.slots, draining={"uno"}, drain_moves=1)
    assert sorted(s.node for s in one.slots.values()) == ["dos", "uno"]
    none_yet = run(services, ns, on_uno.slots, draining={"uno"}, drain_moves=0)
    assert none_yet.slots == on_uno.slots
    rest = run(services, ns, one.slots, draining={"uno"}, drain_moves=1)
    assert {s.node for s in rest.slots.values()} == {"dos"}


def test_ended_instances_hold_no_resources():
    big = [svc("a", memory="3g"), svc("b", memory="3g")]
    first = run(big[:1], nodes("uno"))
    ended = {k: replace(s, outcome=InstanceStatus.completed) for k, s in first.slots.items()}
    assert "b#0" in run(big, nodes("uno"), first.slots).pending
    assert run(big, nodes("uno"), ended).slots["b#0"].node == "uno"


def test_assignments_carry_members_in_declared_order_and_outcomes():
    services = {s.name: s for s in [svc("s", group="g"), svc("m", group="g", group_role="master",
                                                               group_policy="master_kills_all")]}
    r = reconcile(services, nodes("uno"), {})
    slots = {**r.slots, "s#0": replace(r.slots["s#0"], outcome=InstanceStatus.failed, reason="boom")}
    out = assignments_for("uno", slots, services, r.unit_members, {"m#0": 4})
    assert [a.key for a in out] == ["m#0", "s#0"]  # master first
    assert out[0].members == ("m#0", "s#0") and out[0].policy.value == "master_kills_all"
    assert out[0].restarts == 4 and out[0].outcome is None
    assert out[1].outcome is InstanceStatus.failed and out[1].reason == "boom"
    assert assignments_for("dos", slots, services, r.unit_members) == []


@dataclass
class C:
    id: str
    labels: dict = field(default_factory=dict)
    running: bool = True
    status: str = "running"


def veo_c(cid, service, instance, gen):
    return C(cid, {"veo.service": service, "veo.instance": str(instance), "veo.generation": str(gen)})


def test_converge_plan_adopts_creates_removes_and_finds_orphans():
    services = {"a": svc("a", instances=3), "b": svc("b")}
    r = reconcile(services, nodes("uno"), {})
    slots = {**r.slots, "a#2": replace(r.slots["a#2"], generation=2, outcome=InstanceStatus.failed)}
    desired = assignments_for("uno", slots, services, r.unit_members)
    containers = [
        veo_c("c0", "a", 0, 1),          # adopt
        veo_c("c0b", "a", 0, 1),         # a twin of the same identity: not adopted twice
        veo_c("c1", "a", 1, 7),          # wrong generation: stale, removed
        veo_c("c2", "a", 2, 2),          # held (failed): adopted, not re-created
        veo_c("g", "ghost", 0, 1),       # service nobody knows: orphan
        C("x", {"veo.service": "a"}),    # unreadable identity: orphan, never adopted
    ]
    plan = plan_converge(desired, containers, set(services))
    assert {k: c.id for k, c in plan.adopt.items()} == {"a#0": "c0", "a#2": "c2"}
    assert sorted(c.id for c in plan.remove) == ["c0b", "c1"]
    assert sorted(c.id for c in plan.orphans) == ["g", "x"]
    assert [a.key for a in plan.create] == ["a#1", "b#0"]
