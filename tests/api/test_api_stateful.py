"""Schemathesis in stateful mode against a live server (uvicorn on loopback, with a token) over
the fake cluster: sequences that follow the document's links from a create to the reads, changes
and delete of the same service, node or container. No 5xx; every answer matches the schema."""

from __future__ import annotations

import sys
from pathlib import Path

import schemathesis
from fake_cluster import FakeCluster
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from veo.api.deps import ApiSettings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from live_server import LiveServer  # noqa: E402

TOKEN = "stateful-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_links_lead_from_create_to_read_and_delete():
    fake = FakeCluster()
    server = LiveServer(fake, token=TOKEN,
                        settings=ApiSettings(poll=0.2, follow_max_seconds=0.2))
    try:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=AUTH)
        doc = schema.raw_schema
        created = doc["paths"]["/api/services"]["post"]["responses"]["201"]["links"]
        assert created["RemoveService"]["parameters"] == {"name": "$response.body#/created/0"}
        calls = run_state_machine(schema, fake.reset)
    finally:
        server.close()
    # the runs went through the links: a service created, then read or removed by its name
    created = {name for method, path, status, name in calls
               if (method, path, status) == ("POST", "/api/services", 201)}
    followed = {(method, name) for method, path, status, name in calls
                if path == "/api/services/{name}" and name in created}
    print(f"{len(calls)} calls, {len(created)} services created, followed: {sorted(followed)}")
    assert created and followed, calls


def run_state_machine(schema, reset, examples: int = 80, steps: int = 10) -> list[tuple]:
    """Runs the scenarios, each from the state ``reset`` makes (so hypothesis can replay one);
    returns (method, path template, status, name or created name) per call."""
    base = schema.as_state_machine()
    calls: list[tuple] = []

    class Machine(base):  # type: ignore[misc, valid-type]
        def setup(self):
            reset()

        def get_call_kwargs(self, case):
            return {"headers": AUTH, "timeout": 30}

        def after_call(self, response, case):
            super().after_call(response, case)
            name = (case.path_parameters or {}).get("name")
            if response.status_code == 201 and case.path == "/api/services":
                name = response.json()["created"][0]  # a 201 always names one
            calls.append((case.method.upper(), case.path, response.status_code, name))

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            # not checked, as in the stateless run (test_api_schema.py): whether lenient input is
            # refused, and whether everything the JSON schema allows is accepted
            case.validate_response(response, additional_checks=additional_checks,
                                   excluded_checks=[negative_data_rejection,
                                                    positive_data_acceptance],
                                   transport_kwargs=kwargs or None, recorder=self.recorder)

    # derandomized: the same scenarios every run (a fixed sample, reproducible on failure)
    Machine.run(settings=settings(max_examples=examples, stateful_step_count=steps,
                                  deadline=None, derandomize=True, database=None,
                                  suppress_health_check=list(HealthCheck)))
    return calls
