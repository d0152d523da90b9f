"""Service -> Docker: container names, labels and the arguments of a container create.

Pure: no client, no I/O. Every field of ``Service`` is either mapped here (``MAPPED_FIELDS``), or
used only by placement and supervision (``NOT_DOCKER_FIELDS``, with the reason), and a value that
cannot be mapped faithfully is refused with a ``SpecError`` naming the field rather than dropped.
A unit test keeps the two lists and the model in step, so a new field cannot be silently ignored.
"""

from __future__ import annotations

import math
import re

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
        # compose keys Docker does itself
        "reserve_memory", "memswap_limit", "cpu_shares", "pids_limit", "shm_size", "init",
        "tmpfs", "read_only", "stop_signal", "sysctls", "extra_hosts", "hostname", "domainname",
        "security_opt", "group_add", "logging",
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
    "update": "rolling updates: how a changed spec replaces running instances",
    "on_unhealthy": "supervision: veo acts on Docker's health status, Docker itself does not",
    "reserve_cpus": "placement: CPUs reserved on the node, with no limit (Docker has no CPU "
                    "reservation, only shares)",
    "expose": (
        "documentation: containers on one network reach each other's every port; Docker's "
        "ExposedPorts only matter to 'docker run -P', which veo does not do"
    ),
    "networks": (
        "created on the node's engine by veo.adapters.prepare, which adds the network and its "
        "aliases to the create arguments"
    ),
    "depends_on": "start order: the Scheduler holds a dependent back (veo.core.depends)",
    "secrets": "written to a node-local file by veo.adapters.prepare, which adds the mount",
    "configs": "written to a node-local file by veo.adapters.prepare, which adds the mount",
    "volume_defs": "created on the node's engine by veo.adapters.prepare before the container",
    "pull_policy": "the node's agent makes the image present before create (adapters.images)",
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
    kw.update(_network(svc, problems, cluster, instance, generation))
    kw.update(_resources(svc, problems))
    kw.update(_mounts(svc, problems))
    kw.update(_compose_extras(svc))
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


def _network(svc: Service, problems: list[SpecProblem], cluster: str = "", instance: int = 0,
             generation: int = 0) -> dict:
    kw: dict = {}
    mode = svc.network_mode
    if mode is not None and mode.startswith("service:") and svc.group:
        # the loader allows service:NAME only within a group, whose members share a node and an
        # instance index and generation: the peer's container name is known
        peer = mode.split(":", 1)[1]
        kw["network_mode"] = f"container:{container_name(cluster, peer, instance, generation)}"
    elif mode is not None:
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
        if mode == "none" or (mode and (_container_ref(mode) or mode.startswith("service:"))):
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
        published = p.published if p.published_end is None else f"{p.published}-{p.published_end}"
        binding = (p.host_ip, published) if p.host_ip else published
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
            ulimits.append({"Name": name, "Soft": lim.soft, "Hard": lim.hard})  # docker.types.Ulimit's shape
    if ulimits:
        kw["ulimits"] = ulimits
    return kw


def _mounts(svc: Service, problems: list[SpecProblem]) -> dict:
    mounts, binds = [], []
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
        if vol.type == "bind" and vol.selinux:
            # SELinux relabelling exists only in Docker's 'Binds' form, not in its Mount API
            opts = ",".join(filter(None, ("ro" if vol.read_only else "rw", vol.selinux,
                                          vol.propagation)))
            binds.append(f"{vol.source}:{vol.target}:{opts}")
            continue
        mounts.append(_mount(vol))
    kw: dict = {"mounts": mounts} if mounts else {}
    if binds:
        kw["volumes"] = binds
    return kw


def _mount(vol) -> dict:
    """Docker's Mount object (the shape docker.types.Mount builds), as plain data: this module
    stays free of the docker package."""
    mount: dict = {"Target": vol.target, "Source": vol.source, "Type": vol.type,
                   "ReadOnly": vol.read_only}
    if vol.type == "image":  # docker-py predates image mounts (API 1.47)
        mount["ReadOnly"] = True
        if vol.subpath:
            mount["ImageOptions"] = {"Subpath": vol.subpath}
    elif vol.type == "tmpfs":
        mount["Source"] = None
        opts = {k: v for k, v in (("Mode", vol.tmpfs_mode), ("SizeBytes", vol.tmpfs_size)) if v}
        if opts:
            mount["TmpfsOptions"] = opts
    elif vol.type == "bind":
        if vol.propagation is not None:
            mount["BindOptions"] = {"Propagation": vol.propagation}
    else:
        opts = {k: v for k, v in (("NoCopy", True if vol.nocopy else None),
                                  ("Subpath", vol.subpath)) if v}
        if opts:
            mount["VolumeOptions"] = opts
    return mount


def _compose_extras(svc: Service) -> dict:
    """The compose keys Docker takes as they are."""
    kw: dict = {}
    for field in ("memswap_limit", "cpu_shares", "pids_limit", "shm_size", "init", "stop_signal",
                  "hostname", "domainname"):
        if getattr(svc, field) is not None:
            kw[field] = getattr(svc, field)
    if svc.reserve_memory is not None:
        kw["mem_reservation"] = svc.reserve_memory
    if svc.read_only:
        kw["read_only"] = True
    for field in ("security_opt", "group_add", "extra_hosts"):
        if getattr(svc, field):
            kw[field] = list(getattr(svc, field))
    if svc.sysctls:
        kw["sysctls"] = dict(svc.sysctls)
    if svc.tmpfs:
        # '/run:size=64m,mode=1777' -> {'/run': 'size=64m,mode=1777'}
        kw["tmpfs"] = dict(t.partition(":")[::2] for t in svc.tmpfs)
    if svc.logging is not None and (svc.logging.driver or svc.logging.options):
        # docker.types.LogConfig's shape
        kw["log_config"] = {"Type": svc.logging.driver or "json-file",
                            "Config": dict(svc.logging.options)}
    return kw


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
