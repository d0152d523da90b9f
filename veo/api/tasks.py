"""``/api/tasks`` (scheduled tasks, run one now) and ``/api/discovery/{service}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from veo.api.deps import get_client, require_token
from veo.api.errors import COMMON, CONFLICT, NOT_FOUND
from veo.core.errors import NotFound

router = APIRouter(tags=["tasks"], responses=COMMON, dependencies=[Depends(require_token)])


@router.get("/api/tasks", summary="List scheduled tasks")
def list_tasks(client: Any = Depends(get_client)) -> list[dict]:
    """Each task: schedule (and in words), zone, next run, last run, the runs kept."""
    return client.tasks()


@router.post("/api/tasks/{name}/run", status_code=201, responses={**NOT_FOUND, **CONFLICT},
             summary="Run a task now")
def run_task(name: str, client: Any = Depends(get_client)) -> dict:
    """409 when ``name`` is a service without a schedule."""
    return client.run_task(name)


@router.get("/api/discovery/{service}", responses=NOT_FOUND, summary="What discovery answers")
def discovery(service: str, client: Any = Depends(get_client)) -> dict:
    """Addresses and SRV ports served for ``service``, each instance's record (served or not),
    and where each node's DNS answers. 404 for an unknown service (DNS: NXDOMAIN)."""
    view = client.resolve(service)
    if not view.get("known"):
        raise NotFound(f"no service named {service!r}")
    return view
