"""The veo web server: REST API, websocket and UI in one FastAPI app.

``create_app(client_factory)`` builds it around any object with ``veo.client.Cluster``'s methods
(the real client in ``veo serve``; a fake in tests, through
``app.dependency_overrides[get_client]``).
Routes are thin: they convert between JSON and the client, so every front door behaves the same.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from veo.api import actions, containers, errors, events, nodes, services, system, tasks, updates
from veo.api.deps import ApiSettings, ApiState, ClientFactory, host_allowed, resolve_client
from veo.api.hub import EventHub
from veo.api.limits import BodyLimit, body_limit
from veo.api.listing import Listing
from veo.api.metrics import LatencyMiddleware, Metrics
from veo.api.schemas import error_body
from veo.api.ws import websocket_endpoint

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

DESCRIPTION = """Run Docker containers across the nodes of a Ray cluster.

Errors are JSON (`ErrorBody`) with the same text as the CLI. An instance is named `service#N`
(`service%23N` in a URL; `service:N` is accepted too). Live events: the websocket `/ws` (see the
README for its JSON protocol: subscribe to a container, service, node, the cluster or event kinds,
resume from an index).
"""
WITH_TOKEN = ("This server has a token: every route but `/healthz` needs "
              "`Authorization: Bearer TOKEN`, and so does `/ws`.")
WITHOUT_TOKEN = ("This server has no token: it needs no authentication, and it listens on and "
                 "answers only loopback names (`127.0.0.1`, `localhost`).")


def _default_factory(address: str | None = None) -> ClientFactory:
    def factory():
        from veo.client import _local_address, connect
        from veo.core.errors import NotConnected

        # as the CLI does: never ray.init("auto"), which can hang on a stale cluster record
        if address is None and _local_address() is None:
            raise NotConnected("no veo cluster is running here (start one with `veo up "
                               "cluster.yml`, or give --address / RAY_ADDRESS)")
        return connect(address)

    return factory


def create_app(client_factory: ClientFactory | None = None, *, token: str | None = None,
               trusted_hosts: set[str] | frozenset[str] | None = None,
               settings: ApiSettings | None = None) -> FastAPI:
    """The app. ``token``: require it (bearer) on every route but /healthz and on /ws.
    ``trusted_hosts``: Host names accepted besides loopback ones; without a token only those
    (default: none), with a token any."""
    settings = settings or ApiSettings()
    settings.token = token if token is not None else settings.token
    if settings.token is None:
        settings.trusted_hosts = frozenset(trusted_hosts or ())
    elif trusted_hosts is not None:
        settings.trusted_hosts = frozenset(trusted_hosts)
    state = ApiState(client_factory or _default_factory(), settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.hub.start(asyncio.get_running_loop())
        state.listing.start()
        yield
        await asyncio.to_thread(state.listing.stop)
        await asyncio.to_thread(state.hub.stop, settings.poll + 5)

    app = FastAPI(title="veo", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  separate_input_output_schemas=False)
    app.state.veo = state
    state.metrics = Metrics(lambda: resolve_client(app))
    state.listing = Listing(lambda: resolve_client(app), wait=settings.poll)
    state.metrics.watch_listing(state.listing)
    state.hub = EventHub(lambda: resolve_client(app), poll=settings.poll,
                         on_event=state.metrics.on_event)
    errors.install(app)
    for module in (services, containers, nodes, events, updates, tasks):
        app.include_router(module.router)
    app.include_router(system.router)
    app.include_router(system.guarded)
    app.include_router(actions.router)  # one route per CLI verb (veo.remote)
    app.add_api_websocket_route("/ws", websocket_endpoint)
    _mount_ui(app)
    _document_as_served(app, settings)
    app.add_middleware(LatencyMiddleware, metrics=state.metrics)
    app.add_middleware(BodyLimit, max_bytes=body_limit())  # 413 past VEO_API_MAX_BODY (5 MiB)
    app.add_middleware(HostGuard, settings=settings)
    return app


def _mount_ui(app: FastAPI) -> None:
    # the page itself holds no data (it asks the API, with the token), so it needs no token
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/ui", StaticFiles(directory=UI_DIR), name="ui")


def _document_as_served(app: FastAPI, settings: ApiSettings) -> None:
    """The OpenAPI document as this server really behaves: its security (a bearer token required
    on the guarded routes, or no authentication at all), and errors always JSON (FastAPI would
    document a plain-text route's errors, logs and metrics, as plain text)."""
    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = FastAPI.openapi(app)
            doc["info"]["description"] += "\n" + (WITHOUT_TOKEN if settings.token is None
                                                  else WITH_TOKEN)
            for path in doc.get("paths", {}).values():
                for op in path.values():
                    _errors_in_json(op)
                    if settings.token is None:  # HTTPBearer marks every guarded route
                        op.pop("security", None)
                        op.get("responses", {}).pop("401", None)
            if settings.token is None:
                doc.get("components", {}).pop("securitySchemes", None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi


def _errors_in_json(op: dict) -> None:
    for status, resp in op.get("responses", {}).items():
        content = resp.get("content", {})
        if status[0] in "45" and "text/plain" in content:
            content["application/json"] = content.pop("text/plain")


class HostGuard:
    """Refuses requests (HTTP and websocket) whose Host is not loopback while the server has no
    token: a page on another site that rebinds its DNS name to 127.0.0.1 gets nothing."""

    def __init__(self, app: ASGIApp, settings: ApiSettings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not host_allowed(self.settings, host):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = error_body("Forbidden", f"Host {host!r} is refused: without a token this "
                                  "server answers only loopback names (127.0.0.1, localhost)")
                await JSONResponse(body, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
