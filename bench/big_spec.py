"""A large, realistic cluster.yml (5,000 services in ~5 MB) for the loader's test and benchmark."""

from __future__ import annotations

import time


def service_yaml(i: int) -> str:
    env = "\n".join(f"      VAR_{k}: \"value-{i}-{k}-{'x' * 24}\"" for k in range(7))
    labels = "\n".join(f"      team.example/label-{k}: \"{'l' * 20}{i}\"" for k in range(4))
    return f"""  svc-{i:05d}:
    image: veo/busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do echo service {i} is alive; sleep 5; done"]
    network_mode: none
    instances: {1 + i % 3}
    cpus: 0.01
    memory: 8m
    stop_grace_period: 2s
    restart: on-failure
    restart_count: 5
    environment:
{env}
    labels:
{labels}
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok-{i}"]
      interval: 5s
      timeout: 2s
      retries: 3
"""


def big_spec(services: int = 5000) -> str:
    head = "name: big\nnodes:\n" + "".join(
        f"  - node: n{k}\n    cpus: 64\n    memory: 256g\n" for k in range(50))
    return head + "services:\n" + "".join(service_yaml(i) for i in range(services))


def run(services: int = 5000) -> dict:
    """Time the loader on the big file (parse + validation + rules), figures only."""
    from veo.core.config import parse_spec

    text = big_spec(services)
    t0, c0 = time.perf_counter(), time.process_time()
    result = parse_spec(text, "big.yml")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    # cpu_s: this process's CPU time, what the wall time would be on an idle core
    return {"services": len(result.spec.services), "bytes": len(text.encode()), "load_s": seconds,
            "cpu_s": cpu, "target_s": 5.0}


if __name__ == "__main__":
    print(run())
