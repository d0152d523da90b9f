"""Private Docker engines for the test session (used by the fixtures in conftest.py).

Every engine is a real dockerd started by ``veo.adapters.dockerd.ensure_engine`` under one short state dir
made for this session, with veo's local images built in it; the pool stops exactly the engines it
started (by their recorded PIDs) when the session ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from veo.adapters.dockerd import EngineHandle, ensure_engine, stop_engine
from veo.adapters.images import ensure_images
from veo.adapters.docker_api import DockerRuntime
from veo.core.names import LABEL_CLUSTER

MAKE_TEST_HINT = (
    "run the suite with `make test` as root: it installs docker.io and busybox-static and runs "
    "pytest inside a loopback-only network namespace"
)


def require_engine_prerequisites() -> None:
    """Fail (not skip) a docker test on a machine that cannot start engines: a silent skip would
    hide that the Docker layer was never tested."""
    if os.geteuid() != 0:
        pytest.fail(f"docker tests start private dockerd engines and need root; {MAKE_TEST_HINT}",
                    pytrace=False)  # fmt: skip
    if shutil.which("dockerd") is None:
        pytest.fail(f"dockerd is not installed; {MAKE_TEST_HINT}", pytrace=False)


class EnginePool:
    """Engines by name, started on first use and shared by the whole session."""

    def __init__(self) -> None:
        # short, because the engines' unix sockets live under it (about 107 bytes at most)
        self.state_dir = Path(tempfile.mkdtemp(prefix="veo-t", dir="/tmp"))
        self._engines: dict[str, EngineHandle] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> EngineHandle:
        with self._lock:
            if name not in self._engines:
                require_engine_prerequisites()
                # dies with this pytest process even when it is killed before its teardown
                handle = ensure_engine(name, state_dir=self.state_dir, use_existing=False,
                                       die_with_parent=True)
                self._engines[name] = handle  # recorded before the images, so close() stops it
                runtime = DockerRuntime(handle.docker_host)
                try:
                    ensure_images(runtime)
                finally:
                    runtime.close()
            return self._engines[name]

    def started(self) -> list[EngineHandle]:
        with self._lock:
            return list(self._engines.values())

    def remove_cluster(self, cluster: str) -> None:
        """Remove every container labelled with ``cluster`` on the engines started so far."""
        for handle in self.started():
            runtime = DockerRuntime(handle.docker_host, timeout=30)
            try:
                for c in runtime.list(labels={LABEL_CLUSTER: cluster}):
                    runtime.remove(c.id, force=True)
            finally:
                runtime.close()

    def close(self) -> None:
        with self._lock:
            names, self._engines = list(self._engines), {}
        for name in names:
            stop_engine(name, state_dir=self.state_dir)
        shutil.rmtree(self.state_dir, ignore_errors=True)
