"""``/api/containers`` from a kept copy (veo.api.listing), the control loop's figures on /metrics
and /api/cluster/loop, and ``RemoteCluster.loop_stats``: the app over a fake with a change counter
like the Scheduler's (a long poll on a condition variable)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import BASE, make_app
from fake_cluster import FakeCluster
from fastapi.testclient import TestClient

from veo.api.listing import Listing, encode
from veo.api.schemas import ContainerView
from veo.remote import RemoteCluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from live_server import LiveServer  # noqa: E402

TOKEN = "listing-test-token-0123456789"


class CountedFake(FakeCluster):
    """A fake whose list calls are counted, with the Scheduler's change counter: every change
    the tests make goes through ``change``."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lists = 0
        self.version = 1
        self.slow = 0.0
        self._vcond = threading.Condition()

    def containers(self, service=None):
        self.lists += 1
        time.sleep(self.slow)
        return super().containers(service)

    def change(self, fn=lambda: None) -> None:
        fn()
        with self._vcond:
            self.version += 1
            self._vcond.notify_all()

    def containers_version(self, since=None, wait=0.0):
        with self._vcond:
            if since == self.version and wait > 0:
                self._vcond.wait_for(lambda: since != self.version, wait)
            return self.version


def _web(fake, n=3):
    fake.change(lambda: fake.add_service({"name": "web", "image": "veo/busybox",
                                          "network_mode": "none", "instances": n}))


def _caught_up(app, fake, timeout=10.0):
    listing = app.state.veo.listing
    deadline = time.monotonic() + timeout
    while listing.version != fake.version:
        assert time.monotonic() < deadline, "the server never heard of the change"
        time.sleep(0.01)


@pytest.fixture
def counted():
    fake = CountedFake()
    _web(fake)
    app = make_app(fake)
    with TestClient(app, base_url=BASE) as client:
        _caught_up(app, fake)
        yield fake, app, client


def test_repeated_lists_cost_the_scheduler_one_call(counted):
    fake, app, client = counted
    first = client.get("/api/containers").json()
    calls = fake.lists
    for _ in range(20):
        assert client.get("/api/containers").json() == first
    assert fake.lists == calls  # answered from the copy
    listing = app.state.veo.listing
    assert listing.hits >= 20 and listing.fetches == calls


def test_a_change_is_never_served_from_the_old_copy(counted):
    fake, app, client = counted
    assert len(client.get("/api/containers").json()) == 3
    _web(fake, n=5)  # the counter moves with the change
    _caught_up(app, fake)
    assert len(client.get("/api/containers").json()) == 5
    # a change made in place but counted: seen at once too
    fake.change(lambda: setattr(fake._instances["web#0"], "reason", "changed"))
    _caught_up(app, fake)
    rows = {r["key"]: r for r in client.get("/api/containers").json()}
    assert rows["web#0"]["reason"] == "changed"


def test_filters_and_errors_are_not_mixed_up(counted):
    fake, app, client = counted
    assert len(client.get("/api/containers").json()) == 3
    on_dos = client.get("/api/containers", params={"node": "dos"}).json()
    assert [r["node"] for r in on_dos] == ["dos"]
    assert len(client.get("/api/containers", params={"service": "web"}).json()) == 3
    for _ in range(2):  # an unknown service is an error each time, never a kept copy
        r = client.get("/api/containers", params={"service": "nope"})
        assert r.status_code == 404 and r.json()["error"] == "NotFound"


def test_a_copy_lives_at_most_max_age(counted):
    fake, app, client = counted
    app.state.veo.listing.max_age = 0.05  # uptime_seconds is computed when the copy is made
    client.get("/api/containers")
    calls = fake.lists
    time.sleep(0.1)
    client.get("/api/containers")
    assert fake.lists == calls + 1


def test_the_copy_is_what_the_response_model_says(counted):
    fake, app, client = counted
    rows = client.get("/api/containers").json()
    want = [ContainerView.of(i).model_dump(mode="json", by_alias=True)
            for i in fake.containers()]
    for row in rows + want:
        row.pop("uptime_seconds")
    assert rows == want and rows[0]["id"] and rows[0]["key"] == "web#0"


def test_requests_during_one_fetch_share_it():
    fake = CountedFake()
    _web(fake)
    fake.slow = 0.3
    listing = Listing(lambda: fake)
    listing.version = fake.version  # as the watcher would have heard it

    async def many():
        return await asyncio.gather(*(listing.get(fake, None, None) for _ in range(10)))

    bodies = asyncio.run(many())
    assert fake.lists == 1 and len(set(bodies)) == 1 and _same_but_uptime(bodies[0], fake)


def _same_but_uptime(body: bytes, fake) -> bool:
    import json

    strip = lambda rows: [{k: v for k, v in r.items() if k != "uptime_seconds"}  # noqa: E731
                          for r in rows]
    return strip(json.loads(body)) == strip(json.loads(encode(FakeCluster.containers(fake))))


def test_without_a_change_counter_every_request_asks(app, fake):
    calls = []
    original = fake.containers
    fake.containers = lambda service=None: calls.append(service) or original(service)
    with TestClient(app, base_url=BASE) as client:
        for _ in range(3):
            assert client.get("/api/containers").status_code == 200
    assert len(calls) == 3  # the plain fake changes in place: nothing may be kept


def test_control_loop_figures_on_metrics_and_rest(client, fake):
    for seconds in (0.010, 0.020, 0.030, 0.400):
        fake.step_times.append(seconds)
    text = client.get("/metrics").text
    for line in ('veo_control_loop_step_seconds{quantile="0.5"} 0.03',
                 'veo_control_loop_step_seconds{quantile="0.95"} 0.4',
                 'veo_control_loop_step_seconds{quantile="max"} 0.4',
                 "veo_control_loop_steps_total 4.0",
                 'veo_api_container_lists_total{source="copy"}'):
        assert line in text, line
    loop = client.get("/api/cluster/loop").json()
    assert loop == {"count": 4, "p50": 0.03, "p95": 0.4, "max": 0.4, "total": 4}
    fake.step_times.append(0.001)
    assert client.get("/api/cluster/loop", params={"since": 4}).json()["max"] == 0.001
    assert client.get("/api/cluster/loop", params={"since": -1}).status_code == 422


def test_remote_cluster_loop_stats():
    fake = FakeCluster()
    for seconds in (0.002, 0.004, 0.006):
        fake.step_times.append(seconds)
    server = LiveServer(fake, token=TOKEN)
    try:
        remote = RemoteCluster(server.url, TOKEN)
        stats = remote.loop_stats()
        assert stats == {"count": 3, "p50": 0.004, "p95": 0.006, "max": 0.006, "total": 3}
        assert remote.loop_stats(since=2)["count"] == 1
        remote.close()
    finally:
        server.close()
