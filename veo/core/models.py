"""The data veo speaks: services as users write them, nodes, instances and events.

Pydantic v2 models, no I/O. Every user-facing field accepts the spellings of the original VEO record
and of docker-compose, and normalises them (sizes to bytes, durations to seconds, short port and
volume forms to structured ones) so that everything downstream sees one shape.

Cross-field rules that involve several services (one master per group, members agree on the policy
and instance count) live on ``ClusterSpec``; rules within one service live on ``Service``.
"""

from __future__ import annotations

import enum
import re
import shlex
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from veo.core.units import parse_duration, parse_size

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
RESERVED_LABEL_PREFIX = "veo."


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


class Strict(BaseModel):
    """Base for user-written models: unknown keys are errors (the loader adds 'did you mean')."""

    # YAML reads `user: 1000` or `test: [CMD, nc, -z, localhost, 80]` as numbers; compose takes them
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, validate_assignment=False, coerce_numbers_to_str=True
    )


# --------------------------------------------------------------------------------------------------
# Small value types
# --------------------------------------------------------------------------------------------------


class Port(Strict):
    """A published port. Short forms: ``"80"``, ``"8080:80"``, ``"127.0.0.1:8080:80/udp"``."""

    target: int = Field(ge=1, le=65535)
    published: int | None = Field(default=None, ge=1, le=65535)
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    host_ip: str | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return {"target": v}
        if not isinstance(v, str):
            return v
        text, proto = v, "tcp"
        if "/" in text:
            text, proto = text.rsplit("/", 1)
        parts = text.split(":")
        if len(parts) > 3 or not all(parts[-2:]) or "-" in text:
            raise ValueError(f"expected a port like '8080:80/udp' or '80', got {v!r}")
        try:
            out: dict[str, Any] = {"target": int(parts[-1]), "protocol": proto}
            if len(parts) >= 2:
                out["published"] = int(parts[-2])
        except ValueError:
            raise ValueError(f"expected a port like '8080:80/udp' or '80', got {v!r}") from None
        if len(parts) == 3:
            out["host_ip"] = parts[0]
        return out


class Volume(Strict):
    """A mount. Short form, compose order: ``src:dst[:ro|rw]``.

    ``src`` starting with ``/``, ``.`` or ``~`` is a bind mount; a bare name is a named volume;
    a lone ``dst`` is an anonymous volume.
    """

    type: Literal["bind", "volume"] = "volume"
    source: str | None = None
    target: str
    read_only: bool = False

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        if not isinstance(v, str):
            if isinstance(v, dict) and "type" not in v and isinstance(v.get("source"), str):
                return {**v, "type": "bind" if _is_path(v["source"]) else "volume"}
            return v
        parts = v.split(":")
        mode = None
        if len(parts) == 3 or (len(parts) == 2 and parts[1] in ("ro", "rw")):
            mode = parts.pop()
        if mode not in (None, "ro", "rw") or not all(parts) or len(parts) > 2:
            raise ValueError(f"expected a volume like '/src:/dst:ro' or 'name:/dst', got {v!r}")
        read_only = mode == "ro"
        if len(parts) == 1:
            return {"type": "volume", "target": parts[0], "read_only": read_only}
        src, dst = parts
        return {
            "type": "bind" if _is_path(src) else "volume",
            "source": src,
            "target": dst,
            "read_only": read_only,
        }

    @field_validator("target")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"the mount target must be an absolute path, got {v!r}")
        return v


def _is_path(src: str) -> bool:
    return src.startswith(("/", ".", "~"))


class Ulimit(Strict):
    soft: int = Field(ge=-1)
    hard: int = Field(ge=-1)

    @model_validator(mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return {"soft": v, "hard": v}
        return v

    @model_validator(mode="after")
    def _order(self) -> Ulimit:
        if self.hard != -1 and (self.soft == -1 or self.soft > self.hard):
            raise ValueError(f"soft limit {self.soft} is above hard limit {self.hard}")
        return self


class HealthCheck(Strict):
    """Docker's HEALTHCHECK, normalised: ``test`` is Docker's list form (CMD / CMD-SHELL / NONE)."""

    test: list[str] = Field(alias="test")
    interval: float = 5.0  # VEO's default poll period; Docker's own default is 30 s
    timeout: float = 3.0
    retries: int = Field(default=3, ge=1)
    start_period: float = 0.0
    shell: bool = False

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, v: Any) -> Any:
        if isinstance(v, (str, list)):
            v = {"test": v}
        if not isinstance(v, dict):
            return v
        v = dict(v)
        if "cmd" in v:
            if "test" in v:
                raise ValueError("give either 'test' or 'cmd', not both")
            v["test"] = v.pop("cmd")
        test, shell = v.get("test"), bool(v.get("shell", False))
        if isinstance(test, str):
            v["test"], v["shell"] = ["CMD-SHELL", test], True
        elif isinstance(test, list) and test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            words = [str(w) for w in test]
            v["test"] = ["CMD-SHELL", shlex.join(words)] if shell else ["CMD", *words]
        return v

    @field_validator("interval", "timeout", "start_period", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        # a field validator (not the model one above) so that an error points at the field
        return parse_duration(v)

    @field_validator("test")
    @classmethod
    def _not_empty(cls, v: list[str]) -> list[str]:
        if not v or (v[0] in ("CMD", "CMD-SHELL") and len(v) < 2):
            raise ValueError("the health check needs a command")
        return v

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"must be above 0, got {v}")
        return v


class RestartPolicy(str, enum.Enum):
    never = "never"
    restart = "restart"


class GroupRole(str, enum.Enum):
    master = "master"
    slave = "slave"


class GroupPolicy(str, enum.Enum):
    master_kills_all = "master_kills_all"
    one_kills_all = "one_kills_all"
    one_for_one = "one_for_one"


class OnUnhealthy(str, enum.Enum):
    restart = "restart"
    kill = "kill"
    leave = "leave"


# compose spelling -> (veo restart policy, restart when the exit code is 0?)
_RESTART_SPELLINGS: dict[str, tuple[str, bool]] = {
    "never": ("never", False),
    "no": ("never", False),
    "false": ("never", False),
    "restart": ("restart", True),
    "always": ("restart", True),
    "unless-stopped": ("restart", True),
    "on-failure": ("restart", False),
}


# --------------------------------------------------------------------------------------------------
# Service
# --------------------------------------------------------------------------------------------------


class Service(Strict):
    """One service of cluster.yml: what to run, where it may run, how it is kept alive."""

    name: str
    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    ports: list[Port] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    ulimits: dict[str, Ulimit] = Field(default_factory=dict)
    dns: list[str] = Field(default_factory=list)
    privileged: bool = False
    cap_add: list[str] = Field(default_factory=list)
    cap_drop: list[str] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list)
    network_mode: str | None = None
    pid_mode: str | None = None
    user: str | None = None
    working_dir: str | None = None
    auto_remove: bool = False
    stop_grace_period: float = 10.0
    restart: RestartPolicy = RestartPolicy.restart
    restart_on_success: bool = True
    restart_count: int | None = Field(default=None, ge=0)
    instances: int | Literal["all"] = 1
    cpus: float | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, ge=0)
    disk: int | None = Field(default=None, ge=0)
    roles: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)
    group: str | None = None
    group_role: GroupRole | None = None
    group_policy: GroupPolicy | None = None
    healthcheck: HealthCheck | None = None
    on_unhealthy: OnUnhealthy = OnUnhealthy.restart

    # ---- spellings -------------------------------------------------------------------------------

    @field_validator("name", "group")
    @classmethod
    def _docker_name(cls, v: str | None) -> str | None:
        if v is not None and not NAME_RE.match(v):
            raise ValueError(
                f"{v!r} is not a valid name: use letters, digits, '_', '.', '-' "
                "and start with a letter or digit"
            )
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not v.strip() or any(c.isspace() for c in v):
            raise ValueError(f"expected an image reference like 'veo/busybox:latest', got {v!r}")
        return v

    @field_validator("command", "entrypoint", mode="before")
    @classmethod
    def _argv(cls, v: Any) -> Any:
        # compose splits a string command like a shell would, without running a shell
        if isinstance(v, str):
            try:
                return shlex.split(v)
            except ValueError as e:
                raise ValueError(f"cannot split {v!r} into words: {e}") from None
        if isinstance(v, list):
            return [str(x) if isinstance(x, (int, float)) else x for x in v]
        return v

    @field_validator("environment", "labels", mode="before")
    @classmethod
    def _key_values(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, list):
            out: dict[str, str] = {}
            for item in v:
                if not isinstance(item, str) or "=" not in item:
                    raise ValueError(f"expected 'KEY=VALUE' items, got {item!r}")
                key, _, value = item.partition("=")
                out[key] = value
            return out
        if isinstance(v, dict):
            return {str(k): _scalar_text(val) for k, val in v.items()}
        return v

    @field_validator("labels")
    @classmethod
    def _no_reserved_labels(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in v if k.startswith(RESERVED_LABEL_PREFIX))
        if bad:
            raise ValueError(f"labels starting with 'veo.' are reserved for veo itself: {bad}")
        return v

    @field_validator("dns", "roles", "hosts", "cap_add", "cap_drop", "devices", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [v]
        return [] if v is None else v

    @field_validator("ulimits", mode="before")
    @classmethod
    def _ulimits(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("memory", "disk", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return None if v is None else parse_size(v)

    @field_validator("stop_grace_period", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v)

    @field_validator("cpus", mode="before")
    @classmethod
    def _cpus(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                raise ValueError(f"expected a number of CPUs like 0.5, got {v!r}") from None
        return v

    @field_validator("instances", mode="before")
    @classmethod
    def _instances(cls, v: Any) -> Any:
        if v == "all" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError(f"expected a number of instances >= 1 or 'all', got {v!r}")

    @model_validator(mode="before")
    @classmethod
    def _restart_spelling(cls, v: Any) -> Any:
        if not isinstance(v, dict) or "restart" not in v:
            return v
        raw = v["restart"]
        key = "false" if raw is False else str(raw).strip().lower()
        if key.startswith("on-failure:"):
            # docker's 'on-failure:N' carries the count in the same word
            key, count = "on-failure", key.split(":", 1)[1]
            if "restart_count" not in v and count.isdigit():
                v = {**v, "restart_count": int(count)}
        if key not in _RESTART_SPELLINGS:
            return v  # the 'restart' field validator reports it, at the field
        policy, on_success = _RESTART_SPELLINGS[key]
        v = {**v, "restart": policy}
        v.setdefault("restart_on_success", on_success)
        return v

    @field_validator("restart", mode="before")
    @classmethod
    def _restart(cls, v: Any) -> Any:
        if v not in (RestartPolicy.never, RestartPolicy.restart, "never", "restart"):
            raise ValueError(
                f"expected never or restart (or no, always, on-failure, unless-stopped), got {v!r}"
            )
        return v

    # ---- rules within one service ----------------------------------------------------------------

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Service:
        # the loader turns these off and calls service_rule_errors itself, to point at the line
        if not (info.context or {}).get("defer_rules"):
            errors = service_rule_errors(self)
            if errors:
                raise ValueError("; ".join(f"{field}: {msg}" for field, msg in errors))
        return self

    # ---- derived ---------------------------------------------------------------------------------

    @property
    def effective_policy(self) -> GroupPolicy:
        return self.group_policy or GroupPolicy.one_for_one

    def spec_hash(self) -> str:
        """A short stable hash of everything that shapes the container (not placement-only fields)."""
        import hashlib
        import json

        data = self.model_dump(mode="json", exclude={"instances", "roles", "hosts"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def service_rule_errors(svc: Service) -> list[tuple[str, str]]:
    """Rules within one service, as ``(field, message)`` pairs."""
    given = svc.model_fields_set
    errors: list[tuple[str, str]] = []
    if svc.restart is RestartPolicy.never and svc.restart_count:
        errors.append(("restart_count", "needs restart: restart (this service has restart: never)"))
    if svc.group is None and "group_role" in given:
        errors.append(("group_role", "needs a group"))
    if svc.group is None and "group_policy" in given:
        errors.append(("group_policy", "needs a group"))
    if svc.healthcheck is None and "on_unhealthy" in given:
        errors.append(("on_unhealthy", "needs a healthcheck"))
    if svc.auto_remove and svc.restart is RestartPolicy.restart and "restart" in given:
        # Docker forbids --rm with a restart policy; a user asking for both most likely erred
        errors.append(("auto_remove", "cannot be combined with restart: restart; use restart: never"))
    return errors


def _scalar_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# --------------------------------------------------------------------------------------------------
# Nodes and the cluster
# --------------------------------------------------------------------------------------------------


class Node(Strict):
    """A node expected in the cluster; capacity fields override what the engine reports."""

    name: str
    host: str = "localhost"
    role: str | None = None
    cpus: float | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, ge=0)
    disk: int | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _node_at_host(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = {"node": v}
        if isinstance(v, dict) and "node" in v:
            v = dict(v)
            raw = v.pop("node")
            if "name" in v:
                raise ValueError("give either 'node: name@host' or 'name:', not both")
            name, _, host = str(raw).partition("@")
            v["name"] = name
            if host:
                v.setdefault("host", host)
        for key in ("memory", "disk"):
            if isinstance(v, dict) and v.get(key) is not None:
                v[key] = parse_size(v[key])
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a valid node name")
        return v


class PlacementStrategy(str, enum.Enum):
    spread = "spread"
    binpack = "binpack"


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
    backoff_initial: float = Field(default=0.1, ge=0)  # the first restart is quick
    backoff_max: float = Field(default=30.0, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    orphan_grace: float = Field(default=60.0, ge=0)
    disconnect: Disconnect = Field(default_factory=Disconnect)

    @field_validator("budget_period", "backoff_initial", "backoff_max", "orphan_grace", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v)


class ClusterSpec(Strict):
    """A whole cluster.yml: expected nodes, services by name, settings, policy."""

    name: str = "veo"
    nodes: list[Node] = Field(default_factory=list)
    services: dict[str, Service] = Field(default_factory=dict)
    settings: Settings = Field(default_factory=Settings)
    # what host-level powers services may use; checked by the loader and the Scheduler, not here,
    # so that a spec built in code still validates (see veo.core.policy)
    policy: Policy = Field(default_factory=Policy)

    @field_validator("name")
    @classmethod
    def _cluster_name(cls, v: str) -> str:
        # container names are <cluster>_<service>_<instance>_g<generation>; no '_' in the cluster
        # part keeps that parse unambiguous
        if not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9.-]*$", v):
            raise ValueError(f"{v!r} is not a valid cluster name: use letters, digits, '.', '-'")
        return v

    @model_validator(mode="before")
    @classmethod
    def _service_names(cls, v: Any) -> Any:
        # the mapping key is the name; a 'name:' inside must agree with it
        if isinstance(v, dict) and isinstance(v.get("services"), dict):
            services = {}
            for key, body in v["services"].items():
                if isinstance(body, dict):
                    body = dict(body)
                    body.setdefault("name", key)
                services[key] = body
            v = {**v, "services": services}
        return v

    @model_validator(mode="after")
    def _cross_service_rules(self, info: ValidationInfo) -> ClusterSpec:
        if (info.context or {}).get("defer_rules"):
            return self
        errors = check_cluster_rules(self)
        if errors:
            raise ValueError("; ".join(msg for _, msg in errors))
        return self

    def groups(self) -> dict[str, list[Service]]:
        """Members of every group in declared order, master first."""
        out: dict[str, list[Service]] = {}
        for svc in self.services.values():
            if svc.group:
                out.setdefault(svc.group, []).append(svc)
        for members in out.values():
            members.sort(key=lambda s: 0 if s.group_role is GroupRole.master else 1)
        return out


def check_cluster_rules(spec: ClusterSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """Every rule that spans fields or services, as ``(path, message)`` pairs (the loader maps a
    path to its line)."""
    errors: list[tuple[tuple[str | int, ...], str]] = []
    for key, svc in spec.services.items():
        errors.extend((("services", key, field), msg) for field, msg in service_rule_errors(svc))
    for key, svc in spec.services.items():
        if svc.name != key:
            errors.append((("services", key, "name"), f"name {svc.name!r} differs from its key {key!r}"))
    names = [n.name for n in spec.nodes]
    for i, n in enumerate(spec.nodes):
        if names.count(n.name) > 1 and names.index(n.name) != i:
            errors.append((("nodes", i, "name"), f"node {n.name!r} is listed twice"))
    for group, members in spec.groups().items():
        masters = [m.name for m in members if m.group_role is GroupRole.master]
        if len(masters) > 1:
            for m in masters[1:]:
                errors.append(
                    (("services", m, "group_role"), f"group {group!r} has more than one master: {masters}")
                )
        policies = {m.group_policy for m in members if m.group_policy is not None}
        if len(policies) > 1:
            first = members[0].name
            errors.append(
                (
                    ("services", first, "group_policy"),
                    f"members of group {group!r} disagree on group_policy: "
                    + ", ".join(sorted(p.value for p in policies)),
                )
            )
        elif policies == {GroupPolicy.master_kills_all} and not masters:
            errors.append(
                (
                    ("services", members[0].name, "group_policy"),
                    f"group {group!r} uses master_kills_all but no member has group_role: master",
                )
            )
        counts = {m.instances for m in members}
        if len(counts) > 1:
            errors.append(
                (
                    ("services", members[0].name, "instances"),
                    f"members of group {group!r} disagree on instances "
                    f"({', '.join(f'{m.name}={m.instances}' for m in members)}); "
                    "a group runs as a unit, so every member needs the same count",
                )
            )
    return errors


def group_policy_of(members: list[Service]) -> GroupPolicy:
    for m in members:
        if m.group_policy is not None:
            return m.group_policy
    return GroupPolicy.one_for_one


# The runtime views (Instance, NodeView, Event, ...) live in veo.core.records; re-exported here so
# that `from veo.core.models import Instance` keeps working for users of the Python API.
from veo.core.records import (  # noqa: E402,F401
    Event,
    EventKind,
    Health,
    Instance,
    InstanceStatus,
    NodeView,
)
