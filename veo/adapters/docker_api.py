"""The only code that talks to a Docker engine: ``DockerRuntime`` and the ``docker_*`` parts it
is assembled from.

``DockerRuntime`` wraps one engine with thin, synchronous methods (the actors call them from worker
threads). Every Docker failure leaves here as ``EngineError`` / ``ImageNotFound`` with a message
that names the engine and the container, so no user ever sees a docker-py traceback. Turning
Docker's JSON into ``ContainerState`` and stats numbers is done by pure functions.

Decisions:

* No implicit pulls. ``create`` of a missing image raises ``ImageNotFound`` at once; pulls are
  explicit (``pull``, called by ``veo.adapters.images.ensure_image`` per the service's
  pull_policy), so a missing image and an unreachable registry are told apart.
* A container without ``network_mode`` on an engine that has no bridge network (``dockerd
  --bridge=none``, as veo's private engines) is created with ``network_mode: none``. Docker would
  call it "default" and give it only loopback anyway; saying so makes ``inspect`` tell the truth.
  Published ports on such an engine are refused, since Docker would silently drop them. A
  container on a user network (``network``, a compose project's) keeps it: user networks, their
  DNS and their published ports work without the default bridge.

The class is assembled from parts that change for different reasons, as docker-py's APIClient
is from its mixins: ``docker_conn`` (the client and error translation), ``docker_observe``
(inspect, list, events, logs, stats, exec), ``docker_containers`` (create and the other verbs,
networks, volumes) and, here, images. Pure parsing lives in ``docker_parse``. Callers import
everything from this module.
"""

from __future__ import annotations

import re

import docker
import docker.errors

from veo.adapters.docker_containers import ContainerOps, api_create_args
from veo.adapters.docker_conn import EngineConnection, default_docker_host
from veo.adapters.docker_observe import EngineStream, ObserveOps
from veo.adapters.docker_parse import (
    ContainerState,
    EngineInfo,
    _explain,
    _split_ref,
    _stamp,
    _text,
    _unreachable,
    compute_stats,
    parse_inspect,
    parse_list_entry,
    parse_state,
    pull_error,
)
from veo.core.errors import EngineError

__all__ = [
    "ContainerOps", "ContainerState", "DockerRuntime", "EngineConnection", "EngineInfo",
    "EngineStream", "ObserveOps", "api_create_args", "compute_stats", "default_docker_host",
    "parse_inspect", "parse_list_entry", "parse_state", "pull_error",
    # private helpers the unit tests reach for
    "_explain", "_split_ref", "_stamp", "_text", "_unreachable",
]


class DockerRuntime(ContainerOps):
    """One Docker engine. Thread-safe for concurrent calls; the client is created on first use."""


    def image_labels(self, ref: str) -> dict[str, str] | None:
        """The image's labels, or None when the engine does not have it."""
        with self._errors("inspect image", ref):
            try:
                data = self._docker().api.inspect_image(ref)
            except docker.errors.NotFound:
                return None
        return dict((data.get("Config") or {}).get("Labels") or {})

    def image_exists(self, ref: str) -> bool:
        return self.image_labels(ref) is not None

    def pull(self, ref: str, registry: str) -> None:
        """Pull ``ref`` through the engine with this process's Docker credentials (docker-py
        reads ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``, as ``docker pull``
        does). ``registry`` only names the registry in messages. Raises ImageNotFound (no such
        image, denied) or RegistryUnavailable (the registry did not answer)."""
        repo, tag = docker.utils.parse_repository_tag(ref)
        with self._errors("pull image", ref):
            try:
                for item in self._docker().api.pull(repo, tag or "latest", stream=True,
                                                    decode=True):
                    if isinstance(item, dict) and item.get("error"):  # failed mid-stream
                        raise pull_error(ref, registry, self.host, 0, str(item["error"]))
            except docker.errors.APIError as e:
                raise pull_error(ref, registry, self.host, e.status_code or 0,
                                 _explain(e)) from None

    def import_image(self, tar: bytes, ref: str, changes: list[str] | None = None) -> str:
        """``docker import`` of a rootfs tar held in memory; returns the image id."""
        repo, tag = _split_ref(ref)
        with self._errors("import image", ref):
            out = self._docker().api.import_image_from_data(
                tar, repository=repo, tag=tag, changes=changes or []
            )
        match = re.search(r"sha256:[0-9a-f]{64}", _text(out) if out else "")
        if not match:
            raise EngineError(f"engine {self.host}: import {ref!r}: unexpected answer {out!r}")
        return match.group(0)
