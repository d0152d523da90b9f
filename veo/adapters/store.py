"""The state store: the Scheduler's desired state, persisted before it acts.

SQLite in the veo state directory on the head node (one file per cluster). Chosen over Ray's GCS KV
because GCS keeps its KV only while the head node lives unless GCS fault tolerance (an external
Redis) is set up; a file on the head node survives a restart of the Scheduler actor and of the whole
Ray cluster on that machine. It holds *desired* state only (services, assignments, generations,
restart counts, terminal outcomes); actual state is always read back from the engines.

A ``MemoryStore`` with the same interface stands in for tests of the pure parts.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from veo.core.models import Service


class MemoryStore:
    """Keeps values in a dict; for tests and for clusters started without a state directory."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    def put(self, key: str, value: Any) -> None:
        self._data[key] = json.dumps(value, sort_keys=True)

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._data.get(key)
        return default if raw is None else json.loads(raw)

    def put_many(self, items: dict[str, Any]) -> None:
        for k, v in items.items():
            self.put(k, v)

    def close(self) -> None:
        pass


class SqliteStore(MemoryStore):
    """A key -> JSON table in one SQLite file. Writes are committed before they return."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the actor calls us from worker threads; one connection guarded by a lock is enough
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for key, value in self._db.execute("SELECT key, value FROM kv"):
            self._data[key] = value

    def put(self, key: str, value: Any) -> None:
        self.put_many({key: value})

    def put_many(self, items: dict[str, Any]) -> None:
        rows = [(k, json.dumps(v, sort_keys=True)) for k, v in items.items()]
        changed = [(k, v) for k, v in rows if self._data.get(k) != v]
        if not changed:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", changed)
            self._db.execute("COMMIT")
            self._data.update(changed)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def dump_service(svc: Service) -> dict:
    """Only the fields the user set: defaults re-read as 'set' would trip the cross-field rules.
    Secret contents are kept (the state is the Scheduler's own; every other dump masks them)."""
    return svc.model_dump(mode="json", exclude_unset=True, context={"secrets": "plain"})


def load_service(data: dict) -> Service:
    """Validated when it was applied; reloading must not fail on a rule tightened since."""
    return Service.model_validate(data, context={"defer_rules": True})


def open_store(path: str | Path | None) -> MemoryStore:
    return SqliteStore(path) if path else MemoryStore()
