"""``/ws``: subscriptions by container, service, node, cluster and kinds; resuming from an index;
malformed messages; keep-alive pings; and the fan-out (one long poll however many sockets)."""

from __future__ import annotations

import threading

from conftest import BASE, WS, make_app, service
from fastapi.testclient import TestClient

from veo.core.models import EventKind


def events_until(ws, kind: str, limit: int = 20) -> list[dict]:
    """Messages up to and including the first of ``kind``."""
    out = []
    for _ in range(limit):
        msg = ws.receive_json()
        out.append(msg)
        if msg["type"] == kind:
            return out
    raise AssertionError(f"no {kind} message in {out}")


def subscribe(ws, **sel) -> dict:
    ws.send_json({"op": "subscribe", **sel})
    msg = ws.receive_json()
    assert msg["type"] == "subscribed", msg
    return msg


def test_subscribe_to_a_service_and_a_kind(client, fake):
    with client.websocket_connect(WS) as ws:
        assert ws.receive_json()["type"] == "welcome"
        subscribe(ws, id="svc", service="web")
        subscribe(ws, id="restarts", kinds=["restarted"])
        fake.add_service(service("other"))
        fake.add_service(service("web"))
        placed = ws.receive_json()
        assert placed["event"]["kind"] == "placed" and placed["subscriptions"] == ["svc"]
        assert ws.receive_json()["event"]["kind"] == "started"
        fake.restart("other")
        msg = ws.receive_json()
        assert msg["subscriptions"] == ["restarts"] and msg["event"]["service"] == "other"
        fake.restart("web")
        msg = ws.receive_json()  # both match: sent once, naming both
        assert msg["subscriptions"] == ["svc", "restarts"] and msg["event"]["restarts"] == 1


def test_container_and_node_scopes(client, fake):
    fake.add_service(service("web", instances=2))
    cid = fake.containers("web")[1].container_id
    with client.websocket_connect(WS) as ws:
        ws.receive_json()
        subscribe(ws, id="c", container=cid[:12])
        subscribe(ws, id="n", node="uno")
        subscribe(ws, id="k", container="web:0", kinds=["ready"])
        fake.restart("web", 1)  # on dos
        assert ws.receive_json()["subscriptions"] == ["c"]
        fake.emit(EventKind.healthy, service="web", instance=0, node="uno")
        assert ws.receive_json()["subscriptions"] == ["n", "k"]
        fake.emit(EventKind.node_lost, node="uno")
        assert ws.receive_json()["event"]["kind"] == "node_lost"


def test_unsubscribe(client, fake):
    with client.websocket_connect(WS) as ws:
        ws.receive_json()
        subscribe(ws, id="a", service="a")
        subscribe(ws, id="b", service="b")
        ws.send_json({"op": "unsubscribe", "id": "a"})
        assert ws.receive_json() == {"type": "unsubscribed", "ids": ["a"]}
        fake.add_service(service("a"))
        fake.add_service(service("b"))
        assert [ws.receive_json()["event"]["service"] for _ in range(2)] == ["b", "b"]
        ws.send_json({"op": "unsubscribe", "id": "a"})
        assert ws.receive_json()["message"] == "malformed message: no subscription 'a'"


def test_resume_from_an_index(client, fake):
    fake.add_service(service("a"))  # events 1, 2
    fake.add_service(service("b"))  # events 3, 4
    with client.websocket_connect(WS) as ws:
        ws.receive_json()
        subscribe(ws, id="r", since=1)
        got = events_until(ws, "replayed")
        assert [m["event"]["index"] for m in got[:-1]] == [2, 3, 4]
        assert got[-1] == {"type": "replayed", "id": "r", "since": 1, "count": 3}
        fake.restart("a")
        assert ws.receive_json()["event"]["index"] == 5


def test_resume_older_than_the_buffer_asks_the_cluster(fake):
    app = make_app(fake)
    fake.add_service(service("a"))
    with TestClient(app, base_url=BASE) as c:
        app.state.veo.hub.buffer.clear()
        app.state.veo.hub.buffer.append(fake._events[-1])  # the buffer starts at index 2
        with c.websocket_connect(WS) as ws:
            ws.receive_json()
            subscribe(ws, since=0, kinds=["placed"])
            got = events_until(ws, "replayed")
            assert [m["event"]["index"] for m in got[:-1]] == [1]


def test_malformed_messages_keep_the_connection(client, fake):
    with client.websocket_connect(WS) as ws:
        ws.receive_json()
        bad = ["{not json", "[]", '{"op": "dance"}',
               '{"op": "subscribe", "service": "a", "node": "b"}',
               '{"op": "subscribe", "kinds": ["bogus"]}', '{"op": "subscribe", "colour": "red"}',
               '{"op": "subscribe", "since": -4}']
        for text in bad:
            ws.send_text(text)
            msg = ws.receive_json()
            assert msg["type"] == "error" and msg["message"].startswith("malformed message"), msg
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
        subscribe(ws, service="a")
        fake.add_service(service("a"))
        assert ws.receive_json()["type"] == "event"


def test_idle_sockets_get_pings(fake):
    with TestClient(make_app(fake, ping=0.2), base_url=BASE) as c:
        with c.websocket_connect(WS) as ws:
            assert ws.receive_json()["ping_interval"] == 0.2
            assert ws.receive_json()["type"] == "ping"


def test_many_subscribers_share_one_long_poll(fake):
    polls = []
    real = fake.events_batch

    def counting(since=None, limit=1000, wait=0.0):
        polls.append(threading.current_thread().name)
        return real(since, limit, wait)

    fake.events_batch = counting
    with TestClient(make_app(fake), base_url=BASE) as c:
        sockets = [c.websocket_connect(WS).__enter__() for _ in range(20)]
        for ws in sockets:
            ws.receive_json()
            subscribe(ws, cluster=True)
        fake.add_service(service("web"))
        for ws in sockets:
            assert ws.receive_json()["event"]["kind"] == "placed"
            ws.__exit__(None, None, None)
    # one follower thread for 20 sockets, each of its polls waiting for events (not 20 pollers)
    assert set(polls) == {"veo-event-hub"} and len(polls) < 20
