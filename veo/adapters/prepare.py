"""What an engine needs before a compose service's container can be created there: the project
networks it joins and the declared named volumes it mounts. Called by the node agent just before
each create (one hook in ``actors/node_agent.py``), and by ``release`` at ``veo down``.

* Networks are created on the node's engine on first use, named as compose names them
  (``<project>_<key>``, or ``name:``), labelled ``veo.managed``/``veo.cluster``/``veo.network``;
  an ``external: true`` network must already exist. The container joins its first network at
  create with its aliases (the service name, plus ``aliases:``), so Docker's embedded DNS resolves
  the service name to every copy on that network; further networks are connected before start.
* Declared volumes are created with their ``driver``/``driver_opts``/``labels`` when missing; an
  ``external: true`` volume must exist. Volumes are kept at ``veo down``, as compose keeps them.

A per-engine lock makes two units that need the same network create it once.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from veo.adapters.docker_api import DockerRuntime
from veo.core.models import Service
from veo.core.names import LABEL_CLUSTER, LABEL_MANAGED, LABEL_NETWORK

_LOCKS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


def prepare(runtime: DockerRuntime, service: Service, cluster: str, instance: int,
            node: str) -> dict:
    """Make the service's networks and volumes exist on ``runtime``; return the create
    arguments that attach the container to them (merged into ``translate.create_kwargs``)."""
    with _LOCKS[runtime.host]:
        for name, definition in service.volume_defs.items():
            runtime.ensure_volume(name, {**definition.labels, LABEL_MANAGED: "true",
                                         LABEL_CLUSTER: cluster},
                                  driver=definition.driver, options=definition.driver_opts,
                                  external=definition.external)
        return _networks(runtime, service, cluster)


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


def release(runtime: DockerRuntime, cluster: str) -> list[str]:
    """Remove the networks veo made for ``cluster`` on this engine that no container uses any
    more (``veo down``); their names."""
    with _LOCKS[runtime.host]:
        return runtime.remove_networks({LABEL_MANAGED: "true", LABEL_CLUSTER: cluster})
