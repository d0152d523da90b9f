"""HealthChecker: one per node; reads the health of every container on it that has a healthcheck.

Docker's own HEALTHCHECK (set by the translation) runs the probe inside the container; this actor
reads the resulting status every ``interval`` and tells the NodeAgent about every change, with the
action to take (``veo.core.health.action_for``). Acting stays with the agent, the only writer to the
engine. Reads are blocking Docker calls, so they run in threads and never stall the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

import ray

from actors.common import Handles
from veo.core.health import action_for
from veo.adapters.docker_api import DockerRuntime
from veo.core.names import actor_name, docker_host_from

log = logging.getLogger("veo.core.health")
TICK = 0.1  # resolution of the schedule; each container is read at its own interval


@dataclass
class Watch:
    key: str
    interval: float
    on_unhealthy: str
    health: str = "starting"
    due: float = 0.0


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class HealthChecker:
    def __init__(self, node: str, cluster: str, docker_host: str | None = None):
        self.node, self.cluster = node, cluster
        host = docker_host or docker_host_from()
        self.runtime = DockerRuntime(host)
        self.watches: dict[str, Watch] = {}
        self.handles = Handles()
        self._loop_task: asyncio.Task | None = None

    async def watch(self, key: str, container_id: str, interval: float, on_unhealthy: str) -> None:
        self.watches[container_id] = Watch(key, interval, on_unhealthy, due=time.monotonic() + interval)
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def sync(self, watches: list[tuple[str, str, float, str]]) -> None:
        """The agent's full list of containers to watch: add the missing ones (keeping what is
        known of the others), drop the rest. Idempotent, so it is sent on every converge."""
        wanted = {cid: (key, interval, action) for key, cid, interval, action in watches}
        for cid in [c for c in self.watches if c not in wanted]:
            del self.watches[cid]
        for cid, (key, interval, action) in wanted.items():
            if cid not in self.watches:
                await self.watch(key, cid, interval, action)

    async def unwatch(self, container_id: str | None) -> None:
        self.watches.pop(container_id or "", None)

    async def pid(self) -> int:
        """The worker process (fault-injection tests kill it)."""
        return os.getpid()

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            due = [(cid, w) for cid, w in self.watches.items() if w.due <= now]
            for cid, w in due:
                w.due = now + w.interval
                try:
                    await self._check(cid, w)
                except Exception:  # one container's trouble must not stop the others' checks
                    log.exception("health check of %s", cid)
            await asyncio.sleep(TICK)

    async def _check(self, cid: str, w: Watch) -> None:
        state = await asyncio.to_thread(self.runtime.inspect, cid)
        if state is None:
            self.watches.pop(cid, None)
            return
        health = state.health or "none"
        if health == w.health or cid not in self.watches:
            return
        action = action_for(w.health, health, w.on_unhealthy)
        w.health = health
        agent = self.handles.get(actor_name("agent", self.node))
        await agent.health_changed.remote(w.key, cid, health, action)
        if action in ("restart", "kill"):
            self.watches.pop(cid, None)  # the agent re-registers the replacement container
