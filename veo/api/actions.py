"""Routes that mirror one client call each, for the CLI against a remote ``veo serve``
(``veo.remote.RemoteCluster``): an instance by service and number (restart, logs, stats), the
event stream as a long poll, and ``veo down``. Each passes the client's answer and errors through
unchanged, so ``veo … --server URL`` says exactly what ``veo …`` over Ray says."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from veo.api.deps import get_client, require_token, settings_of
from veo.api.errors import COMMON, CONFLICT, NOT_FOUND
from veo.api.schemas import Done, Stats
from veo.core.models import Event

router = APIRouter(tags=["actions"], responses=COMMON, dependencies=[Depends(require_token)])

INSTANCE = "/api/services/{name}/instances/{instance}"
Number = Path(ge=0, le=1_000_000, description="The instance number (service#N)")


class Removed(BaseModel):
    removed: int


@router.post(INSTANCE + "/restart", response_model=Done, responses=NOT_FOUND,
             summary="Restart service#N (`veo restart`)")
def restart_instance(name: str, instance: int = Number, client: Any = Depends(get_client)) -> Done:
    """Also brings back an instance that failed or completed."""
    client.restart(name, instance)
    return Done(detail=f"restarting {name}#{instance}")


@router.get(INSTANCE + "/logs", response_class=PlainTextResponse, responses={
    **NOT_FOUND, 200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                       "description": "The last lines"}},
    summary="The logs of service#N (`veo logs`)")
def instance_logs(name: str, instance: int = Number,
                  tail: int = Query(100, ge=0, le=100_000, description="Lines from the end"),
                  client: Any = Depends(get_client)) -> PlainTextResponse:
    return PlainTextResponse(client.logs(name, instance, tail))


@router.get(INSTANCE + "/stats", response_model=Stats, responses={**NOT_FOUND, **CONFLICT},
            summary="CPU and memory of service#N (`veo stats`)")
def instance_stats(name: str, instance: int = Number, client: Any = Depends(get_client)) -> Stats:
    """One sample (takes about a second); 409 when the instance is not running."""
    return Stats(**client.stats(name, instance))


@router.get("/api/events/wait", response_model=list[Event],
            summary="Events after an index, waiting for the first (`veo events --follow`)")
def wait_events(
    request: Request,
    since: int | None = Query(None, ge=0, description="Only events with a larger index"),
    limit: int = Query(1000, ge=1, le=1000),
    wait: float = Query(0.0, ge=0, le=60, description="Seconds to wait for a first event "
                        "(at most the server's follow limit)"),
    client: Any = Depends(get_client),
) -> list[Event]:
    return client.events_batch(since, limit, min(wait, settings_of(request).follow_max_seconds))


@router.post("/api/cluster/shutdown", response_model=Removed,
             summary="Forget every service and remove every container (`veo down`)")
def shutdown(client: Any = Depends(get_client)) -> Removed:
    """The Ray cluster and the Scheduler stay up (this server needs them): `veo up` through the
    server deploys again at once."""
    return Removed(removed=client.shutdown())
