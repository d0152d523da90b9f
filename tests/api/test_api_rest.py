"""REST routes against a fake cluster: each resource, its errors, and that they read like the
CLI."""

from __future__ import annotations

import textwrap

import pytest
from conftest import BASE, make_app, service
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from veo.cli.app import app as cli
from veo.core.errors import NotConnected
from veo.core.models import EventKind, InstanceStatus

YAML = {"content-type": "application/yaml"}


def test_service_lifecycle(client, fake):
    r = client.post("/api/services", json=service("web", cpus=0.5, ports=["8080:80"]))
    assert r.status_code == 201 and r.json() == {"created": ["web"], "warnings": []}
    assert r.headers["location"] == "/api/services/web"
    assert [s["name"] for s in client.get("/api/services").json()] == ["web"]
    got = client.get("/api/services/web").json()
    assert got["cpus"] == 0.5 and got["ports"][0]["published"] == 8080
    r = client.put("/api/services/web", json={"image": "veo/busybox", "network_mode": "none",
                                              "instances": 2})
    assert r.status_code == 200 and r.json()["instances"] == 2
    assert len(client.get("/api/containers", params={"service": "web"}).json()) == 2
    assert client.delete("/api/services/web").json()["ok"] is True
    assert client.get("/api/services").json() == []


def test_missing_and_conflicting_services(client):
    assert client.get("/api/services/nope").status_code == 404
    r = client.delete("/api/services/nope")
    assert r.status_code == 404 and r.json() == {"error": "NotFound", "problems": [],
                                                 "message": "no service named 'nope'"}
    assert client.put("/api/services/nope", json=service("nope")).status_code == 404
    client.post("/api/services", json=service("web"))
    r = client.post("/api/services", json=service("web"))
    assert r.status_code == 409 and "PUT /api/services/web" in r.json()["message"]


def test_yaml_body_adds_every_service_with_file_positions(client):
    text = textwrap.dedent("""\
        services:
          a: {image: veo/busybox, network_mode: none}
          b:
            image: veo/busybox
            network_mode: none
            build: ./b
        """)
    r = client.post("/api/services", content=text, headers=YAML)
    assert r.status_code == 201 and r.json()["created"] == ["a", "b"]
    assert r.json()["warnings"] == ["<body>:6:5: warning: services.b.build: ignored: veo runs "
                                    "prebuilt images"]
    r = client.post("/api/services", content="services:\n  c:\n    imag: x\n", headers=YAML)
    assert r.status_code == 422
    assert [p["text"] for p in r.json()["problems"]] == [
        "<body>:2:3: services.c: missing required field 'image'",
        "<body>:3:5: services.c.imag: unknown key, did you mean 'image'?"]


def test_validation_messages_are_the_clis(client, tmp_path):
    body = service("bad", cpus=-1, memory="lots", restart_count=2, restart="never")
    r = client.post("/api/services", json=body)
    assert r.status_code == 422
    api = [p["text"] for p in r.json()["problems"]]
    path = tmp_path / "cluster.yml"
    path.write_text("services:\n  bad: {image: veo/busybox, network_mode: none, cpus: -1, "
                    "memory: lots, restart_count: 2, restart: never}\n")
    out = CliRunner().invoke(cli, ["validate", str(path)])
    assert out.exit_code == 2
    cli_lines = [line.split(": ", 1)[1] for line in out.stderr.splitlines()]
    assert sorted(api) == sorted(cli_lines)
    assert "services.bad.cpus: expected a number >= 0.0, got -1" in api


def test_group_rules_span_the_running_services(client):
    client.post("/api/services", json=service("m", group="g", group_role="master"))
    r = client.post("/api/services", json=service("m2", group="g", group_role="master"))
    assert r.status_code == 422 and "group 'g' has more than one master" in r.json()["message"]


def test_bodies_that_are_not_services(client):
    assert client.post("/api/services", content="{", headers={"content-type": "application/json"}
                       ).status_code == 422
    assert client.post("/api/services", json=[1]).json()["message"].startswith("expected a service")
    r = client.post("/api/services", content="x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert client.put("/api/services", json={}).status_code == 415


def test_apply_a_whole_file(client, fake):
    client.post("/api/services", json=service("old"))
    text = "name: demo\nservices:\n  new: {image: veo/busybox, network_mode: none}\n"
    r = client.put("/api/services", content=text, headers=YAML)
    assert r.json() == {"added": ["new"], "changed": [], "removed": ["old"], "unchanged": []}
    assert client.get("/api/cluster").json()["name"] == "demo"


def test_containers_list_filter_and_inspect(client, fake):
    client.post("/api/services", json=service("web", instances=3, ports=["8080:80"], cpus=0.2))
    all_ = client.get("/api/containers").json()
    assert {c["node"] for c in all_} == {"uno", "dos", "tres"}
    on_dos = client.get("/api/containers", params={"node": "dos"}).json()
    assert [c["key"] for c in on_dos] == ["web#1"]  # canonical spelling (issue 8)
    cid = on_dos[0]["id"]
    detail = client.get(f"/api/containers/{cid[:10]}").json()
    assert detail["status"] == "running" and detail["node"] == "dos" and detail["restarts"] == 0
    assert detail["ports"][0]["target"] == 80 and detail["image"] == "veo/busybox"
    assert detail["started_at"] and detail["uptime_seconds"] >= 0
    assert client.get("/api/containers/web:2").json()["node"] == "tres"
    assert client.get("/api/containers/ffffffffff").status_code == 404
    assert client.get("/api/containers/web:9").status_code == 404
    assert client.get("/api/containers", params={"service": "nope"}).status_code == 404


def test_ambiguous_prefix_is_a_conflict(client, fake):
    client.post("/api/services", json=service("web", instances=2))
    for i, inst in enumerate(fake._instances.values()):
        inst.container_id = f"abc{i}" + "0" * 60
    assert client.get("/api/containers/abc").status_code == 409
    assert client.get("/api/containers/abc1").json()["key"] == "web#1"


def test_logs_stats_and_restart(client, fake):
    client.post("/api/services", json=service("web"))
    assert client.get("/api/containers/web:0/logs", params={"tail": 2}).text == \
        "web line 3\nweb line 4\n"
    assert client.get("/api/containers/web:0/stats").json()["cpu_percent"] == 1.5
    fake._instances["web#0"].status = InstanceStatus.exited
    r = client.get("/api/containers/web:0/stats")
    assert r.status_code == 409 and r.json()["message"] == "instance web#0 is not running"
    assert client.post("/api/containers/web:0/restart").json()["detail"] == "restarting web#0"
    assert client.get("/api/containers/web:0").json()["restarts"] == 1


def test_logs_follow_streams_and_ends(fake):
    app = make_app(fake)
    app.state.veo.settings.follow_max_seconds = 1.5
    fake.add_service(service("web"))
    with TestClient(app, base_url=BASE) as c:
        r = c.get("/api/containers/web:0/logs", params={"follow": True, "tail": 1})
    assert r.status_code == 200 and r.text == "web line 4\n"


def test_nodes(client, fake):
    assert [n["name"] for n in client.get("/api/nodes").json()] == ["uno", "dos", "tres"]
    assert client.get("/api/nodes/uno").json()["cpus_total"] == 4
    assert client.get("/api/nodes/nope").status_code == 404
    assert client.post("/api/nodes/nope/cordon").status_code == 404
    client.post("/api/nodes/dos/cordon")
    assert client.get("/api/nodes/dos").json()["cordoned"] is True
    client.post("/api/nodes/dos/uncordon")
    assert client.get("/api/nodes/dos").json()["cordoned"] is False
    client.post("/api/services", json=service("web", instances=3))
    assert client.post("/api/nodes/dos/drain").json() == {"node": "dos", "moving": ["web#1"]}


def test_drain_refused_and_add_remove_node(client, fake):
    client.post("/api/services", json=service("web"))
    client.post("/api/nodes/dos/cordon")
    client.post("/api/nodes/tres/cordon")
    r = client.post("/api/nodes/uno/drain")
    assert r.status_code == 409 and r.json()["message"].startswith("cannot drain uno")
    r = client.post("/api/nodes", json={"node": "cuatro@localhost", "role": "back", "cpus": 2})
    assert r.status_code == 201 and r.json()["name"] == "cuatro" and r.json()["cpus"] == 2
    assert client.get("/api/nodes/cuatro").json()["alive"] is False
    r = client.post("/api/nodes", json={"name": "x y", "cpus": "many"})
    assert r.status_code == 422
    assert {p["path"] for p in r.json()["problems"]} == {"nodes.0.name", "nodes.0.cpus"}
    assert client.delete("/api/nodes/cuatro").json() == {"node": "cuatro", "moving": []}
    assert client.get("/api/nodes/cuatro").status_code == 404


def test_events_recent_since_and_filters(client, fake):
    client.post("/api/services", json=service("a"))
    client.post("/api/services", json=service("b"))
    every = client.get("/api/events").json()
    assert [e["kind"] for e in every] == ["placed", "started", "placed", "started"]
    assert [e["index"] for e in client.get("/api/events", params={"since": 2}).json()] == [3, 4]
    assert len(client.get("/api/events", params={"limit": 1}).json()) == 1
    got = client.get("/api/events", params={"kind": "started", "service": "b"}).json()
    assert [(e["kind"], e["service"]) for e in got] == [("started", "b")]
    r = client.get("/api/events", params={"kind": "bogus"})
    assert r.status_code == 422 and "query.kind.0: Input should be" in r.json()["message"]
    assert client.get("/api/events", params={"since": -1}).status_code == 422


def test_cluster_health_and_metrics(client, fake):
    client.post("/api/services", json=service("web", instances=2))
    fake.restart("web", 1)
    fake.emit(EventKind.placed, service="web", instance=0)
    view = client.get("/api/cluster").json()
    assert view["containers"]["running"] == 2 and view["nodes_alive"] == 3
    assert view["totals"]["cpus_total"] == 12
    assert client.get("/healthz").json()["status"] == "ok"
    text = client.get("/metrics").text
    for line in ('veo_containers{status="running"} 2.0',
                 'veo_container_restarts_total{service="web"} 1.0',
                 "veo_pending_instances 0.0", "veo_scheduler_up 1.0", 'veo_node_up{node="uno"} 1.0',
                 'veo_node_cpus_total{node="uno"} 4.0'):
        assert line in text
    assert "veo_api_request_duration_seconds_bucket" in text
    assert 'route="/api/cluster"' in text


def test_metrics_count_events_from_the_hub(client, fake):
    import time
    client.post("/api/services", json=service("web"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = client.get("/metrics").text
        if 'veo_events_total{kind="started"} 1.0' in text:
            break
        time.sleep(0.05)
    assert "veo_placements_total 1.0" in text and 'veo_events_total{kind="started"} 1.0' in text


class Broken:
    def services(self):
        raise RuntimeError("secret internal detail")

    def containers(self, service=None):
        raise NotConnected("the veo scheduler is not reachable: gone")


@pytest.mark.parametrize("path, status", [("/api/services", 500), ("/api/containers", 503)])
def test_failures_are_json_without_traceback(path, status):
    app = make_app(Broken())
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        r = c.get(path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert "Traceback" not in r.text and "secret internal detail" not in r.text


def test_unknown_route_is_a_json_404(client):
    r = client.get("/api/nothing")
    assert r.status_code == 404 and r.json()["error"] == "NotFound"


def test_ui_is_served_and_self_contained(client):
    page = client.get("/").text
    assert '<script src="/ui/app.js">' in page and "http" not in page.replace(
        "http://127.0.0.1:8265", "")
    for asset in ("/ui/app.js", "/ui/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and "//cdn" not in r.text and "https://" not in r.text
