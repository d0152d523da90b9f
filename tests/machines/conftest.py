"""The machines suite's world: three machines (uno = head, dos, tres), each a network namespace
with its own address, dockerd and ``veo node start``; shared by the whole session.

Run it with ``make test-machines`` (inside a loopback-only namespace, as root)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from cluster_view import ClusterView
from world import Machines

SPEC = """
name: machines
settings:
  placement: spread
  backoff_initial: 0.1
  backoff_max: 2s
  orphan_grace: 2s
  disconnect:
    stop_after: {stop_after}
services:
  spread:
    image: veo/busybox
    command: ["sh", "-c", "echo hello from $(hostname); trap 'exit 0' TERM; while true; do sleep 1; done"]
    instances: 3
    network_mode: none
    cpus: 0.1
    memory: 16m
    stop_grace_period: 1s
"""
STOP_AFTER = 10.0  # seconds; short so the suite fits its budget (the default is 30 s)


@pytest.fixture(scope="session")
def machines(tmp_path_factory) -> Iterator[Machines]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None or shutil.which("nsenter") is None:
        pytest.fail("the machines suite needs root, dockerd and nsenter: run `make test-machines`",
                    pytrace=False)
    world = Machines([("uno", "front"), ("dos", "back"), ("tres", "back")])
    try:
        world.start()
        view = ClusterView(world)
        view.wait(lambda: view.nodes_alive() == {"uno", "dos", "tres"}, 120, "3 machines in the cluster")
        spec = tmp_path_factory.mktemp("spec") / "cluster.yml"
        spec.write_text(SPEC.format(stop_after=f"{STOP_AFTER:g}s"))
        (world.head.root / "cluster.yml").write_text(spec.read_text())
        up = world.veo(world.head, "up", str(world.head.root / "cluster.yml"), timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        yield world
    finally:
        world.close()


@pytest.fixture(scope="session")
def view(machines) -> ClusterView:
    return ClusterView(machines)
