"""Cluster-wide knobs and per-service rules that do not shape a container: the host powers a
cluster allows (``policy:``), ``settings:`` (placement, budgets, back-off, discovery, disconnect)
and a service's ``update:`` rules. Pure pydantic; re-exported by ``veo.core.models``."""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from veo.core.units import parse_duration
from veo.core.values import Strict


class Policy(BaseModel):
    """``policy:`` in cluster.yml. Every switch defaults to refusing."""

    model_config = ConfigDict(extra="forbid")

    allow_privileged: bool = False
    allow_host_pid: bool = False
    allow_host_network: bool = False
    allow_cap_add: bool = False
    allow_devices: bool = False
    allow_host_mounts: bool = False  # bind mounts of host paths (not the Docker socket)
    allow_docker_socket: bool = False  # bind mounts that expose the engine's socket
    # security_opt beyond no-new-privileges (seccomp/apparmor/label=disable lift confinement)
    allow_security_opt: bool = False


class UpdateOrder(str, enum.Enum):
    stop_first = "stop-first"
    start_first = "start-first"


class OnUpdateFailure(str, enum.Enum):
    rollback = "rollback"
    pause = "pause"
    continue_ = "continue"


class UpdatePolicy(Strict):
    """``update:`` of a service (a group uses its master's, else its first member's): how a changed
    spec replaces running instances. Every wait has a deadline."""

    parallel: int = Field(default=1, ge=1)  # units replaced at once
    order: UpdateOrder = UpdateOrder.stop_first
    min_healthy: float = 10.0  # a new instance must stay running (and healthy) this long
    healthy_deadline: float = 120.0  # ... and get there within this long, pending included
    progress_deadline: float = 600.0  # the update as a whole, reset by each healthy instance
    on_failure: OnUpdateFailure = OnUpdateFailure.rollback
    max_failure_ratio: float = Field(default=0.0, ge=0, le=1)  # failures tolerated / units
    delay: float = 0.0  # between one batch done and the next started
    canary: int = Field(default=0, ge=0)  # new units started first; then wait for promote
    auto_promote: bool = False

    @field_validator("min_healthy", "healthy_deadline", "progress_deadline", "delay", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v)


class PlacementStrategy(str, enum.Enum):
    spread = "spread"
    binpack = "binpack"


class DiscoverySettings(Strict):
    """``settings.discovery``: where each node's veo DNS answers, and how (veo.core.discovery)."""

    host: str | None = None  # None: the node's address (Ray's)
    # a high port by default (53 needs root and is often taken); a node whose port is taken by
    # another node on the same address falls back to a free one and reports it
    port: int = Field(default=8053, ge=0, le=65535)
    ttl: int = Field(default=1, ge=0, le=5)  # seconds; short, so a change is seen at once
    # names outside the zone: "resolver" (the node's /etc/resolv.conf), "refuse", or addresses
    forward: Literal["resolver", "refuse"] | list[str] = "resolver"


class Disconnect(Strict):
    """``settings.disconnect``: what a machine does when it cannot reach the cluster.

    ``stop_after``: after this long without the head's GCS port, the machine's ``veo node``
    process stops (never removes) its veo containers, so that no twin outlives the replacements
    the rest of the cluster started (like Nomad's ``stop_on_client_after``). ``never`` (None)
    keeps them running."""

    stop_after: float | None = 30.0

    @field_validator("stop_after", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and v.strip().lower() == "never"):
            return None
        return parse_duration(v)


class Settings(Strict):
    """Cluster-wide knobs (``settings:`` in cluster.yml)."""

    placement: PlacementStrategy = PlacementStrategy.spread
    # OTP restart intensity: more than `budget_restarts` in `budget_period` seconds fails the group
    budget_restarts: int = Field(default=10, ge=1)
    budget_period: float = Field(default=60.0, gt=0)
    backoff_initial: float = Field(default=0.1, ge=0)  # from the second quick death: the first restart is at once
    backoff_max: float = Field(default=30.0, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    orphan_grace: float = Field(default=60.0, ge=0)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    disconnect: Disconnect = Field(default_factory=Disconnect)

    @field_validator("budget_period", "backoff_initial", "backoff_max", "orphan_grace", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v)
