"""Access and policy: tokens, Origin and Host checks, where the server may listen, and the cluster
policy refusing host-level powers (the same rule as `veo validate`)."""

from __future__ import annotations

import pytest
from conftest import BASE, WS, make_app, service
from fake_cluster import FakeCluster
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from veo.api.serve import ServeError, check_bind, read_token
from veo.core.policy import Policy

TOKEN = "s3cret-token-0123456789"


@pytest.fixture
def guarded(fake):
    with TestClient(make_app(fake, token=TOKEN), base_url=BASE) as c:
        yield c


def bearer(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", ["/api/services", "/api/containers", "/api/nodes", "/api/events",
                                  "/api/cluster", "/api/spec", "/metrics"])
def test_every_route_needs_the_token(guarded, path):
    r = guarded.get(path)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert guarded.get(path, headers=bearer("wrong-token-0123456789")).status_code == 401
    assert guarded.get(path, headers=bearer()).status_code == 200


def test_healthz_and_the_page_need_no_token(guarded):
    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/").status_code == 200  # the page holds no data; it asks for the token
    assert guarded.post("/api/services", json=service("x")).status_code == 401


def test_websocket_token_in_header_or_first_message(guarded):
    with guarded.websocket_connect(WS, headers=bearer()) as ws:
        assert ws.receive_json()["type"] == "welcome"
    with guarded.websocket_connect(WS) as ws:
        ws.send_json({"op": "auth", "token": TOKEN})
        assert ws.receive_json()["type"] == "welcome"


@pytest.mark.parametrize("first", [{"op": "auth", "token": "wrong-token-0123456789"},
                                   {"op": "subscribe", "cluster": True}])
def test_websocket_without_the_token_is_closed(guarded, first):
    with guarded.websocket_connect(WS) as ws:
        ws.send_json(first)
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["code"] == "unauthorized"
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
    assert info.value.code == 1008


def test_websocket_refuses_a_foreign_origin(client):
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect(WS, headers={"Origin": "http://evil.example"}):
            pass
    assert info.value.code == 1008
    with client.websocket_connect(WS, headers={"Origin": "http://127.0.0.1:8086"}) as ws:
        assert ws.receive_json()["type"] == "welcome"


def test_cross_site_changes_are_refused(client):
    r = client.post("/api/services", json=service("x"), headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["message"]
    assert client.get("/api/services", headers={"Origin": "http://evil.example"}).status_code == 200
    ok = client.post("/api/services", json=service("x"), headers={"Origin": "http://127.0.0.1:8086"})
    assert ok.status_code == 201


def test_without_a_token_only_loopback_host_names_are_answered(client, fake):
    assert client.get("/api/services", headers={"Host": "evil.example"}).status_code == 403
    assert client.get("/api/services", headers={"Host": "localhost:8086"}).status_code == 200
    with TestClient(make_app(fake, token=TOKEN), base_url="http://veo.internal:8086") as c:
        assert c.get("/api/services", headers=bearer()).status_code == 200  # a token guards it


def test_listening_beyond_loopback_needs_a_token(tmp_path):
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(ServeError, match="refusing to listen on 0.0.0.0 without a token"):
        check_bind("0.0.0.0", None)
    assert read_token(None, env={"VEO_TOKEN": TOKEN}) == TOKEN
    assert read_token(None, env={}) is None
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    assert read_token(path, env={}) == TOKEN
    path.chmod(0o644)
    with pytest.raises(ServeError, match="readable by other users"):
        read_token(path, env={})
    with pytest.raises(ServeError, match="too short"):
        read_token(None, env={"VEO_TOKEN": "short"})


def test_privileged_spec_is_refused_naming_field_and_switch(client, fake):
    r = client.post("/api/services", json=service("p", privileged=True,
                                                  volumes=["/var/run/docker.sock:/s"]))
    assert r.status_code == 403 and r.json()["error"] == "PolicyError"
    assert [p["text"] for p in r.json()["problems"]] == [
        "services.p.privileged: refused by the cluster policy (set policy.allow_privileged: true "
        "to allow it)",
        "services.p.volumes.0: bind mount of /var/run/docker.sock exposes the Docker socket (root "
        "on the host): refused by the cluster policy (set policy.allow_docker_socket: true to "
        "allow it)"]
    assert fake.services() == []
    client.post("/api/services", json=service("ok"))
    r = client.put("/api/services/ok", json=service("ok", network_mode="host"))
    assert r.status_code == 403 and "policy.allow_host_network" in r.json()["message"]


def test_yaml_bodies_obey_the_running_clusters_policy(client):
    text = ("policy: {allow_privileged: true}\n"
            "services:\n  p: {image: veo/busybox, privileged: true}\n")
    r = client.post("/api/services", content=text, headers={"content-type": "application/yaml"})
    assert r.status_code == 422
    assert r.json()["message"] == ("<body>:3:39: services.p.privileged: refused by the cluster "
                                   "policy (set policy.allow_privileged: true to allow it)")


def test_a_policy_that_allows_it_lets_it_through():
    fake = FakeCluster(policy=Policy(allow_host_network=True, allow_cap_add=True))
    with TestClient(make_app(fake), base_url=BASE) as c:
        r = c.post("/api/services", json=service("h", network_mode="host", cap_add=["NET_ADMIN"]))
        assert r.status_code == 201
        r = c.post("/api/services", json=service("d", devices=["/dev/fuse"]))
        assert r.status_code == 403 and "policy.allow_devices" in r.json()["message"]
