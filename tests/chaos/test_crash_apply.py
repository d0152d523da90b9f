"""kill -9 of the Scheduler in the middle of an apply of 500 services, many times (issue 14).

The real Scheduler actor is SIGKILLed while ``Cluster.apply`` of a big spec is in flight, at
delays spread over the apply's duration (some kills before the call reaches the actor, some
during its work and its store write, some after). Two specs alternate; they differ in every part
a mix could show (services added, removed and changed, and a setting; ``crash_rounds``). Each
round:

- the crash image (the store read once the worker is dead, before Ray restarts it) is exactly the
  old or exactly the new spec, and so is the restarted Scheduler's ``spec()``;
- Ray retries the interrupted call (``max_task_retries=-1``): the apply returns and the spec is
  the new one; once the loop has run, the slot rows name exactly the services of that spec.

On the shared Ray world (SQLite store) the last round lands on the 500-service spec, and every
service of it then runs: one container each, of the spec it was last given. Everything is
removed at the end; the world is as it was. The same rounds run against Redis in a Ray cluster
of their own (``crash_apply_redis.py``), without engines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from bench.redis_server import RedisServer
from crash_rounds import Judge, run_rounds, snapshot, tally, two_specs
from ray_world import Faults, NotYet, containers_of, wait_for

from veo.adapters.store import SqliteStore
from veo.core.desired import DesiredState
from veo.core.models import ClusterSpec, InstanceStatus
from veo.core.names import LABEL_GENERATION, LABEL_INSTANCE, LABEL_SERVICE, LABEL_SPEC_HASH
from veo.core.names import service_of

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.chaos, pytest.mark.timeout(900)]

ROUNDS = 10  # old, new, old, ...: the last lands on the 500-service spec
REDIS_ROUNDS = 12  # no engines there: a round costs ~1 s
CONVERGE_TIMEOUT = 480
HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def stored(world) -> DesiredState:
    """What the store file holds (a reader beside the Scheduler: WAL)."""
    store = SqliteStore(world.state_path)
    try:
        return snapshot(store)
    finally:
        store.close()


def slots_match(world, spec: ClusterSpec):
    """The slot rows name exactly the services of ``spec``: the loop placed each, and dropped
    the slots of services the spec does not have."""
    placed = {service_of(key) for key in stored(world).slots}
    extra, missing = placed - set(spec.services), set(spec.services) - placed
    if extra or missing:
        return NotYet(f"{len(extra)} slotted services not in the spec (e.g. {sorted(extra)[:3]}), "
                      f"{len(missing)} services of the spec unplaced")
    return True


def all_running(world, spec: ClusterSpec, mine: set[str]):
    """Every service of ``spec`` runs one instance, in one container across the engines, of the
    generation veo shows and the spec it was last given; no container of ``mine`` outside it."""
    views = {(v.service, v.instance): v for v in world.client.containers()
             if v.service in spec.services}
    running = sum(1 for v in views.values() if v.status is InstanceStatus.running)
    if running < len(spec.services):
        return NotYet(f"{running}/{len(spec.services)} running")
    seen: dict[tuple, int] = {}
    for c in containers_of(world, mine | set(spec.services)):
        key = (c.labels[LABEL_SERVICE], int(c.labels[LABEL_INSTANCE]))
        view = views.get(key)
        if view is None:
            return NotYet(f"container {c.name} of a service the spec does not have")
        if int(c.labels[LABEL_GENERATION]) != view.generation:
            return NotYet(f"container {c.name} is not the generation veo shows")
        if c.labels.get(LABEL_SPEC_HASH) != spec.services[key[0]].spec_hash():
            return NotYet(f"container {c.name} runs an older spec of {key[0]}")
        seen[key] = seen.get(key, 0) + 1
    if set(seen) != set(views) or any(n != 1 for n in seen.values()):
        return NotYet(f"{len(seen)} instances with containers of {len(views)}; "
                      f"{sum(1 for n in seen.values() if n > 1)} with more than one")
    return running


def restore(world, base: ClusterSpec, mine: set[str]) -> float:
    """The world as it was: its own spec back, no container of ours on any engine."""
    began = time.perf_counter()

    def applied() -> bool:
        try:
            world.client.apply(base)
            return True
        except Exception:
            return False

    wait_for(applied, 120, interval=1.0, what="the original spec to be applied again")
    wait_for(lambda: not containers_of(world, mine), 300, interval=1.0,
             what="every container of the test to be removed")
    return time.perf_counter() - began


def timed_apply(world, spec: ClusterSpec) -> float:
    began = time.perf_counter()
    world.client.apply(spec)
    return time.perf_counter() - began


def test_kill_9_mid_apply_of_500_services_leaves_old_or_new_and_converges(world):
    handle = Faults(world).actor("scheduler")
    base = world.client.spec()
    old, new = two_specs(base, f"ca{uuid.uuid4().hex[:6]}")
    judge, mine = Judge(old, new), (set(old.services) | set(new.services)) - set(base.services)
    began = time.perf_counter()
    try:
        first = timed_apply(world, new)  # 500 added, no kill: the rounds start from it
        took = timed_apply(world, new)  # the same again: what one apply of 500 takes
        rows = run_rounds(world.client, handle, judge, (old, new), ROUNDS, took,
                          lambda: stored(world), wait_for,
                          check=lambda r, target, label: wait_for(
                              lambda: slots_match(world, target), 90,
                              what=f"round {r}: the slots of {label}"))
        last = time.perf_counter()
        running = wait_for(lambda: all_running(world, new, mine), CONVERGE_TIMEOUT,
                           interval=2.0, what="all 500 services to run")
        done = time.perf_counter()
    finally:
        cleanup = restore(world, base, mine)
    assert world.client.spec().services.keys() == base.services.keys()
    print(f"apply of 500: {first:.2f} s (added), {took:.2f} s (unchanged); {tally(rows)}; rounds "
          f"{last - began:.1f} s; {running} running {done - last:.1f} s after the last round, "
          f"{done - began:.1f} s after the first apply; removed in {cleanup:.1f} s")


def test_kill_9_mid_apply_on_the_redis_store(tmp_path):
    server = RedisServer(tmp_path / "redis")
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}
        result = tmp_path / "rounds.json"
        out = subprocess.run([sys.executable, str(HERE / "crash_apply_redis.py"),
                              server.url + "?prefix=crash:", str(REDIS_ROUNDS), str(result)],
                             env=env, capture_output=True, text=True, timeout=400)
    finally:
        server.stop()
    assert out.returncode == 0, out.stderr[-4000:]
    rows = json.loads(result.read_text())
    assert len(rows) == REDIS_ROUNDS
    print(f"redis: {tally(rows)}")
