"""The state-store tests: one table of behaviours run against every implementation."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from bench.redis_server import RedisServer

from veo.adapters.store import MemoryStore, SqliteStore, Store
from veo.adapters.store_redis import RedisStore

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def reopen(kind, tmp_path, request):
    """A function returning a store over the same data each call (a 'restart')."""
    opened: list[Store] = []
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        url = f"{server.url}?prefix=t{next(_prefixes)}:"  # each test its own key space
    memory = MemoryStore()

    def make() -> Store:
        store = {"memory": lambda: memory, "sqlite": lambda: SqliteStore(tmp_path / "state.db"),
                 "redis": lambda: RedisStore(url)}[kind]()
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(reopen) -> Store:
    return reopen()
