"""The agent's side of fencing (see veo.node.fence), called from one hook at the top of
``NodeAgent.converge``.

Each converge it caches ``settings.disconnect.stop_after`` for the node process and, once the
machine is back in the cluster, takes what the node process stopped while it was cut off:
one ``fenced`` event per container (delivered to the Scheduler before the list is cleared: at
least once), and a start for each one that is still the desired generation on this node (nothing
replaced it: its stop was only a precaution). Stale ones are left
to the converge that follows, which removes every generation the Scheduler no longer wants.
"""

from __future__ import annotations

import logging
from typing import Callable

from veo.core.converge import identity
from veo.core.models import Event, EventKind, Settings
from veo.core.names import LABEL_GROUP, LABEL_NODE
from veo.adapters import handoff

log = logging.getLogger("veo.rejoin")


def on_converge(runtime, node: str, desired, settings: Settings,
                deliver: Callable[[list[Event]], None] | None = None) -> list[Event]:
    """Blocking (run it in a thread). ``desired``: this node's assignments (``.key``,
    ``.generation``). ``deliver`` hands the events to the Scheduler and raises when it cannot;
    the node process's list is cleared only after that, so a rejoin cut short (the Ray node
    dying again) reports them on the next one. Returns the events delivered."""
    directory = handoff.node_dir()
    if directory is None:  # a plain `ray start` machine: no node process, nothing to hand over
        return []
    handoff.save_stop_after(directory, settings.disconnect.stop_after)
    entries = [e for e in handoff.peek_fenced(directory) if e.get("labels", {}).get(LABEL_NODE) == node]
    if not entries:
        return []
    wanted = {(a.key, a.generation) for a in desired}
    events = []
    for entry in entries:
        ident = identity(_Labels(entry["labels"]))
        current = ident is not None and ident in wanted
        if current:
            try:
                runtime.start(entry["id"])  # a no-op when it runs already (a repeated hand-over)
            except Exception as e:  # gone or refused: the converge after this re-creates it
                log.warning("could not restart fenced container %s: %s", entry.get("name"), e)
        events.append(_event(entry, node, ident, current))
    try:
        (deliver or _to_scheduler)(events)
    except Exception as e:  # the Scheduler restarting: keep the list, the next converge retries
        log.warning("could not report %d fenced container(s) yet: %s", len(events), e)
        return []
    handoff.drop_fenced(directory, len(entries))
    return events


def cut_off() -> bool:
    """This machine's node process is fencing it: a death is not restarted here (the work runs
    elsewhere by now; a rejoin restarts what is still this node's)."""
    directory = handoff.node_dir()
    return directory is not None and handoff.fencing(directory)


def _to_scheduler(events: list[Event]) -> None:
    import ray

    from veo.core.names import ACTOR_NAMESPACE, SCHEDULER_NAME

    scheduler = ray.get_actor(SCHEDULER_NAME, namespace=ACTOR_NAMESPACE)
    ray.get(scheduler.record.remote(events), timeout=30)


class _Labels:
    def __init__(self, labels: dict):
        self.labels = labels


def _event(entry: dict, node: str, ident, current: bool) -> Event:
    key, gen = ident if ident else (None, None)
    service, _, instance = (key or "").rpartition("#")
    then = "started again (still its own)" if current else "a newer generation runs elsewhere"
    return Event(kind=EventKind.fenced, node=node, container_id=entry.get("id"),
                 service=service or None, instance=int(instance) if instance else None,
                 group=entry["labels"].get(LABEL_GROUP), generation=gen,
                 reason=f"{entry.get('reason', 'stopped while cut off')}; back: {then}")
