"""The REST API and websocket of a real server on loopback, backed by the real Ray world:
services in and out, containers with real ids, logs and stats from the engines, events pushed
live as a container is killed on its engine, and the token on a real socket."""

from __future__ import annotations

import json

import httpx
import pytest
from live_server import LiveServer
from ray_world import wait_for
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(180)]

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do echo tick; sleep 1 & wait $!; done"]


def body(name: str, **kw) -> dict:
    return {"name": name, "image": "veo/busybox", "command": LOOP, "network_mode": "none",
            "stop_grace_period": 1, "memory": "16m", **kw}


def running(api: httpx.Client, name: str) -> dict | None:
    rows = api.get("/api/containers", params={"service": name}).json()
    return rows[0] if rows and rows[0]["status"] == "running" else None


def test_rest_round_trip_on_the_real_cluster(live, names, world):
    api = httpx.Client(base_url=live.url, timeout=30)
    name = names("rest")
    r = api.post("/api/services", json=body(name, cpus=0.25))
    assert r.status_code == 201, r.text
    row = wait_for(lambda: running(api, name), 40, what=f"{name} running")
    detail = api.get(f"/api/containers/{row['id'][:12]}").json()
    assert detail["node"] in {"uno", "dos", "tres"} and detail["started_at"]
    assert detail["image"] == "veo/busybox" and detail["restarts"] == 0
    assert detail["id"] == world.instances(name)[0].container_id  # the engine's own id
    logs = wait_for(lambda: api.get(f"/api/containers/{name}:0/logs", params={"tail": 5}).text,
                    10, what="some log lines")
    assert "tick" in logs
    stats = api.get(f"/api/containers/{name}:0/stats").json()
    assert stats["memory_limit"] == 16 * 1024 * 1024 and stats["cpu_percent"] >= 0
    node = api.get(f"/api/nodes/{detail['node']}").json()
    assert node["alive"] and node["cpus_allocated"] >= 0.25
    assert api.get("/api/containers", params={"service": "nope"}).status_code == 404
    assert api.delete(f"/api/services/{name}").status_code == 200
    assert api.get(f"/api/services/{name}").status_code == 404
    assert api.delete(f"/api/services/{name}").status_code == 404


def test_policy_and_validation_on_the_real_cluster(live, names):
    api = httpx.Client(base_url=live.url, timeout=30)
    # the test world's policy allows host networking and privileged, not the host's PID namespace
    r = api.post("/api/services", json=body(names("pidhost"), pid_mode="host"))
    assert r.status_code == 403 and "policy.allow_host_pid" in r.text
    r = api.post("/api/services", json=body(names("bad"), memory="lots"))
    assert r.status_code == 422
    assert r.json()["problems"][0]["message"] == "expected a size like 512m, got 'lots'"
    metrics = api.get("/metrics").text
    assert "veo_scheduler_up 1.0" in metrics and 'veo_node_up{node="tres"} 1.0' in metrics


def test_websocket_pushes_a_kill_and_resumes(live, names, world):
    api = httpx.Client(base_url=live.url, timeout=30)
    name = names("wsk")
    with ws_connect(live.ws_url, open_timeout=10) as ws:
        welcome = json.loads(ws.recv(10))
        ws.send(json.dumps({"op": "subscribe", "id": "s", "service": name,
                            "kinds": ["started", "exited", "restarted"]}))
        assert json.loads(ws.recv(10))["type"] == "subscribed"
        api.post("/api/services", json=body(name))
        started = _next_event(ws)
        assert started["kind"] == "started" and started["service"] == name
        world.runtime(started["node"]).kill(started["container_id"])
        kinds = [_next_event(ws)["kind"] for _ in range(2)]
        assert kinds == ["exited", "restarted"]
    first = welcome["last_index"] or 0
    with ws_connect(live.ws_url, open_timeout=10) as ws:  # a client that was away resumes
        json.loads(ws.recv(10))
        ws.send(json.dumps({"op": "subscribe", "service": name, "since": first}))
        replay = [json.loads(ws.recv(10)) for _ in range(6)]
    kinds = [m["event"]["kind"] for m in replay if m["type"] == "event"]
    assert kinds[0] == "placed" and "restarted" in kinds
    assert any(m["type"] == "replayed" for m in replay)


def _next_event(ws) -> dict:
    while True:
        msg = json.loads(ws.recv(40))
        if msg["type"] == "event":
            return msg["event"]


def test_token_on_a_real_socket(world):
    token = "live-test-token-0123456789"
    server = LiveServer(world.client, token=token)
    try:
        api = httpx.Client(base_url=server.url, timeout=30)
        assert api.get("/api/nodes").status_code == 401
        assert api.get("/api/nodes", headers={"Authorization": "Bearer nope-nope-nope-nope"}
                       ).status_code == 401
        assert len(api.get("/api/nodes", headers={"Authorization": f"Bearer {token}"}).json()) >= 3
        assert api.get("/healthz").status_code == 200
        auth = {"Authorization": f"Bearer {token}"}
        with ws_connect(server.ws_url, additional_headers=auth) as ws:
            assert json.loads(ws.recv(10))["type"] == "welcome"
        with pytest.raises(InvalidStatus):
            ws_connect(server.ws_url, origin="http://evil.example", open_timeout=10)
    finally:
        server.close()


def test_stateful_schemathesis_on_the_real_cluster(world):
    """A short stateful run (links from a create to reads and deletes) through the real Scheduler:
    services and containers only (node operations and applying a whole file would disturb the
    shared world), every service it created removed afterwards."""
    import schemathesis
    from stateful_api import created_services, run_state_machine

    from veo.api.deps import ApiSettings

    token = "live-stateful-token-0123456789"
    server = LiveServer(world.client, token=token,
                        settings=ApiSettings(poll=2.0, follow_max_seconds=0.5))
    calls: list[tuple] = []
    try:
        schema = (schemathesis.openapi.from_url(f"{server.url}/openapi.json",
                                                headers={"Authorization": f"Bearer {token}"})
                  .include(path_regex=r"^/api/(services|containers)")
                  .exclude(method="PUT", path="/api/services"))
        run_state_machine(schema, token, examples=6, steps=5, calls=calls)
    finally:
        server.close()
        world.remove(*created_services(calls))
    assert calls and all(status < 500 for _, _, status, _ in calls)
