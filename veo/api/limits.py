"""Request body limit: a body over ``max_bytes`` gets 413 with a JSON error, before any route reads
it into memory. A declared Content-Length is checked at once (uvicorn never delivers more than
it declares); a body without one (chunked) is read here up to the limit, then handed on.

The limit: ``VEO_API_MAX_BODY`` (bytes, or a size like ``5m``; ``0`` switches it off), default 5 MiB
(a 5,000-service cluster.yml as JSON fits).
"""

from __future__ import annotations

import os

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veo.api.schemas import error_body
from veo.core.units import parse_size

DEFAULT_MAX_BODY = 5 * 1024 * 1024
ENV = "VEO_API_MAX_BODY"


def body_limit() -> int:
    """The configured limit in bytes (0: none)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BODY
    try:
        return parse_size(raw)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{ENV}={raw!r}: expected a size like 5m or a number of bytes ({e})") from None


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY):
        self.app = app
        self.max_bytes = max_bytes

    def _response(self) -> JSONResponse:
        message = (f"request body too large: more than {self.max_bytes} bytes "
                   f"(the server's limit, {ENV})")
        return JSONResponse(error_body("TooLarge", message), status_code=413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.max_bytes:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.strip().isdigit():
            if int(declared) > self.max_bytes:
                await self._response()(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server delivers no more than it declared
            return
        # no length declared (chunked): read up to the limit here, then hand the body on
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await self._response()(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
