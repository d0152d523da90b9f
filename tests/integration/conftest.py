from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from ray_world import RayWorld

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
