"""The Scheduler on the Redis store: its desired state and events are rows in Redis, and a kill -9
of the Scheduler brings them back from there (real Ray, real engine, real redis-server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(400)]

SCRIPT = Path(__file__).with_name("redis_scheduler.py")
ROOT = Path(__file__).resolve().parents[2]


def test_the_scheduler_keeps_its_state_in_redis(redis_server, engine):
    url = redis_server.url + "?prefix=sched:"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, str(SCRIPT), url, engine.docker_host], env=env,
                         capture_output=True, text=True, timeout=360)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["cluster"] == "redisstate" and seen["services"] == ["kept"]
    # the events from before the kill come back from Redis under the same indexes
    after = {tuple(e) for e in seen["events_after"]}
    assert {tuple(e) for e in seen["events_before"]} <= after
    assert {"applied", "started"} <= {k for _, k in seen["events_before"]}
    assert seen["container_after"] == seen["container_before"]  # the restart touched nothing
    assert seen["removed"] == 1
    keys = {k.decode() for k in redis_server.client.hkeys("sched:kv")}
    assert {"services", "meta/events"} <= keys and any(k.startswith("event/") for k in keys)
