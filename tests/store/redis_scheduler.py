"""``python redis_scheduler.py REDIS_URL DOCKER_HOST``: a one-node Ray cluster of its own whose
Scheduler keeps its state in Redis; apply, kill -9 the Scheduler, read back; JSON on stdout.
Run in a subprocess: the test session's driver is already connected to the shared Ray world."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import ray

from veo.adapters import ray_local as local
from veo.core.models import ClusterSpec, InstanceStatus, Node, Service
from veo.deploy import start_scheduler


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def _new_pid(handle, old: int) -> bool:
    try:
        return ray.get(handle.pid.remote(), timeout=5) != old
    except Exception:
        return False


def main(url: str, docker_host: str) -> dict:
    cluster, _ = local.start_nodes([local.NodeSpec("solo", "front", docker_host)], dashboard=False)
    try:
        ray.init(address=cluster.address, namespace="veo", log_to_driver=False)
        client = start_scheduler(state_path=url)
        svc = Service(name="kept", image="veo/busybox", network_mode="none", stop_grace_period=1,
                      command=["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"])
        client.apply(ClusterSpec(name="redisstate", nodes=[Node(name="solo", cpus=2, memory="1g")],
                                 services={"kept": svc}))
        running = _wait(lambda: [i for i in client.containers("kept")
                                 if i.status is InstanceStatus.running], 90, "kept to run")
        before = [(e.index, e.kind.value) for e in client.events()]
        handle = client._s
        pid = ray.get(handle.pid.remote())
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: _new_pid(handle, pid), 60, "the Scheduler to come back")
        after = [(e.index, e.kind.value) for e in client.events(since=0)]
        again = _wait(lambda: [i for i in client.containers("kept")
                               if i.status is InstanceStatus.running], 60, "kept after the restart")
        out = {"services": sorted(client.spec().services), "cluster": client.spec().name,
               "events_before": before, "events_after": after,
               "container_before": running[0].container_id, "container_after": again[0].container_id}
        out["removed"] = client.shutdown(timeout=120)
        return out
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
