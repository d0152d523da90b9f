"""Placement throughput on simulated clusters: ``python -m bench.placement``.

Clusters have 4 roles and mixed node sizes; ~10% of services sit in groups of 2-3 members,
~20% are role-constrained, a few ask for 3 instances, two for ``instances: all``, and a handful
ask for the impossible (a missing role, more memory than any node) so the pending path is timed too.
"""

from __future__ import annotations

import random
import time

from veo.core.models import GroupRole, Service
from veo.core.placement import NodeState, place, units_for

TARGET = 50_000  # placements per second
ROLES = ("web", "db", "cache", "batch")
GiB = 1024**3
MiB = 1024**2
FULL = [(1_000, 10_000), (5_000, 100_000)]
QUICK = [(100, 1_000), (500, 5_000)]


def make_nodes(count: int, rng: random.Random) -> list[NodeState]:
    nodes = []
    for i in range(count):
        cpus = rng.choice((4, 8, 16, 32, 64))
        nodes.append(
            NodeState(
                name=f"n{i:05d}",
                role=rng.choice(ROLES),
                host=f"h{i // 2:05d}",  # two nodes per host, as with two Ray workers per machine
                alive=rng.random() > 0.01,
                cordoned=rng.random() < 0.005,
                cpus=float(cpus),
                memory=cpus * rng.choice((2, 4, 8)) * GiB,
                disk=rng.choice((100, 250, 500, 1000)) * GiB,
            )
        )
    return nodes


def make_services(count: int, rng: random.Random) -> dict[str, Service]:
    services: dict[str, Service] = {}
    grouped = count // 10
    i = 0
    while i < count:
        size = rng.choice((2, 3)) if i < grouped else 1
        group = f"g{i:06d}" if size > 1 else None
        instances = 3 if rng.random() < 0.01 else 1
        for m in range(min(size, count - i)):
            svc = _service(f"s{i:06d}", rng, group, m == 0, instances)
            services[svc.name] = svc
            i += 1
    for name, role in (("agent", None), ("db-exporter", "db")):
        services[name] = Service(
            name=name, image="veo/agent:1", instances="all", cpus=0.05, memory=32 * MiB,
            roles=[role] if role else [],
        )
    return services


def _service(name: str, rng: random.Random, group: str | None, master: bool, instances: int) -> Service:
    fields: dict = {
        "name": name,
        "image": "veo/busybox:latest",
        "instances": instances,
        "cpus": round(rng.uniform(0.05, 1.0), 2),
        "memory": rng.choice((64, 128, 256, 512, 1024, 2048)) * MiB,
        "disk": rng.choice((0, 0, 1, 5, 20)) * GiB,
    }
    roll = rng.random()
    if roll < 0.2:
        fields["roles"] = rng.sample(ROLES, rng.choice((1, 1, 2)))
    elif roll < 0.2005:
        fields["roles"] = ["gpu"]  # no such node: pending
    elif roll < 0.201:
        fields["memory"] = 2048 * GiB  # more than any node: pending
    if group:
        fields["group"] = group
        if master:
            fields["group_role"] = GroupRole.master
        else:
            fields.pop("roles", None)  # the master constrains the group; the rest follow it
    # validated construction (model_construct is slower here, and this keeps every Service real)
    return Service(**fields)


def run_one(node_count: int, service_count: int, strategy: str = "spread", seed: int = 7) -> dict:
    """Time ``units_for`` and ``place`` separately. Rates are per CPU-second of this process: the
    work is single-threaded, and on a shared machine wall time also counts waiting for a core
    (wall seconds are reported as well)."""
    rng = random.Random(seed)
    nodes = make_nodes(node_count, rng)
    services = make_services(service_count, rng)
    c0, t0 = time.process_time(), time.perf_counter()
    units = units_for(services, nodes)
    c1, t1 = time.process_time(), time.perf_counter()
    plan = place(nodes, units, strategy=strategy)
    c2, t2 = time.process_time(), time.perf_counter()
    placed = len(plan.assignments)
    return {
        "nodes": node_count,
        "services": service_count,
        "strategy": strategy,
        "units": len(units),
        "placed": placed,
        "pending": len(plan.pending),
        "units_for_s": c1 - c0,
        "place_s": c2 - c1,
        "place_wall_s": t2 - t1,
        "placements_per_s": placed / max(c2 - c1, 1e-9),
        "placements_per_wall_s": placed / max(t2 - t1, 1e-9),
    }


def run(quick: bool = False) -> list[dict]:
    sizes = QUICK if quick else FULL
    rows = [run_one(n, s) for n, s in sizes]
    rows.append(run_one(*sizes[-1], strategy="binpack"))
    return rows


def print_table(rows: list[dict]) -> None:
    head = f"{'nodes':>6} {'services':>9} {'strategy':>8} {'units':>7} {'placed':>7} {'pending':>7} "
    head += f"{'units_for s':>11} {'place s':>8} {'wall s':>7} {'placements/s':>12} {'per wall s':>10}"
    print(head)
    for r in rows:
        print(
            f"{r['nodes']:>6} {r['services']:>9} {r['strategy']:>8} {r['units']:>7} {r['placed']:>7} "
            f"{r['pending']:>7} {r['units_for_s']:>11.3f} {r['place_s']:>8.3f} {r['place_wall_s']:>7.3f} "
            f"{r['placements_per_s']:>12,.0f} {r['placements_per_wall_s']:>10,.0f}"
        )
    print("(seconds are CPU seconds of this process unless marked wall)")
    big = max((r for r in rows if r["strategy"] == "spread"), key=lambda r: r["services"])
    met = "met" if big["placements_per_s"] >= TARGET else "NOT met"
    print(f"target >= {TARGET:,}/s ({big['nodes']} nodes x {big['services']} services, spread): {met}")


if __name__ == "__main__":
    print_table(run())
