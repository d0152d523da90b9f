"""The state store: the Scheduler's desired state, persisted before it acts.

One interface, three implementations with the same layout: keys are strings whose prefix says what
they hold (``spec/cluster``, ``slot/web#0``, ``event/000000000123``), values are JSON.

* ``SqliteStore`` - the single-machine default: one file in the veo state directory on the head
  node. It survives a restart of the Scheduler actor and of the whole Ray cluster on that machine.
* ``RedisStore`` (``veo.adapters.store_redis``) - when the cluster has a Redis (``redis://...``):
  the state then survives the loss of the head *machine*.
* ``MemoryStore`` - a dict, for tests of the pure parts and clusters started without a state dir.

Operations: ``get``, ``scan(prefix)`` (ordered by key), and ``write(puts, deletes)``, which is
atomic: after a crash at any instant (kill -9, power loss) either all of one write is stored or
none of it. Writing one row costs O(1) whatever else is stored, so the Scheduler writes one row
per slot that changed, never all slots. A write the store cannot take (disk full) raises
``StoreError`` and changes nothing. It holds *desired* state only; actual state is always read
back from the engines.
"""

from __future__ import annotations

import json
import resource
import shutil
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# the persisted form of services belongs to the desired state (re-exported for old callers)
from veo.core.desired import dump_service, load_service  # noqa: F401
from veo.core.errors import VeoError


class StoreError(VeoError):
    """The state store refused a read or a write (unreachable, corrupt); nothing changed."""

    http_status = 503


class StoreFull(StoreError):
    """The state store has no room for a write (disk full, Redis at maxmemory); nothing changed."""

    http_status = 507  # Insufficient Storage


def encode(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound).
    Code-point order, which is also the byte order of UTF-8 that SQLite and Redis compare in."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


class Store:
    """The interface. Subclasses implement ``_get``, ``_scan`` and ``_write`` on encoded values."""

    name = "memory"

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._get(key)
        return default if raw is None else json.loads(raw)

    def scan(self, prefix: str = "", *, start: str | None = None,
             limit: int | None = None) -> dict[str, Any]:
        """Rows whose key starts with ``prefix`` (and is >= ``start``), ordered by key."""
        lo = max(prefix, start) if start is not None else prefix
        return {k: json.loads(v) for k, v in self._scan(lo, prefix_end(prefix), limit)}

    def write(self, puts: dict[str, Any] | None = None, deletes: Iterable[str] = ()) -> None:
        """Store ``puts`` and remove ``deletes`` in one atomic step."""
        rows = {k: encode(v) for k, v in (puts or {}).items()}
        gone = [k for k in dict.fromkeys(deletes) if k not in rows]
        if rows or gone:
            self._write(rows, gone)

    def put(self, key: str, value: Any) -> None:
        self.write({key: value})

    def put_many(self, items: dict[str, Any]) -> None:
        self.write(items)

    def close(self) -> None:
        pass

    def _get(self, key: str) -> str | None:
        raise NotImplementedError

    def _scan(self, lo: str, hi: str | None, limit: int | None) -> list[tuple[str, str]]:
        raise NotImplementedError

    def _write(self, rows: dict[str, str], deletes: list[str]) -> None:
        raise NotImplementedError


class MemoryStore(Store):
    """Keeps encoded values in a dict (so a caller mutating a value it put changes nothing)."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    def _get(self, key: str) -> str | None:
        return self._data.get(key)

    def _scan(self, lo: str, hi: str | None, limit: int | None) -> list[tuple[str, str]]:
        with self._lock:
            keys = sorted(k for k in self._data if k >= lo and (hi is None or k < hi))
            return [(k, self._data[k]) for k in keys[:limit]]

    def _write(self, rows: dict[str, str], deletes: list[str]) -> None:
        with self._lock:
            self._data.update(rows)
            for k in deletes:
                self._data.pop(k, None)


class SqliteStore(Store):
    """A key -> JSON table in one SQLite file, one transaction per write (WAL journal: a kill -9
    or a power loss mid-write leaves the previous state; ``synchronous=NORMAL`` means a power loss
    may lose the last few commits, a process crash none)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self._lock = threading.Lock()  # the actor calls us from worker threads: one connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.name, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        except (OSError, sqlite3.Error) as e:
            raise self._error(e, "cannot be opened") from None

    def _get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _scan(self, lo: str, hi: str | None, limit: int | None) -> list[tuple[str, str]]:
        sql, args = "SELECT key, value FROM kv WHERE key >= ?", [lo]
        if hi is not None:
            sql, args = sql + " AND key < ?", [*args, hi]
        sql += " ORDER BY key LIMIT ?"
        with self._lock:
            return self._db.execute(sql, [*args, -1 if limit is None else limit]).fetchall()

    def _write(self, rows: dict[str, str], deletes: list[str]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                                     rows.items())
                self._db.executemany("DELETE FROM kv WHERE key = ?", ((k,) for k in deletes))
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                raise self._error(e, "refused a write") from None

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the transaction is gone with the failed statement; nothing was committed

    def _error(self, e: Exception, what: str) -> StoreError:
        code = getattr(e, "sqlite_errorcode", None)
        # ENOSPC is SQLITE_FULL; a write past a file-size limit (ulimit -f) is a plain I/O error
        io_error = (code or 0) & 0xFF == sqlite3.SQLITE_IOERR
        full = (code == sqlite3.SQLITE_FULL or "full" in str(e) or _no_space(self.path.parent)
                or (io_error and _file_size_limited()))
        if full:
            return StoreFull(f"state store {self.name} is full: {e} (free space on "
                              f"{self.path.parent}, nothing was written)")
        return StoreError(f"state store {self.name} {what}: {e}")

    def close(self) -> None:
        with self._lock:
            self._db.close()





def _no_space(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free == 0
    except OSError:
        return False


def _file_size_limited() -> bool:
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return soft != resource.RLIM_INFINITY


def open_store(where: str | Path | None) -> Store:
    """``redis://...`` (or ``rediss://``, ``unix://``): Redis; a path: SQLite; nothing: memory."""
    if not where:
        return MemoryStore()
    text = str(where)
    if text.startswith(("redis://", "rediss://", "unix://")):
        from veo.adapters.store_redis import RedisStore

        return RedisStore(text)
    return SqliteStore(text)
