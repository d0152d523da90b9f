"""``/api/services``: the desired state. Thin: read the body as the CLI reads a file, then one
client call (the client checks create-vs-replace and the group rules, the Scheduler the policy)."""

from __future__ import annotations

from typing import Any

import pydantic
from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from veo.api.body import is_yaml, json_body, raw_text, request_body
from veo.api.deps import get_client, require_token
from veo.api.errors import BODY, COMMON, CONFLICT, NOT_FOUND, POLICY, UnsupportedMediaType
from veo.api.links import SERVICE_CREATED, SERVICES_LISTED
from veo.api.schemas import Changes, Created, Done
from veo.client import ServiceExists
from veo.core.bodies import validate_service
from veo.core.config import parse_spec
from veo.core.names import SPEC_JSON
from veo.core.errors import Conflict, SpecError, SpecProblem
from veo.core.models import ClusterSpec, Service

router = APIRouter(prefix="/api/services", tags=["services"], responses=COMMON,
                   dependencies=[Depends(require_token)])

YAML_EXAMPLE = """services:
  hello:
    image: veo/busybox
    command: ["sh", "-c", "while true; do date; sleep 5; done"]
    network_mode: none
    memory: 16m
"""
CREATE_BODY = request_body("Service", YAML_EXAMPLE, "One service as JSON, or cluster.yml text "
                           "whose services are all added (the running cluster's policy applies)")
REPLACE_BODY = request_body("Service", None, "The service's new definition (name may be omitted)")
APPLY_BODY = request_body(None, YAML_EXAMPLE, "A whole cluster.yml: the cluster then runs exactly "
                          "its services, with its settings, nodes and policy")
BODY_FILE = "<body>"  # how problems in a YAML body name their file


@router.get("", response_model=list[Service], responses=SERVICES_LISTED,
            summary="List services")
def list_services(client: Any = Depends(get_client)) -> list[Service]:
    return client.services()


@router.get("/{name}", response_model=Service, responses=NOT_FOUND, summary="Get one service")
def get_service(name: str, client: Any = Depends(get_client)) -> Service:
    return client.service(name)


@router.post("", status_code=201, response_model=Created, openapi_extra=CREATE_BODY,
             responses={**POLICY, **CONFLICT, **BODY, **SERVICE_CREATED},
             summary="Add services")
async def create_services(request: Request, response: Response,
                          client: Any = Depends(get_client)) -> Created:
    """Add one service (JSON) or every service of a cluster.yml text (YAML). A name that exists
    already is a 409: replace it with PUT /api/services/{name}."""
    if is_yaml(request):
        text = await raw_text(request)
        added, warnings = await run_in_threadpool(_add_from_yaml, client, text)
    else:
        body = await json_body(request)
        added, warnings = await run_in_threadpool(_add_from_json, client, body), []
    if len(added) == 1:
        response.headers["Location"] = f"/api/services/{added[0]}"
    return Created(created=added, warnings=warnings)


def _add_from_json(client: Any, body: Any) -> list[str]:
    return _create(client, [validate_service(body)])


def _add_from_yaml(client: Any, text: str) -> tuple[list[str], list[str]]:
    # checked against the running cluster's policy, not one written in the body, so that a
    # refusal names its line; the Scheduler enforces that policy again on every add
    result = parse_spec(text, BODY_FILE, policy=client.spec().policy)
    if not result.spec.services:  # a 201 must have created something
        raise SpecError([SpecProblem("the body has no services to add", "services", BODY_FILE,
                                     1, 1)])
    return _create(client, result.spec.services.values()), [str(w) for w in result.warnings]


def _create(client: Any, services) -> list[str]:
    try:
        return client.create_services(services)
    except ServiceExists as e:  # the same refusal, in this front door's words
        how = (f"PUT /api/services/{e.names[0]} replaces it" if len(e.names) == 1 else
               "PUT /api/services/{name} replaces one, PUT /api/services applies a whole file")
        raise Conflict(f"{e}; {how}") from None



async def spec_body(request: Request) -> ClusterSpec:
    """A whole cluster as a body: cluster.yml text (``application/yaml``), or a spec loaded
    elsewhere in the model's own JSON form (``application/vnd.veo.spec+json``: what the CLI sends
    with ``--server``, its variables, env files and paths resolved where it ran; a distinct type,
    so a stray JSON body never replaces the cluster)."""
    if is_yaml(request):
        text = await raw_text(request)
        return (await run_in_threadpool(parse_spec, text, BODY_FILE)).spec  # not on the loop
    if request.headers.get("content-type", "").startswith(SPEC_JSON):
        try:
            return ClusterSpec.model_validate(await json_body(request))
        except pydantic.ValidationError as e:  # a 422 naming each field, as for any body
            raise SpecError([SpecProblem(err["msg"], ".".join(str(p) for p in err["loc"]))
                             for err in e.errors()]) from None
    raise UnsupportedMediaType(f"{request.method} {request.url.path} takes a cluster.yml: send "
                               "it with Content-Type: application/yaml")


@router.put("", response_model=Changes, openapi_extra=APPLY_BODY,
            responses={**CONFLICT, **BODY}, summary="Apply a whole cluster.yml")
async def apply(request: Request, client: Any = Depends(get_client),
                check_index: int | None = Query(None, description="apply only if the cluster's "
                                                "spec index is still this (POST /api/plan)")
                ) -> Changes:
    """Like `veo up` on a running cluster: services not in the file are removed. The body is a
    cluster.yml (``application/yaml``), or a spec already loaded elsewhere (``application/json``,
    the ClusterSpec model's own form: what `veo up --server` sends after loading the file, with
    its variables, env files and relative paths resolved where the command runs)."""
    spec = await spec_body(request)
    return Changes(**await run_in_threadpool(client.apply, spec, check_index))


@router.put("/{name}", response_model=Service, openapi_extra=REPLACE_BODY,
            responses={**NOT_FOUND, **POLICY, **BODY}, summary="Replace one service")
async def replace_service(name: str, request: Request,
                          client: Any = Depends(get_client)) -> Service:
    body = await json_body(request)
    return await run_in_threadpool(_replace, client, name, body)


def _replace(client: Any, name: str, body: Any) -> Service:
    return client.replace_service(name, validate_service(body, name))


@router.delete("/{name}", response_model=Done, responses=NOT_FOUND, summary="Remove a service")
def delete_service(name: str, client: Any = Depends(get_client)) -> Done:
    """Its containers are stopped and removed on every node."""
    client.remove_service(name)
    return Done(detail=f"removed {name}")
