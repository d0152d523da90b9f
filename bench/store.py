"""The state store at simulated scale: what one event and one slot change cost, SQLite vs Redis.

For 1k / 10k / 100k slots already stored (one row each, ``slot/<key>``):

* ``slot row``  - one slot changes: one row written (the layout now);
* ``slot blob`` - the same change the way the Scheduler stored slots before: the JSON of all
  slots rewritten as one value (the baseline; SQLite only, it is the same bytes in Redis);
* ``event``     - one event appended to the event log (10,000 kept, the oldest trimmed in the
  same write); ``event x100`` a batch of 100, per event.

Bytes written: for SQLite the bytes this process wrote to files (``wchar`` in /proc/self/io:
WAL frames and checkpoints); for Redis the growth of its append-only file. Time: the write's wall
time, p50 and p99 over the repetitions. Figures only, no pass/fail.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.common import format_table, percentile

SIZES = (1_000, 10_000, 100_000)
TARGET_EVENT_MS = 1.0  # issue 13: one event persisted in under 1 ms


def _slot(i: int, node: int = 0, generation: int = 1) -> dict:
    from veo.core.reconcile import Slot

    return Slot(f"svc-{i % 997}#{i}", f"svc-{i % 997}", i, f"svc-{i % 997}#{i}", f"node-{node}",
                generation, "0123456789abcdef").to_json()


def _wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class _Meter:
    """Bytes written by one store kind, around a block of writes."""

    def __init__(self, kind: str, redis_dir: Path | None):
        self.kind, self.redis_dir = kind, redis_dir

    def read(self) -> int:
        return _wchar() if self.kind == "sqlite" else _dir_bytes(self.redis_dir)


def _time_writes(store, meter: _Meter, make, reps: int) -> dict:
    times = []
    before = meter.read()
    for r in range(reps):
        puts, deletes = make(r)
        t0 = time.perf_counter()
        store.write(puts, deletes)
        times.append(time.perf_counter() - t0)
    if meter.kind == "redis":
        time.sleep(1.2)  # appendfsync everysec: let Redis flush its buffer to the file
    written = meter.read() - before
    return {"bytes_per_op": written / reps, "p50_ms": percentile(times, 50) * 1e3,
            "p99_ms": percentile(times, 99) * 1e3}


def _events(log, n: int) -> list:
    from veo.core.records import Event, EventKind

    start = log.last_index() + 1
    return [Event(index=start + i, kind=EventKind.restarted, service="svc-1", instance=1,
                  node="node-0", reason="exited with code 1; restarting it", generation=1,
                  restarts=3) for i in range(n)]


def _one_size(kind: str, store, meter: _Meter, slots: int, reps: int) -> list[dict]:
    from veo.adapters.event_log import EventLog

    t0 = time.perf_counter()
    for lo in range(0, slots, 20_000):
        store.write({f"slot/{_slot(i)['key']}": _slot(i) for i in range(lo, min(slots, lo + 20_000))})
    load_s = time.perf_counter() - t0
    rows = []

    def row(what: str, res: dict) -> None:
        rows.append({"store": kind, "slots": slots, "what": what, **res, "load_s": load_s})

    row("slot row", _time_writes(store, meter, lambda r: (
        {f"slot/{_slot(r)['key']}": _slot(r, node=1 + r % 3, generation=2 + r)}, ()), reps))
    if kind == "sqlite":
        everything = {_slot(i)["key"]: _slot(i) for i in range(slots)}

        def blob(r: int):
            everything[_slot(r)["key"]] = _slot(r, node=1 + r % 3, generation=2 + r)
            return {"slots": everything}, ()

        row("slot blob (before)", _time_writes(store, meter, blob, max(3, reps // 20)))
    log = EventLog(store)
    row("event", _time_writes(store, meter, lambda r: _append(log, 1), reps))
    batch = _time_writes(store, meter, lambda r: _append(log, 100), max(3, reps // 10))
    row("event x100 (per event)", {"bytes_per_op": batch["bytes_per_op"] / 100,
                                   "p50_ms": batch["p50_ms"] / 100, "p99_ms": batch["p99_ms"] / 100})
    return rows


def _append(log, n: int):
    """An EventLog batch as (puts, deletes), applied by the timed write."""
    events = _events(log, n)
    captured = {}

    class Capture:
        def write(self, puts, deletes=()):
            captured.update(puts=puts, deletes=list(deletes))

    real = log.store
    log.store = Capture()
    try:
        log.append(events)
    finally:
        log.store = real
    return captured["puts"], captured["deletes"]


def run(quick: bool = False) -> dict:
    from bench.redis_server import RedisServer
    from veo.adapters.store import SqliteStore
    from veo.adapters.store_redis import RedisStore

    sizes = SIZES[:2] if quick else SIZES
    reps = 50 if quick else 200
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="veo-bench-store-") as tmp:
        server = RedisServer(Path(tmp) / "redis")
        try:
            for slots in sizes:
                sqlite = SqliteStore(Path(tmp) / f"state-{slots}.db")
                rows += _one_size("sqlite", sqlite, _Meter("sqlite", None), slots, reps)
                sqlite.close()
                redis_store = RedisStore(f"{server.url}?prefix=bench{slots}:")
                rows += _one_size("redis", redis_store, _Meter("redis", server.dir), slots, reps)
                redis_store.close()
        finally:
            server.stop()
    return {"rows": rows, "target_event_ms": TARGET_EVENT_MS, "pid": os.getpid()}


KEYS = ["store", "slots", "what", "bytes_per_op", "p50_ms", "p99_ms", "load_s"]


def print_report(res: dict) -> None:
    print("State store at scale (bench.store): bytes written and time per write")
    print(format_table(KEYS, [[r[k] for k in KEYS] for r in res["rows"]], 3))


if __name__ == "__main__":
    import sys

    print_report(run(quick="--quick" in sys.argv))
