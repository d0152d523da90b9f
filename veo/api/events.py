"""``/api/events``: the recent event stream, or what came after an index (live: ``/ws``)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi import APIRouter, Depends, Query

from veo.api.deps import get_client, require_token
from veo.api.errors import COMMON
from veo.api.hub import KIND_ALIASES, parse_kinds
from veo.core.models import Event, EventKind

KindName = Enum("KindName", {k: k for k in [*(k.value for k in EventKind), *KIND_ALIASES]},
                type=str)

router = APIRouter(prefix="/api/events", tags=["events"], responses=COMMON,
                   dependencies=[Depends(require_token)])


@router.get("", response_model=list[Event], summary="Recent events, or those after an index")
def list_events(
    since: int | None = Query(None, ge=0, description="Only events with a larger index (resume)"),
    limit: int = Query(200, ge=1, le=1000, description="At most this many: the last ones, or "
                       "with since the first ones after it"),
    kind: list[KindName] = Query([], description="Only these kinds (repeatable; 'ready' = "
                                 "healthy)"),
    service: str | None = Query(None),
    node: str | None = Query(None),
    client: Any = Depends(get_client),
) -> list[Event]:
    kinds = parse_kinds([k.value for k in kind])
    events = [e for e in client.events(since=since)
              if (not kinds or e.kind in kinds) and (service is None or e.service == service)
              and (node is None or e.node == node)]
    return events[:limit] if since is not None else events[-limit:]
