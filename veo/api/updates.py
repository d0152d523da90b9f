"""``/api/plan``, ``/api/updates``, ``/api/services/{name}/history|rollback``: plans, rolling
updates and versions. Thin: one client call each."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from veo.api.body import request_body
from veo.api.deps import get_client, require_token
from veo.api.errors import BODY, COMMON, CONFLICT, NOT_FOUND
from veo.api.services import spec_body
from veo.api.schemas import Done

router = APIRouter(tags=["updates"], responses=COMMON, dependencies=[Depends(require_token)])

PLAN_BODY = request_body(None, "services:\n  hello:\n    image: veo/busybox\n",
                         "A whole cluster.yml, compared with the running cluster")


class ServicePlan(BaseModel):
    change: Literal["added", "removed", "unchanged", "replaced", "updated in place", "changed"]
    diff: dict[str, list[Any]] = Field(default_factory=dict, description="field -> [old, new]")
    instances: dict[str, list[str]] = Field(description="placed / removed instance keys")
    problems: list[str] = Field(default_factory=list, description="placement problems")


class Plan(BaseModel):
    spec_index: int = Field(description="apply with check_index=this to be sure nothing changed")
    changed: bool
    services: dict[str, ServicePlan]


class Version(BaseModel):
    number: int
    hash: str
    time: float
    outcome: Literal["current", "stable", "superseded", "failed", "rolled_back"]
    spec: dict[str, Any]


class RolledBack(BaseModel):
    version: int = Field(description="the version the service goes back to")


@router.post("/api/plan", response_model=Plan, openapi_extra=PLAN_BODY, responses=BODY,
             summary="What applying a cluster.yml would change (changes nothing)")
async def plan(request: Request, client: Any = Depends(get_client)) -> Plan:
    return Plan.model_validate(await run_in_threadpool(client.plan, await spec_body(request)))


@router.get("/api/updates", response_model=list[dict[str, Any]], summary="Rolling updates")
def updates(client: Any = Depends(get_client)) -> list[dict[str, Any]]:
    return client.updates()


@router.post("/api/updates/{target}/{action}", response_model=Done,
             responses={**NOT_FOUND, **CONFLICT}, summary="resume, promote, pause or rollback")
def control(target: str, action: Literal["resume", "promote", "pause", "rollback"],
            client: Any = Depends(get_client)) -> Done:
    client.update(action, target)
    return Done()


@router.get("/api/services/{name}/history", response_model=list[Version], responses=NOT_FOUND,
            summary="The kept versions of a service")
def history(name: str, client: Any = Depends(get_client)) -> list[Version]:
    return [Version.model_validate(v) for v in client.history(name)]


@router.post("/api/services/{name}/rollback", response_model=RolledBack, responses=NOT_FOUND,
             summary="Go back to an earlier version (rolled like any update)")
def rollback(name: str, to: int | None = Query(None, ge=1, description="version number"),
             client: Any = Depends(get_client)) -> RolledBack:
    return RolledBack(version=client.rollback(name, to))
