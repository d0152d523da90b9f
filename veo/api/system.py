"""``/healthz``, ``/metrics``, ``/api/cluster`` and ``/api/spec``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from veo.api.deps import get_client, require_token, settings_of
from veo.api.errors import COMMON
from veo.api.schemas import ClusterView, HealthReport, LoopStats
from veo.core.models import ClusterSpec

router = APIRouter(tags=["cluster"])
guarded = APIRouter(tags=["cluster"], responses=COMMON, dependencies=[Depends(require_token)])


@router.get("/healthz", response_model=HealthReport, summary="Is this server up (no token needed)")
def healthz(request: Request) -> HealthReport:
    """Answers without calling the Scheduler; says whether the event stream is connected."""
    state = request.app.state.veo
    return HealthReport(events_connected=state.hub.connected, last_event_index=state.hub.last_index,
                        subscribers=len(state.hub.sessions),
                        dropped_subscribers=state.hub.dropped)


@guarded.get("/metrics", summary="Prometheus metrics", response_class=Response, responses={
    200: {"content": {"text/plain": {"schema": {"type": "string"}}},
          "description": "Prometheus text format 0.0.4"}})
def metrics(request: Request) -> Response:
    body = request.app.state.veo.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@guarded.get("/api/cluster", response_model=ClusterView, summary="The cluster at a glance")
def cluster(request: Request, client: Any = Depends(get_client)) -> ClusterView:
    return ClusterView(**client.summary().model_dump(),
                       dashboard_url=settings_of(request).dashboard_url)


@guarded.get("/api/cluster/loop", response_model=LoopStats,
             summary="How long the control loop's steps take")
def loop_stats(since: int | None = Query(None, ge=0, description="Only the steps after this "
                                         "`total`"),
               client: Any = Depends(get_client)) -> LoopStats:
    return LoopStats(**client.loop_stats(since))


@guarded.get("/api/spec", response_model=ClusterSpec, summary="The desired state as a spec")
def spec(client: Any = Depends(get_client)) -> ClusterSpec:
    return client.spec()
