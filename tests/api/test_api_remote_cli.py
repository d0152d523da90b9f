"""``veo … --server URL`` against a live server on a real socket backed by the fake cluster (no
Ray): `down`, `up`, `events --follow` and the error mapping, fast. The same commands against the
real Ray world, compared with the Ray path: tests/integration/test_cli_remote.py."""

from __future__ import annotations

import json
import threading

import pytest
from fake_cluster import FakeCluster
from live_server import LiveServer
from typer.testing import CliRunner

from veo.cli.app import app
from veo.core.errors import Conflict, NotFound, PolicyError, SpecError, SpecProblem, VeoError
from veo.core.models import EventKind
from veo.remote import RemoteCluster, error_from

runner = CliRunner()
TOKEN = "fake-remote-token-0123456789"


@pytest.fixture
def fake():
    f = FakeCluster()
    f.add_service({"name": "web", "image": "veo/busybox", "network_mode": "none",
                   "instances": 2})
    return f


@pytest.fixture
def server(fake):
    s = LiveServer(fake, token=TOKEN)
    try:
        yield s
    finally:
        s.close()


def veo(server, *args: str):
    return runner.invoke(app, [*args, "--server", server.url], env={"VEO_TOKEN": TOKEN})


def test_down_removes_everything_through_the_server(server, fake):
    r = veo(server, "down")
    assert (r.exit_code, r.stderr.strip()) == (0, "removed 2 containers")
    assert fake.services() == [] and fake.containers() == []


def test_up_sends_the_file_and_waits(server, fake, tmp_path):
    file = tmp_path / "c.yml"
    file.write_text("services:\n  job:\n    image: veo/busybox\n    network_mode: none\n")
    r = veo(server, "up", str(file), "--timeout", "10")
    assert r.exit_code == 0, r.output
    assert "applied: added job, removed web" in r.stderr and "job" in r.stdout
    assert [s.name for s in fake.services()] == ["job"]


def test_up_with_engine_per_node_is_refused(server, tmp_path):
    file = tmp_path / "c.yml"
    file.write_text("services: {}\n")
    r = veo(server, "up", str(file), "--engine-per-node")
    assert r.exit_code == 1 and "does not go with --server" in r.stderr


def test_events_follow_long_polls(server, fake):
    last = fake.events_batch()[-1].index
    remote = RemoteCluster(server.url, TOKEN)
    stream = remote.events(since=last, follow=True, poll=5)
    threading.Timer(0.3, lambda: fake.emit(EventKind.exited, service="web", instance=0)).start()
    ev = next(stream)
    assert (ev.index, ev.kind, ev.service) == (last + 1, EventKind.exited, "web")
    remote.close()


def test_stats_table(server):
    r = veo(server, "stats", "web", "-i", "1")
    assert r.exit_code == 0 and "web#1" in r.stdout
    sample = json.loads(veo(server, "stats", "web", "--json").stdout)
    assert set(sample) >= {"cpu_percent", "memory_usage", "memory_limit"}


@pytest.mark.parametrize(("status", "body", "kind", "text"), [
    (404, {"error": "NotFound", "message": "no service named 'x'"}, NotFound,
     "no service named 'x'"),
    (409, {"error": "Conflict", "message": "busy"}, Conflict, "busy"),
    (403, {"error": "PolicyError", "message": "policy.allow_host_pid"}, PolicyError,
     "policy.allow_host_pid"),
    (401, {"error": "Unauthorized", "message": "wrong token"}, VeoError,
     "veo server http://s refused the request: wrong token"),
    (502, "<html>bad gateway</html>", VeoError,
     "veo server http://s answered HTTP 502, not a veo error (is it a veo server?)"),
])
def test_error_bodies_become_the_same_kinds(status, body, kind, text):
    e = error_from(status, body, "http://s")
    assert type(e) is kind and str(e) == text and e.exit_code == kind.exit_code


def test_spec_errors_keep_their_problems():
    problems = [SpecProblem("expected a size like 512m, got 'lots'", "services.x.memory",
                            "c.yml", 4, 13)]
    body = {"error": "SpecError", "message": "…",
            "problems": [{"message": p.message, "path": p.path, "file": p.file, "line": p.line,
                          "column": p.column, "warning": False} for p in problems]}
    e = error_from(422, body, "http://s")
    assert isinstance(e, SpecError) and e.exit_code == 2
    assert str(e) == str(SpecError(problems))


def test_python_api_over_the_server(server, fake):
    remote = RemoteCluster(server.url, TOKEN)
    try:
        remote.add_service({"name": "job", "image": "veo/busybox", "network_mode": "none",
                            "memory": "16m"})
        remote.add_service({"name": "job", "image": "veo/busybox", "network_mode": "none",
                            "memory": "32m"})  # a second add replaces, as over Ray
        assert {s.name: s.memory for s in remote.services()}["job"] == 32 << 20
        assert remote.spec().services["job"].memory == 32 << 20
        assert [i.container_id for i in remote.containers("job")] == \
            [i.container_id for i in fake.containers("job")]
        assert remote.wait(timeout=5, service="job")[0].status.value == "running"
        remote.add_node({"name": "cuatro", "role": "back"})
        assert "cuatro" in {n.name for n in remote.nodes()}
        with pytest.raises(NotFound, match="no service named 'nope'"):
            remote.remove_service("nope")
    finally:
        remote.close()
