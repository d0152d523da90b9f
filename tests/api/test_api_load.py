"""Load at the front doors (issue 14), on a live server (uvicorn on loopback, with a token) over the
fake cluster: 500 websocket subscribers keep getting every event while a client that never reads
is dropped with a clear reason, and REST requests at a steady rate get no 5xx. Correctness only;
the figures (rates, latencies) are ``python -m bench.api_load``'s."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from fake_cluster import FakeCluster

from bench.api_load import Readers, flood_and_probe, hammer, stuck_subscriber
from veo.api.deps import ApiSettings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from live_server import LiveServer  # noqa: E402

pytestmark = pytest.mark.timeout(600)
TOKEN = "load-test-token-0123456789"


@pytest.fixture
def live():
    fake = FakeCluster()
    server = LiveServer(fake, token=TOKEN, settings=ApiSettings(poll=0.2, queue_limit=100))
    yield fake, server
    server.close()


def test_a_client_that_never_reads_is_dropped_and_slows_no_one(live):
    fake, server = live
    hub = server.app.state.veo.hub
    readers = Readers(server.ws_url, TOKEN, count=500)
    rounds = 40
    thread = readers.start(expect=rounds)
    assert readers.ready.wait(300) and readers.error is None, readers.error
    stuck = stuck_subscriber(server.ws_url, TOKEN)
    try:
        _wait(lambda: len(hub.sessions) == 501, "501 sessions")
        # 100 events of 2 KB per round reach the stuck client (it follows the whole cluster),
        # one probe per round reaches every reader
        probes = flood_and_probe(fake.emit, rounds=rounds, floods=100, size=2000)
        thread.join(300)
        assert not thread.is_alive() and readers.error is None, readers.error
        assert all(got == probes for got in readers.got)  # every probe, in order, to all 500
        _wait(lambda: hub.dropped == 1, "the stuck client dropped")
        health = server_get(server, "/healthz")
        assert health["dropped_subscribers"] == 1
    finally:
        stuck.close()


def test_the_dropped_client_is_told_why_and_where_to_resume(live):
    fake, server = live
    import json

    from websockets.sync.client import connect

    hub = server.app.state.veo.hub
    # a client that stops reading for a while (max_queue=1: its library stops reading too)
    messages = []
    with connect(server.ws_url, additional_headers={"Authorization": f"Bearer {TOKEN}"},
                 max_queue=1, max_size=None) as ws:
        ws.recv(10)  # welcome
        ws.send(json.dumps({"op": "subscribe", "cluster": True}))
        assert json.loads(ws.recv(10))["type"] == "subscribed"
        flood_and_probe(fake.emit, rounds=50, floods=100, size=2000, until=lambda: hub.dropped)
        _wait(lambda: hub.dropped == 1, "the client dropped")
        with pytest.raises(Exception) as closed:
            while True:
                messages.append(json.loads(ws.recv(10)))
    notice = [m for m in messages if m.get("code") == "overflow"]
    assert getattr(closed.value, "rcvd", None) is not None, closed.value  # a close frame came
    assert closed.value.rcvd.code == 1013 and "too slow" in closed.value.rcvd.reason
    resume = int(closed.value.rcvd.reason.rsplit("since=", 1)[1])
    if notice:  # it reads again: the notice says where to resume, as the close reason does
        assert notice[0]["resume_from"] == resume
    # resuming from there misses nothing: everything up to it came, in order (a frame in flight
    # when it was dropped may come too, and again after resuming: at least once, never a gap)
    indexes = [m["event"]["index"] for m in messages if m.get("type") == "event"]
    assert indexes == list(range(1, len(indexes) + 1)) and 1 <= resume <= indexes[-1]


def test_rest_at_a_steady_rate_gets_no_server_errors(live):
    fake, server = live
    for i in range(5):
        fake.add_service({"name": f"web{i}", "image": "veo/busybox", "instances": 3})
    result = hammer(f"{server.url}/api/containers", rate=50, seconds=6, token=TOKEN)
    assert result.errors == [] and result.statuses == {200: result.sent}, result.summary()


def server_get(server, path: str) -> dict:
    import httpx

    return httpx.get(server.url + path, timeout=30).json()


def _wait(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
