"""The same behaviours for MemoryStore, SqliteStore and RedisStore (a real redis-server)."""

from __future__ import annotations

import pytest

from veo.adapters.event_log import EventLog, event_key
from veo.adapters.store import open_store, prefix_end
from veo.adapters.store_redis import RedisStore, split_url
from veo.core.records import Event, EventKind


def test_get_put_and_defaults(store):
    assert store.get("spec/cluster") is None
    assert store.get("spec/cluster", {"name": "x"}) == {"name": "x"}
    store.put("spec/cluster", {"name": "veo", "n": [1, 2.5, None, True]})
    assert store.get("spec/cluster") == {"name": "veo", "n": [1, 2.5, None, True]}
    store.put_many({"a": 1, "b": "two"})
    assert (store.get("a"), store.get("b")) == (1, "two")


def test_scan_is_ordered_and_bounded_by_prefix(store):
    keys = ["slot/web#1", "slot/web#0", "slot/db#0", "slotx/no", "slos/no", "slot/ü#0", "slot/"]
    store.write({k: i for i, k in enumerate(keys)})
    got = store.scan("slot/")
    assert list(got) == ["slot/", "slot/db#0", "slot/web#0", "slot/web#1", "slot/ü#0"]
    assert got["slot/web#0"] == 1
    assert list(store.scan("slot/web")) == ["slot/web#0", "slot/web#1"]
    assert store.scan("nothing/") == {}
    assert list(store.scan("slot/", start="slot/e", limit=2)) == ["slot/web#0", "slot/web#1"]
    assert list(store.scan("", limit=3)) == sorted(keys)[:3]


def test_write_puts_and_deletes_together(store):
    store.write({"slot/a#0": 1, "slot/b#0": 2, "slot/c#0": 3})
    store.write({"slot/d#0": 4, "slot/a#0": 10}, deletes=["slot/b#0", "slot/missing"])
    assert store.scan("slot/") == {"slot/a#0": 10, "slot/c#0": 3, "slot/d#0": 4}
    # a key both put and deleted in one write is put (deletes are of what was there before)
    store.write({"slot/c#0": 30}, deletes=["slot/c#0"])
    assert store.get("slot/c#0") == 30
    store.write(deletes=["slot/a#0", "slot/c#0", "slot/d#0"])
    assert store.scan("slot/") == {}
    store.write()  # nothing to do is fine


def test_values_survive_reopening(reopen):
    first = reopen()
    first.write({"spec/cluster": {"name": "veo"}, **{f"slot/s#{i}": {"node": "uno"} for i in range(50)}})
    first.close()
    again = reopen()
    assert again.get("spec/cluster") == {"name": "veo"}
    assert len(again.scan("slot/")) == 50


def test_a_stored_value_is_a_copy(store):
    value = {"list": [1]}
    store.put("k", value)
    value["list"].append(2)
    assert store.get("k") == {"list": [1]}


def _events(start: int, n: int) -> list[Event]:
    return [Event(index=i, kind=EventKind.started, service="web", instance=i % 3, reason=f"#{i}")
            for i in range(start, start + n)]


def test_event_log_appends_trims_and_reads_since(reopen):
    log = EventLog(reopen(), keep=5)
    assert log.last_index() == 0 and log.recent() == []
    log.append(_events(1, 3))
    log.append(_events(4, 4))  # 7 events, 5 kept: 3..7
    assert [e.index for e in log.recent(10)] == [3, 4, 5, 6, 7]
    assert [e.index for e in log.since(5)] == [6, 7]
    assert [e.index for e in log.since(0, limit=2)] == [3, 4]
    assert log.since(7) == []
    again = EventLog(reopen(), keep=5)
    assert again.last_index() == 7
    assert [e.reason for e in again.recent(2)] == ["#6", "#7"]
    assert len(again.store.scan("event/")) == 5  # trimmed rows are gone, not just hidden
    again.append(_events(8, 12))  # a batch larger than what is kept
    assert [e.index for e in again.recent(100)] == [15, 16, 17, 18, 19]
    assert list(again.store.scan("event/")) == [event_key(i) for i in range(15, 20)]


def test_event_log_refuses_a_gap_and_skips_to_a_legacy_counter(store):
    log = EventLog(store, keep=10)
    log.append(_events(1, 2))
    with pytest.raises(ValueError, match="continue from 2"):
        log.append(_events(5, 1))
    log.skip_to(41)  # a store that only kept the 'event_index' counter
    log.append(_events(42, 1))
    assert [e.index for e in log.recent()] == [42]
    assert store.scan("event/") == {event_key(42): log.recent()[0].model_dump(mode="json")}


def test_prefix_end():
    assert prefix_end("slot/") == "slot0"
    assert prefix_end("") is None
    assert prefix_end("a\U0010ffff") == "b"


def test_open_store_by_path_or_url(tmp_path, redis_server):
    assert type(open_store(None)).__name__ == "MemoryStore"
    assert type(open_store(tmp_path / "x.db")).__name__ == "SqliteStore"
    store = open_store(redis_server.url + "?prefix=open:")
    assert isinstance(store, RedisStore)
    store.put("k", 1)
    assert redis_server.client.hget("open:kv", "k") == b"1"
    assert split_url("redis://:pw@h:1/2?prefix=p:&ssl_cert_reqs=none") == (
        "redis://:pw@h:1/2?ssl_cert_reqs=none", "p:")


def test_an_unreachable_redis_is_a_clear_error(redis_server):
    from veo.adapters.store import StoreError
    from bench.redis_server import free_port

    with pytest.raises(StoreError, match=r"state store redis://127\.0\.0\.1:\d+/0 is not reachable"):
        RedisStore(f"redis://127.0.0.1:{free_port()}/0")

