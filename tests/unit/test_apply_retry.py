"""An apply interrupted by a Scheduler crash: its spec reaches the store in one write, and the
call Ray re-sends to the restarted Scheduler (``max_task_retries``) gives the right answer."""

from __future__ import annotations

import pytest

from veo.adapters.store import MemoryStore, SqliteStore
from veo.core.desired import DesiredState
from veo.core.errors import Conflict
from veo.core.models import ClusterSpec, Node, Service, Settings

SPEC_PARTS = {"cluster", "services", "settings", "policy", "nodes", "removed", "spec_index"}


def spec(*names: str, version: str = "1", grace: float = 60.0) -> ClusterSpec:
    return ClusterSpec(name="demo", nodes=[Node(name="uno", cpus=4, memory="4g")],
                       settings=Settings(orphan_grace=grace),
                       services={n: Service(name=n, image="veo/busybox", environment={"V": version})
                                 for n in names})


class Recording(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[set[str], set[str]]] = []

    def write(self, puts=None, deletes=()) -> None:
        self.writes.append((set(puts or {}), set(deletes)))
        super().write(puts, deletes)


def test_an_apply_reaches_the_store_in_one_write():
    store = Recording()
    st = DesiredState.load(store)
    st.transact(store, lambda: st.apply(spec("a", "b", "c")))
    st.plan([], drain_moves=None)  # nothing to place on: the slots come in later writes anyway
    st.save(store)
    store.writes.clear()
    st.transact(store, lambda: st.apply(spec("b", "c", "d", version="2", grace=61.0)))
    assert len(store.writes) == 1  # a kill lands before or after it: never half of it
    assert SPEC_PARTS | {"versions"} <= store.writes[0][0]


def test_a_retried_compare_and_set_apply_that_landed_is_not_a_conflict(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    st = DesiredState.load(store)
    st.transact(store, lambda: st.apply(spec("a", "b")))
    target = spec("b", "c", version="2")
    st.transact(store, lambda: st.apply(target, check_index=1))
    again = DesiredState.load(store)  # the restarted Scheduler, then Ray's retry of the call
    changes = again.transact(store, lambda: again.apply(target, check_index=1))
    assert changes == {"added": [], "changed": [], "removed": [], "unchanged": ["b", "c"]}
    assert again.spec_index == 2 and DesiredState.load(store).spec() == target


def test_a_stale_index_is_still_a_conflict(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    st = DesiredState.load(store)
    st.transact(store, lambda: st.apply(spec("a")))
    st.transact(store, lambda: st.apply(spec("a", "b"), check_index=1))
    with pytest.raises(Conflict, match="spec index is 2, not 1"):
        st.apply(spec("a", "c"), check_index=1)  # another spec: someone else applied
    st.transact(store, lambda: st.apply(spec("a", "b", version="3")))
    with pytest.raises(Conflict, match="spec index is 3, not 1"):
        st.apply(spec("a", "b", version="3"), check_index=1)  # two applies since: not a retry
