"""The cluster policy: which host-level powers services may ask for.

Docker access is root on the host, so a service that runs ``privileged``, shares the host's PID or
network namespace, adds capabilities, maps devices or bind-mounts host paths (the Docker socket
above all) can take the host over. Each power is refused unless ``policy:`` in cluster.yml switches
it on, and every front door (the loader behind ``veo validate``, the REST API, the Scheduler behind
the Python API) applies the same rule through ``violations`` / ``check`` / ``enforce``.

Pure. The ``Policy`` switches themselves are a model (``veo.core.models``, re-exported here); this
module holds only the rule that reads them, so the import points one way.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping

from veo.core.errors import PolicyError, SpecProblem
from veo.core.models import Policy, Service


# A bind of one of these hands the container the Docker (or containerd) socket: full root.
_SOCKET_NAMES = ("docker.sock", "containerd.sock")
_SOCKET_PARENTS = frozenset({"/", "/var", "/var/run", "/run", "/run/containerd", "/var/run/docker",
                             "/run/docker", "/var/run/containerd"})

# options that only tighten confinement
_HARMLESS_OPTS = frozenset({"no-new-privileges", "no-new-privileges:true"})

Violation = tuple[tuple[str, ...], str]  # (field path inside the service, message)


def _refused(switch: str, what: str = "") -> str:
    lead = f"{what}: " if what else ""
    return f"{lead}refused by the cluster policy (set policy.{switch}: true to allow it)"


def exposes_docker_socket(source: str) -> bool:
    """Whether binding host path ``source`` gives the container an engine socket."""
    path = posixpath.normpath(source) if source.startswith("/") else source
    return posixpath.basename(path) in _SOCKET_NAMES or path in _SOCKET_PARENTS


def violations(service: Service, policy: Policy) -> list[Violation]:
    """What ``service`` asks for that ``policy`` refuses, as (field path, message) pairs."""
    out: list[Violation] = []
    if service.privileged and not policy.allow_privileged:
        out.append((("privileged",), _refused("allow_privileged")))
    if service.pid_mode == "host" and not policy.allow_host_pid:
        out.append((("pid_mode",), _refused("allow_host_pid", "the host's PID namespace")))
    if service.network_mode == "host" and not policy.allow_host_network:
        out.append((("network_mode",), _refused("allow_host_network", "the host's network")))
    if service.cap_add and not policy.allow_cap_add:
        caps = ", ".join(service.cap_add)
        out.append((("cap_add",), _refused("allow_cap_add", f"added capabilities ({caps})")))
    if service.devices and not policy.allow_devices:
        devs = ", ".join(service.devices)
        out.append((("devices",), _refused("allow_devices", f"host devices ({devs})")))
    lifted = [o for o in service.security_opt if o.replace("=", ":") not in _HARMLESS_OPTS]
    if lifted and not policy.allow_security_opt:
        out.append((("security_opt",), _refused("allow_security_opt",
                                                 f"security options ({', '.join(lifted)})")))
    for i, vol in enumerate(service.volumes):
        if vol.type != "bind" or vol.source is None:
            continue
        if exposes_docker_socket(vol.source):
            if not policy.allow_docker_socket:
                what = f"bind mount of {vol.source} exposes the Docker socket (root on the host)"
                out.append((("volumes", str(i)), _refused("allow_docker_socket", what)))
        elif not policy.allow_host_mounts:
            what = f"bind mount of host path {vol.source}"
            out.append((("volumes", str(i)), _refused("allow_host_mounts", what)))
    return out


def check(service: Service, policy: Policy) -> list[SpecProblem]:
    """Every violation of ``service``, each naming its field (``services.NAME.FIELD``) and its
    switch."""
    return [SpecProblem(message, ".".join(("services", service.name, *path)))
            for path, message in violations(service, policy)]


def enforce(services: Iterable[Service] | Mapping[str, Service], policy: Policy) -> None:
    """Raise ``PolicyError`` (403) listing every violation of every service, or return."""
    items = services.values() if isinstance(services, Mapping) else services
    problems = [p for svc in items for p in check(svc, policy)]
    if problems:
        error = PolicyError("\n".join(str(p) for p in problems))
        error.problems = problems  # kept for front doors that show them one by one
        raise error
