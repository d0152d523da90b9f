"""The machines suite's world: three machines (uno = head, dos, tres), each a network namespace
with its own address, dockerd and ``veo node start``; shared by the whole session.

Run it with ``make test-machines`` (inside a loopback-only namespace, as root)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from cluster_view import ClusterView
from world import SPEC, Machines

STOP_AFTER = 10.0  # seconds; short so the suite fits its budget (the default is 30 s)


@pytest.fixture(scope="session")
def machines() -> Iterator[Machines]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None or shutil.which("nsenter") is None:
        pytest.fail("the machines suite needs root, dockerd and nsenter: run `make test-machines`",
                    pytrace=False)
    world = Machines([("uno", "front"), ("dos", "back"), ("tres", "back")])
    try:
        world.start()
        view = ClusterView(world)
        view.wait(lambda: view.nodes_alive() == {"uno", "dos", "tres"}, 120, "3 machines in the cluster")
        world.up(SPEC.format(stop_after=f"{STOP_AFTER:g}s"))
        yield world
    finally:
        world.close()


@pytest.fixture(scope="session")
def view(machines) -> ClusterView:
    return ClusterView(machines)
