"""Names and plumbing shared by the actors: how they find each other, how events reach the
Scheduler."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections import deque

import ray

from veo.core.models import Event
from veo.core.names import ACTOR_NAMESPACE, SCHEDULER_NAME

EVENT_BUFFER = 10_000  # events kept while the Scheduler is unreachable; oldest dropped first

log = logging.getLogger("veo.actors")



class Handles:
    """Looks actors up by name once and keeps the handle; forgets it when a call fails."""

    def __init__(self) -> None:
        self._cache: dict[str, ray.actor.ActorHandle] = {}

    def get(self, name: str) -> ray.actor.ActorHandle:
        handle = self._cache.get(name)
        if handle is None:
            handle = self._cache[name] = ray.get_actor(name, namespace=ACTOR_NAMESPACE)
        return handle

    def forget(self, name: str) -> None:
        self._cache.pop(name, None)


class EventSink:
    """Batches events to the Scheduler off the caller's path; keeps them while it is unreachable
    (restarting), so a Scheduler restart loses no event an agent saw. Delivery is at least once (a
    Scheduler killed while taking a batch may have recorded it): each event carries its
    ``source`` (this sink and a number), by which the Scheduler records it once."""

    def __init__(self) -> None:
        self.buffer: deque[Event] = deque(maxlen=EVENT_BUFFER)
        self.handles = Handles()
        self._wake: asyncio.Event | None = None
        self._origin = uuid.uuid4().hex[:12]
        self._sent = itertools.count(1)

    def emit(self, event: Event) -> None:
        event.source = f"{self._origin}:{next(self._sent)}"
        self.buffer.append(event)
        if self._wake is None:
            self._wake = asyncio.Event()
            asyncio.get_running_loop().create_task(self._flush_forever())
        self._wake.set()

    async def _flush_forever(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            # let what the caller scheduled with its events (a restart's engine call) go first
            await asyncio.sleep(0)
            while self.buffer:
                batch = list(self.buffer)
                try:
                    await self.handles.get(SCHEDULER_NAME).record.remote(batch)
                except Exception as e:  # restarting or not yet created: keep and retry
                    log.info("scheduler unreachable (%s); keeping %d events", e, len(batch))
                    self.handles.forget(SCHEDULER_NAME)
                    await asyncio.sleep(1.0)
                    continue
                for _ in batch:
                    self.buffer.popleft()
