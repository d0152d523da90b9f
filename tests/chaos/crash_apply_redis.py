"""``python crash_apply_redis.py REDIS_URL ROUNDS RESULT``: the crash-mid-apply rounds against a
Scheduler whose state is in Redis, on a Ray cluster of its own (the test session's driver is connected to
the shared world already, so this runs in a subprocess). The cluster has no veo node, so nothing
is placed and no engine is needed: this is about the store, the Ray world test about the loop.
Writes the rounds as JSON to RESULT; exits non-zero (with the reason on stderr) on a mix."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import ray
from crash_rounds import Judge, run_rounds, snapshot, two_specs
from ray.cluster_utils import Cluster

from veo.adapters.store_redis import RedisStore
from veo.core.models import ClusterSpec
from veo.core.names import ACTOR_NAMESPACE, SCHEDULER_NAME
from veo.deploy import start_scheduler


def wait(pred, timeout: float, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def rounds(url: str, count: int) -> list[dict]:
    client = start_scheduler(state_path=url)
    handle = ray.get_actor(SCHEDULER_NAME, namespace=ACTOR_NAMESPACE)
    old, new = two_specs(ClusterSpec(name="redisapply"), "rd")
    store = RedisStore(url)
    client.apply(new)
    began = time.perf_counter()
    client.apply(new)
    took = time.perf_counter() - began
    rows = run_rounds(client, handle, Judge(old, new), (old, new), count, took,
                      lambda: snapshot(store), wait)
    client.shutdown(timeout=60)
    return rows


def main(url: str, count: int, result: str) -> None:
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        ray.init(address=cluster.address, namespace="veo", log_to_driver=False)
        Path(result).write_text(json.dumps(rounds(url, count)))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
