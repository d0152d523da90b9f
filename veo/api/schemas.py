"""Response and request shapes of the REST API that are not veo's own models.

veo's models (Service, Node, NodeView, Event, Port) are returned as they are; these derive from
veo's own types and add only what a front door shows on top of them (a container's key, uptime and
detail, stats, the change lists of an apply) and the one error shape every route answers with.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass

from veo.core.errors import SpecProblem
from veo.core.models import Port, Service
from veo.core.names import instance_key
from veo.core.records import Instance, InstanceStatus
from veo.core.summary import ClusterSummary


@dataclass(frozen=True)
class Problem(SpecProblem):
    """One problem of a spec: where and what (``SpecProblem``), plus the line the CLI prints."""

    text: str = Field("", description="The problem as the CLI prints it "
                      "(FILE:LINE:COL: path: what).")

    @classmethod
    def of(cls, p: SpecProblem) -> Problem:
        fields = {f.name: getattr(p, f.name) for f in dataclasses.fields(SpecProblem)}
        return cls(**fields, text=str(p))


class ErrorBody(BaseModel):
    """Every error response: ``error`` is the kind, ``message`` the text the CLI shows."""

    error: str = Field(examples=["NotFound", "SpecError", "Conflict", "PolicyError"])
    message: str
    problems: list[Problem] = Field(default_factory=list)


class ContainerView(Instance):
    """One instance of a service (an ``Instance``): where it runs and in what state, with its
    key and uptime. Pending instances have no id."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    container_id: str | None = Field(None, alias="id", description="The container id on its "
                                     "node's engine (None while pending).")
    key: str = Field(description="service#instance, usable wherever a container id is "
                     "(service:instance is accepted too).")
    uptime_seconds: float | None = None

    @classmethod
    def of(cls, inst: Instance, now: float | None = None) -> ContainerView:
        return cls(**inst.model_dump(), key=instance_key(inst.service, inst.instance),
                   uptime_seconds=uptime(inst, now))


def uptime(inst: Instance, now: float | None = None) -> float | None:
    if inst.status is not InstanceStatus.running or not inst.started_at:
        return None
    try:
        started = datetime.strptime(inst.started_at[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    seconds = (now or time.time()) - started.replace(tzinfo=timezone.utc).timestamp()
    return max(0.0, round(seconds, 1))


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

    @classmethod
    def of(cls, inst: Instance, svc: Service) -> ContainerDetail:
        # what `docker inspect` would name the restart policy veo applies
        restart = svc.restart.value if svc.restart_on_success or svc.restart.value == "never" \
            else "on-failure"
        return cls(**ContainerView.of(inst).model_dump(), image=svc.image, command=svc.command,
                   ports=svc.ports, network_mode=svc.network_mode, cpus=svc.cpus,
                   memory=svc.memory, restart=restart, healthcheck=svc.healthcheck is not None)


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


class ClusterView(ClusterSummary):
    """The cluster at a glance (``ClusterSummary``) and where its Ray dashboard is."""

    dashboard_url: str


class LoopStats(BaseModel):
    """The control loop's step durations in seconds (the Scheduler's own work per step, not the
    wait between steps) over its last kept steps."""

    count: int = Field(description="Steps these figures are over.")
    p50: float
    p95: float
    max: float
    total: int = Field(description="Steps since the Scheduler started (pass it as `since` to "
                       "get only the steps after this answer).")


class HealthReport(BaseModel):
    """Liveness of the web server itself (no call to the Scheduler)."""

    status: str = "ok"
    events_connected: bool
    last_event_index: int | None = None
    subscribers: int = 0
    dropped_subscribers: int = Field(0, description="Websockets dropped for falling too far "
                                     "behind, since the server started.")


def error_body(kind: str, message: str, problems: list[SpecProblem] | None = None) -> dict:
    probs = [Problem.of(p) for p in problems or []]
    return ErrorBody(error=kind, message=message, problems=probs).model_dump()
