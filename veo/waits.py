"""What every cluster client shares, whatever carries its calls (Ray, or HTTP to ``veo serve``):
when a deployment counts as settled, waiting for it, and reading a growing log tail."""

from __future__ import annotations

import time
from typing import Callable, Iterator

from veo.core.errors import VeoError
from veo.core.models import Event, Instance, InstanceStatus


def settled(instances: list[Instance]) -> bool:
    """Every instance running, ended, or pending with a reason: what ``veo up`` waits for."""
    done = {InstanceStatus.running, InstanceStatus.completed, InstanceStatus.failed}
    return all(i.status in done or (i.status is InstanceStatus.pending and i.reason)
               for i in instances)


def tail_growth(old: str, new: str) -> str:
    """What a re-read log tail adds to the previous read (``logs --follow`` polls the tail)."""
    if new.startswith(old):
        return new[len(old):]
    overlap = old[-2000:]
    at = new.rfind(overlap) if overlap else -1
    return new[at + len(overlap):] if at >= 0 else new


LONG_POLL_S = 1.0  # a wait re-reads at least this often, even with no change signalled
MIN_READ_S = 0.1  # and at most this often (a deploy moves the counter with every event)


class Waits:
    """``wait`` and ``events`` for a client class that has ``containers()``, ``services()``,
    ``nodes()`` and ``events_batch()``, whatever carries its calls."""

    def events(self, since: int | None = None, follow: bool = False,
               poll: float = 10.0) -> Iterator[Event]:
        """Events after index ``since`` (recent ones when None); with follow, waits for more."""
        batch = self.events_batch(since)
        while True:
            for ev in batch:
                since = ev.index
                yield ev
            if not follow:
                return
            batch = self.events_batch(since, 1000, poll)

    def _needed(self, service: str | None) -> set[str]:
        """Services that must have instances before a wait can be over ('instances: all' ones
        may rightly have none: no eligible node)."""
        return {s.name for s in self.services()
                if s.instances != "all" and (service is None or s.name == service)}

    def _nodes_reported(self) -> bool:
        """Every live node has reported its capacity (so 'pending' reasons are real ones)."""
        live = [n for n in self.nodes() if n.alive]
        return bool(live) and all(n.cpus_total > 0 or n.memory_total > 0 for n in live)

    def wait(self, predicate: Callable[[list[Instance]], bool] = settled, timeout: float = 120.0,
             service: str | None = None, interval: float = 0.25) -> list[Instance]:
        """Read the instances until ``predicate`` holds; returns them. Raises VeoError on timeout.
        A client with ``containers_version`` reads again the moment the Scheduler's change
        counter moves (a long poll, at most ``LONG_POLL_S`` each); others every ``interval``."""
        deadline = time.monotonic() + timeout
        follow = getattr(self, "containers_version", None)
        while True:
            # the counter before the read: a change after it ends the next long poll at once
            version = follow() if follow else None
            read_at = time.monotonic()
            instances = self.containers(service)
            # the local test first: the Ray calls only once it holds. Every service shows up
            # once planned (a cluster with none is settled at once)
            if predicate(instances) and self._needed(service) <= {i.service for i in instances} \
                    and self._nodes_reported():
                return instances
            left = deadline - time.monotonic()
            if left < 0:
                states = ", ".join(f"{i.service}#{i.instance}={i.status.value}" for i in instances)
                raise VeoError(f"not settled after {timeout:g}s: {states or 'no instances'}")
            if follow:
                follow(version, min(LONG_POLL_S, max(left, 0.01)))
                time.sleep(max(0.0, read_at + MIN_READ_S - time.monotonic()))
            else:
                time.sleep(interval)
