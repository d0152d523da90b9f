"""``/ws``: live events over a websocket.

Protocol (JSON text messages; every client message has ``op``, or ``type`` as a synonym):

- ``{"op": "auth", "token": T}``: first message, when the server has a token and the upgrade
  request carried no ``Authorization: Bearer`` header.
- ``{"op": "subscribe", "id"?: ID, <scope>?, "kinds"?: [...], "since"?: N}`` where scope is one
  of ``"cluster": true`` (the default), ``"service": NAME``, ``"node": NAME`` or
  ``"container": ID`` (an id, its prefix, or ``service#instance``; ``service:instance`` too); ``kinds`` keeps only those
  event kinds (``ready`` means ``healthy``); ``since`` replays the matching events after that
  index, then goes live. Answers: ``{"type": "subscribed", "id", "selector"}``, then with
  ``since`` the replayed events and ``{"type": "replayed", "id", "since", "count"}``.
- ``{"op": "unsubscribe", "id": ID}`` (or ``"all": true``): ``{"type": "unsubscribed", "ids"}``.
- ``{"op": "ping"}``: ``{"type": "pong"}``.

The server sends ``{"type": "welcome", "last_index", "ping_interval"}`` first, then
``{"type": "event", "subscriptions": [IDs], "event": {...}}`` per matching event (once per event
even when several subscriptions match), ``{"type": "ping", "last_index"}`` when idle, and
``{"type": "error", "message"}`` for a malformed message (the connection stays open).

A client that falls behind by ``queue_limit`` messages (default 1000) is dropped: it gets, as far
as it still reads, ``{"type": "error", "code": "overflow", "resume_from": N}`` and a close frame
with code 1013 and the reason ("too slow: ... resume with since=N"). Others never wait for it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any, Literal

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from veo.api.deps import host_allowed, resolve_client, same_origin, token_matches
from veo.api.hub import EventHub, Selector, Session, parse_kinds

AUTH_TIMEOUT = 10.0
CLOSE_TOO_SLOW = 1013  # "try again later": the client may reconnect and resume with since
CLOSE_WAIT = 2.0  # seconds a dropped client is given to take its notice and the close frame
_ids = itertools.count(1)


class Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["subscribe"]
    id: str | None = None
    cluster: bool | None = None
    service: str | None = None
    node: str | None = None
    container: str | None = None
    kinds: list[str] = []
    since: int | None = None

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        parse_kinds(v)
        return v

    @model_validator(mode="after")
    def _one_scope(self) -> Subscribe:
        given = [s for s in ("service", "node", "container") if getattr(self, s) is not None]
        if len(given) + bool(self.cluster) > 1:
            raise ValueError("give one of cluster, service, node or container")
        if self.since is not None and self.since < 0:
            raise ValueError("since must be an event index >= 0")
        return self

    def selector(self) -> Selector:
        kinds = parse_kinds(self.kinds)
        for scope in ("service", "node", "container"):
            if getattr(self, scope) is not None:
                return Selector(scope, getattr(self, scope), kinds)
        return Selector("cluster", None, kinds)


class Unsubscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["unsubscribe"]
    id: str | None = None
    all: bool = False


def _error_text(e: ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


async def websocket_endpoint(ws: WebSocket) -> None:
    state = ws.app.state.veo
    settings = state.settings
    host = ws.headers.get("host")
    if not host_allowed(settings, host) or not same_origin(ws.headers.get("origin"), host):
        await ws.close(code=1008)  # before accept: the upgrade is answered 403
        return
    await ws.accept()
    if settings.token is not None and not await _authenticate(ws, settings.token):
        return
    hub: EventHub = state.hub
    hub.start(asyncio.get_running_loop())
    session = Session(limit=settings.queue_limit)
    hub.sessions.add(session)
    session.send({"type": "welcome", "last_index": hub.last_index,
                  "ping_interval": settings.ping_interval})
    tasks = {asyncio.create_task(_read(ws, session, hub)),
             asyncio.create_task(_write(ws, session, hub, settings.ping_interval)),
             asyncio.create_task(session.closing.wait())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.sessions.discard(session)
        for task in tasks:
            task.cancel()
        # the writer must be gone before anything else is sent on this socket
        await asyncio.wait(tasks, timeout=CLOSE_WAIT)
    if session.dropped is not None:
        hub.dropped += 1
        await _close_slow(ws, session)


async def _close_slow(ws: WebSocket, session: Session) -> None:
    """Tell a dropped client why and where to resume, as far as it still reads: the message,
    then the close frame with the reason; each given a moment (a client that never reads gets
    its connection closed when this returns)."""
    resume = session.sent_index if session.sent_index is not None else 0
    reason = f"{session.dropped}; resume with since={resume}"
    notice = {"type": "error", "code": "overflow", "resume_from": resume,
              "message": f"{reason} (events after {resume} were not sent)"}
    try:
        await asyncio.wait_for(ws.send_text(json.dumps(notice)), CLOSE_WAIT)
        await asyncio.wait_for(ws.close(code=CLOSE_TOO_SLOW, reason=reason[:120]), CLOSE_WAIT)
    except Exception:  # gone, or not reading: the server closes the connection anyway
        pass


async def _authenticate(ws: WebSocket, token: str) -> bool:
    header = ws.headers.get("authorization", "")
    if header.lower().startswith("bearer ") and token_matches(token, header[7:].strip()):
        return True
    try:
        first = json.loads(await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT))
        is_auth = isinstance(first, dict) and first.get("op") == "auth"
        given = first.get("token") if is_auth else None
    except (asyncio.TimeoutError, ValueError, WebSocketDisconnect):
        given = None
    if isinstance(given, str) and token_matches(token, given):
        return True
    try:
        await ws.send_json({"type": "error", "code": "unauthorized",
                            "message": "this veo server needs a token: send {\"op\": \"auth\", "
                            "\"token\": TOKEN} first, or an Authorization: Bearer header"})
        await ws.close(code=1008)
    except Exception:  # the client left already
        pass
    return False


async def _write(ws: WebSocket, session: Session, hub: EventHub, ping_interval: float) -> None:
    while not session.closing.is_set():
        try:
            text, index = await asyncio.wait_for(session.queue.get(), ping_interval)
        except asyncio.TimeoutError:
            text, index = json.dumps({"type": "ping", "last_index": hub.last_index}), None
        await ws.send_text(text)
        session.sent(index)


async def _read(ws: WebSocket, session: Session, hub: EventHub) -> None:
    try:
        while True:
            text = await ws.receive_text()
            try:
                message = json.loads(text)
            except ValueError as e:
                session.send({"type": "error", "message": f"malformed message: not JSON: {e}"})
                continue
            try:
                await _handle(ws, session, hub, message)
            except ValueError as e:  # pydantic's ValidationError is one too
                detail = _error_text(e) if isinstance(e, ValidationError) else str(e)
                session.send({"type": "error", "message": f"malformed message: {detail}"})
            except Exception as e:  # a bad request or a cluster error: say so, keep the socket
                session.send({"type": "error", "message": str(e)})
    except WebSocketDisconnect:
        return


async def _handle(ws: WebSocket, session: Session, hub: EventHub, msg: Any) -> None:
    if not isinstance(msg, dict):
        raise ValueError("expected a JSON object")
    op = msg.get("op", msg.get("type"))
    msg = {**{k: v for k, v in msg.items() if k != "type"}, "op": op}
    if op == "subscribe":
        await _subscribe(ws, session, hub, Subscribe.model_validate(msg))
    elif op == "unsubscribe":
        req = Unsubscribe.model_validate(msg)
        ids = list(session.subs) if req.all else [req.id] if req.id in session.subs else []
        if not ids:
            raise ValueError(f"no subscription {req.id!r}")
        for sub_id in ids:
            session.subs.pop(sub_id, None)
            session.holding.pop(sub_id, None)
        session.send({"type": "unsubscribed", "ids": ids})
    elif op == "ping":
        session.send({"type": "pong", "last_index": hub.last_index})
    elif op == "auth":
        session.send({"type": "pong", "last_index": hub.last_index})  # already authenticated
    else:
        raise ValueError(f"unknown op {op!r}; expected subscribe, unsubscribe or ping")


async def _subscribe(ws: WebSocket, session: Session, hub: EventHub, req: Subscribe) -> None:
    sub_id = req.id or f"sub-{next(_ids)}"
    selector = req.selector()
    session.subs[sub_id] = selector
    session.send({"type": "subscribed", "id": sub_id, "selector": selector.describe()})
    if req.since is None:
        return
    # live events that match meanwhile wait, so that the replay comes first and in order
    session.holding[sub_id] = []
    try:
        backlog = hub.backlog(req.since)
        if backlog is None:  # older than this server's buffer: ask the Scheduler once
            client = resolve_client(ws.app)
            backlog = await run_in_threadpool(lambda: list(client.events(since=req.since)))
    finally:
        held = session.holding.pop(sub_id, [])
    seen: set[int] = set()
    for ev in sorted([*backlog, *held], key=lambda e: e.index):
        if ev.index not in seen and selector.matches(ev) and sub_id in session.subs:
            seen.add(ev.index)
            await session.put_replay(ev, [sub_id])
    session.send({"type": "replayed", "id": sub_id, "since": req.since, "count": len(seen)})
