"""The state store and the persisted form of services: what a restarted Scheduler reads back."""

from __future__ import annotations

from pathlib import Path

from veo.core.config import load_spec
from veo.core.reconcile import Slot
from veo.adapters.store import SqliteStore, dump_service, load_service

ROOT = Path(__file__).resolve().parents[2]


def test_sqlite_store_survives_reopening(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    slot = Slot("web#0", "web", 0, "group:g#0", "uno", 3, "abc", outcome="failed", reason="x")
    store.put_many({"slots": {"web#0": slot.to_json()}, "event_index": 41})
    store.put("event_index", 42)
    store.close()
    again = SqliteStore(tmp_path / "s.db")
    assert again.get("event_index") == 42
    assert Slot.from_json(again.get("slots")["web#0"]) == slot
    assert again.get("missing", "default") == "default"


def test_every_demo_service_round_trips_through_its_persisted_form():
    for svc in load_spec(ROOT / "cluster.yml").spec.services.values():
        back = load_service(dump_service(svc))
        assert back == svc
        assert back.spec_hash() == svc.spec_hash()  # no spurious new generation after a restart
