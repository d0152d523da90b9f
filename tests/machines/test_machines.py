"""veo on three machines with their own addresses, engines and Ray nodes (see conftest.py).

The order matters and is the file's order: placement and the front doors first, then the faults
(a partition, a reboot), each of which ends only once the world has converged again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import STOP_AFTER
from world import SPEC

from veo.core.names import LABEL_NODE
from veo.adapters import handoff

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(420)]
EXPECTED = {"spread": 3}
FIGURES: dict[str, float] = {}


def test_placement_across_machines_each_container_on_its_own_engine(machines, view):
    views = view.wait(lambda: view.converged(EXPECTED), 90, "spread converged")
    assert {v["node"] for v in views.values()} == {"uno", "dos", "tres"}  # spread: one each
    for machine, containers in view.containers({"spread"}).items():
        # the engine a container is on is its machine's own, and its label says so
        assert all(c.labels[LABEL_NODE] == machine for c in containers), machine
        assert len(containers) == 1, (machine, [c.name for c in containers])


def test_ps_logs_stats_from_the_head_for_containers_on_other_machines(machines, view):
    head = machines.head
    ps = machines.veo(head, "ps", "--json")
    assert ps.returncode == 0, ps.stderr
    rows = json.loads(ps.stdout)
    assert {r["node"] for r in rows if r["service"] == "spread"} == {"uno", "dos", "tres"}
    remote = next(r for r in rows if r["service"] == "spread" and r["node"] == "tres")
    logs = machines.veo(head, "logs", "spread", "--instance", str(remote["instance"]))
    assert logs.returncode == 0, logs.stderr
    # the container's hostname is its id on tres's engine: the log really came from there
    assert f"hello from {remote['container_id'][:12]}" in logs.stdout
    stats = machines.veo(head, "stats", "spread", "--instance", str(remote["instance"]), "--json")
    assert stats.returncode == 0, stats.stderr
    sample = json.loads(stats.stdout)
    assert sample["memory_limit"] == 16 * 1024 * 1024 and sample["pids"] >= 1
    # and through the REST API, from a process that is not in the Ray cluster at all
    key = f"spread:{remote['instance']}"
    assert f"hello from {remote['container_id'][:12]}" in view.http.get(f"/api/containers/{key}/logs").text
    assert view.get(f"/api/containers/{key}/stats")["memory_limit"] == 16 * 1024 * 1024
    assert {i["node"] for i in view.instances("spread")} == {"uno", "dos", "tres"}


def test_ray_refuses_a_process_without_the_cluster_token(machines, tmp_path):
    wrong = tmp_path / "wrong-token"
    wrong.write_text("0" * 64)
    wrong.chmod(0o600)
    r = machines.veo(machines.head, "ps", env={"RAY_AUTH_TOKEN_PATH": str(wrong)}, timeout=180)
    assert r.returncode != 0
    assert "token" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr


def test_partition_work_moves_no_twin_after_heal_and_the_machine_takes_work(machines, view):
    cut = machines.machines["tres"]
    before = view.wait(lambda: view.converged(EXPECTED), 60, "converged before the cut")
    moved = [k for k, v in before.items() if v["node"] == "tres"]
    assert moved
    t0 = time.monotonic()
    machines.cut(cut)
    try:
        def elsewhere():
            running = {(i["service"], i["instance"]): i for i in view.running("spread")}
            return all(k in running and running[k]["node"] != "tres" for k in moved) and running

        view.wait(elsewhere, 60, "tres's work running on the other machines")
        FIGURES["partition_to_running_elsewhere_s"] = time.monotonic() - t0
        # no twin during the partition beyond stop_after: tres stops its own containers
        view.wait(lambda: not any(c.running for c in view.containers({"spread"})["tres"]),
                  STOP_AFTER + 30, "tres to stop its containers (fenced)")
        FIGURES["partition_to_fenced_s"] = time.monotonic() - t0
    finally:
        machines.heal(cut)
    t1 = time.monotonic()
    view.wait(lambda: view.converged(EXPECTED) and "tres" in view.nodes_alive(), 240,
              "no twin anywhere and tres back after the heal")
    FIGURES["heal_to_no_twin_s"] = time.monotonic() - t1
    # tres rejoined for real: new work placed there runs on its engine
    body = {"name": "fresh", "image": "veo/busybox", "command": ["sleep", "3600"],
            "network_mode": "none", "hosts": ["tres"], "cpus": 0.1, "memory": "16m",
            "stop_grace_period": "1s"}
    r = view.http.post("/api/services", json=body)
    assert r.status_code == 201, r.text
    try:
        views = view.wait(lambda: view.converged({"fresh": 1}), 90, "new work on tres")
        assert [v["node"] for v in views.values()] == ["tres"]
    finally:
        view.http.delete("/api/services/fresh")
        view.wait(lambda: not any(view.containers({"fresh"}).values()), 60, "fresh removed")
    # the agent reported what its machine stopped while cut off
    view.wait(lambda: [e for e in view.get("/api/events?kind=fenced&node=tres&limit=1000")
                       if e["service"] == "spread"], 30, "tres's fenced event")


def test_short_partition_twin_is_removed_on_heal(machines, view):
    """Cut for less than stop_after but longer than node-loss detection: the work moves, the
    cut-off machine still runs its copy (the documented window), and the heal removes it."""
    cut = machines.machines["dos"]
    long_stop = 90.0  # the cut stays well inside it, however slow this machine is today
    _set_stop_after(machines, long_stop)
    try:
        before = view.wait(lambda: view.converged(EXPECTED), 60, "converged before the cut")
        moved = {k for k, v in before.items() if v["node"] == "dos"}
        t0 = time.monotonic()
        machines.cut(cut)
        try:
            view.wait(lambda: all(k in {(i["service"], i["instance"]) for i in view.running("spread")
                                        if i["node"] != "dos"} for k in moved),
                      long_stop / 2, "dos's work running elsewhere")
            still = [c for c in view.containers({"spread"})["dos"] if c.running]
            assert time.monotonic() - t0 < long_stop and still, "dos fenced before stop_after"
        finally:
            machines.heal(cut)
        t1 = time.monotonic()
        view.wait(lambda: view.converged(EXPECTED) and "dos" in view.nodes_alive(), 240,
                  "the twin on dos removed after the heal")
        FIGURES["short_heal_to_no_twin_s"] = time.monotonic() - t1
    finally:
        _set_stop_after(machines, STOP_AFTER)


def _set_stop_after(machines, seconds: float) -> None:
    """Re-apply the spec with another stop_after and wait until every worker's node process has
    it (the agents cache it on their next converge)."""
    machines.up(SPEC.format(stop_after=f"{seconds:g}s"))
    deadline = time.monotonic() + 60
    for m in machines.machines.values():
        if m.head:
            continue
        while handoff.load_stop_after(m.root / "veo" / "node") != seconds:
            assert time.monotonic() < deadline, f"{m.name} did not learn stop_after={seconds:g}"
            time.sleep(0.5)


def test_sigterm_stops_the_ray_node_never_the_containers(machines, view):
    m = machines.machines["tres"]
    body = {"name": "kept", "image": "veo/busybox", "command": ["sleep", "3600"],
            "network_mode": "none", "hosts": ["tres"], "cpus": 0.1, "memory": "16m",
            "stop_grace_period": "1s"}
    assert view.http.post("/api/services", json=body).status_code == 201
    expected = {**EXPECTED, "kept": 1}
    try:
        views = view.wait(lambda: view.converged(expected), 90, "kept running on tres")
        cid = views[("kept", 0)]["id"]
        node = m.procs.pop("node")
        node.terminate()
        assert node.wait(60) == 0
        assert not [p for p in machines.pids_of(m) if _exe(p) in ("raylet", "gcs_server")]
        rt = m.runtime()
        assert rt.inspect(cid).running  # Docker keeps it: stopping veo's node stops Ray only
        machines.start_node(m)
        view.wait(lambda: view.converged(expected) and "tres" in view.nodes_alive(), 240,
                  "tres back, kept re-adopted or replaced")
        now = {(i["service"], i["instance"]): i for i in view.instances("kept")}[("kept", 0)]
        assert now["id"] == cid or now["generation"] > views[("kept", 0)]["generation"]
    finally:
        view.http.delete("/api/services/kept")
        view.wait(lambda: not any(view.containers({"kept"}).values()), 60, "kept removed")


def _exe(pid: int) -> str:
    try:
        return os.path.basename(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode())
    except OSError:
        return ""


def test_reboot_readopts_or_replaces_never_duplicates(machines, view):
    """dos crashes (every process of it killed at once) and boots again as its service manager
    would: dockerd, then `veo node start`. Work pinned to dos can only come back there
    (re-adopted, or replaced by a newer generation on dos); nothing is ever doubled."""
    m = machines.machines["dos"]
    body = {"name": "pinned", "image": "veo/busybox", "command": ["sleep", "3600"],
            "network_mode": "none", "hosts": ["dos"], "cpus": 0.1, "memory": "16m",
            "stop_grace_period": "1s"}
    assert view.http.post("/api/services", json=body).status_code == 201
    expected = {**EXPECTED, "pinned": 1}
    try:
        view.wait(lambda: view.converged(expected), 90, "converged before the reboot")
        before = {(i["service"], i["instance"]): i for i in view.instances() if i["node"] == "dos"}
        killed = machines.power_off(m)
        assert killed >= 3  # dockerd, containerd, the node process and its Ray node at least
        view.wait(lambda: "dos" not in view.nodes_alive(), 60, "the cluster to notice dos is gone")
        t0 = time.monotonic()
        machines.boot(m)
        view.wait(lambda: view.converged(expected) and "dos" in view.nodes_alive(), 150,
                  "converged after dos rebooted")
        FIGURES["reboot_to_converged_s"] = time.monotonic() - t0
        after = {(i["service"], i["instance"]): i for i in view.instances()}
        for key, old in before.items():
            now = after[key]
            assert now["id"] == old["id"] or now["generation"] > old["generation"], (old, now)
        assert after[("pinned", 0)]["node"] == "dos"
    finally:
        view.http.delete("/api/services/pinned")
        view.wait(lambda: not any(view.containers({"pinned"}).values()), 60, "pinned removed")


def test_images_come_from_a_registry_on_one_machine_and_every_engine_pulls(machines, view):
    """Debian's docker-registry on the head machine (its address, plain HTTP on this private
    network, trusted through each engine's daemon.json), veo's image pushed there from the head's
    engine, and the other machines' engines pulling it when veo places the service there."""
    import docker
    from registry import Registry

    head = machines.head
    registry = Registry(ip=head.ip, port=5000, enter=head.enter())
    client = docker.DockerClient(base_url=head.docker_host)
    try:
        ref = registry.push(client, "veo/busybox:latest", "demo/app", "1")
        for name in ("dos", "tres"):
            assert not _has_image(machines.machines[name], ref)  # nowhere but the head's engine
        body = {"name": "pulled", "image": ref, "command": ["sleep", "3600"], "instances": 2,
                "network_mode": "none", "hosts": ["dos", "tres"], "cpus": 0.1, "memory": "16m",
                "stop_grace_period": "1s"}
        assert view.http.post("/api/services", json=body).status_code == 201
        view.wait(lambda: view.converged({**EXPECTED, "pulled": 2}), 120, "pulled running")
        for name in ("dos", "tres"):
            assert _has_image(machines.machines[name], ref), name
            containers = view.containers({"pulled"})[name]
            assert [c.image for c in containers] == [ref], (name, containers)
    finally:
        view.http.delete("/api/services/pulled")
        view.wait(lambda: not any(view.containers({"pulled"}).values()), 60, "pulled removed")
        client.close()
        registry.close()


def _has_image(m, ref: str) -> bool:
    import docker

    client = docker.DockerClient(base_url=m.docker_host)
    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()


def test_report_figures():
    """Not a check: the measured times, in the test log (make bench reports them too)."""
    print("machines figures:", json.dumps({k: round(v, 1) for k, v in FIGURES.items()}))
