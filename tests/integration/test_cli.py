"""The CLI against real clusters: ps/nodes/events/logs/rm on the shared world, and the whole
`veo up` -> `veo ps` -> `veo down` round trip with its own local Ray cluster and PID records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ray_world import wait_for
from typer.testing import CliRunner

from veo.cli.app import app
from veo.cli.cluster import NODE_FIELDS, PS_FIELDS
from veo.core.models import Service

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(240)]
runner = CliRunner()


def veo(world, *args: str):
    result = runner.invoke(app, [*args, "--address", world.cluster.address])
    assert result.exit_code == 0, result.output
    return result.output


def test_ps_nodes_events_logs_rm(world, names):
    name = names("cli")
    world.client.add_service(Service(name=name, image="veo/busybox", network_mode="none",
                                     command=["sh", "-c", "echo hello from veo; sleep 1000"],
                                     stop_grace_period=1))
    world.wait_running(name)
    rows = [r for r in json.loads(veo(world, "ps", "--json")) if r["service"] == name]
    assert len(rows) == 1 and set(rows[0]) == set(PS_FIELDS)
    assert rows[0]["status"] == "running" and rows[0]["node"] in {"uno", "dos", "tres"}

    nodes = json.loads(veo(world, "nodes", "--json"))
    assert {n["name"] for n in nodes} >= {"uno", "dos", "tres"}
    assert all(set(n) == set(NODE_FIELDS) for n in nodes)
    assert all(n["memory_total"] == 4 * 1024**3 for n in nodes if n["name"] in ("uno", "dos", "tres"))

    wait_for(lambda: "hello from veo" in veo(world, "logs", name), 10, what="the log line")
    events = [json.loads(line) for line in veo(world, "events", "--json").splitlines()]
    assert any(e["kind"] == "started" and e["service"] == name for e in events)

    veo(world, "rm", name)
    wait_for(lambda: not [r for r in json.loads(veo(world, "ps", "--json")) if r["service"] == name], 30)


def test_errors_are_messages_not_tracebacks(world):
    result = runner.invoke(app, ["rm", "no-such-service", "--address", world.cluster.address])
    assert result.exit_code == 1
    assert "no service named 'no-such-service'" in result.output
    assert "Traceback" not in result.output


SMALL = textwrap.dedent("""
    name: updown
    nodes:
      - node: solo
        role: any
    services:
      hello:
        image: veo/busybox
        command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
        network_mode: none
        stop_grace_period: 1s
""")


def test_up_ps_down_round_trip(engine_pool, tmp_path: Path):
    """`veo up` starts a local Ray cluster (recording its launcher PID), deploys, `veo down`
    removes the containers and stops exactly that launcher."""
    engine = engine_pool.get("updown")
    (tmp_path / "cluster.yml").write_text(SMALL)
    env = {**os.environ, "VEO_STATE_DIR": str(tmp_path / "state"), "DOCKER_HOST": engine.docker_host}
    env.pop("RAY_ADDRESS", None)
    veo_bin = [sys.executable, "-m", "veo.cli.app"]

    def run(*args, timeout=180):
        return subprocess.run([*veo_bin, *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=timeout)

    up = run("up", "cluster.yml", "--timeout", "90")
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert "hello" in up.stdout and "running" in up.stdout
        record = json.loads((tmp_path / "state" / "local-cluster.json").read_text())
        ps = run("ps", "--json")
        assert [r["status"] for r in json.loads(ps.stdout)] == ["running"], ps.stderr
        from veo.adapters.docker_api import DockerRuntime

        rt = DockerRuntime(engine.docker_host)
        assert len(rt.list(labels={"veo.cluster": "updown"})) == 1
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    assert "removed 1 containers" in down.stderr
    assert not rt.list(labels={"veo.cluster": "updown"})
    wait_for(lambda: not Path(f"/proc/{record['pid']}").exists()
             or Path(f"/proc/{record['pid']}/stat").read_text().split()[2] == "Z", 30,
             what="the launcher to exit")
