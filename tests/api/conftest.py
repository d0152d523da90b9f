"""Fast API tests: the app with a fake cluster injected through FastAPI's dependency override
(no Ray, no Docker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_cluster import FakeCluster
from fastapi.testclient import TestClient

from veo.api import create_app, get_client
from veo.api.deps import ApiSettings
from veo.core.errors import NotConnected

BASE = "http://127.0.0.1:8086"
WS = "ws://127.0.0.1:8086/ws"


def _no_cluster():
    raise NotConnected("tests inject a fake cluster; the real one must not be reached")


def make_app(fake: FakeCluster, **kw):
    settings = kw.pop("settings", None) or ApiSettings(poll=0.2, ping_interval=kw.pop("ping", 20.0))
    app = create_app(_no_cluster, settings=settings, **kw)
    app.dependency_overrides[get_client] = lambda: fake
    return app


@pytest.fixture
def fake() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def app(fake):
    return make_app(fake)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE) as c:
        yield c


def service(name: str, **kw) -> dict:
    return {"name": name, "image": "veo/busybox", "network_mode": "none", **kw}
