"""Shared fixtures. Docker engines come from tests/engines.py: real private dockerds, started
lazily by name and stopped at the end of the session."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest
from engines import EnginePool
from live_server import LiveServer
from ray_world import RayWorld
from registry import Registry

from veo.adapters.dockerd import EngineHandle
from veo.adapters.docker_api import DockerRuntime

DOCKER_TEST_TIMEOUT = 120  # seconds; a hung engine call must fail the test, not the CI job


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # the fault matrix runs last: it restarts engines and kills nodes of the shared world
    items.sort(key=lambda item: "tests/chaos/" in str(item.fspath).replace("\\", "/"))
    for item in items:
        if item.get_closest_marker("docker") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(DOCKER_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def engine_pool() -> Iterator[EnginePool]:
    pool = EnginePool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def engine(engine_pool: EnginePool) -> EngineHandle:
    return engine_pool.get("t1")


@pytest.fixture(scope="session")
def runtime(engine: EngineHandle) -> Iterator[DockerRuntime]:
    rt = DockerRuntime(engine.docker_host)
    yield rt
    rt.close()


@pytest.fixture
def veo_cluster(engine_pool: EnginePool) -> Iterator[str]:
    """A cluster name unique to this test; its containers are removed afterwards on every engine
    of the pool."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    engine_pool.remove_cluster(name)


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """A real registry (Debian's docker-registry) on 127.0.0.1, stopped by PID at the end."""
    reg = Registry()
    try:
        yield reg
    finally:
        reg.close()


# ---- the Ray world: a real multi-node Ray cluster shared by integration and chaos tests ----

_ids = itertools.count()



@pytest.fixture(scope="session")
def world(engine_pool, tmp_path_factory) -> Iterator[RayWorld]:
    w = RayWorld(engine_pool, tmp_path_factory.mktemp("veo-state"))
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def names(world) -> Iterator[callable]:
    """Unique service names for one test; every service so named is removed afterwards."""
    made: list[str] = []

    def make(base: str) -> str:
        name = f"{base}{next(_ids)}"
        made.append(name)
        return name

    yield make
    world.remove(*made)


@pytest.fixture(scope="module")
def live(world) -> Iterator[LiveServer]:
    server = LiveServer(world.client)
    try:
        yield server
    finally:
        server.close()
