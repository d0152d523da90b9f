"""The CLI against a remote `veo serve` (``--server URL`` / ``VEO_SERVER``, token from
``VEO_TOKEN``): every command run both ways on the shared Ray world, over Ray (``--address``)
and through a live server on a real socket, must print the same and exit the same."""

from __future__ import annotations

import json
import textwrap

import pytest
from live_server import LiveServer
from ray_world import CAPACITY, NODES, TEST_SETTINGS, wait_for
from typer.testing import CliRunner

from veo.cli.app import app
from veo.core.models import Service

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(300)]
runner = CliRunner()
TOKEN = "remote-cli-token-0123456789abcdef"
HOLD = ["sh", "-c", "echo hello; echo from veo; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


@pytest.fixture(scope="module")
def server(world):
    s = LiveServer(world.client, token=TOKEN)
    try:
        yield s
    finally:
        s.close()


def over_ray(world, *args: str):
    return runner.invoke(app, [*args, "--address", world.cluster.address],
                         env={"VEO_SERVER": None, "VEO_TOKEN": None})


def over_server(server, *args: str, token: str | None = TOKEN):
    return runner.invoke(app, list(args), env={"VEO_SERVER": server.url, "VEO_TOKEN": token,
                                                "RAY_ADDRESS": None})


def same(world, server, *args: str):
    """Run ``veo ARGS`` both ways; both answers (exit code, stdout, stderr) must be equal."""
    a, b = over_ray(world, *args), over_server(server, *args)
    assert (b.exit_code, b.stdout, b.stderr) == (a.exit_code, a.stdout, a.stderr), args
    return a


def hold(world, name: str, **kw) -> None:
    world.client.add_service(Service(name=name, image="veo/busybox", network_mode="none",
                                     command=HOLD, stop_grace_period=1, **kw))


def test_reads_print_the_same(world, server, names):
    name = names("rread")
    hold(world, name)
    world.wait_running(name)
    wait_for(lambda: "from veo" in world.client.logs(name), 15, what="the log lines")
    for args in (["ps"], ["ps", "--json"], ["ps", "--service", name], ["nodes"],
                 ["nodes", "--json"], ["logs", name, "--tail", "5"]):
        assert same(world, server, *args).exit_code == 0
    last = world.client.events_batch()[-1].index
    out = same(world, server, "events", "--json", "--since", str(last - 5))
    assert len(out.stdout.splitlines()) == 5
    a, b = over_ray(world, "stats", name, "--json"), over_server(server, "stats", name, "--json")
    assert a.exit_code == b.exit_code == 0
    assert json.loads(a.stdout).keys() == json.loads(b.stdout).keys()
    assert json.loads(b.stdout)["memory_usage"] > 0


@pytest.mark.parametrize("args", [
    ["rm", "nosuch"], ["restart", "nosuch", "-i", "3"], ["logs", "nosuch"], ["stats", "nosuch"],
    ["cordon", "nosuch"], ["drain", "nosuch"], ["uncordon", "nosuch"], ["ps", "--service", "nosuch"],
])
def test_errors_read_the_same_with_the_same_exit_code(world, server, args):
    out = same(world, server, *args)
    assert out.exit_code != 0 and out.stderr.startswith("error: ")


def test_invalid_file_is_reported_the_same(world, server, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  x:\n    image: veo/busybox\n    memory: lots\n    pid_mode: host\n")
    out = same(world, server, "up", str(bad))
    assert out.exit_code == 2 and f"{bad}:4:" in out.stderr


def test_changes_through_the_server(world, server, names):
    name = names("rchg")
    hold(world, name)
    first = world.wait_running(name)[0]
    r = over_server(server, "restart", name)
    assert (r.exit_code, r.stderr.strip()) == (0, f"restarting {name}#0")
    world.wait_running(name, pred=lambda insts: insts[0].restarts == first.restarts + 1)
    assert over_server(server, "cordon", "tres").exit_code == 0
    assert next(n for n in world.client.nodes() if n.name == "tres").cordoned
    r = over_server(server, "uncordon", "tres")
    assert r.exit_code == 0 and not next(n for n in world.client.nodes() if n.name == "tres").cordoned
    r = over_server(server, "rm", name)
    assert (r.exit_code, r.stderr.strip()) == (0, f"removed {name}")
    assert all(s.name != name for s in world.client.services())


def test_up_through_the_server(world, server, names, tmp_path):
    name = names("rup")
    nodes = "\n".join(f"  - {{name: {n}, role: {r}, cpus: {CAPACITY['cpus']}, memory: "
                      f"{CAPACITY['memory']}, disk: {CAPACITY['disk']}}}" for n, r in NODES)
    settings = "\n".join(f"  {k}: {v}" for k, v in TEST_SETTINGS.items())
    file = tmp_path / "cluster.yml"
    file.write_text(f"name: veo\nnodes:\n{nodes}\nsettings:\n{settings}\npolicy:\n"
                    "  allow_host_network: true\n  allow_privileged: true\nservices:\n"
                    f"  {name}:\n    image: veo/busybox\n    network_mode: none\n"
                    f"    stop_grace_period: 1\n    command: {json.dumps(HOLD)}\n")
    try:
        r = over_server(server, "up", str(file), "--timeout", "60")
        assert r.exit_code == 0, r.output
        assert f"applied: added {name}" in r.stderr and name in r.stdout and "running" in r.stdout
        again = [over_server(server, "up", str(file)), over_ray(world, "up", str(file))]
        for r in again:
            assert r.exit_code == 0 and f"applied: unchanged {name}" in r.stderr, r.output
        assert again[0].stdout == again[1].stdout  # the same table (nothing changed between)
    finally:
        world.apply_settings()


def test_wrong_or_missing_token_is_a_clear_error(server):
    r = over_server(server, "ps", token="not-the-token-0123456789")
    assert r.exit_code == 1, r.output
    assert r.stderr.strip() == f"error: veo server {server.url} refused the request: wrong token"
    r = over_server(server, "ps", token=None)
    assert r.exit_code == 1 and "needs a token" in r.stderr


def test_token_file(server, tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    r = runner.invoke(app, ["nodes", "--json", "--server", server.url, "--token-file", str(path)],
                      env={"VEO_TOKEN": None, "VEO_SERVER": None})
    assert r.exit_code == 0 and {n["name"] for n in json.loads(r.stdout)} >= {"uno", "dos"}


def test_no_server_there(world):
    r = runner.invoke(app, ["ps", "--server", "http://127.0.0.1:9"], env={"VEO_TOKEN": TOKEN})
    assert r.exit_code == 1 and r.stderr.startswith("error: no veo server at http://127.0.0.1:9")
