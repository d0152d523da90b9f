"""``/api/containers``: instances where they run, with logs and stats.

A container is named by its engine id, a unique prefix of it, or ``service:instance`` (which also
names an instance that has no container yet). The client has no lookup by id, so ids are mapped
through ``containers()``; 'inspect' details (image, ports, command) come from the service's spec.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from veo.api.deps import get_client, require_token, settings_of
from veo.api.errors import COMMON, CONFLICT, NOT_FOUND
from veo.api.schemas import ContainerDetail, ContainerView, Done, Stats
from veo.waits import tail_growth
from veo.core.errors import Conflict, NotFound, VeoError
from veo.core.models import Instance, InstanceStatus

router = APIRouter(prefix="/api/containers", tags=["containers"], responses=COMMON,
                   dependencies=[Depends(require_token)])

ContainerRef = Path(description="Container id, a unique prefix of it, or service:instance",
                    min_length=1, max_length=200)


def uptime(inst: Instance, now: float | None = None) -> float | None:
    if inst.status is not InstanceStatus.running or not inst.started_at:
        return None
    try:
        started = datetime.strptime(inst.started_at[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    seconds = (now or time.time()) - started.replace(tzinfo=timezone.utc).timestamp()
    return max(0.0, round(seconds, 1))


def view(inst: Instance) -> ContainerView:
    return ContainerView(id=inst.container_id, key=f"{inst.service}:{inst.instance}",
                         uptime_seconds=uptime(inst), **inst.model_dump(exclude={"container_id"}))


def find(instances: list[Instance], ref: str) -> Instance:
    """The instance ``ref`` names; NotFound, or Conflict for an ambiguous id prefix."""
    if ":" in ref:
        service, _, number = ref.rpartition(":")
        for inst in instances:
            if inst.service == service and str(inst.instance) == number:
                return inst
        raise NotFound(f"no instance {service}#{number}")
    exact = [i for i in instances if i.container_id == ref]
    if exact:
        return exact[0]
    matches = [i for i in instances if i.container_id and i.container_id.startswith(ref)]
    if len(matches) > 1:
        raise Conflict(f"container id prefix {ref!r} is ambiguous: "
                       + ", ".join(f"{i.service}#{i.instance}" for i in matches))
    if not matches:
        raise NotFound(f"no container {ref!r}")
    return matches[0]


@router.get("", response_model=list[ContainerView], responses=NOT_FOUND, summary="List containers")
def list_containers(
    service: str | None = Query(None, description="Only this service's instances"),
    node: str | None = Query(None, description="Only the instances on this node"),
    client: Any = Depends(get_client),
) -> list[ContainerView]:
    instances = client.containers(service)
    return [view(i) for i in instances if node is None or i.node == node]


@router.get("/{ref}", response_model=ContainerDetail, responses={**NOT_FOUND, **CONFLICT},
            summary="Inspect one container")
def get_container(ref: str = ContainerRef, client: Any = Depends(get_client)) -> ContainerDetail:
    inst = find(client.containers(), ref)
    svc = next((s for s in client.services() if s.name == inst.service), None)
    if svc is None:  # removed between the two reads
        raise NotFound(f"no service named {inst.service!r}")
    restart = svc.restart.value if svc.restart_on_success or svc.restart.value == "never" \
        else "on-failure"
    return ContainerDetail(**view(inst).model_dump(), image=svc.image, command=svc.command,
                           ports=svc.ports, network_mode=svc.network_mode, cpus=svc.cpus,
                           memory=svc.memory, restart=restart,
                           healthcheck=svc.healthcheck is not None)


@router.get("/{ref}/logs", response_class=PlainTextResponse, responses={
    **NOT_FOUND, **CONFLICT, 200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                   "description": "The last lines; with follow, then new ones"}},
    summary="A container's logs")
async def logs(request: Request, ref: str = ContainerRef,
               tail: int = Query(100, ge=0, le=100_000, description="Lines from the end"),
               follow: bool = Query(False, description="Keep streaming new lines"),
               client: Any = Depends(get_client)):
    inst = find(await run_in_threadpool(client.containers), ref)
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
    inst = find(client.containers(), ref)
    return Stats(**client.stats(inst.service, inst.instance))


@router.post("/{ref}/restart", response_model=Done, responses=NOT_FOUND,
             summary="Restart one instance")
def restart(ref: str = ContainerRef, client: Any = Depends(get_client)) -> Done:
    """Also brings back an instance that failed or completed."""
    inst = find(client.containers(), ref)
    client.restart(inst.service, inst.instance)
    return Done(detail=f"restarting {inst.service}#{inst.instance}")
