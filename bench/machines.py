"""Faults on three real machines (tests/machines/world.py: network namespaces with their own
address, dockerd and ``veo node start``): how long until veo has repaired each.

    partition -> running elsewhere  cut a worker's link; until its instance runs on another machine
    partition -> fenced             until the worker has stopped its own copy (disconnect.stop_after)
    heal -> no twin                 link back; until one container per instance anywhere, and
                                    the worker back in the cluster
    reboot -> converged             every process of dos killed, dockerd and veo node started
                                    again; until converged with dos back (work pinned to dos)

Figures only; the machines suite (make test-machines) checks the behaviour.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "machines"))

from cluster_view import ClusterView  # noqa: E402
from world import SPEC, Machines  # noqa: E402

STOP_AFTER = 10.0
EXPECTED = {"spread": 3}
PINNED = {"name": "pinned", "image": "veo/busybox", "command": ["sleep", "3600"],
          "network_mode": "none", "hosts": ["dos"], "cpus": 0.1, "memory": "16m",
          "stop_grace_period": "1s"}


def _partition(w: Machines, v: ClusterView) -> dict[str, float]:
    before = v.wait(lambda: v.converged(EXPECTED), 120, "converged")
    # a worker that runs something (spread does not move work back after an earlier round)
    name = next(i["node"] for i in before.values() if i["node"] != w.head.name)
    cut = w.machines[name]
    moved = [k for k, i in before.items() if i["node"] == name]
    t0 = time.monotonic()
    w.cut(cut)
    out = {}
    try:
        def elsewhere():
            running = {(i["service"], i["instance"]): i for i in v.running("spread")}
            return all(k in running and running[k]["node"] != name for k in moved)

        v.wait(elsewhere, 120, "running elsewhere", interval=0.2)
        out["partition_to_running_elsewhere_s"] = time.monotonic() - t0
        v.wait(lambda: not any(c.running for c in v.containers({"spread"})[name]), 120,
               f"{name} fenced", interval=0.2)
        out["partition_to_fenced_s"] = time.monotonic() - t0
    finally:
        w.heal(cut)
    t1 = time.monotonic()
    v.wait(lambda: v.converged(EXPECTED) and name in v.nodes_alive(), 300, "no twin", interval=0.2)
    out["heal_to_no_twin_s"] = time.monotonic() - t1
    return out


def _reboot(w: Machines, v: ClusterView) -> float:
    m = w.machines["dos"]
    expected = {**EXPECTED, "pinned": 1}
    v.wait(lambda: v.converged(expected), 120, "converged before the reboot")
    w.power_off(m)
    v.wait(lambda: "dos" not in v.nodes_alive(), 60, "dos lost")
    t0 = time.monotonic()
    w.boot(m)
    v.wait(lambda: v.converged(expected) and "dos" in v.nodes_alive(), 240, "converged", interval=0.2)
    return time.monotonic() - t0


def run(rounds: int = 2) -> dict:
    t_setup = time.monotonic()
    w = Machines([("uno", "front"), ("dos", "back"), ("tres", "back")])
    try:
        w.start()
        v = ClusterView(w)
        v.wait(lambda: v.nodes_alive() == {"uno", "dos", "tres"}, 180, "3 machines")
        w.up(SPEC.format(stop_after=f"{STOP_AFTER:g}s"))
        setup_s = time.monotonic() - t_setup
        samples: dict[str, list[float]] = {}
        for _ in range(rounds):
            for k, val in _partition(w, v).items():
                samples.setdefault(k, []).append(val)
        r = v.http.post("/api/services", json=PINNED)
        r.raise_for_status()
        for _ in range(rounds):
            samples.setdefault("reboot_to_converged_s", []).append(_reboot(w, v))
    finally:
        w.close()
    return {"rounds": rounds, "stop_after_s": STOP_AFTER, "setup_s": setup_s, "samples": samples,
            "median_s": {k: statistics.median(vals) for k, vals in samples.items()}}


def print_report(res: dict) -> None:
    print(f"Machines (3 network namespaces, own dockerd + veo node each; stop_after "
          f"{res['stop_after_s']:g} s, {res['rounds']} round(s), world ready in {res['setup_s']:.0f} s)")
    for k, med in res["median_s"].items():
        vals = ", ".join(f"{x:.1f}" for x in res["samples"][k])
        print(f"  {k.removesuffix('_s').replace('_', ' '):36s} median {med:6.1f} s   ({vals})")
