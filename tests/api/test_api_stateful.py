"""Schemathesis in stateful mode against a live server (uvicorn on loopback, with a token) over
the fake cluster: sequences that follow the document's links from a create to the reads, changes
and delete of the same service, node or container. No 5xx; every answer matches the schema."""

from __future__ import annotations

import sys
from pathlib import Path

import schemathesis
from fake_cluster import FakeCluster

from veo.api.deps import ApiSettings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from live_server import LiveServer  # noqa: E402
from stateful_api import created_services, run_state_machine  # noqa: E402

TOKEN = "stateful-test-token-0123456789"


def test_links_lead_from_create_to_read_and_delete():
    fake = FakeCluster()
    server = LiveServer(fake, token=TOKEN,
                        settings=ApiSettings(poll=0.2, follow_max_seconds=0.2))
    try:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json",
                                               headers={"Authorization": f"Bearer {TOKEN}"})
        links = schema.raw_schema["paths"]["/api/services"]["post"]["responses"]["201"]["links"]
        assert links["RemoveService"]["parameters"] == {"name": "$response.body#/created/0"}
        calls = run_state_machine(schema, TOKEN, examples=150, steps=10, setup=fake.reset)
    finally:
        server.close()
    # the runs went through the links: a service created, then used by its name
    created = created_services(calls)
    followed = {(method, name) for method, path, status, name in calls
                if path == "/api/services/{name}" and name in created}
    print(f"{len(calls)} calls, {len(created)} services created, followed: {sorted(followed)}")
    assert created and followed, calls
