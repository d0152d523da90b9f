"""No twin during a partition: the machine's half of the guarantee.

A machine that cannot reach the head's GCS port for ``stop_after`` seconds has been declared dead
by the cluster long before (Ray's health check, ~3 s with veo's settings) and its work re-placed
elsewhere under a higher generation. So it stops (never removes) its own veo containers; when it
rejoins, its agent removes the stale generations and restarts what is still its own
(``actors.rejoin``).

The watch is a plain TCP connect to the GCS port: it needs neither the raylet nor any actor,
which are exactly what a partition takes away.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from veo.adapters.docker_api import DockerRuntime
from veo.core.names import LABEL_MANAGED, LABEL_NODE

PROBE_TIMEOUT = 1.0
STOP_GRACE = 10  # seconds between SIGTERM and SIGKILL, Docker's own default


def gcs_reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Watch:
    """How long the cluster has been out of reach; pure bookkeeping, fed one probe at a time."""

    stop_after: float | None
    lost_since: float | None = None
    fenced: bool = False

    def observe(self, reachable: bool, now: float | None = None) -> bool:
        """Record a probe; True exactly once per outage: when it is time to fence."""
        now = time.monotonic() if now is None else now
        if reachable:
            self.lost_since, self.fenced = None, False
            return False
        if self.lost_since is None:
            self.lost_since = now
        due = self.stop_after is not None and now - self.lost_since >= self.stop_after
        if due and not self.fenced:
            self.fenced = True
            return True
        return False


def stop_node_containers(docker_host: str, node: str, reason: str) -> list[dict]:
    """Stop every running veo container of ``node`` on its engine, side by side. Returns what was
    stopped (for ``handoff.record_fenced``). Containers of other nodes sharing the engine are
    left alone (veo.node label)."""
    rt = DockerRuntime(docker_host, timeout=STOP_GRACE + 20)
    try:
        running = [c for c in rt.list(labels={LABEL_MANAGED: "true", LABEL_NODE: node}, all=False)]

        def one(c) -> dict:
            rt.stop(c.id, STOP_GRACE)
            return {"id": c.id, "name": c.name, "labels": dict(c.labels), "reason": reason,
                    "time": time.time()}

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, running))
    finally:
        rt.close()
