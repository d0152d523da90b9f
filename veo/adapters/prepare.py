"""What an engine needs before a compose service's container can be created there: the project
networks it joins and the declared named volumes it mounts. Called by the node agent just before
each create (one hook in ``actors/node_agent.py``), and by ``release`` at ``veo down``.

* Networks are created on the node's engine on first use, named as compose names them
  (``<project>_<key>``, or ``name:``), labelled ``veo.managed``/``veo.cluster``/``veo.network``;
  an ``external: true`` network must already exist. The container joins its first network at
  create with its aliases (the service name, plus ``aliases:``), so Docker's embedded DNS resolves
  the service name to every copy on that network; further networks are connected before start.
* ``network_mode: service:db`` (allowed within a group) joins the namespace of the db container
  of the same copy on this engine.
* Declared volumes are created with their ``driver``/``driver_opts``/``labels`` when missing; an
  ``external: true`` volume must exist. Volumes are kept at ``veo down``, as compose keeps them.
* Secrets and configs arrive with the spec; each is written into a directory veo owns on the node
  (``$VEO_SECRETS_DIR``, else ``/run/veo/secrets`` as root: mode 0700, one subdirectory per
  container), as a file of mode ``mode`` (default 0400 for a secret, 0444 for a config) owned by
  ``uid``/``gid`` (default: the service's numeric ``user``, else root), and bind-mounted read-only
  at its target. ``forget`` removes a container's files when the container is removed. The
  content is never logged and never part of an event.

A per-engine lock makes two units that need the same network create it once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import defaultdict
from pathlib import Path

from docker.types import Mount

from veo.adapters.docker_api import DockerRuntime
from veo.core.compose_types import SecretFile
from veo.core.models import Service
from veo.core.names import (LABEL_CLUSTER, LABEL_GENERATION, LABEL_INSTANCE, LABEL_MANAGED,
                            LABEL_NETWORK, LABEL_SERVICE)

_LOCKS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


def prepare(runtime: DockerRuntime, service: Service, cluster: str, kwargs: dict) -> dict:
    """Make the service's networks, volumes and secret files exist for the container that
    ``kwargs`` (``translate.create_kwargs``) creates; return those arguments with what attaches
    the container to them."""
    with _LOCKS[runtime.host]:
        for name, definition in service.volume_defs.items():
            runtime.ensure_volume(name, {**definition.labels, LABEL_MANAGED: "true",
                                         LABEL_CLUSTER: cluster},
                                  driver=definition.driver, options=definition.driver_opts,
                                  external=definition.external)
        out = {**kwargs, **_networks(runtime, service, cluster)}
    if (service.network_mode or "").startswith("service:"):
        out["network_mode"] = _peer_namespace(runtime, service, cluster, kwargs)
    files = [*service.secrets, *service.configs]
    if files:
        out["mounts"] = [*out.get("mounts", []), *_write_files(service, kwargs["name"], files)]
    return out


def _networks(runtime: DockerRuntime, service: Service, cluster: str) -> dict:
    if not service.networks or service.network_mode:
        return {}
    joined: list[tuple[str, list[str]]] = []
    for key, entry in service.networks.items():
        net = entry.network
        name = net.name or f"{cluster}_{key}"
        labels = {**net.labels, LABEL_MANAGED: "true", LABEL_CLUSTER: cluster, LABEL_NETWORK: key}
        runtime.ensure_network(name, labels, driver=net.driver, options=net.driver_opts,
                               internal=net.internal, attachable=net.attachable,
                               ipv6=net.enable_ipv6, external=net.external)
        joined.append((name, [service.name, *entry.aliases]))
    first, aliases = joined[0]
    return {"network": first, "networking_config": {first: {"Aliases": aliases}},
            "extra_networks": dict(joined[1:])}


def _peer_namespace(runtime: DockerRuntime, service: Service, cluster: str, kwargs: dict) -> str:
    """``service:db`` -> the network namespace of this copy's db container on this engine (the
    loader allows it only within a group, whose members share a node and an instance number;
    the newest generation wins). The translated name is kept when db has no container yet, and
    the engine then says so."""
    peer = service.network_mode.split(":", 1)[1]
    instance = kwargs["labels"][LABEL_INSTANCE]
    found = runtime.list(labels={LABEL_MANAGED: "true", LABEL_CLUSTER: cluster,
                                 LABEL_SERVICE: peer, LABEL_INSTANCE: instance})
    if not found:
        return kwargs.get("network_mode", f"container:{peer}")
    newest = max(found, key=lambda c: int(c.labels.get(LABEL_GENERATION, "0")))
    return f"container:{newest.id}"


def release(runtime: DockerRuntime, cluster: str) -> list[str]:
    """Remove the networks veo made for ``cluster`` on this engine that no container uses any
    more (``veo down``); their names."""
    forget_cluster(cluster)
    with _LOCKS[runtime.host]:
        return runtime.remove_networks({LABEL_MANAGED: "true", LABEL_CLUSTER: cluster})


# --------------------------------------------------------------------------------------------------
# secrets and configs
# --------------------------------------------------------------------------------------------------


def secrets_root() -> Path:
    """The node-local directory veo writes secret files into (made 0700 on first use)."""
    configured = os.environ.get("VEO_SECRETS_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/run/veo/secrets")
    return Path(tempfile.gettempdir()) / f"veo-secrets-{os.geteuid()}"


def _write_files(service: Service, container: str, files: list[SecretFile]) -> list[Mount]:
    root = secrets_root()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    here = root / container
    here.mkdir(mode=0o700, exist_ok=True)
    default_owner = service.user.split(":")[0] if service.user else "0"
    mounts = []
    for i, f in enumerate(files):
        path = here / f"{f.kind}-{i}-{f.source}"
        mode = f.mode if f.mode is not None else (0o400 if f.kind == "secret" else 0o444)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f.content.encode())
            os.fchown(fd, _id(f.uid, default_owner), _id(f.gid, "0"))
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        mounts.append(Mount(f.target, str(path), type="bind", read_only=True))
    return mounts


def _id(value: str | None, default: str) -> int:
    text = value if value is not None else default
    return int(text) if text.isdigit() else 0  # a user name means nothing on the host: root


def forget(container: str) -> None:
    """Remove the secret files of ``container`` (called when the container is removed)."""
    shutil.rmtree(secrets_root() / container, ignore_errors=True)


def forget_cluster(cluster: str) -> None:
    """Remove the secret files of every container of ``cluster`` on this node."""
    root = secrets_root()
    if root.is_dir():
        for d in root.glob(f"{cluster}_*"):
            shutil.rmtree(d, ignore_errors=True)
