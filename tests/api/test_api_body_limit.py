"""REST bodies over the limit get 413 with a clear JSON message, through a real uvicorn server
(declared Content-Length and chunked bodies alike); a 5 MB cluster.yml under it is applied."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from live_server import LiveServer

from bench.big_spec import big_spec
from veo.api.limits import DEFAULT_MAX_BODY, body_limit

YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
def server(fake) -> Iterator[LiveServer]:
    live = LiveServer(fake)
    try:
        yield live
    finally:
        live.close()


def _too_large(r: httpx.Response, limit: int = DEFAULT_MAX_BODY) -> None:
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["error"] == "TooLarge"
    assert body["message"] == (f"request body too large: more than {limit} bytes "
                               "(the server's limit, VEO_API_MAX_BODY)")


def test_a_body_over_the_limit_gets_413(server, fake):
    big = b"services:\n" + b"#" * (DEFAULT_MAX_BODY + 1)
    _too_large(httpx.put(f"{server.url}/api/services", content=big, headers=YAML, timeout=30))
    assert fake.calls == []  # the route never ran


def test_a_chunked_body_over_the_limit_gets_413(server):
    def chunks():
        for _ in range(6):
            yield b"#" * (1024 * 1024)

    r = httpx.put(f"{server.url}/api/services", content=chunks(), headers=YAML, timeout=30)
    _too_large(r)


@pytest.mark.timeout(300)
def test_a_5mb_cluster_yml_under_the_limit_is_applied(server, fake, monkeypatch):
    text = big_spec(5000).encode()
    assert 5_000_000 < len(text) <= DEFAULT_MAX_BODY
    applied = []
    # the fake cluster's own apply is quadratic (~9 s of CPU for 5,000): record the spec instead
    monkeypatch.setattr(fake, "apply", lambda spec, check_index=None: applied.append(spec) or {
        "added": sorted(spec.services), "changed": [], "removed": [], "unchanged": []})
    # generous: parsing takes ~2 s of CPU, and the machine is shared
    r = httpx.put(f"{server.url}/api/services", content=text, headers=YAML, timeout=240)
    assert r.status_code == 200, r.text[:500]
    assert len(r.json()["added"]) == 5000
    assert len(applied[0].services) == 5000


def test_the_limit_is_configurable(monkeypatch, fake):
    monkeypatch.setenv("VEO_API_MAX_BODY", "1k")
    assert body_limit() == 1024
    live = LiveServer(fake)
    try:
        r = httpx.post(f"{live.url}/api/services", json={"name": "x" * 2000, "image": "a"}, timeout=30)
        _too_large(r, 1024)
        small = httpx.post(f"{live.url}/api/services", json={"name": "web", "image": "a"}, timeout=30)
        assert small.status_code == 201, small.text
    finally:
        live.close()
    monkeypatch.setenv("VEO_API_MAX_BODY", "lots")
    with pytest.raises(ValueError, match="VEO_API_MAX_BODY='lots': expected a size like 5m"):
        body_limit()
