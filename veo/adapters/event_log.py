"""The event log in the state store: the last ``keep`` events survive a Scheduler restart.

Rows ``event/<index, 12 digits>`` (so key order is index order) and one row ``meta/events``
holding the first and last index kept. ``append`` stores a batch, moves the meta row and deletes
the rows that fell out of the window, all in one atomic write: a batch costs O(its size), never
O(what is kept). Indexes are contiguous from ``first`` to ``last``, so ``recent`` needs no reverse
scan.
"""

from __future__ import annotations

from veo.adapters.store import Store
from veo.core.records import Event

PREFIX = "event/"
META = "meta/events"
KEEP = 10_000


def event_key(index: int) -> str:
    return f"{PREFIX}{index:012d}"


class EventLog:
    def __init__(self, store: Store, keep: int = KEEP) -> None:
        if keep < 1:
            raise ValueError("an event log keeps at least one event")
        self.store, self.keep = store, keep
        meta = store.get(META) or {}
        self._first, self._last = int(meta.get("first", 1)), int(meta.get("last", 0))

    def last_index(self) -> int:
        """The index of the last event appended (0: none yet)."""
        return self._last

    def append(self, events: list[Event]) -> None:
        """Store ``events``, whose indexes the caller set, following ``last_index()`` one by one."""
        if not events:
            return
        expected = range(self._last + 1, self._last + 1 + len(events))
        if [e.index for e in events] != list(expected):
            raise ValueError(f"event indexes must continue from {self._last}: got "
                             f"{events[0].index}..{events[-1].index}")
        last = events[-1].index
        first = max(self._first, last - self.keep + 1)
        puts = {event_key(e.index): e.model_dump(mode="json") for e in events if e.index >= first}
        # rows of earlier batches that fall out of the window (kept ones are never rewritten)
        gone = [event_key(i) for i in range(self._first, min(first, self._last + 1))]
        puts[META] = {"first": first, "last": last}
        self.store.write(puts, gone)
        self._first, self._last = first, last

    def since(self, index: int, limit: int = 1000) -> list[Event]:
        """Events with index > ``index``, oldest first, at most ``limit``."""
        rows = self.store.scan(PREFIX, start=event_key(max(index + 1, 0)), limit=limit)
        return [Event.model_validate(v) for v in rows.values()]

    def recent(self, limit: int = 1000) -> list[Event]:
        """The last ``limit`` events, oldest first."""
        return self.since(max(self._last - limit, self._first - 1), limit)

    def skip_to(self, index: int) -> None:
        """Continue after ``index`` (a store written before events persisted kept only a counter):
        later appends start at ``index + 1``."""
        if index > self._last:
            self.store.write({META: {"first": index + 1, "last": index}},
                             [event_key(i) for i in range(self._first, self._last + 1)])
            self._first, self._last = index + 1, index
