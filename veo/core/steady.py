"""What keeps a control-loop step cheap when nothing changed. Pure (no ray, no docker).

The Scheduler's step is membership -> reports -> plan -> push. Left alone, each step re-plans
every service, rebuilds and sends every node its full desired list and asks every node for a full
report, so its cost grows with what *exists*. These pieces make it grow with what *changed*:

* ``PlanGate``: a step whose plan inputs equal the last plan's (the desired state's
  ``placement_version``, the nodes as placement sees them, due task runs, held services) does no
  placement work. Time-driven work (a rolling update's deadlines) forces the plan.
* ``DesiredLists`` rebuilds, after a plan, only the lists of the nodes whose slots changed (the
  slots an incremental plan touched, else one pass of identity checks over the slots;
  ``reconcile.assignments_by_node`` for those nodes).
* ``PushBook`` keeps, per node, the version of its desired list: a node whose list changed gets it
  in full; the others get only the version, a few at a time (``SYNC_BUDGET`` per step), to re-check
  their engine against the list they hold (orphans, containers removed by hand).
* ``pick_reports``: reports are asked of nodes that sent events since their last report, and of
  a bounded number of others whose report is oldest; an agent with nothing new answers None.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from veo.core.models import Service
from veo.core.names import service_of
from veo.core.reconcile import Assignment, Slot, assignments_by_node

SYNC_BUDGET = 100  # nodes re-checked (version only) or asked for a report per step, at most
MIN_STEP_INTERVAL = 0.1  # seconds between two steps, however many events wake the loop


class PlanGate:
    """Plan when the plan's inputs changed, not every step."""

    def __init__(self) -> None:
        self.key: Any = object()  # the inputs as the last plan left them
        self.skipped = 0
        self.planned = 0

    def due(self, key: Any, force: bool = False) -> bool:
        if force or key != self.key:
            self.planned += 1
            return True
        self.skipped += 1
        return False

    def settle(self, key: Any) -> None:
        """The inputs after the plan (its own writes included): the next step compares to them."""
        self.key = key


@dataclass
class NodePush:
    content: Any = None  # what the node should hold (its list and the cluster-wide arguments)
    version: int = 0
    sent: int = -1  # the version the node was last sent in full (-1: never)
    synced_at: float = float("-inf")  # when it last converged (full or by version)


@dataclass
class PushBook:
    nodes: dict[str, NodePush] = field(default_factory=dict)

    def update(self, contents: Mapping[str, Any]) -> None:
        """New desired contents per node (after a plan); a version grows only where it changed."""
        for name, content in contents.items():
            rec = self.nodes.setdefault(name, NodePush())
            if rec.version == 0 or rec.content != content:
                rec.content, rec.version = content, rec.version + 1

    def due(self, live: Iterable[str], now: float, period: float,
            budget: int = SYNC_BUDGET) -> tuple[list[str], list[str]]:
        """(nodes to send their list in full, nodes to re-check by version): every node whose
        version it has not been sent, and at most ``budget`` others not synced for ``period``,
        oldest first."""
        full, stale = [], []
        for name in live:
            rec = self.nodes.get(name)
            if rec is None:
                continue
            if rec.sent != rec.version:
                full.append(name)
            elif now - rec.synced_at >= period:
                stale.append(name)
        if len(stale) > budget:
            stale.sort(key=lambda n: self.nodes[n].synced_at)
            stale = stale[:budget]
        return full, stale

    def sent(self, name: str, version: int, now: float) -> None:
        rec = self.nodes[name]
        rec.sent, rec.synced_at = version, now

    def lost(self, name: str) -> None:
        """The node does not hold its version (agent restarted, call failed): full next time."""
        if name in self.nodes:
            self.nodes[name].sent = -1


def pick_reports(live: Iterable[str], with_news: set[str], reported_at: Mapping[str, float],
                 now: float, period: float, budget: int = SYNC_BUDGET) -> list[str]:
    """Nodes to ask for a report: those with news (events, or no report yet), and at most
    ``budget`` others whose report is older than ``period``, oldest first."""
    ask, stale = [], []
    for name in live:
        at = reported_at.get(name)
        if at is None or name in with_news:
            ask.append(name)
        elif now - at >= period:
            stale.append(name)
    if len(stale) > budget:
        stale.sort(key=lambda n: reported_at[n])
        stale = stale[:budget]
    return ask + stale


class DesiredLists:
    """Every node's desired list, rebuilt after a plan only for the nodes whose slots changed.

    A plan keeps the ``Slot`` objects of what did not move, so a pass of identity checks over the
    slots (cheap) finds the nodes to rebuild; equal-but-new slots are compared by value. Restart
    counts are not part of the lists (they move without a plan): the Scheduler adds the current
    ones when it sends a list. What every list reads (``args``: the cluster-wide converge
    arguments, kept spec versions, start-first slots) changing rebuilds them all."""

    def __init__(self) -> None:
        self.prev: dict[str, Slot] = {}
        self.by_node: dict[str, dict[str, Slot]] = {}
        self.services: Mapping[str, Service] = {}
        self.unit_members: Mapping[str, tuple[str, ...]] = {}
        self.args: Any = None
        self.specs: Mapping[str, Service] = {}
        self.retiring: Mapping[str, Slot] = {}
        # the slot keys incremental plans may have changed since the last call, every slot of a
        # service whose definition changed among them (None: not known, compare every slot);
        # without any hint since the last call, every slot is compared too
        self.touched: set[str] | None = None
        self.hinted = False
        self.built: dict[str, list[Assignment]] = {}  # node -> its list, until it changes

    def hint(self, keys: set[str] | None) -> None:
        """A plan ran: the slot keys it may have changed (``result.touched``,
        veo.core.incremental), accumulated until the next call."""
        if not self.hinted:
            self.touched, self.hinted = (None if keys is None else set(keys)), True
        elif keys is None or self.touched is None:
            self.touched = None
        else:
            self.touched |= keys

    def changed_nodes(self, slots: Mapping[str, Slot], services: Mapping[str, Service],
                      unit_members: Mapping[str, tuple[str, ...]], args: Any,
                      specs: Mapping[str, Service], retiring: Mapping[str, Slot]) -> set[str] | None:
        """The nodes whose list differs since the last call; None: every node's may. With a
        hint, only the touched slots are compared (a unit's members change only with its
        service's slots touched)."""
        touched = self.touched if self.hinted else None
        self.touched, self.hinted = None, False
        # what every list reads; the cluster-wide ``args`` are not part of the lists: when only
        # they change every node's content does, but no list needs building again
        rebuild_all = (retiring != self.retiring or not self.prev and not self.by_node
                       or touched is None and (unit_members != self.unit_members
                                               or specs != self.specs))
        if rebuild_all or touched is None:
            dirty = self._changed_services(services) if not rebuild_all else set()
            self._compare(slots, slots.keys() | self.prev.keys(), dirty)
            self.prev = dict(slots)
        else:  # only the touched slots, and their services' definitions and units
            dirty = self._redefined(touched, slots, services, unit_members)
            if specs != self.specs:  # an update started or ended: one pass over the slots
                dirty |= _held_nodes(slots, services)
            self._compare(slots, touched, dirty)
        dirty |= {s.node for s in retiring.values()}
        if rebuild_all:
            self.built.clear()
        for node in dirty:
            self.built.pop(node, None)
        everything = rebuild_all or args != self.args
        # a copy: the state changes its services in place (add_service), and they are compared
        self.services, self.unit_members = dict(services), unit_members
        self.args, self.specs, self.retiring = args, specs, dict(retiring)
        return None if everything else dirty

    def _compare(self, slots: Mapping[str, Slot], keys: Iterable[str], dirty: set[str]) -> None:
        prev, by_node = self.prev, self.by_node
        for key in keys:
            old, slot = prev.get(key), slots.get(key)
            if old is slot or old == slot:
                continue
            if old is not None:
                dirty.add(old.node)
                by_node.get(old.node, {}).pop(key, None)
            if slot is None:  # no longer desired anywhere
                prev.pop(key, None)
            else:
                prev[key] = slot
                dirty.add(slot.node)
                by_node.setdefault(slot.node, {})[key] = slot

    def _redefined(self, touched: set[str], slots: Mapping[str, Slot], services: Mapping[str, Service],
                   unit_members: Mapping[str, tuple[str, ...]]) -> set[str]:
        """Nodes of touched slots whose list entry changed with their slot left as it was: their
        unit's members, or the definition of a service among them (its spec, the group's policy;
        a slot a rolling update holds keeps its place)."""
        names = {service_of(k) for k in touched}
        names = {n for n in names if services.get(n) != self.services.get(n)}
        out: set[str] = set()
        for k in touched:
            for s in (self.prev.get(k), slots.get(k)):
                if s is None or s.node in out:
                    continue
                now, was = unit_members.get(s.unit, (k,)), self.unit_members.get(s.unit, (k,))
                if now != was or names and any(service_of(m) in names for m in (k, *now, *was)):
                    out.add(s.node)
        return out

    def _changed_services(self, services: Mapping[str, Service]) -> set[str]:
        """Nodes holding a service whose definition changed without its slots changing."""
        names = {n for n in set(services) | set(self.services)
                 if services.get(n) != self.services.get(n)}
        if not names:
            return set()
        return {s.node for s in self.prev.values() if s.service in names}

    def nodes(self) -> set[str]:
        return set(self.by_node) | {s.node for s in self.retiring.values()}

    def lists(self, nodes: Iterable[str]) -> dict[str, list[Assignment]]:
        """The lists of ``nodes`` (after ``changed_nodes``): built again only where they changed."""
        out, built = {}, self.built
        hashes: dict[str, str] = {}  # spec hashes, shared by every list built in this call
        for node in nodes:
            if node not in built:
                retiring = {k: s for k, s in self.retiring.items() if s.node == node}
                built[node] = assignments_by_node(
                    self.by_node.get(node, {}), self.services, self.unit_members,
                    specs=self.specs, retiring=retiring, hashes=hashes).get(node, [])
            out[node] = built[node]
        return out


def _held_nodes(slots: Mapping[str, Slot], services: Mapping[str, Service]) -> set[str]:
    """Nodes of slots on an older spec than their service's (their entries read the kept specs):
    held by a rolling update, or kept on a lost node ("instances: all", a pending unit)."""
    hashes: dict[str, str] = {}
    out = set()
    for s in slots.values():
        h = hashes.get(s.service)
        if h is None:
            svc = services.get(s.service)
            h = hashes[s.service] = svc.spec_hash() if svc is not None else ""
        if h and s.spec_hash != h:
            out.add(s.node)
    return out


@dataclass
class Steady:
    """The Scheduler's bookkeeping for cheap steady steps (one value, one hook)."""

    gate: PlanGate = field(default_factory=PlanGate)
    book: PushBook = field(default_factory=PushBook)
    lists: DesiredLists = field(default_factory=DesiredLists)
    reported_at: dict[str, float] = field(default_factory=dict)
    seen_index: int = 0  # the last event index looked at for news
    built: int = -1  # gate.planned when the desired lists were last built
    clock: Callable[[], float] = time.monotonic  # a simulation passes its own
    last_step: float = float("-inf")
    last_membership: float = float("-inf")

    def pace_delay(self) -> float:
        """How long to wait before this step: steps woken by events (every start during a deploy
        wakes the loop) come at most every ``MIN_STEP_INTERVAL``, so the control plane's CPU does
        not grow with the engine's event rate on a node whose cores the engine needs."""
        now = self.clock()
        delay = max(0.0, self.last_step + MIN_STEP_INTERVAL - now)
        self.last_step = now + delay
        return delay

    def membership_due(self, tick: float) -> bool:
        """Ray membership (a GCS call listing every node) once per tick, not on every event."""
        now = self.clock()
        if now - self.last_membership < tick:
            return False
        self.last_membership = now
        return True

    def nodes_with_news(self, events) -> set[str]:
        """Nodes that sent events since the last call (``events``: oldest first, indexed)."""
        news: set[str] = set()
        newest = self.seen_index
        for ev in reversed(events):
            if ev.index is None or ev.index <= self.seen_index:
                break
            newest = max(newest, ev.index)
            if ev.node:
                news.add(ev.node)
        self.seen_index = newest
        return news
