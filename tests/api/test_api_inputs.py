"""What the REST API accepts, and that its OpenAPI document says so (issue 8's front-door defects):
explicit nulls mean unset, the security scheme is the running server's, node names and YAML
bodies are described as they are checked, and a body of the wrong shape gets a clear message."""

from __future__ import annotations

import schemathesis
from conftest import BASE, make_app, service
from fake_cluster import FakeCluster
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
)

from veo.api.deps import ApiSettings
from veo.core.models import NAME_RE

YAML = {"content-type": "application/yaml"}
TOKEN = "inputs-test-token-0123456789"


def test_explicit_nulls_mean_unset(client):
    client.post("/api/services", json=service("demo"))
    r = client.put("/api/services/demo", json=service("demo", group_role=None, group_policy=None,
                                                      on_unhealthy=None, healthcheck=None))
    assert r.status_code == 200, r.text
    assert r.json()["group_role"] is None and r.json()["on_unhealthy"] == "restart"
    r = client.post("/api/services", json=service("other", group=None, group_role=None))
    assert r.status_code == 201, r.text
    r = client.post("/api/nodes", json={"name": "cuatro", "role": None, "cpus": None})
    assert r.status_code == 201 and r.json()["cpus"] is None


def _doc(app) -> dict:
    with TestClient(app, base_url=BASE) as c:
        return c.get("/openapi.json").json()


def _operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_openapi_security_is_the_running_servers(fake):
    open_doc = _doc(make_app(fake))
    assert "securitySchemes" not in open_doc.get("components", {})
    for path, method, op in _operations(open_doc):
        assert "security" not in op and "401" not in op["responses"], (method, path)
    assert "has no token" in open_doc["info"]["description"]
    guarded = _doc(make_app(fake, token=TOKEN))
    assert guarded["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, method, op in _operations(guarded):
        if path == "/healthz":
            assert "security" not in op
        else:
            assert op["security"] == [{"HTTPBearer": []}], (method, path)
            assert "401" in op["responses"]


open_fake = FakeCluster()
open_fake.add_service(service("web"))
# schemathesis sends Host: testserver; a tokenless server answers only the names it trusts
open_schema = schemathesis.openapi.from_asgi("/openapi.json", make_app(
    open_fake, trusted_hosts={"testserver"},
    settings=ApiSettings(poll=0.2, follow_max_seconds=0.2)))


@open_schema.include(method="GET").parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_server_without_token_documents_no_auth(case):
    # schemathesis's ignored_auth: an operation documented as needing auth must refuse requests
    # without it; a tokenless server documents none, so nothing is reported
    case.call_and_validate(checks=[ignored_auth],
                           excluded_checks=[negative_data_rejection, positive_data_acceptance])


def test_node_names_are_described_as_checked(client, fake):
    doc = client.get("/openapi.json").json()
    name = doc["components"]["schemas"]["Node"]["properties"]["name"]
    assert name["pattern"] == NAME_RE.pattern
    service_name = doc["components"]["schemas"]["Service"]["properties"]["name"]
    assert service_name["pattern"] == NAME_RE.pattern
    r = client.post("/api/nodes", json={"name": ""})
    assert r.status_code == 422
    assert r.json()["message"] == "nodes.0.name: '' is not a valid node name"


node_schema = schemathesis.openapi.from_asgi("/openapi.json", make_app(
    FakeCluster(), trusted_hosts={"testserver"}))


@node_schema.include(method="POST", path="/api/nodes").parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_node_the_schema_allows_is_accepted(case):
    case.call_and_validate(checks=[positive_data_acceptance],
                           excluded_checks=[negative_data_rejection])


def test_yaml_bodies_are_described_as_documents(client):
    doc = client.get("/openapi.json").json()
    for method in ("post", "put"):
        content = doc["paths"]["/api/services"][method]["requestBody"]["content"]
        schema = content["application/yaml"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ClusterSpec"}


def test_yaml_bodies_of_the_wrong_shape_say_so(client):
    cases = {
        '"services: {}"': "got a string ('services: {}'), not a mapping: send the cluster.yml "
                          "text itself, not a quoted or JSON-encoded string",
        "'hello'": "got a string ('hello'), not a mapping",
        "hello": "got 'hello'",  # a plain word: most likely not an encoding mistake
        "null": "got nothing (the document is null)",
        "42": "got 42",
    }
    for body, words in cases.items():
        for method in ("POST", "PUT"):
            r = client.request(method, "/api/services", content=body, headers=YAML)
            assert r.status_code == 422, (body, r.text)
            message = r.json()["message"]
            assert message.startswith("<body>:1:1: expected a mapping with services: at the top "
                                      "level"), message
            assert words in message, message


def test_instance_refs_in_both_spellings(client):
    client.post("/api/services", json=service("web", instances=2))
    for ref in ("web%231", "web:1"):  # '#' must be encoded in a URL
        assert client.get(f"/api/containers/{ref}").json()["key"] == "web#1"
    assert client.post("/api/containers/web%231/restart").json()["detail"] == "restarting web#1"
    r = client.get("/api/containers/web:7")
    assert r.status_code == 404 and r.json()["message"] == "no instance web#7"
    with client.websocket_connect("ws://127.0.0.1:8086/ws") as ws:
        ws.receive_json()
        ws.send_json({"op": "subscribe", "container": "web:1"})
        assert ws.receive_json()["selector"] == {"container": "web#1"}
