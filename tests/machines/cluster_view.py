"""What the tests read of the machines world: veo's view through the head's REST API (from
outside the Ray cluster: the test process is not a Ray node) and the truth from every engine."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

import httpx

from veo.core.names import LABEL_GENERATION, LABEL_INSTANCE, LABEL_MANAGED, LABEL_SERVICE
from ray_world import NotYet  # the falsy answer that says why, shared with the Ray world
from world import Machines

T = TypeVar("T")


class ClusterView:
    def __init__(self, world: Machines):
        self.w = world
        self.http = httpx.Client(base_url=world.api, timeout=15,
                                 headers={"Authorization": f"Bearer {world.api_token.read_text()}"})

    def get(self, path: str):
        r = self.http.get(path)
        r.raise_for_status()
        return r.json()

    def wait(self, pred: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = pred()
            except (httpx.HTTPError, OSError) as e:  # the API or an engine restarting
                last = NotYet(f"{type(e).__name__}: {e}")
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}: last={last!r}")

    # ---- veo's view ------------------------------------------------------------------------------

    def nodes_alive(self) -> set[str]:
        return {n["name"] for n in self.get("/api/nodes") if n["alive"] and n["memory_total"] > 0}

    def instances(self, service: str | None = None) -> list[dict]:
        return self.get("/api/containers" + (f"?service={service}" if service else ""))

    def running(self, service: str) -> list[dict]:
        return [i for i in self.instances(service) if i["status"] == "running"]

    # ---- the engines' truth ----------------------------------------------------------------------

    def containers(self, services=None) -> dict[str, list]:
        """machine -> veo containers (any state) on its engine."""
        out = {}
        for name, m in self.w.machines.items():
            rt = m.runtime(timeout=10)
            try:
                out[name] = [c for c in rt.list(labels={LABEL_MANAGED: "true"})
                             if services is None or c.labels.get(LABEL_SERVICE) in services]
            finally:
                rt.close()
        return out

    def converged(self, expected: dict[str, int]):
        """Each service has its count running, one container per instance across every engine
        (no twin, no stale generation), each on the engine of the machine veo says it is on."""
        views = {}
        for svc, n in expected.items():
            insts = self.instances(svc)
            running = [i for i in insts if i["status"] == "running"]
            if len(running) != n or len(insts) != n:
                return NotYet(f"{svc}: {len(running)}/{n} running: "
                              + ", ".join(f"{i['instance']}@{i['node']}={i['status']}" for i in insts))
            views.update({(i["service"], i["instance"]): i for i in insts})
        seen: dict[tuple, list[str]] = {}
        for machine, cs in self.containers(set(expected)).items():
            for c in cs:
                key = (c.labels[LABEL_SERVICE], int(c.labels[LABEL_INSTANCE]))
                seen.setdefault(key, []).append(f"{machine}:{c.name}:{c.status}")
                v = views.get(key)
                if v is None or int(c.labels[LABEL_GENERATION]) != v["generation"] or v["node"] != machine:
                    return NotYet(f"{c.name} ({c.status}) on {machine} is not what veo shows: {v}")
                if not c.running:
                    return NotYet(f"{c.name} on {machine} is {c.status}")
        twins = {k: v for k, v in seen.items() if len(v) != 1}
        if twins or set(seen) != set(views):
            return NotYet(f"containers per instance: {seen}")
        return views
