"""The connection to one Docker engine and the one place engine failures become veo errors.

``EngineConnection`` is the base of ``DockerRuntime`` (``veo.adapters.docker_api``): it owns the
docker-py client (created on first use, behind a lock) and ``_errors``, through which every engine
call passes, so each failure leaves as ``EngineError`` / ``EngineUnavailable`` naming the engine
and the container, never as a docker-py traceback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import requests.exceptions

from veo.adapters.docker_parse import EngineInfo, _explain, _unreachable
from veo.core.errors import EngineError, EngineUnavailable
from veo.core.names import docker_host_from


def default_docker_host() -> str:
    return docker_host_from()


class EngineConnection:
    """One engine's client and error translation. Thread-safe; the client is created on first use."""

    def __init__(
        self, base_url: str | None = None, *, timeout: float = 30.0, client: Any = None
    ):
        self.base_url = base_url or (client.api.base_url if client else default_docker_host())
        self.timeout = timeout
        self._client = client
        self._lock = threading.Lock()
        self._has_bridge: bool | None = None

    def __repr__(self) -> str:
        return f"DockerRuntime({self.base_url!r})"

    @property
    def host(self) -> str:
        """How messages name this engine: the URL it was given (docker-py's own base_url says
        http+docker://localhost for every unix socket)."""
        return self.base_url

    def _docker(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                with self._errors("connect"):
                    self._client = docker.DockerClient(
                        base_url=self.base_url, timeout=self.timeout
                    )
            return self._client

    @contextlib.contextmanager
    def _errors(self, action: str, container: str | None = None) -> Iterator[None]:
        what = f"{action} {container!r}" if container else action
        where = f"engine {self.host}"
        try:
            yield
        except docker.errors.APIError as e:
            raise EngineError(f"{where}: {what}: {_explain(e)}") from None
        except requests.exceptions.Timeout:
            raise EngineUnavailable(f"{where} did not answer within {self.timeout:g}s ({what})") from None
        except (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError) as e:
            raise EngineUnavailable(f"{where} is not answering ({what}): {_unreachable(e)}") from None
        except docker.errors.DockerException as e:
            if "Error while fetching server API version" in str(e):  # raised by the first call
                raise EngineUnavailable(f"{where} is not answering: {_unreachable(e)}") from None
            raise EngineError(f"{where}: {what}: {e}") from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None

    # ---- the engine ------------------------------------------------------------------------------

    def ping(self) -> bool:
        try:
            return bool(self._docker().ping())
        except Exception:
            return False

    def info(self) -> EngineInfo:
        api = self._docker().api
        with self._errors("info"):
            info, version = api.info(), api.version()
        root = info.get("DockerRootDir") or ""
        disk = 0
        if self.base_url.startswith("unix://") and root and os.path.isdir(root):
            disk = shutil.disk_usage(root).total
        return EngineInfo(
            cpus=int(info.get("NCPU") or 0),
            memory=int(info.get("MemTotal") or 0),
            disk=disk,
            docker_root_dir=root,
            server_version=version.get("Version") or info.get("ServerVersion") or "",
            name=info.get("Name") or "",
        )

    def has_bridge(self) -> bool:
        """Whether the engine has Docker's default bridge network (cached: it is a dockerd flag)."""
        if self._has_bridge is None:
            with self._errors("list networks"):
                nets = self._docker().api.networks(names=["bridge"])
            self._has_bridge = any(n.get("Name") == "bridge" for n in nets)
        return self._has_bridge
