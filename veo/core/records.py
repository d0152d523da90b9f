"""What the Scheduler reports: instances, nodes and events. Plain pydantic, no I/O.

Separate from ``veo.core.models`` (what users write) because these describe actual state; both are
importable from ``veo.core.models``.
"""

from __future__ import annotations

import enum
import time

from pydantic import BaseModel, Field


class InstanceStatus(str, enum.Enum):
    pending = "pending"
    starting = "starting"
    running = "running"
    backoff = "backoff"
    exited = "exited"
    completed = "completed"
    failed = "failed"


class Health(str, enum.Enum):
    none = "none"
    starting = "starting"
    healthy = "healthy"
    unhealthy = "unhealthy"


class Instance(BaseModel):
    """One (service, instance) as the scheduler sees it: where it runs and in what state."""

    service: str
    instance: int
    group: str | None = None
    node: str | None = None
    status: InstanceStatus = InstanceStatus.pending
    health: Health = Health.none
    restarts: int = 0
    generation: int = 1
    container_id: str | None = None
    started_at: str | None = None
    exit_code: int | None = None
    reason: str | None = None


class AgentReport(BaseModel):
    """What a NodeAgent tells the Scheduler each step: its engine's capacity and its instances."""

    node: str
    docker_host: str
    cpus: float = 0.0
    memory: int = 0
    disk: int = 0
    instances: list[Instance] = Field(default_factory=list)
    synced: bool = False  # it has converged at least once since it started
    version: int = 0  # grows when the report changes; a caller holding it gets None back
    dns: str | None = None  # HOST:PORT where the node's veo DNS answers
    dns_version: int | None = None  # the discovery table it serves
    dns_config: dict | None = None  # the discovery settings it serves with


class NodeView(BaseModel):
    """A node as the scheduler sees it: capacity, allocation, liveness."""

    name: str
    role: str | None = None
    host: str | None = None
    alive: bool = False
    expected: bool = False  # named in cluster.yml
    cordoned: bool = False
    cpus_total: float = 0.0
    memory_total: int = 0
    disk_total: int = 0
    cpus_allocated: float = 0.0
    memory_allocated: int = 0
    disk_allocated: int = 0
    docker_host: str | None = None
    containers: int = 0
    dns: str | None = None  # HOST:PORT where the node's veo DNS answers


class EventKind(str, enum.Enum):
    placed = "placed"
    pending = "pending"
    started = "started"
    healthy = "healthy"
    unhealthy = "unhealthy"
    exited = "exited"
    restarted = "restarted"
    killed = "killed"
    failed = "failed"
    completed = "completed"
    removed = "removed"
    reaped = "reaped"
    node_joined = "node_joined"
    node_lost = "node_lost"
    fenced = "fenced"  # its machine stopped it while cut off from the cluster (disconnect.stop_after)
    applied = "applied"
    update_started = "update_started"
    instance_replaced = "instance_replaced"
    update_paused = "update_paused"
    update_failed = "update_failed"
    rolled_back = "rolled_back"
    update_done = "update_done"
    skipped = "skipped"  # ticks of a scheduled task that did not run (one event per summary)


class Event(BaseModel):
    """One state change. ``index`` grows by one per event, so readers can resume."""

    index: int = 0
    time: float = Field(default_factory=time.time)
    kind: EventKind
    service: str | None = None
    instance: int | None = None
    group: str | None = None
    container_id: str | None = None
    node: str | None = None
    reason: str | None = None
    generation: int | None = None
    exit_code: int | None = None
    restarts: int | None = None
    # the lifecycle status this event moved the instance to (veo.core.lifecycle.move), if any
    status: InstanceStatus | None = None
    # who sent it, and its number there: an event an agent sends again (its Scheduler died while
    # taking the batch) is recognised and recorded once
    source: str | None = None
    # a task run's completed/failed event: how long it ran and the last lines it logged
    duration: float | None = None
    logs: str | None = None
