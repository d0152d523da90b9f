"""The state store is crash-safe: kill -9 a process in the middle of writing a 500-service spec,
many times: the stored spec is always entirely the old one or entirely the new one, and never
older than the last write that returned. A full disk makes a write fail with a clear error and
change nothing."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from spec_writer import names
from veo.adapters.store import StoreFull, open_store
from veo.adapters.store_redis import RedisStore

WRITER = Path(__file__).with_name("spec_writer.py")
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def kill_mid_write(where: str, after_writes: int) -> int:
    """Start the writer, let it finish ``after_writes`` writes, then SIGKILL it at a random
    instant of a later one. Returns the last generation it reported as written."""
    proc = subprocess.Popen([sys.executable, str(WRITER), where, "loop"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, text=True)
    try:
        last = 0
        for _ in range(after_writes):
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"the writer stopped: {proc.stderr.read()}")
            last = int(line)
        time.sleep(random.uniform(0, 0.03))  # a write of 500 rows takes a few ms: land inside one
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        rest = proc.stdout.read().split()  # reported before the kill, not yet read by us
        return int(rest[-1]) if rest else last
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def assert_whole(where: str, acknowledged: int) -> int:
    store = open_store(where)
    try:
        cluster = store.get("spec/cluster")
        rows = store.scan("service/")
    finally:
        store.close()
    # durable: never older than a write that returned; at most the one in flight beyond it
    assert acknowledged <= cluster["generation"] <= acknowledged + 1
    parity = cluster["parity"]
    assert list(rows) == [f"service/{n}" for n in names(parity)], "a mix of two specs' services"
    mixed = {k for k, v in rows.items() if v["environment"]["PARITY"] != str(parity)}
    assert not mixed, f"rows of the other spec: {sorted(mixed)[:5]}"
    return cluster["generation"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind, rounds", [("sqlite", 40), ("redis", 20)])
def test_kill_9_mid_write_leaves_the_old_or_the_new_spec(kind, rounds, tmp_path, request):
    where = str(tmp_path / "state.db") if kind == "sqlite" else \
        request.getfixturevalue("redis_server").url + "?prefix=crash:"
    generations = []
    for i in range(rounds):
        acknowledged = kill_mid_write(where, after_writes=random.randint(1, 4))
        generations.append(assert_whole(where, acknowledged))
    assert generations == sorted(generations) and generations[-1] >= rounds  # progress each round


def _in_tiny_tmpfs(directory: Path, size: str) -> list[str]:
    """The writer's command prefix: its own mount namespace with a tmpfs of ``size`` on
    ``directory`` (gone with the process); [] when this machine cannot mount."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return []
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {directory}"],
                           capture_output=True)
    if probe.returncode != 0:
        return []
    script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", size, str(directory)]


def _limit_file_size() -> None:
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


@pytest.mark.parametrize("how", ["tmpfs", "file-size limit"])
def test_a_full_disk_fails_the_write_clearly_and_changes_nothing(tmp_path, how):
    directory = tmp_path / "state"
    directory.mkdir()
    prefix = _in_tiny_tmpfs(directory, "1m") if how == "tmpfs" else []
    if how == "tmpfs" and not prefix:
        pytest.skip("cannot mount a tmpfs here (needs root and unshare); the file-size limit runs")
    # ENOSPC on a 1 MB tmpfs, or EFBIG past a 1 MB RLIMIT_FSIZE
    preexec = _limit_file_size if how == "file-size limit" else None
    out = subprocess.run([*prefix, sys.executable, str(WRITER), str(directory), "full"], env=ENV,
                         capture_output=True, text=True, timeout=120, preexec_fn=preexec)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["before_rows"] == 501
    assert seen["error"] is not None and "state store " in seen["error"]
    assert " is full: " in seen["error"] and "nothing was written" in seen["error"]
    assert seen["http_status"] == 507  # the REST API answers Insufficient Storage
    assert seen["unchanged"] and seen["unchanged_after_reopen"]
    assert seen["small_write_after"]


def test_a_full_redis_fails_the_write_clearly_and_changes_nothing(redis_server):
    store = RedisStore(redis_server.url + "?prefix=full:")
    store.write({"spec/cluster": {"generation": 1}, "slot/a#0": {"node": "uno"}})
    before = store.scan("")
    redis_server.client.config_set("maxmemory", "1")  # below what is used: every write is OOM
    try:
        with pytest.raises(StoreFull, match=r"state store redis://127\.0\.0\.1:\d+/0\?prefix=full: "
                                             r"is full: command not allowed when used memory > 'maxmemory'"):
            store.write({"spec/cluster": {"generation": 2}, "slot/b#0": {"node": "dos"}},
                        deletes=["slot/a#0"])
    finally:
        redis_server.client.config_set("maxmemory", "0")
    assert store.scan("") == before
    store.close()


def test_redis_writes_are_one_transaction(redis_server):
    """MULTI/EXEC: a client that queued a write and died before EXEC changed nothing."""
    store = RedisStore(redis_server.url + "?prefix=tx:")
    store.write({"spec/cluster": {"generation": 1}})
    raw = redis.Redis.from_url(redis_server.url)
    conn = raw.connection_pool.get_connection()
    conn.send_command("MULTI")
    conn.read_response()
    conn.send_command("HSET", "tx:kv", "spec/cluster", '{"generation":2}')
    conn.read_response()
    conn.disconnect()  # the process died here
    assert store.get("spec/cluster") == {"generation": 1}
    raw.close()
    store.close()
