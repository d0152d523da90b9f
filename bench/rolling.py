"""Rolling update of 10 instances (parallel 1, delay 0, stop-first) against Swarm's rule of thumb.

Swarm's `docker service update --update-parallelism 1 --update-delay 0` takes, per step, one
task's stop + start + its monitor period. The baseline is measured in the same run on the same
engine: the time to stop, start and see running one container with docker-py (x10), plus
``min_healthy`` per step (Swarm's ``--update-monitor`` plays that part). veo's figure is the
apply -> update_done time; the ratio says what veo's control loop adds per step.
"""

from __future__ import annotations

import time

from bench.common import Engine, VeoWorld, wait_until

N = 10
MONITOR = 1.0  # seconds a new instance must stay running: veo's min_healthy, Swarm's monitor
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


def _services(marker: str) -> dict:
    from veo.core.models import Service, UpdatePolicy

    return {"roll": Service(name="roll", image="veo/busybox", command=LOOP, network_mode="none",
                            stop_grace_period=1, instances=N, environment={"V": marker},
                            update=UpdatePolicy(parallel=1, min_healthy=MONITOR, delay=0))}


def _baseline(engine: Engine) -> float:
    """Stop + start + running, one container after the other, N times, plus the monitor."""
    api = engine.api()
    made = [api.create_container("veo/busybox", LOOP, host_config=api.create_host_config(
        network_mode="none"), labels={"veo-bench": "rolling"}) for _ in range(N)]
    try:
        for c in made:
            api.start(c)
        t0 = time.perf_counter()
        for c in made:
            api.stop(c, timeout=1)
            api.start(c)
            wait_until(lambda: api.inspect_container(c)["State"]["Running"], 30, 0.01)
        return time.perf_counter() - t0 + N * MONITOR
    finally:
        for c in made:
            api.remove_container(c, force=True)


def run(engine: Engine, world: VeoWorld) -> dict:
    world.apply(_services("v1"))
    wait_until(lambda: sum(1 for i in world.client.containers("roll")
                           if i.status.value == "running") == N, 120, 0.2, "10 running")
    t0 = time.perf_counter()
    world.apply(_services("v2"))
    wait_until(lambda: any(u["target"] == "roll" and u["state"] == "done"
                           for u in world.client.updates()), 600, 0.1, "the update to finish")
    veo_s = time.perf_counter() - t0
    world.clear()
    base = _baseline(engine)
    return {"instances": N, "min_healthy_s": MONITOR, "veo_s": veo_s, "swarm_rule_s": base,
            "ratio": veo_s / base, "per_step_overhead_s": (veo_s - base) / N}


def print_report(res: dict) -> None:
    print(f"Rolling update of {res['instances']} instances (parallel 1, delay 0, "
          f"min_healthy {res['min_healthy_s']:g}s)")
    print(f"  veo: {res['veo_s']:.1f} s; Swarm's rule (stop + start + monitor per step, "
          f"measured here): {res['swarm_rule_s']:.1f} s; ratio {res['ratio']:.2f}; "
          f"veo adds {res['per_step_overhead_s'] * 1e3:.0f} ms per step")
