"""Errors as HTTP answers: one JSON shape (``ErrorBody``) for every failure, never a traceback.

A ``VeoError`` keeps its text and takes its ``http_status`` (SpecError 422, PolicyError 403,
NotFound 404, Conflict 409, NotConnected 503, ...), so the API says what the CLI says.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from veo.api.deps import Unauthorized
from veo.api.schemas import ErrorBody, error_body
from veo.core.errors import SpecProblem, VeoError

log = logging.getLogger("veo.api")


class UnsupportedMediaType(VeoError):
    http_status = 415


class TooLarge(VeoError):
    http_status = 413


def _doc(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


# documented on every route (the OpenAPI document lists each answer a client can get)
COMMON = {
    401: _doc("A token is configured and the request has none, or a wrong one"),
    403: _doc("Refused: a change sent cross-site (foreign Origin), or a Host other than "
              "loopback while the server has no token"),
    422: _doc("Invalid input: the problems, in the same words as `veo validate`"),
    500: _doc("An unexpected failure inside the server (details in its log, never here)"),
    503: _doc("The veo Scheduler is not reachable"),
}
NOT_FOUND = {404: _doc("No such service, container or node")}
CONFLICT = {409: _doc("The request conflicts with the cluster's state")}
POLICY = {403: _doc("Refused by the cluster policy (the field and the switch are named), or "
                    "a cross-site request")}
BODY = {413: _doc("The body is larger than 1 MiB"),
        415: _doc("The body is neither JSON nor YAML")}


def _json(status: int, body: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


async def veo_error(_: Request, e: VeoError) -> JSONResponse:
    if e.http_status >= 500:
        log.warning("%s: %s", type(e).__name__, e)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(e, Unauthorized) else None
    return _json(e.http_status, error_body(type(e).__name__, str(e), getattr(e, "problems", None)),
                 headers)


async def request_invalid(_: Request, e: RequestValidationError) -> JSONResponse:
    problems = []
    for err in e.errors():
        path = ".".join(str(p) for p in err.get("loc", ()))
        problems.append(SpecProblem(str(err.get("msg", "invalid value")), path))
    message = "\n".join(str(p) for p in problems) or "invalid request"
    return _json(422, error_body("SpecError", message, problems))


async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
    kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(e.status_code, "HTTPError")
    headers = dict(getattr(e, "headers", None) or {})
    if e.status_code == 405:
        # Starlette names only the first route's methods; a path has one route per method
        headers["Allow"] = ", ".join(_methods(request))
    return _json(e.status_code, error_body(kind, str(e.detail)), headers)


def _methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path) and getattr(route, "methods", None):
            methods |= set(route.methods)
    return sorted(methods)


async def unexpected(_: Request, e: Exception) -> JSONResponse:
    log.exception("unexpected error")
    return _json(500, error_body("InternalError", f"internal error ({type(e).__name__}); "
                                 "see the veo server's log"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(VeoError, veo_error)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
