"""A real multi-node Ray cluster for the behaviour tests: one Ray node per veo node, each wrapping
its own private Docker engine (from the session's EnginePool), and a veo Scheduler on it.

Shared by the whole session (starting Ray costs ~15 s): tests add their own uniquely named
services and remove them when done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TypeVar

import ray

from veo.adapters import ray_local as local
from veo.client import Cluster
from veo.deploy import start_scheduler
from veo.core.models import ClusterSpec, Instance, InstanceStatus, Node, Settings
from veo.core.policy import Policy
from veo.adapters.docker_api import DockerRuntime

T = TypeVar("T")

NODES = [("uno", "front"), ("dos", "back"), ("tres", "back")]
CAPACITY = dict(cpus=4, memory="4g", disk="20g")
# quick budgets and back-offs so supervision tests run in seconds
TEST_SETTINGS = dict(backoff_initial=0.05, backoff_max=2.0, budget_restarts=50, budget_period=60,
                     orphan_grace=2.0,
                     # no outside traffic: names outside the zone are refused, not forwarded
                     discovery={"forward": "refuse"})


def wait_for(pred: Callable[[], T], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what or pred}: last={last!r}")


class RayWorld:
    def __init__(self, engine_pool, state_dir: Path):
        self.pool = engine_pool
        self.engines = {name: engine_pool.get(name) for name, _ in NODES}
        specs = [local.NodeSpec(n, role, self.engines[n].docker_host) for n, role in NODES]
        # no dashboard: it costs a core's worth of start-up and the tests do not read it
        self.cluster, self.ray_nodes = local.start_nodes(specs, dashboard=False)
        ray.init(address=self.cluster.address, namespace="veo", log_to_driver=False)
        self.state_path = state_dir / "scheduler.db"  # tests read the crash image from it
        self.client: Cluster = start_scheduler(state_path=self.state_path)
        self.base_nodes = [Node(name=n, role=r, **CAPACITY) for n, r in NODES]
        self.apply_settings()
        wait_for(self._all_reported, 60, what="every node's agent to report")

    def _all_reported(self) -> bool:
        views = self.client.nodes()
        return len(views) >= len(NODES) and all(v.alive and v.memory_total > 0 for v in views)

    def apply_settings(self, **overrides) -> None:
        """Re-apply the cluster with the current services and these settings."""
        current = {s.name: s for s in self.client.services()}
        settings = Settings(**{**TEST_SETTINGS, **overrides})
        # the tests' web services share the host's network, switched on explicitly as users must
        spec = ClusterSpec.model_construct(name="veo", nodes=self.base_nodes, services=current,
                                           settings=settings,
                                           policy=Policy(allow_host_network=True, allow_privileged=True))
        self.client.apply(spec)

    def runtime(self, node: str) -> DockerRuntime:
        return DockerRuntime(self.pool.get(node).docker_host)

    def instances(self, service: str) -> list[Instance]:
        return self.client.containers(service)

    def wait_running(self, service: str, count: int = 1, timeout: float = 40.0,
                     pred: Callable[[list[Instance]], bool] | None = None) -> list[Instance]:
        def ok():
            insts = self.instances(service)
            running = [i for i in insts if i.status is InstanceStatus.running]
            if len(running) == count and (pred is None or pred(running)):
                return running
            return None

        return wait_for(ok, timeout, what=f"{count} running instance(s) of {service}")

    def remove(self, *services: str) -> None:
        for s in services:
            try:
                self.client.remove_service(s)
            except Exception:
                pass

        def gone():
            for node in self.engines:
                rt = self.runtime(node)
                if any(c.labels.get("veo.service") in services
                       for c in rt.list(labels={"veo.managed": "true"})):
                    return False
            return True

        wait_for(gone, 60, what=f"containers of {services} to be removed")

    def close(self) -> None:
        try:
            self.client.shutdown(timeout=120)
        finally:
            ray.shutdown()
            self.cluster.shutdown()


# ---- fault injection -------------------------------------------------------------------------


class Faults:
    """Real faults against the world: kill -9 actor workers, raylets, dockerds (by their PIDs)."""

    def __init__(self, world: RayWorld):
        self.w = world

    def actor(self, kind: str, node: str | None = None):
        from veo.core.names import ACTOR_NAMESPACE, SCHEDULER_NAME, actor_name

        name = SCHEDULER_NAME if kind == "scheduler" else actor_name(kind, node)
        return ray.get_actor(name, namespace=ACTOR_NAMESPACE)

    def kill_actor(self, kind: str, node: str | None = None, wait: bool = True) -> int:
        """SIGKILL the actor's worker process; with ``wait``, until Ray has restarted it."""
        import os
        import signal

        handle = self.actor(kind, node)
        pid = ray.get(handle.pid.remote(), timeout=30)
        os.kill(pid, signal.SIGKILL)
        if wait:
            wait_for(lambda: self._answers_with_new_pid(handle, pid), 60, what=f"{kind} to come back")
        return pid

    @staticmethod
    def _answers_with_new_pid(handle, old: int) -> bool:
        try:
            return ray.get(handle.pid.remote(), timeout=5) != old
        except Exception:
            return False

    def kill_node(self, name: str) -> None:
        """kill -9 the node's raylet (and its workers); its engine and containers live on."""
        self.w.cluster.remove_node(self.w.ray_nodes.pop(name), allow_graceful=False)

    def revive_node(self, name: str, role: str) -> None:
        spec = local.NodeSpec(name, role, self.w.pool.get(name).docker_host)
        self.w.ray_nodes[name] = self.w.cluster.add_node(num_cpus=1, labels=spec.labels(),
                                                         env_vars=spec.env())

    def restart_engine(self, name: str) -> None:
        from veo.adapters.dockerd import ensure_engine, stop_engine

        stop_engine(name, state_dir=self.w.pool.state_dir)
        self.w.pool._engines[name] = ensure_engine(name, state_dir=self.w.pool.state_dir,
                                                   use_existing=False, die_with_parent=True)

    def engine_pid(self, name: str) -> int:
        return self.w.pool.get(name).pid


def containers_of(world: RayWorld, services) -> list:
    """Every container (any state) of these services on every engine of the session."""
    out = []
    for handle in world.pool.started():
        rt = DockerRuntime(handle.docker_host)
        out += [c for c in rt.list(labels={"veo.managed": "true"})
                if c.labels.get("veo.service") in services]
    return out


class NotYet:
    """A falsy answer that says why (wait_for shows the last one on timeout)."""

    def __init__(self, why: str):
        self.why = why

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"not yet: {self.why}"


def converged(world: RayWorld, expected: dict[str, int], floor: dict[str, int] | None = None):
    """The fault matrix's invariants, as a predicate for wait_for (returns a falsy reason string
    prefixed 'not:' while they do not hold):
    - the desired number of instances of each service is running;
    - one container per service/instance across all engines (no duplicate, no stale generation);
    - no orphan: every container is the generation veo shows for that instance;
    - restart counts never went below ``floor``."""
    views = {}
    for svc, n in expected.items():
        insts = world.instances(svc)
        running = [i for i in insts if i.status is InstanceStatus.running]
        if len(running) != n:
            return NotYet(f"{svc}: {len(running)}/{n} running: "
                          + ", ".join(f"{i.instance}={i.status.value}({i.reason})" for i in insts))
        views.update({(i.service, i.instance): i for i in insts})
    seen: dict[tuple, int] = {}
    for c in containers_of(world, expected):
        key = (c.labels["veo.service"], int(c.labels["veo.instance"]))
        seen[key] = seen.get(key, 0) + 1
        view = views.get(key)
        if view is None or int(c.labels["veo.generation"]) != view.generation:
            return NotYet(f"container {c.name} ({c.status}) is not the generation veo shows")
    if any(n != 1 for n in seen.values()) or set(seen) != set(views):
        return NotYet(f"containers per instance: {seen}, instances: {sorted(views)}")
    for key, low in (floor or {}).items():
        svc, _, n = key.rpartition("#")
        if views[(svc, int(n))].restarts < low:
            raise AssertionError(f"restart count of {key} went down: {views[(svc, int(n))].restarts} < {low}")
    return views
