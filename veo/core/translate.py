"""Service -> Docker: container names, labels and the arguments of a container create.

Pure: no client, no I/O. Every field of ``Service`` is either mapped here (``MAPPED_FIELDS``), or
used only by placement and supervision (``NOT_DOCKER_FIELDS``, with the reason), and a value that
cannot be mapped faithfully is refused with a ``SpecError`` naming the field rather than dropped.
A unit test keeps the two lists and the model in step, so a new field cannot be silently ignored.
"""

from __future__ import annotations

import math
import re

from docker.types import Mount, Ulimit

from veo.core.errors import SpecError, SpecProblem
from veo.core.models import Port, Service
from veo.core.names import (LABEL_CLUSTER, LABEL_GENERATION, LABEL_GROUP,
                            LABEL_GROUP_ROLE, LABEL_INSTANCE, LABEL_MANAGED, LABEL_NODE,
                            LABEL_SERVICE, LABEL_SPEC_HASH, container_name)

# Fields create_kwargs/container_labels read.
MAPPED_FIELDS = frozenset(
    {
        "name", "image", "command", "entrypoint", "environment", "labels", "ports", "volumes",
        "ulimits", "dns", "privileged", "cap_add", "cap_drop", "devices", "network_mode",
        "pid_mode", "user", "working_dir", "auto_remove", "stop_grace_period", "cpus", "memory",
        "group", "group_role", "healthcheck",
    }
)  # fmt: skip

NOT_DOCKER_FIELDS: dict[str, str] = {
    "restart": "veo's supervisor restarts containers; a Docker restart policy would fight it",
    "restart_on_success": "supervision: whether an exit code 0 is restarted",
    "restart_count": "supervision: restart budget of one instance",
    "instances": "placement: how many containers to place",
    "disk": (
        "placement only: Docker's storage_opt size needs overlay2 on xfs with project quotas, "
        "which veo cannot assume, so disk is a reservation against the node's capacity"
    ),
    "roles": "placement: which nodes may run the service",
    "hosts": "placement: which nodes may run the service",
    "group_policy": "supervision: what a failure in the group does to the other members",
    "on_unhealthy": "supervision: veo acts on Docker's health status, Docker itself does not",
    "schedule": "the Scheduler's task calendar decides when a run is placed",
    "time_zone": "the task calendar's zone",
    "overlap": "the Scheduler decides whether a tick starts while a run is active",
    "starting_deadline": "the task calendar skips ticks that could not start in time",
    "history": "the Scheduler removes finished runs beyond it",
    "timeout": "the Scheduler stops a run that takes longer (Docker has no run deadline)",
    "discovery": "the agent adds dns/dns_search for the node's veo DNS (veo.core.discovery.container_dns)",
}

# Docker's own minimum (the engine refuses less with 'Minimum memory limit allowed is 6MB').
MIN_MEMORY = 6 * 1024 * 1024

ULIMIT_NAMES = frozenset(
    {
        "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
        "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
    }
)  # fmt: skip

# Docker's container name rule; a cluster name also may not hold '_' (the name separator).
def container_labels(
    cluster: str, svc: Service, instance: int, generation: int, node: str
) -> dict[str, str]:
    """The user's labels plus veo's own (the user cannot set ``veo.*``; the model refuses it)."""
    return {
        **svc.labels,
        LABEL_MANAGED: "true",
        LABEL_CLUSTER: cluster,
        LABEL_SERVICE: svc.name,
        LABEL_INSTANCE: str(instance),
        LABEL_GROUP: svc.group or "",
        LABEL_GROUP_ROLE: svc.group_role.value if svc.group_role else "",
        LABEL_NODE: node,
        LABEL_SPEC_HASH: svc.spec_hash(),
        LABEL_GENERATION: str(generation),
    }


# --------------------------------------------------------------------------------------------------
# Create arguments
# --------------------------------------------------------------------------------------------------


def create_kwargs(
    svc: Service, *, cluster: str, instance: int, generation: int, node: str
) -> dict:
    """Keyword arguments for docker-py's ``client.containers.create(**kwargs)``, plus
    ``stop_timeout`` (which only docker-py's low-level API takes; ``DockerRuntime.create`` handles
    it). Keys are present only when the service sets them, so Docker's defaults apply otherwise.

    Raises ``SpecError`` with every problem found when a value cannot be mapped.
    """
    problems: list[SpecProblem] = []
    kw: dict = {
        "image": svc.image,
        "name": container_name(cluster, svc.name, instance, generation),
        "labels": container_labels(cluster, svc, instance, generation, node),
        "detach": True,
        "stop_timeout": math.ceil(svc.stop_grace_period),
    }
    kw.update(_process(svc))
    kw.update(_security(svc))
    kw.update(_network(svc, problems))
    kw.update(_resources(svc, problems))
    kw.update(_mounts(svc, problems))
    if svc.healthcheck is not None:
        kw["healthcheck"] = _healthcheck(svc)
    if problems:
        raise SpecError(problems)
    return kw


def _process(svc: Service) -> dict:
    kw: dict = {}
    if svc.command is not None:
        kw["command"] = list(svc.command)
    if svc.entrypoint is not None:
        kw["entrypoint"] = list(svc.entrypoint)
    if svc.environment:
        kw["environment"] = dict(svc.environment)
    if svc.working_dir is not None:
        kw["working_dir"] = svc.working_dir
    if svc.user is not None:
        kw["user"] = svc.user
    if svc.auto_remove:
        kw["auto_remove"] = True
    return kw


def _security(svc: Service) -> dict:
    kw: dict = {}
    if svc.privileged:
        kw["privileged"] = True
    for key in ("cap_add", "cap_drop", "devices"):
        if getattr(svc, key):
            kw[key] = list(getattr(svc, key))
    return kw


def _network(svc: Service, problems: list[SpecProblem]) -> dict:
    kw: dict = {}
    mode = svc.network_mode
    if mode is not None:
        if mode in ("none", "host", "bridge") or _container_ref(mode):
            kw["network_mode"] = mode
        else:
            problems.append(
                SpecProblem(
                    f"expected none, host, bridge or container:<name>, got {mode!r} "
                    "(veo does not create networks, and service:<name> cannot work when the "
                    "services land on different nodes)",
                    path="network_mode",
                )
            )
    if svc.pid_mode is not None:
        if svc.pid_mode == "host" or _container_ref(svc.pid_mode):
            kw["pid_mode"] = svc.pid_mode
        else:
            problems.append(
                SpecProblem(f"expected host or container:<name>, got {svc.pid_mode!r}", "pid_mode")
            )
    if svc.dns:
        kw["dns"] = list(svc.dns)
    if svc.ports and mode == "host":
        # the container's ports are the node's: Docker publishes nothing, discovery serves them
        for p in svc.ports:
            if p.published is not None and p.published != p.target:
                problems.append(SpecProblem(
                    f"on the host network the container's port is the node's: {p.published}:"
                    f"{p.target} cannot be remapped; give {p.target}", path="ports"))
    elif svc.ports:
        if mode == "none" or (mode and _container_ref(mode)):
            problems.append(SpecProblem(_ports_need_network(mode), path="ports"))
        else:
            kw["ports"] = _ports(svc.ports)
    return kw


def _container_ref(mode: str) -> bool:
    return mode.startswith("container:") and len(mode) > len("container:")


def _ports_need_network(mode: str) -> str:
    if mode == "host":
        return (
            "published ports need a network; with network_mode 'host' the container uses "
            "the host's ports directly, so drop ports"
        )
    if mode == "none":
        return "published ports need a network; network_mode 'none' has none"
    return (
        f"published ports need a network of their own; with network_mode {mode!r} "
        "publish them on that container"
    )


def _ports(ports: list[Port]) -> dict:
    """docker-py's ports form; several bindings of one container port become a list."""
    out: dict[str, list] = {}
    for p in ports:
        binding = (p.host_ip, p.published) if p.host_ip else p.published
        out.setdefault(f"{p.target}/{p.protocol}", []).append(binding)
    return {key: vals[0] if len(vals) == 1 else vals for key, vals in out.items()}


def _resources(svc: Service, problems: list[SpecProblem]) -> dict:
    kw: dict = {}
    if svc.cpus:
        kw["nano_cpus"] = int(round(svc.cpus * 1e9))
    if svc.memory:
        if svc.memory < MIN_MEMORY:
            problems.append(
                SpecProblem(f"Docker needs at least 6m, got {svc.memory} bytes", path="memory")
            )
        else:
            kw["mem_limit"] = svc.memory
    ulimits = []
    for name, lim in svc.ulimits.items():
        if name not in ULIMIT_NAMES:
            problems.append(
                SpecProblem(
                    f"unknown ulimit {name!r}; expected one of {', '.join(sorted(ULIMIT_NAMES))}",
                    path=f"ulimits.{name}",
                )
            )
        else:
            ulimits.append(Ulimit(name=name, soft=lim.soft, hard=lim.hard))
    if ulimits:
        kw["ulimits"] = ulimits
    return kw


def _mounts(svc: Service, problems: list[SpecProblem]) -> dict:
    mounts = []
    for i, vol in enumerate(svc.volumes):
        if vol.type == "bind" and not (vol.source or "").startswith("/"):
            # the container runs on some node whose working directory and home veo cannot know
            problems.append(
                SpecProblem(
                    f"a bind mount needs an absolute path on the node, got {vol.source!r}",
                    path=f"volumes.{i}.source",
                )
            )
            continue
        mounts.append(Mount(vol.target, vol.source, type=vol.type, read_only=vol.read_only))
    return {"mounts": mounts} if mounts else {}


def _healthcheck(svc: Service) -> dict:
    hc = svc.healthcheck
    assert hc is not None
    if hc.test[0] == "NONE":
        return {"test": ["NONE"]}
    return {
        "test": list(hc.test),
        "interval": _ns(hc.interval),
        "timeout": _ns(hc.timeout),
        "retries": hc.retries,
        "start_period": _ns(hc.start_period),
    }


def _ns(seconds: float) -> int:
    """Docker's durations are nanoseconds."""
    return int(round(seconds * 1e9))
