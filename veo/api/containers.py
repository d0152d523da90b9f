"""``/api/containers``: instances where they run, with logs and stats.

A container is named by its engine id, a unique prefix of it, or ``service#instance``
(``service:instance`` too), which also names an instance that has no container yet: the client
resolves it (``Cluster.instance``). 'inspect' details (image, ports, command) come from the
service's spec.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from veo.api.deps import get_client, require_token, settings_of
from veo.api.errors import COMMON, CONFLICT, NOT_FOUND
from veo.api.links import CONTAINERS_LISTED
from veo.api.schemas import ContainerDetail, ContainerView, Done, Stats
from veo.waits import tail_growth
from veo.core.errors import Conflict, NotFound, VeoError
from veo.core.models import Instance, InstanceStatus
from veo.core.names import instance_key

router = APIRouter(prefix="/api/containers", tags=["containers"], responses=COMMON,
                   dependencies=[Depends(require_token)])

ContainerRef = Path(description="Container id, a unique prefix of it, or service#instance "
                    "(URL-encoded: service%23instance; service:instance works too)",
                    min_length=1, max_length=200)


@router.get("", response_model=list[ContainerView], responses={**NOT_FOUND, **CONTAINERS_LISTED},
            summary="List containers")
async def list_containers(
    request: Request,
    service: str | None = Query(None, description="Only this service's instances"),
    node: str | None = Query(None, description="Only the instances on this node"),
    client: Any = Depends(get_client),
) -> Response:
    """Served from a copy while the Scheduler has changed nothing it shows (veo.api.listing)."""
    body = await request.app.state.veo.listing.get(client, service, node)
    return Response(body, media_type="application/json")


@router.get("/{ref}", response_model=ContainerDetail, responses={**NOT_FOUND, **CONFLICT},
            summary="Inspect one container")
def get_container(ref: str = ContainerRef, client: Any = Depends(get_client)) -> ContainerDetail:
    inst = client.instance(ref)
    return ContainerDetail.of(inst, client.service(inst.service))


@router.get("/{ref}/logs", response_class=PlainTextResponse, responses={
    **NOT_FOUND, **CONFLICT, 200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                   "description": "The last lines; with follow, then new ones"}},
    summary="A container's logs")
async def logs(request: Request, ref: str = ContainerRef,
               tail: int = Query(100, ge=0, le=100_000, description="Lines from the end"),
               follow: bool = Query(False, description="Keep streaming new lines"),
               client: Any = Depends(get_client)):
    inst = await run_in_threadpool(client.instance, ref)
    text = await run_in_threadpool(client.logs, inst.service, inst.instance, tail)
    if not follow:
        return PlainTextResponse(text)
    limit = settings_of(request).follow_max_seconds
    return StreamingResponse(_follow(request, client, inst, tail, text, limit),
                             media_type="text/plain")


async def _follow(request: Request, client: Any, inst: Instance, tail: int, text: str,
                  limit: float):
    """Re-read the tail every second and send what it adds (as `veo logs -f` does), until the
    client leaves, the instance goes, or ``limit`` seconds pass."""
    yield text
    seen, deadline = text, time.monotonic() + limit
    while time.monotonic() < deadline and not await request.is_disconnected():
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        try:
            now = await run_in_threadpool(client.logs, inst.service, inst.instance, max(tail, 100))
        except VeoError:
            return
        part = tail_growth(seen, now)
        seen = now
        if part:
            yield part


@router.get("/{ref}/stats", response_model=Stats, responses={**NOT_FOUND, **CONFLICT},
            summary="CPU and memory of a running container")
def stats(ref: str = ContainerRef, client: Any = Depends(get_client)) -> Stats:
    """One sample (takes about a second); 409 when the container is not running."""
    inst = client.instance(ref)
    return Stats(**client.stats(inst.service, inst.instance))


@router.post("/{ref}/restart", response_model=Done, responses=NOT_FOUND,
             summary="Restart one instance")
def restart(ref: str = ContainerRef, client: Any = Depends(get_client)) -> Done:
    """Also brings back an instance that failed or completed."""
    inst = client.instance(ref)
    client.restart(inst.service, inst.instance)
    return Done(detail=f"restarting {instance_key(inst.service, inst.instance)}")
