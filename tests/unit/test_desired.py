"""The Scheduler's desired state as one value: apply, fold, drain check, persistence — pure."""

from __future__ import annotations

import pytest

from veo.adapters.store import MemoryStore, SqliteStore
from veo.core.desired import DesiredState
from veo.core.errors import Conflict, NotFound, PolicyError
from veo.core.models import ClusterSpec, Event, EventKind, InstanceStatus, Node, Service
from veo.core.placement import NodeState

S = InstanceStatus


def spec(*names: str, cluster: str = "demo", **fields) -> ClusterSpec:
    return ClusterSpec(name=cluster, services={n: Service(name=n, image="veo/busybox", **fields)
                                               for n in names})


def nodes(*names: str) -> list[NodeState]:
    return [NodeState(name=n, alive=True, cpus=4, memory=8 << 30) for n in names]


def placed(*names: str) -> DesiredState:
    st = DesiredState()
    st.apply(spec(*names))
    st.plan(nodes("uno", "dos"), drain_moves=None)
    return st


def ev(kind: EventKind, key: str = "web#0", status: S | None = None, **kw) -> Event:
    service, _, n = key.partition("#")
    return Event(kind=kind, service=service, instance=int(n), status=status, generation=1, **kw)


def test_apply_reports_changes_by_kind():
    st = DesiredState()
    assert st.apply(spec("a", "b"))["added"] == ["a", "b"]
    changes = st.apply(ClusterSpec(name="demo", services={
        "a": Service(name="a", image="veo/busybox"),
        "c": Service(name="c", image="veo/httpd")}))
    assert changes == {"added": ["c"], "changed": [], "removed": ["b"], "unchanged": ["a"]}
    assert set(st.removed) == {"b"}


def test_apply_refuses_another_cluster_and_what_the_policy_refuses():
    st = placed("web")
    with pytest.raises(Conflict, match="named 'demo'"):
        st.apply(spec("web", cluster="other"))
    with pytest.raises(PolicyError, match="allow_privileged"):
        DesiredState().apply(spec("p", privileged=True))


def test_fold_keeps_outcomes_and_counts_and_a_start_clears_the_outcome():
    st = placed("web")
    st.fold(ev(EventKind.exited, status=S.exited, restarts=2))
    assert st.restarts["web#0"] == 2 and st.slots["web#0"].outcome is None
    st.fold(ev(EventKind.completed, status=S.completed, reason="exited with code 0"))
    assert st.slots["web#0"].outcome is S.completed
    st.fold(ev(EventKind.killed, status=S.failed, reason="killed: health check unhealthy"))
    assert st.slots["web#0"].outcome is S.failed
    st.fold(ev(EventKind.restarted, status=S.running, restarts=1))
    assert st.slots["web#0"].outcome is None and st.restarts["web#0"] == 2  # counts only grow


def test_fold_ignores_other_generations_and_unknown_instances():
    st = placed("web")
    st.fold(Event(kind=EventKind.failed, service="web", instance=0, generation=7, status=S.failed))
    st.fold(ev(EventKind.failed, key="nope#0", status=S.failed))
    assert st.slots["web#0"].outcome is None


def test_an_outcome_survives_a_replan_of_the_same_generation():
    st = placed("web")
    st.fold(ev(EventKind.completed, status=S.completed))
    st.plan(nodes("uno", "dos"), drain_moves=None)
    assert st.slots["web#0"].outcome is S.completed


def test_removing_a_service_forgets_its_restart_counts():
    """Defect: after `veo down`/`veo up` (or rm and re-add) the old count showed in `veo ps`."""
    st = placed("web", "db")
    st.fold(ev(EventKind.restarted, status=S.running, restarts=3))
    st.fold(ev(EventKind.restarted, key="db#0", status=S.running, restarts=1))
    st.remove_service("web")
    assert st.restarts == {"db#0": 1}
    st.apply(spec("web"))  # db removed by this apply
    assert st.restarts == {}


def test_clear_leaves_nothing_of_the_cluster():
    st = placed("web")
    st.fold(ev(EventKind.restarted, status=S.running, restarts=3))
    st.cordon("uno", True)
    st.clear()
    assert (st.services, st.slots, st.restarts, st.cordoned, st.draining) == ({}, {}, {}, set(), set())
    assert set(st.removed) == {"web"}


def test_revive_clears_an_outcome_and_names_unknown_instances():
    st = placed("web")
    assert st.revive("web#0") is False
    st.fold(ev(EventKind.failed, status=S.failed))
    assert st.revive("web#0") is True and st.slots["web#0"].outcome is None
    with pytest.raises(NotFound, match="no instance nope#0"):
        st.revive("nope#0")


def test_drain_blockers_name_the_units_that_fit_nowhere_else():
    st = DesiredState()
    st.apply(spec("big", cpus=3))
    st.plan(nodes("uno", "dos"), drain_moves=None)
    node = st.slots["big#0"].node
    other = "dos" if node == "uno" else "uno"
    small = [NodeState(name=node, alive=True, cpus=4, memory=8 << 30, cordoned=True),
             NodeState(name=other, alive=True, cpus=1, memory=8 << 30)]
    assert list(st.drain_blockers(node, small)) == ["big#0"]
    assert st.drain_blockers(node, nodes("uno", "dos")) == {}


def test_pending_events_only_for_new_reasons():
    st = DesiredState()
    st.apply(spec("huge", cpus=64))
    result = st.plan(nodes("uno"), drain_moves=None)
    first = st.unit_events(result, {}, with_pending=True)
    assert [e.kind for e in first] == [EventKind.pending] and "cpu" in first[0].reason
    assert st.unit_events(result, result.pending, with_pending=True) == []
    assert st.unit_events(result, {}, with_pending=False) == []


@pytest.mark.parametrize("make_store", [MemoryStore, "sqlite"])
def test_save_then_load_gives_the_same_value(make_store, tmp_path):
    store = SqliteStore(tmp_path / "s.db") if make_store == "sqlite" else make_store()
    st = placed("web", "db")
    st.add_node(Node(name="uno", role="front"))
    st.fold(ev(EventKind.failed, status=S.failed, reason="boom", restarts=4))
    st.cordon("dos", True)
    st.next_index()
    st.save(store)
    back = DesiredState.load(store)
    assert back == st
    assert back.slots["web#0"].outcome is S.failed and back.event_index == 1


def test_save_writes_only_what_changed():
    class Recording(MemoryStore):
        def __init__(self):
            super().__init__()
            self.writes: list[set[str]] = []

        def write(self, puts=None, deletes=()):
            deletes = list(deletes)
            self.writes.append(set(puts or {}) | set(deletes))
            super().write(puts, deletes)

    store = Recording()
    st = placed("web")
    st.save(store)
    st.save(store)  # nothing changed: nothing written
    st.fold(ev(EventKind.restarted, status=S.running, restarts=1))
    st.save(store)
    assert len(store.writes) == 2 and store.writes[1] == {"restart/web#0"}  # one row per event


def test_a_store_written_as_blobs_loads_and_is_rewritten_as_rows():
    store = MemoryStore()
    st = placed("web")
    store.write({"cluster": "veo", "slots": {k: s.to_json() for k, s in st.slots.items()},
                 "restarts": {"web#0": 2}})
    back = DesiredState.load(store)
    assert back.slots == st.slots and back.restarts == {"web#0": 2}
    back.save(store)
    assert store.get("slots") is None and store.get("restarts") is None
    assert set(store.scan("slot/")) == {"slot/web#0"} and store.get("restart/web#0") == 2


def test_an_apply_the_store_refuses_changes_nothing():
    """A full disk makes apply fail with the store's error, and the value in memory is as it was
    (as it is in the store): nothing half-applied."""
    from veo.adapters.store import StoreFull

    class Full(MemoryStore):
        full = False

        def write(self, puts=None, deletes=()):
            if self.full:
                raise StoreFull("state store /x is full: no space left on device")
            super().write(puts, deletes)

    store = Full()
    st = placed("web")
    st.save(store)
    before = (dict(st.services), dict(st.slots), st.spec_index, dict(st.versions), dict(st.removed))
    store.full = True
    with pytest.raises(StoreFull, match="is full"):
        st.transact(store, lambda: st.apply(spec("db")))
    assert (dict(st.services), dict(st.slots), st.spec_index, dict(st.versions), dict(st.removed)) == before
    assert DesiredState.load(store) == st
    store.full = False
    st.transact(store, lambda: st.apply(spec("db")))
    assert DesiredState.load(store).services.keys() == {"db"}


def test_removed_names_are_forgotten_after_an_hour_and_old_stores_load():
    from veo.adapters.store import MemoryStore
    from veo.core.desired import REMOVED_KEEP

    st = DesiredState()
    st.apply(ClusterSpec(name="veo", services={"a": Service(name="a", image="veo/busybox")}), now=0.0)
    st.apply(ClusterSpec(name="veo", services={}), now=10.0)
    assert st.removed == {"a": 10.0}
    st.apply(ClusterSpec(name="veo", services={"b": Service(name="b", image="veo/busybox")}),
             now=10.0 + REMOVED_KEEP)
    st.apply(ClusterSpec(name="veo", services={}), now=11.0 + REMOVED_KEEP)
    assert set(st.removed) == {"b"}  # a's removal is an hour old: forgotten, b's is new
    store = MemoryStore()
    store.write({"removed": ["x", "y"]})  # a store from before removals had times
    assert set(DesiredState.load(store).removed) == {"x", "y"}
