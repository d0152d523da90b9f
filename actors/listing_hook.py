"""HOOK(listing): the Scheduler's change counter, which lets a reader (``veo serve``) keep a copy of
the container list and know the moment it may be out of date, without asking per request.

The Scheduler bumps it on every commit: each recorded event, each change of the desired state, and
each control-loop step (which is when agents' reports land). So the counter may move when nothing a
reader shows changed (a copy is rebuilt needlessly, about once a tick), never the other way round.
It starts at the clock in nanoseconds, so a restarted Scheduler's counter never repeats an earlier
one's value a reader may still hold.
"""

from __future__ import annotations

import asyncio
import time


class ChangeCounter:
    def __init__(self) -> None:
        self.value = time.time_ns()
        self._changed = asyncio.Event()

    def bump(self) -> None:
        self.value += 1
        self._changed.set()  # wakes every waiter of this value; later ones wait on a fresh event
        self._changed = asyncio.Event()

    async def wait(self, since: int | None, timeout: float) -> int:
        """The counter, once it differs from ``since`` or after ``timeout`` seconds."""
        if since is None or since != self.value or timeout <= 0:
            return self.value
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self.value
