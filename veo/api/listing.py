"""``GET /api/containers`` from a kept copy, so a client polling it costs the Scheduler nothing.

Why: each answer used to be one Ray call to the Scheduler (its event loop builds every instance
view and pickles them, in the actor the control loop runs in), then the views rebuilt as pydantic
models and serialised here; at 200 requests a second that was all of this machine's two cores.

How fresh: a thread here long-polls the Scheduler's change counter (``containers_version``,
bumped on every commit: each event, each state change and each control-loop step, when agents'
reports land). A copy is served only while the counter has not moved since the copy was asked
for, so an answer is never older than the Scheduler's latest event or report, give or take the one
Ray message that tells this server the counter moved (milliseconds). On top, a copy lives at most
``max_age`` (1 s, the default tick) because ``uptime_seconds`` is computed when the copy is made.
A client without the counter (the API tests' fake) or a watcher that lost the Scheduler means no
copies: every request asks the Scheduler, as before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable

from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from veo.api.schemas import ContainerView

log = logging.getLogger("veo.api.listing")
_ROWS = TypeAdapter(list[ContainerView])
Key = tuple[str | None, str | None]  # (service, node) filters


def encode(instances: list, node: str | None = None) -> bytes:
    """The JSON answer of ``/api/containers`` for these instances (as its response model)."""
    now = time.time()
    views = [ContainerView.of(i, now) for i in instances if node is None or i.node == node]
    return _ROWS.dump_json(views, by_alias=True)


class Listing:
    def __init__(self, resolve: Callable[[], Any], wait: float = 10.0, max_age: float = 1.0,
                 max_keys: int = 64):
        self.resolve = resolve
        self.wait = wait  # the long poll's length
        self.max_age = max_age
        self.max_keys = max_keys  # filters are the client's choice: bound what is kept
        self.version: int | None = None  # the counter as last heard; None: no copies
        self._copies: dict[Key, tuple[float, bytes]] = {}
        self._copies_version: int | None = None
        self._inflight: dict[tuple[Key, int], asyncio.Future] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.hits = self.misses = self.fetches = 0  # answers from a copy, others; Scheduler calls

    # ---- serving -----------------------------------------------------------------------------

    async def get(self, client: Any, service: str | None, node: str | None) -> bytes:
        """The answer for these filters: the copy when it is current, else one fetch shared by
        every request that arrives while it runs (started after the counter they saw)."""
        key = (service, node)
        body = self._current(key)
        if body is not None:
            self.hits += 1
            return body
        self.misses += 1
        version = self.version
        if version is None:
            return await run_in_threadpool(self._fetch, client, key, None)
        task = self._inflight.get((key, version))
        if task is None:
            task = asyncio.ensure_future(run_in_threadpool(self._fetch, client, key, version))
            self._inflight[(key, version)] = task
            task.add_done_callback(lambda _: self._inflight.pop((key, version), None))
        return await asyncio.shield(task)  # one leaving client does not cancel the others' fetch

    def _current(self, key: Key) -> bytes | None:
        version = self.version
        if version is None or version != self._copies_version:
            return None
        kept = self._copies.get(key)
        if kept is None or time.monotonic() - kept[0] > self.max_age:
            return None
        return kept[1]

    def _fetch(self, client: Any, key: Key, version: int | None) -> bytes:
        """Ask the Scheduler. ``version`` was read before asking, so the answer is at least that
        new; it is kept under it (and never if the counter has moved on meanwhile)."""
        service, node = key
        self.fetches += 1
        body = encode(client.containers(service), node)
        if version is not None:
            with self._lock:
                if self._copies_version != version:
                    self._copies, self._copies_version = {}, version
                if key in self._copies or len(self._copies) < self.max_keys:
                    self._copies[key] = (time.monotonic(), body)
        return body

    # ---- following the counter ---------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, daemon=True, name="veo-listing")
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """The thread is a daemon blocked in at most one long poll: not worth waiting for."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _follow(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                client = self.resolve()
                ask = getattr(client, "containers_version", None)
                if ask is None:
                    return  # a client without the counter: every request asks it
                version = ask(self.version, self.wait)
                backoff = 0.5
            except Exception as e:  # no Scheduler (yet, or restarting): no copies meanwhile
                if self.version is not None:
                    log.warning("listing: lost the Scheduler's change counter: %s", e)
                self.version = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            self.version = version
