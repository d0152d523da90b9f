"""Real-node scale and memory: ``python -m bench --only realscale`` (inside a loopback namespace).

Three real Ray nodes (uno, dos, tres) sharing one private Docker engine (each agent minds only its
own node's containers, so the engine is the one shared resource, as on one machine), and a veo
Scheduler. It measures, in one run:

* RSS of every veo actor (Scheduler; agent, supervisor and health checker per node) at 0, 100 and
  ``total`` instances;
* apply -> all running for ``total`` instances (from 100 already running), as throughput;
* the Scheduler's CPU at rest with ``total`` instances (utime + stime over ``rest_s`` seconds);
* ``kill`` containers killed at once (SIGKILL through the engine, from threads): time until every
  one of them runs again, restarted by veo;
* RSS again once every instance is removed, and with ``total`` deployed a second time: what an
  actor keeps per instance on a warm process (its first deploy also starts its engine threads and
  raises the allocator's high-water mark, which the removal shows is not per instance).

Figures only, no asserts. The machine is shared: other work shows in every figure.
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import BUSYBOX, Engine, _quiet_fd2, format_table, wait_until

NODES = (("uno", "front"), ("dos", "back"), ("tres", "back"))
PER_SERVICE = 100
TARGET_REST_CPU = 0.02  # of one core, Scheduler at rest with 500 instances


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ThreeNodes:
    def __init__(self, engine: Engine):
        import ray

        from veo.adapters import ray_local as local
        from veo.deploy import start_scheduler

        self.engine, self.cluster = engine, None
        specs = [local.NodeSpec(n, role, engine.docker_host) for n, role in NODES]
        try:
            with _quiet_fd2():
                self.cluster, _ = local.start_nodes(specs, dashboard=False)
                ray.init(address=self.cluster.address, namespace="veo", log_to_driver=False,
                         logging_level="ERROR", configure_logging=False)
            self.client = start_scheduler(state_path=engine.state_dir / "realscale.db")
            self.apply({})
            wait_until(lambda: sum(v.alive and v.memory_total > 0 for v in self.client.nodes()) == 3,
                       180, 0.5, "three agents to report")
        except BaseException:
            self.close()
            raise

    def apply(self, services: dict) -> None:
        from veo.core.models import ClusterSpec, Node, Settings

        nodes = [Node(name=n, role=r, cpus=64, memory="64g", disk="100g") for n, r in NODES]
        self.client.apply(ClusterSpec(name="veo", nodes=nodes, services=services, settings=Settings()))

    def pids(self) -> dict[str, int]:
        import ray

        from veo.core.names import ACTOR_NAMESPACE, SCHEDULER_NAME, actor_name

        out = {"scheduler": ray.get(ray.get_actor(SCHEDULER_NAME, namespace=ACTOR_NAMESPACE).pid.remote())}
        for node, _ in NODES:
            for kind in ("agent", "supervisor", "health"):
                h = ray.get_actor(actor_name(kind, node), namespace=ACTOR_NAMESPACE)
                out[f"{kind} {node}"] = ray.get(h.pid.remote())
        return out

    def running(self, names: set[str]) -> list:
        from veo.core.models import InstanceStatus

        return [i for i in self.client.containers() if i.service in names
                and i.status is InstanceStatus.running and i.container_id]

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            with contextlib.suppress(Exception):
                self.client.shutdown(timeout=300)
            ray.shutdown()
        if self.cluster is not None:
            with _quiet_fd2():
                self.cluster.shutdown()
            self.cluster = None


def _services(count: int) -> dict:
    from veo.core.models import Service

    return {f"big-{i}": Service(name=f"big-{i}", image=BUSYBOX, command=["sleep", "3600"],
                                network_mode="none", instances=PER_SERVICE, cpus=0.01, memory="16m")
            for i in range(count // PER_SERVICE)}


def run(engine: Engine, total: int = 500, kill: int = 50, rest_s: float = 10.0) -> dict:
    world = ThreeNodes(engine)
    out: dict = {"total": total, "kill": kill, "rest_s": rest_s, "rss_kb": {}}
    try:
        pids = world.pids()
        out["rss_kb"]["0"] = {k: _rss_kb(p) for k, p in pids.items()}
        first = _services(PER_SERVICE)
        world.apply(first)
        t0 = time.perf_counter()
        wait_until(lambda: len(world.running(set(first))) == PER_SERVICE, 600, 0.5, "100 instances")
        out["first_100_s"] = time.perf_counter() - t0
        time.sleep(2.0)
        out["rss_kb"][str(PER_SERVICE)] = {k: _rss_kb(p) for k, p in pids.items()}
        every = _services(total)
        world.apply(every)
        t0 = time.perf_counter()
        wait_until(lambda: len(world.running(set(every))) == total, 1200, 1.0, f"{total} instances")
        out["to_total_s"] = time.perf_counter() - t0
        out["throughput_per_s"] = (total - PER_SERVICE) / out["to_total_s"]
        time.sleep(3.0)  # the last events folded, the loop back to its tick
        out["rss_kb"][str(total)] = {k: _rss_kb(p) for k, p in pids.items()}
        c0, t0 = _cpu_s(pids["scheduler"]), time.perf_counter()
        time.sleep(rest_s)
        out["scheduler_rest_cpu"] = (_cpu_s(pids["scheduler"]) - c0) / (time.perf_counter() - t0)
        out["kill_s"] = _kill_and_wait(world, engine, every, kill)
        _redeploy(world, engine, every, pids, out)
    finally:
        world.close()
    return out


def _redeploy(world: ThreeNodes, engine: Engine, every: dict, pids: dict, out: dict) -> None:
    """Remove every instance, then deploy them all again: RSS after each."""
    from veo.core.names import LABEL_MANAGED

    total = out["total"]
    world.apply({})
    wait_until(lambda: not world.running(set(every)) and not engine.runtime.list(
        labels={LABEL_MANAGED: "true"}), 600, 1.0, "every instance to be removed")
    time.sleep(3.0)
    out["rss_kb"]["removed"] = {k: _rss_kb(p) for k, p in pids.items()}
    world.apply(every)
    wait_until(lambda: len(world.running(set(every))) == total, 1200, 1.0, f"{total} instances again")
    time.sleep(3.0)
    out["rss_kb"][f"{total} again"] = {k: _rss_kb(p) for k, p in pids.items()}
    per_node = total / len(NODES)
    out["warm_kb_per_instance"] = {
        k: (out["rss_kb"][f"{total} again"][k] - out["rss_kb"]["removed"][k])
        / (total if k == "scheduler" else per_node) for k in pids}


def _kill_and_wait(world: ThreeNodes, engine: Engine, every: dict, kill: int) -> float:
    victims = world.running(set(every))[:kill]
    keys = {(i.service, i.instance): i.container_id for i in victims}
    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(engine.runtime.kill, keys.values()))

    def back() -> bool:
        now = {(i.service, i.instance): i for i in world.running(set(every))}
        return all(k in now and now[k].restarts >= 1 for k in keys)

    wait_until(back, 600, 0.2, f"{kill} killed instances to run again")
    return time.perf_counter() - t0


def print_report(res: dict) -> None:
    print(f"Real-node scale: 3 Ray nodes sharing one engine, {res['total']} instances")
    print(f"apply -> running: first 100 in {res['first_100_s']:.1f} s; then to {res['total']} in "
          f"{res['to_total_s']:.1f} s ({res['throughput_per_s']:.1f} instances/s)")
    print(f"{res['kill']} containers killed at once: all running again (restarted) in "
          f"{res['kill_s']:.1f} s")
    cpu = res["scheduler_rest_cpu"]
    print(f"Scheduler CPU at rest with {res['total']} instances: {cpu * 100:.2f} % of a core over "
          f"{res['rest_s']:g} s (target < {TARGET_REST_CPU * 100:g} %)")
    sizes = list(res["rss_kb"])  # 0, 100, total, removed, total again: in the order measured
    actors = list(res["rss_kb"][sizes[0]])
    warm = res.get("warm_kb_per_instance") or {}
    rows = [[a, *(res["rss_kb"][s][a] / 1024 for s in sizes), warm.get(a, float("nan"))]
            for a in actors]
    print(format_table(["actor RSS MB", *sizes, "KB/instance, warm"], rows, 1))
    print("(KB/instance, warm: RSS with every instance deployed a second time minus RSS once all "
          "were removed, per instance the actor holds)")
