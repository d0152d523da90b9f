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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from veo.core.compose_types import (Dependency, Logging, NetworkDef, SecretFile, ServiceNetwork,
                                     VolumeDef, depends_on, extra_hosts)
from veo.core import calendar
from veo.core.calendar import Overlap
from veo.core.units import parse_duration, parse_size
# the value types live in veo.core.values; re-exported so `from veo.core.models import Port` works
from veo.core.values import HealthCheck, Port, Strict, Ulimit, Volume, expand_ports  # noqa: F401
from veo.core.values import GroupPolicy, GroupRole, OnUnhealthy, PullPolicy, RestartPolicy  # noqa: F401
# the knobs live in veo.core.settings; re-exported so `from veo.core.models import Settings` works
from veo.core.settings import (DiscoverySettings, Disconnect, OnUpdateFailure,  # noqa: F401
                               PlacementStrategy, Policy, Settings, UpdateOrder, UpdatePolicy)

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# the JSON schema says what the validators accept (their messages stay veo's own)
NAME_SCHEMA = {"pattern": NAME_RE.pattern}
RESERVED_LABEL_PREFIX = "veo."


class TaskHistory(Strict):
    """How many finished runs of a task keep their container (for ``veo logs``)."""

    succeeded: int = Field(default=3, ge=0)
    failed: int = Field(default=1, ge=0)


# the fields that only mean something on a task (a service with a schedule)
TASK_FIELDS = ("time_zone", "overlap", "starting_deadline", "history", "timeout")


# compose spellings of the same three
_PULL_SPELLINGS = {"missing": "missing", "if_not_present": "missing", "always": "always",
                   "never": "never"}


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

    name: str = Field(json_schema_extra=NAME_SCHEMA)
    image: str
    pull_policy: PullPolicy = PullPolicy.missing
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
    group: str | None = Field(None, json_schema_extra=NAME_SCHEMA)
    group_role: GroupRole | None = None
    group_policy: GroupPolicy | None = None
    healthcheck: HealthCheck | None = None
    on_unhealthy: OnUnhealthy = OnUnhealthy.restart
    # ---- compose keys Docker does directly (see veo.core.translate) ----
    reserve_cpus: float | None = Field(default=None, ge=0)  # placement reservation, no limit
    reserve_memory: int | None = Field(default=None, ge=0)  # also Docker's soft limit
    memswap_limit: int | None = Field(default=None, ge=-1)  # -1: unlimited swap
    cpu_shares: int | None = Field(default=None, ge=0)
    pids_limit: int | None = Field(default=None, ge=-1)
    shm_size: int | None = Field(default=None, ge=0)
    init: bool | None = None
    tmpfs: list[str] = Field(default_factory=list)
    read_only: bool = False
    stop_signal: str | None = None
    sysctls: dict[str, str] = Field(default_factory=dict)
    extra_hosts: list[str] = Field(default_factory=list)
    hostname: str | None = None
    domainname: str | None = None
    security_opt: list[str] = Field(default_factory=list)
    group_add: list[str] = Field(default_factory=list)
    expose: list[str] = Field(default_factory=list)
    logging: Logging | None = None
    networks: dict[str, ServiceNetwork] = Field(default_factory=dict)  # see veo.adapters.prepare
    depends_on: dict[str, Dependency] = Field(default_factory=dict)  # see veo.core.depends
    # files with their content (the loader reads compose's secrets:/configs:), see prepare
    secrets: list[SecretFile] = Field(default_factory=list)
    configs: list[SecretFile] = Field(default_factory=list)
    # the declared named volumes this service mounts, by engine name (filled in by the loader)
    volume_defs: dict[str, VolumeDef] = Field(default_factory=dict)
    update: UpdatePolicy | None = None  # rolling-update rules; None: the defaults
    # a task: a service with a schedule (VEO's spelling: task:); see veo.core.calendar
    schedule: list[Annotated[str, BeforeValidator(calendar.cron_text)]] | None = None
    time_zone: str = "UTC"
    overlap: Overlap = Overlap.forbid
    starting_deadline: float | None = Field(default=None, ge=0)
    history: TaskHistory = Field(default_factory=TaskHistory)
    timeout: float | None = Field(default=None, gt=0)
    # served by veo's DNS and pointed at it (dns:, dns_search:); see veo.core.discovery
    discovery: bool = False

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

    @field_validator("pull_policy", mode="before")
    @classmethod
    def _pull_policy(cls, v: Any) -> Any:
        if isinstance(v, PullPolicy):
            return v
        key = str(v).strip().lower()
        if key in _PULL_SPELLINGS:
            return _PULL_SPELLINGS[key]
        if key == "build":
            raise ValueError("veo does not build images: push the image to a registry the "
                             "nodes can reach and use missing, always or never")
        raise ValueError(f"expected missing, always or never (or if_not_present), got {v!r}")

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

    @field_validator("ports", mode="before")
    @classmethod
    def _port_ranges(cls, v: Any) -> Any:
        return expand_ports(v)

    @field_validator("tmpfs", "security_opt", "group_add", "expose", mode="before")
    @classmethod
    def _words(cls, v: Any) -> Any:
        if isinstance(v, (str, int)):
            v = [v]
        return [] if v is None else [str(x) for x in v] if isinstance(v, list) else v

    @field_validator("networks", mode="before")
    @classmethod
    def _networks(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, list):
            return {str(name): {} for name in v}
        return {str(k): ({} if x is None else x) for k, x in v.items()} if isinstance(v, dict) else v

    @field_validator("depends_on", mode="before")
    @classmethod
    def _depends_on(cls, v: Any) -> Any:
        return depends_on(v)

    @field_validator("sysctls", mode="before")
    @classmethod
    def _sysctls(cls, v: Any) -> Any:
        return cls._key_values(v)

    @field_validator("extra_hosts", mode="before")
    @classmethod
    def _extra_hosts(cls, v: Any) -> Any:
        return extra_hosts(v)

    @field_validator("memswap_limit", "pids_limit", mode="before")
    @classmethod
    def _limit(cls, v: Any) -> Any:
        if v in (-1, "-1"):
            return -1
        return None if v is None else (parse_size(v) if not isinstance(v, int) else v)

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

    @field_validator("memory", "disk", "reserve_memory", "shm_size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return None if v is None else parse_size(v)

    @field_validator("stop_grace_period", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v)

    @field_validator("cpus", "reserve_cpus", mode="before")
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
        # 0 is compose's 'scale: 0': declared, not run
        if v == "all" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            return v
        if isinstance(v, str) and v.isdigit():
            return int(v)
        raise ValueError(f"expected a number of instances >= 0 or 'all', got {v!r}")

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, v: Any) -> Any:
        if v is None:
            return None
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list) or not items:
            raise ValueError(f"expected a cron expression like '*/5 * * * *' or a list of them, got {v!r}")
        return items  # each item is checked on its own, so an error points at its line

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, v: str) -> str:
        calendar.zone(v)
        return v

    @field_validator("starting_deadline", "timeout", mode="before")
    @classmethod
    def _task_duration(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)

    @model_validator(mode="before")
    @classmethod
    def _task_spelling(cls, v: Any) -> Any:
        # VEO's record called the schedule 'task'; a task is never restarted unless it says so
        if not isinstance(v, dict) or not ({"task", "schedule"} & set(v)):
            return v
        v = dict(v)
        if "task" in v:
            if "schedule" in v:
                raise ValueError("give either 'task' or 'schedule', not both")
            v["schedule"] = v.pop("task")
        if v.get("schedule") is not None and "restart" not in v:
            # both, as the 'never' spelling gives them: a reload (which sees restart: never
            # written out) must make the same service, or its spec hash would change
            v["restart"] = "never"
            v.setdefault("restart_on_success", False)
        return v

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
    def placement_cpus(self) -> float:
        """CPUs placement reserves on the node: the limit, or a larger reservation."""
        return max(self.cpus or 0.0, self.reserve_cpus or 0.0)

    @property
    def placement_memory(self) -> int:
        return max(self.memory or 0, self.reserve_memory or 0)

    @property
    def is_task(self) -> bool:
        return self.schedule is not None


    def spec_hash(self) -> str:
        """A short stable hash of everything that shapes the container (not placement-only fields)."""
        import hashlib
        import json

        # placement, dependency, update, pull and calendar rules do not shape the container:
        # changing them replaces nothing (editing a schedule keeps the runs it has)
        data = self.model_dump(mode="json", exclude={"instances", "roles", "hosts", "reserve_cpus",
                                                      "update", "depends_on", "pull_policy",
                                                      *TASK_FIELDS, "schedule"})
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
    errors.extend(_task_rule_errors(svc, given))
    return errors


def _task_rule_errors(svc: Service, given: set[str]) -> list[tuple[str, str]]:
    if not svc.is_task:
        return [(f, "needs a schedule (only a task has one)") for f in TASK_FIELDS if f in given]
    errors: list[tuple[str, str]] = []
    if svc.restart is RestartPolicy.restart and svc.restart_on_success:
        errors.append(("restart", "a task ends: use never or on-failure (with restart_count)"))
    if svc.instances == "all":
        errors.append(("instances", "a task runs a number of copies per tick, not 'all'"))
    elif svc.instances > calendar.RUN_COPIES:
        errors.append(("instances", f"a task runs at most {calendar.RUN_COPIES} copies per tick"))
    if svc.group is not None:
        errors.append(("group", "a task cannot be a member of a group"))
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

    name: str = Field(json_schema_extra=NAME_SCHEMA)
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


class ClusterSpec(Strict):
    """A whole cluster.yml: expected nodes, services by name, settings, policy."""

    name: str = "veo"
    nodes: list[Node] = Field(default_factory=list)
    services: dict[str, Service] = Field(default_factory=dict)
    settings: Settings = Field(default_factory=Settings)
    # what host-level powers services may use; checked by the loader and the Scheduler, not here,
    # so that a spec built in code still validates (see veo.core.policy)
    policy: Policy = Field(default_factory=Policy)
    volumes: dict[str, VolumeDef] = Field(default_factory=dict)  # compose's declared volumes
    networks: dict[str, NetworkDef] = Field(default_factory=dict)  # compose's project networks

    @field_validator("volumes", "networks", mode="before")
    @classmethod
    def _volume_defs(cls, v: Any) -> Any:
        # 'data:' with nothing under it declares a volume with every default
        return {k: ({} if d is None else d) for k, d in v.items()} if isinstance(v, dict) else v

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
    AgentReport,
)
