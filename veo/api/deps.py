"""What every route depends on: the client, the server's settings, and the access rules.

Access (Docker access is root on the host): with a token configured, every REST route but
``/healthz`` needs ``Authorization: Bearer TOKEN``; without one the server only listens on loopback
and only answers requests whose Host is a loopback name (a web page elsewhere cannot reach it
through DNS rebinding). A request that changes something and carries an ``Origin`` must come from
the server's own origin (no cross-site forms or fetches).
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from veo.core.errors import VeoError

ClientFactory = Callable[[], Any]  # -> veo.client.Cluster (or a stand-in with its methods)


class Unauthorized(VeoError):
    http_status = 401


class Forbidden(VeoError):
    http_status = 403


@dataclass
class ApiSettings:
    token: str | None = None
    trusted_hosts: frozenset[str] | None = None  # None: any Host (a token guards the server)
    follow_max_seconds: float = 3600.0  # one `logs?follow=true` stream lasts at most this long
    ping_interval: float = 20.0  # websocket keep-alive messages
    queue_limit: int = 1000  # events a slow websocket may lag behind before it is told to resume
    dashboard_url: str = "http://127.0.0.1:8265"
    poll: float = 10.0  # the event hub's long-poll period


class ApiState:
    """Per-app state: settings and the client, connected on first use (a failed connect is
    retried by the next request, so the server may start before the cluster)."""

    def __init__(self, factory: ClientFactory, settings: ApiSettings):
        self.factory = factory
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self.factory()
            return self._client

    def connected(self) -> Any:
        """The client if it is connected already (no lock: a reference read is atomic)."""
        return self._client


async def get_client(request: Request) -> Any:
    """The cluster client. Tests replace it with ``app.dependency_overrides[get_client]``.
    Async, so a request for a connected client does not take a worker thread."""
    state = request.app.state.veo
    client = state.connected()
    return client if client is not None else await run_in_threadpool(state.client)


def resolve_client(app: Any) -> Any:
    """The client for code outside a request (the event hub), honouring a dependency override."""
    override = app.dependency_overrides.get(get_client)
    return override() if override is not None else app.state.veo.client()


def settings_of(request: Request) -> ApiSettings:
    return request.app.state.veo.settings


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


_bearer = HTTPBearer(auto_error=False, description="Needed when the server has a token "
                     "(VEO_TOKEN or --token-file); always when it listens beyond loopback.")


async def require_token(request: Request,
                        creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """Route dependency: the bearer token, when the server has one; same-origin for changes.
    Async: it never blocks, so it takes no worker thread."""
    settings = settings_of(request)
    if settings.token is not None:
        if creds is None:
            raise Unauthorized("this veo server needs a token: send 'Authorization: Bearer TOKEN'")
        if not token_matches(settings.token, creds.credentials):
            raise Unauthorized("wrong token")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        origin = request.headers.get("origin")
        if origin is not None and not same_origin(origin, request.headers.get("host")):
            raise Forbidden(f"requests from origin {origin} are refused (cross-site)")


def same_origin(origin: str | None, host: str | None) -> bool:
    """An Origin header names the same host:port the request was sent to (or there is none)."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or host is None:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    want_host, want_port = split_host(host, 443 if parts.scheme == "https" else 80)
    return parts.hostname.lower() == want_host and port == want_port


def split_host(host: str, default_port: int = 80) -> tuple[str, int]:
    """``'[::1]:8086'`` -> ('::1', 8086); ``'localhost'`` -> ('localhost', default_port)."""
    parts = urlsplit(f"//{host}")
    try:
        port = parts.port or default_port
    except ValueError:
        port = -1
    return (parts.hostname or "").lower(), port


def is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(settings: ApiSettings, host_header: str | None) -> bool:
    if settings.trusted_hosts is None:
        return True
    hostname, _ = split_host(host_header or "")
    return is_loopback(hostname) or hostname in settings.trusted_hosts
