"""Defects found when veo was tried as a new user would (issue 8), each on real parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ray_world import Faults, wait_for

from veo.core.models import InstanceStatus, Service
from veo.core.names import LABEL_CLUSTER

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(400)]


def test_a_completed_instance_stays_completed_after_its_agent_restarts(world, names):
    """The assignment used to carry only a 'hold' flag, so a restarted agent re-learnt every
    ended instance as failed."""
    name = names("done")
    world.client.add_service(Service(name=name, image="veo/busybox", command=["true"],
                                     restart="never", network_mode="none"))
    node = wait_for(lambda: next((i.node for i in world.instances(name)
                                  if i.status is InstanceStatus.completed), None),
                    40, what="the instance to complete")
    Faults(world).kill_actor("agent", node)
    # the restarted agent has reported (its synced report is what the view shows)
    wait_for(lambda: all(n.alive for n in world.client.nodes() if n.name == node), 30)
    for _ in range(3):  # several reports after the restart, not just the first
        wait_for(lambda: world.instances(name)[0].status is InstanceStatus.completed, 30,
                 what="the instance to show completed after the agent restart")


CLUSTER = textwrap.dedent("""
    name: defects
    nodes:
      - node: solo
    services:
      hello:
        image: veo/busybox
        command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
        network_mode: none
        stop_grace_period: 1s
      other:
        image: veo/busybox
        command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
        network_mode: none
        stop_grace_period: 1s
""")
BROKEN = CLUSTER + textwrap.indent(textwrap.dedent("""
    broken:
      image: veo/no-such-image
      network_mode: none
      pull_policy: never
"""), "  ")
EMPTY = "name: defects\nnodes:\n  - node: solo\nservices: {}\n"


def test_up_down_up_as_a_user_would(engine_pool, tmp_path: Path):
    engine = engine_pool.get("defects")
    env = {**os.environ, "VEO_STATE_DIR": str(tmp_path / "state"), "DOCKER_HOST": engine.docker_host}
    env.pop("RAY_ADDRESS", None)

    def run(*args, timeout=180):
        return subprocess.run([sys.executable, "-m", "veo.cli.app", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=timeout)

    def ps() -> dict[str, dict]:
        out = run("ps", "--json")
        return {r["service"]: r for r in json.loads(out.stdout)}

    for name, text in (("empty.yml", EMPTY), ("cluster.yml", CLUSTER), ("broken.yml", BROKEN)):
        (tmp_path / name).write_text(text)
    try:
        # an empty cluster is settled at once (it used to wait 120 s, then fail)
        up = run("up", "empty.yml", "--timeout", "60")
        assert up.returncode == 0, up.stderr

        up = run("up", "cluster.yml", "--timeout", "90")
        assert up.returncode == 0, up.stderr
        from veo.adapters.docker_api import DockerRuntime

        rt = DockerRuntime(engine.docker_host)
        rt.kill(ps()["hello"]["container_id"])
        wait_for(lambda: ps()["hello"]["restarts"] == 1 and ps()["hello"]["status"] == "running",
                 30, what="hello to be restarted once")

        # an instance that ends failed makes `veo up` fail, naming it
        up = run("up", "broken.yml", "--timeout", "90")
        assert up.returncode != 0
        assert "broken#0" in up.stderr and "veo/no-such-image" in up.stderr
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    # the count is what was really removed (the control loop used to remove them first)
    assert "removed 2 containers" in down.stderr
    assert not rt.list(labels={LABEL_CLUSTER: "defects"})

    try:
        up = run("up", "cluster.yml", "--timeout", "90")
        assert up.returncode == 0, up.stderr
        # a new cluster of the same name starts its counts from zero
        assert ps()["hello"]["restarts"] == 0
    finally:
        assert run("down").returncode == 0
