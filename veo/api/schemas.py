"""Response and request shapes of the REST API that are not veo's own models.

veo's models (Service, Node, NodeView, Event, Port) are returned as they are; these add what a
front door shows on top of them (a container's detail, stats, the change lists of an apply) and
the one error shape every route answers with.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from veo.core.models import Health, InstanceStatus, Port
from veo.core.policy import Policy


class Problem(BaseModel):
    """One problem of a spec: the same text the CLI prints, and where."""

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None
    warning: bool = False
    text: str = Field(description="The problem as the CLI prints it (FILE:LINE:COL: path: what).")


class ErrorBody(BaseModel):
    """Every error response: ``error`` is the kind, ``message`` the text the CLI shows."""

    error: str = Field(examples=["NotFound", "SpecError", "Conflict", "PolicyError"])
    message: str
    problems: list[Problem] = Field(default_factory=list)


class ContainerView(BaseModel):
    """One instance of a service: where it runs and in what state (pending ones have no id)."""

    id: str | None = Field(description="The container id on its node's engine (None while "
                           "pending).")
    key: str = Field(description="service:instance, usable wherever a container id is.")
    service: str
    instance: int
    group: str | None = None
    node: str | None = None
    status: InstanceStatus
    health: Health
    restarts: int
    generation: int
    started_at: str | None = None
    uptime_seconds: float | None = None
    exit_code: int | None = None
    reason: str | None = None


class ContainerDetail(ContainerView):
    """A container with what ``docker inspect`` would add (taken from the service's spec)."""

    image: str
    command: list[str] | None = None
    ports: list[Port] = Field(default_factory=list)
    network_mode: str | None = None
    cpus: float | None = None
    memory: int | None = None
    restart: str
    healthcheck: bool


class Stats(BaseModel):
    """One sample, as ``docker stats`` computes it (100 % = one full CPU)."""

    cpu_percent: float
    memory_usage: int
    memory_limit: int
    memory_percent: float = 0.0
    pids: int = 0


class Changes(BaseModel):
    """What an apply did, by service name."""

    added: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)


class Created(BaseModel):
    created: list[str]
    warnings: list[str] = Field(default_factory=list, description="Ignored compose keys, etc.")


class Moving(BaseModel):
    """A node operation's outcome: the instances (service#N) that move elsewhere."""

    node: str
    moving: list[str] = Field(default_factory=list)


class Done(BaseModel):
    ok: bool = True
    detail: str = ""


class Totals(BaseModel):
    cpus_total: float = 0.0
    cpus_allocated: float = 0.0
    memory_total: int = 0
    memory_allocated: int = 0
    disk_total: int = 0
    disk_allocated: int = 0


class ClusterView(BaseModel):
    """The cluster at a glance: its name, policy, totals over live nodes, counts by status."""

    name: str
    policy: Policy
    totals: Totals
    nodes_alive: int
    nodes_total: int
    containers: dict[str, int] = Field(description="Instances by status.")
    dashboard_url: str


class HealthReport(BaseModel):
    """Liveness of the web server itself (no call to the Scheduler)."""

    status: str = "ok"
    events_connected: bool
    last_event_index: int | None = None
    subscribers: int = 0


def error_body(kind: str, message: str, problems: list[Any] | None = None) -> dict:
    probs = [Problem(message=p.message, path=p.path, file=p.file, line=p.line, column=p.column,
                     warning=p.warning, text=str(p)).model_dump() for p in problems or []]
    return ErrorBody(error=kind, message=message, problems=probs).model_dump()
