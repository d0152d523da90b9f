"""The head machine is lost and replaced; the cluster carries on (Ray's GCS fault tolerance plus
veo's state in the same external Redis).

A world of its own (not the suite's session world): three machines on another subnet, uno the
head started with ``veo node start --head --redis redis://…`` and ``VEO_STATE_STORE=redis://…``,
dos and tres the workers. The redis-server runs in the test's own (outer, loopback-only)
namespace and listens on the bridge address every machine reaches: it stands for the operator's
Redis on a machine of its own, and it survives whatever happens to uno.

Then every process of uno is killed at once (kill -9), its veo state and Ray session files are
wiped (a replacement machine has an empty disk), and uno boots again with the same address, as a
service manager with a floating address would: dockerd, ``veo node start``, ``veo serve``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.redis_server import RedisServer
from cluster_view import ClusterView
from world import Machine, Machines

from veo.core.names import LABEL_MANAGED, LABEL_SERVICE

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(600)]
SUBNET = "10.98.0"  # not the suite's 10.99.0: both worlds may exist in one pytest process
OUTSIDE = f"{SUBNET}.1"  # the bridge's own address, in the test's namespace
# disconnect.stop_after must outlast the head's outage: a worker cannot tell a dead head from a
# partition, and would fence (stop) its containers after it
SPEC = """
name: headloss
settings:
  placement: spread
  backoff_initial: 0.1
  backoff_max: 2s
  orphan_grace: 2s
  disconnect:
    stop_after: 600s
services:
  steady:
    image: veo/busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    instances: 2
    hosts: [dos, tres]
    network_mode: none
    cpus: 0.1
    memory: 16m
    stop_grace_period: 1s
"""
EXPECTED = {"steady": 2}
RECONNECT_S = 30  # RAY_gcs_rpc_server_reconnect_timeout_s on the workers (Ray's default: 60)
FIGURES: dict[str, float] = {}


class RedisHeadMachines(Machines):
    """The machines world with the head's Ray GCS and veo's state in an external Redis."""

    def __init__(self, specs, *, redis_addr: str, **kw):
        super().__init__(specs, **kw)
        self.ray_redis = f"redis://{redis_addr}"  # Ray takes host:port, no database
        self.store_url = f"redis://{redis_addr}/0?prefix=veo:"

    def env(self, m: Machine) -> dict[str, str]:
        out = super().env(m)
        if m.head:  # what the head's service manager sets: the Scheduler keeps its state there
            out["VEO_STATE_STORE"] = self.store_url
        else:  # shorter than Ray's 60 s, so the second test outlasts it quickly
            out["RAY_gcs_rpc_server_reconnect_timeout_s"] = str(RECONNECT_S)
        return out

    def node_argv(self, m: Machine) -> list[str]:
        return super().node_argv(m) + (["--redis", self.ray_redis] if m.head else [])


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("headloss-redis"), "--protected-mode", "no",
                         bind="0.0.0.0")  # the bridge does not exist yet: its address comes later
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def world(redis_server) -> Iterator[RedisHeadMachines]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None or shutil.which("nsenter") is None:
        pytest.fail("the machines suite needs root, dockerd and nsenter: run `make test-machines`",
                    pytrace=False)
    w = RedisHeadMachines([("uno", "front"), ("dos", "back"), ("tres", "back")],
                          tag=f"hl{os.getpid() % 100000}", subnet=SUBNET,
                          redis_addr=f"{OUTSIDE}:{redis_server.port}")
    try:
        w.start()
        view = ClusterView(w)
        view.wait(lambda: view.nodes_alive() == {"uno", "dos", "tres"}, 180, "3 machines in the cluster")
        w.up(SPEC)
        yield w
    finally:
        w.close()


def _engine_truth(world: Machines) -> dict[str, tuple[str, str, str | None]]:
    """container id -> (machine, name, StartedAt) of every steady container, from the workers'
    engines (steady runs only there; the head's engine may be down)."""
    out = {}
    for name, m in world.machines.items():
        if m.head:
            continue
        rt = m.runtime(timeout=10)
        try:
            for c in rt.list(labels={LABEL_MANAGED: "true", LABEL_SERVICE: "steady"}):
                out[c.id] = (name, c.name, rt.inspect(c.id).started_at)
        finally:
            rt.close()
    return out


def _events_since(world: Machines, since: int) -> list[dict]:
    """``veo events --since`` as the head's operator runs it (through Ray, not the REST API)."""
    r = world.veo(world.head, "events", "--since", str(since), "--json", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def test_head_machine_lost_and_replaced_the_cluster_carries_on(world, redis_server):
    view = ClusterView(world)
    head = world.head
    views = view.wait(lambda: view.converged(EXPECTED), 120, "steady converged on the workers")
    assert {v["node"] for v in views.values()} == {"dos", "tres"}
    before = _engine_truth(world)
    assert len(before) == 2 and all(s for _, _, s in before.values())
    # the desired state is in Redis, not on the head's disk
    assert b"steady" in (redis_server.client.hget("veo:kv", "services") or b"")
    assert not (head.root / "veo" / "state" / "scheduler.db").exists()
    old_events = view.get("/api/events?limit=1000")
    last = old_events[-1]["index"]
    assert last > 0
    workers = [m for m in world.machines.values() if not m.head]
    raylets = {m.name: _raylets(world, m) for m in workers}
    assert all(raylets.values())

    t0 = time.monotonic()
    killed = world.power_off(head)
    assert killed >= 3 and not world.pids_of(head)
    for wiped in ("veo", "ray"):  # a replacement machine: no veo state, no Ray session files
        shutil.rmtree(head.root / wiped, ignore_errors=True)
    world.boot(head)
    FIGURES["head_kill_to_booted_s"] = time.monotonic() - t0

    # the new Scheduler answers with the desired state it had
    services = view.wait(lambda: view.get("/api/services"), 240, "the new Scheduler answering")
    FIGURES["head_kill_to_scheduler_answering_s"] = time.monotonic() - t0
    assert [s["name"] for s in services] == ["steady"]
    view.wait(lambda: view.nodes_alive() == {"uno", "dos", "tres"}, 180, "the workers back in the cluster")
    FIGURES["head_kill_to_nodes_alive_s"] = time.monotonic() - t0
    after = view.wait(lambda: view.converged(EXPECTED), 180, "steady converged after the head loss")
    FIGURES["head_kill_to_converged_s"] = time.monotonic() - t0

    # Ray's GCS fault tolerance: the workers' raylets reconnected to the new GCS (not restarted)
    assert {m.name: _raylets(world, m) for m in workers} == raylets
    # never restarted: the same containers, started at the same instant, and veo shows them
    assert _engine_truth(world) == before
    assert {v["id"] for v in after.values()} == set(before)

    # the event index continues: what happened before the kill is still there, nothing reused
    replayed = _events_since(world, last - 5)
    assert [e["index"] for e in replayed][:5] == list(range(last - 4, last + 1))
    assert {e["index"]: e["kind"] for e in replayed if e["index"] <= last} == \
        {e["index"]: e["kind"] for e in old_events if e["index"] > last - 5}
    indexes = [e["index"] for e in view.get("/api/events?limit=1000")]
    assert indexes == sorted(set(indexes)) and indexes[-1] > last  # new events after the old ones

    # supervision works again: a crash on a worker (a kill Docker's restart policy ignores) is
    # restarted by veo
    cid, (machine, _, _) = next(iter(sorted(before.items(), key=lambda kv: kv[1][0])))
    key = next(k for k, v in after.items() if v["id"] == cid)
    rt = world.machines[machine].runtime()
    try:
        rt.kill(cid)
    finally:
        rt.close()

    def restarted():
        now = {(i["service"], i["instance"]): i for i in view.instances("steady")}.get(key)
        return now if now and now["restarts"] >= 1 and now["status"] == "running" else None

    view.wait(restarted, 120, f"veo to restart {key} after the crash")
    FIGURES["head_kill_to_supervision_restored_s"] = time.monotonic() - t0
    # ... and the new Scheduler heard of it (the agent -> Scheduler path), under a new index
    view.wait(lambda: [e for e in view.get(f"/api/events?since={last}&kind=restarted&service=steady")
                       if e["instance"] == key[1]], 30, "the restart in the new Scheduler's events")
    view.wait(lambda: view.converged(EXPECTED), 60, "converged after the crash")
    # the control loop places new work again
    body = {"name": "fresh", "image": "veo/busybox", "command": ["sleep", "3600"],
            "network_mode": "none", "hosts": ["tres"], "cpus": 0.1, "memory": "16m",
            "stop_grace_period": "1s"}
    assert view.http.post("/api/services", json=body).status_code == 201
    view.wait(lambda: view.converged({**EXPECTED, "fresh": 1}), 90, "new work placed after recovery")
    assert view.http.delete("/api/services/fresh").status_code == 200
    view.wait(lambda: view.converged(EXPECTED) and not any(view.containers({"fresh"}).values()),
              60, "fresh removed")


def _raylets(world: Machines, m: Machine) -> list[int]:
    def exe(pid: int) -> str:
        try:
            return os.path.basename(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode())
        except OSError:
            return ""

    return [p for p in world.pids_of(m) if exe(p) == "raylet"]


def test_head_down_past_rays_reconnect_timeout_workers_rejoin_containers_kept(world):
    """Past the reconnect timeout the workers' raylets give up and exit (and the NodeAgents with
    them); the containers keep running (stop_after is longer), each worker's ``veo node start``
    starts its Ray node again once the head answers, and the cluster converges with no twin."""
    view = ClusterView(world)
    head = world.head
    views = view.wait(lambda: view.converged(EXPECTED), 120, "converged before the outage")
    before = _engine_truth(world)
    workers = [m for m in world.machines.values() if not m.head]
    assert all(_raylets(world, m) for m in workers)
    t0 = time.monotonic()
    world.power_off(head)
    view.wait(lambda: not any(_raylets(world, m) for m in workers), RECONNECT_S + 60,
              "the workers' raylets to give up on the GCS")
    FIGURES["head_down_to_worker_raylets_exit_s"] = time.monotonic() - t0
    # the containers do not depend on Ray: still running, never restarted
    truth = _engine_truth(world)
    assert truth == before
    for m in workers:
        rt = m.runtime()
        try:
            assert all(rt.inspect(cid).running for cid, (mn, _, _) in truth.items() if mn == m.name)
        finally:
            rt.close()
    t1 = time.monotonic()
    world.boot(head)
    view.wait(lambda: view.nodes_alive() == {"uno", "dos", "tres"}, 240, "the workers rejoined")
    after = view.wait(lambda: view.converged(EXPECTED), 240, "converged after the long outage")
    FIGURES["long_outage_boot_to_converged_s"] = time.monotonic() - t1
    for k, old in views.items():  # re-adopted, or replaced by a newer generation: never doubled
        assert after[k]["id"] == old["id"] or after[k]["generation"] > old["generation"], (old, after[k])
    FIGURES["long_outage_containers_kept"] = float(sum(after[k]["id"] == views[k]["id"] for k in views))


def test_report_figures():
    """Not a check: the measured times, in the test log."""
    print("head loss figures:", json.dumps({k: round(v, 1) for k, v in FIGURES.items()}))
