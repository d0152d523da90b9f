"""Schemathesis's stateful mode against a live veo server: scenarios that follow the OpenAPI
document's links (create -> read / change / delete), each checked for no 5xx and answers that match
the schema. Shared by the fake-cluster run (tests/api) and the real-cluster one (integration)."""

from __future__ import annotations

from typing import Callable

from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance


def run_state_machine(schema, token: str, *, examples: int, steps: int,
                      setup: Callable[[], None] | None = None,
                      calls: list[tuple] | None = None) -> list[tuple]:
    """Runs the scenarios, each after ``setup`` (so hypothesis can replay one from the same
    state); returns (also appends to ``calls``, kept when a check fails) (method, path template,
    status, name) per call, where name is the path's ``name`` or the created service's."""
    base = schema.as_state_machine()
    auth = {"Authorization": f"Bearer {token}"}
    calls = [] if calls is None else calls

    class Machine(base):  # type: ignore[misc, valid-type]
        def setup(self):
            if setup is not None:
                setup()

        def before_call(self, case):
            # every call carries the token: a generated Authorization header (the schema documents
            # bearer auth) would otherwise replace it, and the scenario would stop at a 401
            case.headers = {**(case.headers or {}), **auth}
            super().before_call(case)

        def get_call_kwargs(self, case):
            return {"headers": auth, "timeout": 60}

        def after_call(self, response, case):
            super().after_call(response, case)
            name = (case.path_parameters or {}).get("name")
            if response.status_code == 201 and case.path == "/api/services":
                name = response.json()["created"][0]  # a 201 always names one
            calls.append((case.method.upper(), case.path, response.status_code, name))

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            # not checked, as in the stateless run (tests/api/test_api_schema.py): whether lenient
            # input is refused, and whether everything the JSON schema allows is accepted
            case.validate_response(response, additional_checks=additional_checks,
                                   excluded_checks=[negative_data_rejection,
                                                    positive_data_acceptance],
                                   transport_kwargs=kwargs or None, recorder=self.recorder)

    # derandomized: the same scenarios every run (a fixed sample, reproducible on failure)
    Machine.run(settings=settings(max_examples=examples, stateful_step_count=steps,
                                  deadline=None, derandomize=True, database=None,
                                  suppress_health_check=list(HealthCheck)))
    return calls


def created_services(calls: list[tuple]) -> set[str]:
    return {name for method, path, status, name in calls
            if (method, path, status) == ("POST", "/api/services", 201)}
