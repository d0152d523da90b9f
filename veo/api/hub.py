"""The event hub: ONE long poll on the Scheduler, fanned out locally to every websocket.

A thread follows ``Cluster.events(since, follow=True)`` (the Scheduler's ``events_since`` long
poll) and hands each event to the server's event loop, which appends it to a local ring buffer and
offers it to every session. So a hundred browsers cost the Scheduler the same one call as none,
and a slow browser only fills its own queue, never the control loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

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
    """What one subscription wants: one scope (or the whole cluster) and optionally some kinds."""

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
            return _container_matches(self.value or "", ev)
        return True

    def describe(self) -> dict:
        out: dict[str, Any] = {self.scope: True if self.scope == "cluster" else self.value}
        if self.kinds:
            out["kinds"] = sorted(k.value for k in self.kinds)
        return out


def _container_matches(value: str, ev: Event) -> bool:
    # 'service:N' names an instance (also while it has no container); else an id or its prefix
    if ":" in value:
        service, _, instance = value.rpartition(":")
        return ev.service == service and str(ev.instance) == instance
    return bool(ev.container_id) and ev.container_id.startswith(value)


@dataclass(eq=False)  # compared by identity: sessions live in a set
class Session:
    """One websocket's subscriptions and its outgoing queue (events and replies, in order)."""

    limit: int
    subs: dict[str, Selector] = field(default_factory=dict)
    holding: dict[str, list[Event]] = field(default_factory=dict)  # subs replaying: live events
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    queued_events: int = 0
    overflow_after: int | None = None  # set when events were dropped: resume after this index

    def send(self, message: dict) -> None:
        self.queue.put_nowait(message)

    def offer(self, ev: Event) -> None:
        ids = []
        for sub_id, sel in self.subs.items():
            if sel.matches(ev):
                if sub_id in self.holding:
                    self.holding[sub_id].append(ev)
                else:
                    ids.append(sub_id)
        if ids:
            self.push(ev, ids)

    def push(self, ev: Event, ids: list[str]) -> None:
        if self.overflow_after is not None:
            return  # already behind: the client resumes from overflow_after
        if self.queued_events >= self.limit:
            self.overflow_after = ev.index - 1
            after = ev.index - 1
            self.queue.put_nowait({"type": "error", "code": "overflow", "resume_from": after,
                                   "message": f"too slow: events after {after} were dropped; "
                                   "subscribe again with since to resume"})
            return
        self.queued_events += 1
        self.queue.put_nowait({"type": "event", "subscriptions": ids,
                               "event": ev.model_dump(mode="json")})


def long_poll_of(client: Any) -> Callable[[int | None, int, float], list[Event]] | None:
    """One call that waits up to ``wait`` seconds for events after ``since``: the client's
    ``events_batch`` when it has one, else the real client's Scheduler (``events_since``)."""
    batch = getattr(client, "events_batch", None)
    if batch is not None:
        return batch
    scheduler = getattr(client, "_s", None)
    if scheduler is None:
        return None
    from veo.client import _call

    # stopgap until Cluster has a public events_batch: the same call events(follow=True) makes
    return lambda since, limit, wait: _call(scheduler.events_since.remote(since, limit, wait),
                                            timeout=wait + 30)


class EventHub:
    """The one follower of the Scheduler's events in this process."""

    def __init__(self, resolve: Callable[[], Any], keep: int = 5000, poll: float = 10.0,
                 on_event: Callable[[Event], None] | None = None):
        self.resolve = resolve
        self.poll = poll
        self.on_event = on_event
        self.buffer: deque[Event] = deque(maxlen=keep)
        self.sessions: set[Session] = set()
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
                for ev in self._stream(client, since):
                    if self._stop.is_set():
                        return
                    since = ev.index
                    self._loop.call_soon_threadsafe(self._publish, ev)
            except (Exception, SystemExit) as e:  # Ray raises SystemExit when it shuts down
                if self._stop.is_set() or isinstance(e, SystemExit):
                    return
                if str(e) != self.error:  # once per distinct trouble, not once a second
                    log.warning("event stream interrupted (retrying every second): %s", e)
                self.connected, self.error = False, str(e)
                self._stop.wait(1.0)

    def _stream(self, client: Any, since: int | None):
        """The client's events after ``since``, following, one long poll at a time so that
        ``stop`` takes effect between polls (a thread still inside Ray's get when Ray shuts down
        takes the process with it). ``events(follow=True)`` is the fallback: it only returns
        control when an event comes."""
        poll = long_poll_of(client)
        if poll is None:
            yield from client.events(since=since, follow=True, poll=self.poll)
            return
        while not self._stop.is_set():
            for ev in poll(since, 1000, self.poll):
                since = ev.index
                yield ev

    def _publish(self, ev: Event) -> None:
        if self.last_index is not None and ev.index <= self.last_index:
            return  # a retry re-read something already seen
        self.last_index = ev.index
        self.buffer.append(ev)
        if self.on_event is not None:
            self.on_event(ev)
        for session in list(self.sessions):
            session.offer(ev)

    def backlog(self, since: int) -> list[Event] | None:
        """Buffered events after ``since``, or None when the buffer does not reach back that far."""
        if self.last_index is None or (self.buffer and self.buffer[0].index > since + 1):
            return None
        return [e for e in self.buffer if e.index > since]
