"""The event hub: ONE long poll on the Scheduler, fanned out locally to every websocket.

A thread follows ``Cluster.events_batch(since, limit, wait)`` (the Scheduler's ``events_since``
long poll) and hands each batch to the server's event loop, which appends it to a local ring
buffer and offers it to every session. So a hundred browsers cost the Scheduler the same one call
as none, and a client that stops reading only fills its own bounded queue (then it is dropped),
never the others' delivery or the control loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from veo.core import refs
from veo.core.models import Event, EventKind

log = logging.getLogger("veo.api.hub")

# names a subscriber may use for event kinds; 'ready' is what a user calls a healthy container
KIND_ALIASES = {"ready": EventKind.healthy}


def parse_kinds(names: list[str]) -> frozenset[EventKind]:
    out = set()
    for name in names:
        kind = KIND_ALIASES.get(name) or next((k for k in EventKind if k.value == name), None)
        if kind is None:
            known = ", ".join([k.value for k in EventKind] + list(KIND_ALIASES))
            raise ValueError(f"unknown event kind {name!r}; expected one of {known}")
        out.add(kind)
    return frozenset(out)


@dataclass(frozen=True)
class Selector:
    """What one subscription wants: one scope (or the whole cluster) and optionally some kinds.
    A container scope is an id, a prefix of one, or an instance ref (``web#0``, ``web:0``)."""

    scope: str = "cluster"  # cluster | service | node | container
    value: str | None = None
    kinds: frozenset[EventKind] = frozenset()

    def matches(self, ev: Event) -> bool:
        if self.kinds and ev.kind not in self.kinds:
            return False
        if self.scope == "service":
            return ev.service == self.value
        if self.scope == "node":
            return ev.node == self.value
        if self.scope == "container":
            return refs.matches(self.value or "", ev.service, ev.instance, ev.container_id)
        return True

    def describe(self) -> dict:
        value = refs.canonical(self.value or "") if self.scope == "container" else self.value
        out: dict[str, Any] = {self.scope: True if self.scope == "cluster" else value}
        if self.kinds:
            out["kinds"] = sorted(k.value for k in self.kinds)
        return out


def event_json(ev: Event) -> str:
    return json.dumps(ev.model_dump(mode="json"))


def event_message(ev: Event, ids: list[str], text: str | None = None) -> str:
    """``{"type": "event", "subscriptions": [...], "event": {...}}``, reusing the event's JSON
    (``text``) rendered once for every session."""
    return (f'{{"type": "event", "subscriptions": {json.dumps(ids)}, '
            f'"event": {text or event_json(ev)}}}')


@dataclass(eq=False)  # compared by identity: sessions live in a set
class Session:
    """One websocket's subscriptions and its outgoing queue (events and replies, in order, as
    text ready to send).

    Bounded: at most ``limit`` messages wait. A message that finds the queue full drops the
    session (``dropped`` says why, ``closing`` wakes its socket, which closes with that reason),
    so a client that stops reading costs ``limit`` messages of memory and nothing else. Replays
    wait for room instead (``put_replay``): they are paced by the client that asked for them.
    """

    limit: int
    subs: dict[str, Selector] = field(default_factory=dict)
    holding: dict[str, list[Event]] = field(default_factory=dict)  # subs replaying: live events
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: str | None = None  # why this session was dropped
    sent_index: int | None = None  # the last event index its socket has taken (where to resume)

    def send(self, message: dict) -> None:
        """A reply (subscribed, pong, error...)."""
        self._put(json.dumps(message))

    def offer(self, ev: Event, text: str | None = None) -> None:
        """A live event; ``text`` is its JSON."""
        ids = []
        for sub_id, sel in self.subs.items():
            if sel.matches(ev):
                if sub_id in self.holding:
                    self.holding[sub_id].append(ev)
                else:
                    ids.append(sub_id)
        if ids:
            self.push(ev, ids, text)

    def push(self, ev: Event, ids: list[str], text: str | None = None) -> None:
        self._put(event_message(ev, ids, text), ev.index)

    async def put_replay(self, ev: Event, ids: list[str]) -> None:
        # half the queue stays free for live events meanwhile, so a long replay never drops it
        while self.queue.qsize() >= max(1, self.limit // 2) and self.dropped is None:
            await asyncio.sleep(0.02)
        self.push(ev, ids)

    def _put(self, text: str, index: int | None = None) -> None:
        if self.dropped is not None:
            return
        if self.queue.qsize() >= self.limit:
            self.drop(f"too slow: {self.limit} messages waiting")
            return
        self.queue.put_nowait((text, index))

    def sent(self, index: int | None) -> None:
        """The socket took the message of event ``index`` (None: a reply)."""
        if index is not None:
            self.sent_index = index

    def drop(self, reason: str) -> None:
        self.dropped = reason
        self.closing.set()


class EventHub:
    """The one follower of the Scheduler's events in this process."""

    def __init__(self, resolve: Callable[[], Any], keep: int = 5000, poll: float = 10.0,
                 on_event: Callable[[Event], None] | None = None):
        self.resolve = resolve
        self.poll = poll
        self.on_event = on_event
        self.buffer: deque[Event] = deque(maxlen=keep)
        self.sessions: set[Session] = set()
        self.dropped = 0  # sessions dropped for being too slow, since the server started
        self.connected = False
        self.last_index: int | None = None
        self.error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._loop = loop
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, name="veo-event-hub", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """Stop following; with ``wait``, give the thread that long to leave its current poll."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(wait)

    def _follow(self) -> None:
        since = None
        while not self._stop.is_set():
            try:
                client = self.resolve()
                self.connected, self.error = True, None
                # one long poll at a time, so that ``stop`` takes effect between polls (a thread
                # still inside Ray's get when Ray shuts down takes the process with it)
                while not self._stop.is_set():
                    batch = client.events_batch(since, 1000, self.poll)
                    if batch and not self._stop.is_set():
                        since = batch[-1].index
                        self._loop.call_soon_threadsafe(self._publish, batch)
            except (Exception, SystemExit) as e:  # Ray raises SystemExit when it shuts down
                if self._stop.is_set() or isinstance(e, SystemExit):
                    return
                if str(e) != self.error:  # once per distinct trouble, not once a second
                    log.warning("event stream interrupted (retrying every second): %s", e)
                self.connected, self.error = False, str(e)
                self._stop.wait(1.0)

    def _publish(self, batch: list[Event]) -> None:
        for ev in batch:
            if self.last_index is not None and ev.index <= self.last_index:
                continue  # a retry re-read something already seen
            self.last_index = ev.index
            self.buffer.append(ev)
            if self.on_event is not None:
                self.on_event(ev)
            text = event_json(ev)  # once, however many sessions get it
            for session in list(self.sessions):
                session.offer(ev, text)

    def backlog(self, since: int) -> list[Event] | None:
        """Buffered events after ``since``, or None when the buffer does not reach back that far."""
        if self.last_index is None or (self.buffer and self.buffer[0].index > since + 1):
            return None
        return [e for e in self.buffer if e.index > since]
