"""Versions, rolling updates and plans of the desired state. Pure.

``DesiredState`` (``veo.core.desired``) keeps the data — the versions of every service (last
``KEEP_VERSIONS``), the rolling updates in progress, the old slots a start-first update keeps
alive — and calls these functions; each takes the state and changes it in place, returning the
events to record.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Mapping

from veo.core.errors import Conflict, NotFound
from veo.core.models import (ClusterSpec, EventKind, Instance, InstanceStatus, Service,
                             UpdateOrder, UpdatePolicy)
from veo.core.names import service_of
from veo.core.reconcile import reconcile
from veo.core.update import RollingUpdate, UnitHealth, UpdateState

if TYPE_CHECKING:
    from veo.core.desired import DesiredState
    from veo.core.placement import NodeState

KEEP_VERSIONS = 10
Note = tuple[EventKind, str, str]  # (kind, service or target, reason)


def target_of(svc: Service) -> str:
    return f"group:{svc.group}" if svc.group else svc.name


def _members(st: DesiredState, target: str) -> list[Service]:
    return [s for s in st.services.values() if target_of(s) == target]


def _policy(members: list[Service]) -> UpdatePolicy:
    master = next((m for m in members if m.group_role and m.group_role.value == "master"), None)
    chosen = next((m.update for m in ([master] if master else []) + members if m.update), None)
    return chosen or UpdatePolicy()


# ---- versions --------------------------------------------------------------------------------------


def record_version(st: DesiredState, svc: Service, now: float) -> int:
    from veo.core.desired import dump_service

    versions = st.versions.setdefault(svc.name, [])
    for v in versions:
        if v["outcome"] == "current":
            v["outcome"] = "superseded"
    number = versions[-1]["number"] + 1 if versions else 1
    versions.append({"number": number, "hash": svc.spec_hash(), "spec": dump_service(svc),
                     "time": now, "outcome": "current"})
    del versions[:-KEEP_VERSIONS]
    st.touch("versions")
    return number


def _mark(st: DesiredState, service: str, number: int, outcome: str) -> None:
    for v in st.versions.get(service, []):
        if v["number"] == number:
            v["outcome"] = outcome
    st.touch("versions")


def specs_by_hash(st: DesiredState) -> dict[str, Service]:
    """Every kept version's spec, by spec hash: what a held (not yet updated) slot runs."""
    from veo.core.desired import load_service

    return {v["hash"]: load_service(v["spec"]) for vs in st.versions.values() for v in vs}


def _stable(st: DesiredState, service: str, before: int | None = None) -> dict | None:
    """The newest version whose instances were all healthy (before ``before``)."""
    for v in reversed(st.versions.get(service, [])):
        if (before is None or v["number"] < before) and v["outcome"] in ("stable", "superseded"):
            return v
    return None


# ---- starting and driving updates ---------------------------------------------------------------


def start_updates(st: DesiredState, changed: list[str], now: float) -> list[Note]:
    """After an apply: a rolling update for each target whose running units have an older spec."""
    notes: list[Note] = []
    for target in sorted({target_of(st.services[n]) for n in changed}):
        members = _members(st, target)
        hashes = {m.name: m.spec_hash() for m in members}
        units = sorted({s.unit for s in st.slots.values()
                        if s.service in hashes and s.spec_hash != hashes[s.service]})
        old = st.updates.get(target)
        if not units:
            st.updates.pop(target, None)
            continue
        policy = _policy(members)
        versions = {m.name: st.versions[m.name][-1]["number"] for m in members if m.name in st.versions}
        origin = old.from_version if old is not None and old.active else {
            m.name: (_stable(st, m.name, versions.get(m.name)) or {}).get("number", 0)
            for m in members}
        st.updates[target] = RollingUpdate(
            target=target, services=sorted(hashes), units=units, from_version=origin,
            to_version=versions, policy=policy, started=now,
            progress_deadline=now + policy.progress_deadline)
        notes.append((EventKind.update_started, target,
                      f"{len(units)} unit(s), {policy.parallel} at a time, {policy.order.value}"
                      + (f", {policy.canary} canary" if policy.canary else "")))
    st.touch("updates")
    return notes


def unit_health(st: DesiredState, update: RollingUpdate, views: Mapping[str, Instance],
                unit_members: Mapping[str, tuple[str, ...]]) -> dict[str, UnitHealth]:
    """How each unit the update let go is doing, from the agents' reports."""
    hashes = {n: st.services[n].spec_hash() for n in update.services if n in st.services}
    out: dict[str, UnitHealth] = {}
    for unit in update.in_flight:
        keys = unit_members.get(unit, ())
        slots = [st.slots.get(k) for k in keys]
        if not keys or any(s is None or s.spec_hash != hashes.get(s.service) for s in slots):
            out[unit] = UnitHealth.waiting  # not re-placed yet (pending counts: its deadline runs)
            continue
        vs = [views.get(k) for k in keys]
        if any(v is not None and v.status is InstanceStatus.failed for v in vs):
            out[unit] = UnitHealth.failed
        elif all(v is not None and v.status is InstanceStatus.running and v.generation == s.generation
                 and (v.health.value == "healthy" or st.services[s.service].healthcheck is None)
                 for v, s in zip(vs, slots)):
            out[unit] = UnitHealth.ready
        else:
            out[unit] = UnitHealth.waiting
    return out


def advance_updates(st: DesiredState, views: Mapping[str, Instance],
                    unit_members: Mapping[str, tuple[str, ...]], now: float) -> list[Note]:
    notes: list[Note] = []
    for target, up in list(st.updates.items()):
        if not up.active:
            continue
        before = up.allowed()
        events = up.advance(unit_health(st, up, views, unit_members), now)
        notes += [(kind, target, reason) for kind, reason in events]
        _retire(st, up, up.allowed() - before, unit_members)
        _release(st, up, unit_members)
        if up.state is UpdateState.rolled_back:
            notes += _revert(st, up)
        elif up.state is UpdateState.done:
            for service, number in up.to_version.items():
                _mark(st, service, number, "stable")
        st.touch("updates")
    return notes


def _retire(st: DesiredState, up: RollingUpdate, let_go: set[str], unit_members) -> None:
    """start-first: the old slots of the units just let go stay desired until replaced."""
    if up.policy.order is not UpdateOrder.start_first:
        return
    for unit in let_go:
        for key in unit_members.get(unit, ()):
            if key in st.slots and st.slots[key].outcome is None:
                st.retiring[key] = st.slots[key]
    st.touch("retiring")


def _release(st: DesiredState, up: RollingUpdate, unit_members) -> None:
    """Old slots whose replacement is done (or failed, or the update ended) stop being desired."""
    keep = set(up.in_flight) if up.active else set()
    for unit in set(up.units) - keep:
        for key in unit_members.get(unit, ()):
            if st.retiring.pop(key, None) is not None:
                st.touch("retiring")


def after_plan(st: DesiredState) -> list[Note]:
    """A start-first replacement that landed on its old node cannot run beside the old instance
    (one container per instance and node): that unit goes stop-first, and says so."""
    notes = []
    for key, old in list(st.retiring.items()):
        new = st.slots.get(key)
        if new is None or (new.node == old.node and new.generation != old.generation):
            del st.retiring[key]
            st.touch("retiring")
            if new is not None:
                notes.append((EventKind.update_paused, new.service,
                              f"{key}: start-first needs another node with room; stopped first"))
    return notes


def _revert(st: DesiredState, up: RollingUpdate) -> list[Note]:
    """Roll back at once to the versions the update replaced: only the units it replaced move
    back (the others still run those versions and are left alone)."""
    from veo.core.desired import load_service

    for service, number in up.to_version.items():
        _mark(st, service, number, "failed")
        old = next((v for v in st.versions.get(service, []) if v["number"] == up.from_version.get(service)),
                   None)
        if old is not None and service in st.services:
            st.services[service] = load_service(old["spec"])
            _mark(st, service, old["number"], "current")
    for key in [k for k in st.retiring if service_of(k) in up.services]:
        del st.retiring[key]
    st.touch("services", "retiring")
    return [(EventKind.rolled_back, up.target, f"rolled back: {up.reason}")]


def held_units(st: DesiredState) -> set[str]:
    return {u for up in st.updates.values() if up.active for u in up.held()}


# ---- operator commands ---------------------------------------------------------------------------


def control(st: DesiredState, target: str, action: str, now: float) -> list[Note]:
    """``veo update resume|promote|pause|rollback TARGET``."""
    up = st.updates.get(target)
    if up is None or not up.active:
        raise NotFound(f"no update in progress for {target!r}")
    if action in ("resume", "promote"):
        if action == "promote" and up.state is not UpdateState.canary:
            raise Conflict(f"the update of {target!r} is {up.state.value}, not waiting on canaries")
        up.resume(now)
        note = (EventKind.update_started, target, f"{action}d by the operator")
    elif action == "pause":
        up.state, up.reason = UpdateState.paused, "paused by the operator"
        note = (EventKind.update_paused, target, up.reason)
    elif action == "rollback":
        up.state, up.reason = UpdateState.rolled_back, "by the operator"
        st.touch("updates")
        return _revert(st, up)
    else:
        raise NotFound(f"no update action {action!r} (resume, promote, pause, rollback)")
    st.touch("updates")
    return [note]


def rollback_to(st: DesiredState, service: str, number: int | None) -> tuple[int, Service]:
    """``veo rollback SERVICE [--to N]``: the spec of version N (default: the last stable one
    before the current), applied as a new version."""
    from veo.core.desired import load_service

    if service not in st.services:
        raise NotFound(f"no service named {service!r}")
    versions = st.versions.get(service, [])
    current = next((v["number"] for v in reversed(versions) if v["outcome"] == "current"), None)
    if number is None:
        chosen = _stable(st, service, current)
    else:
        chosen = next((v for v in versions if v["number"] == number), None)
    if chosen is None:
        kept = ", ".join(str(v["number"]) for v in versions) or "none"
        raise NotFound(f"no version {number if number is not None else '(stable, older)'} "
                       f"of {service!r} to roll back to; kept versions: {kept}")
    return chosen["number"], load_service(chosen["spec"])


def history(st: DesiredState, service: str) -> list[dict]:
    if service not in st.services and service not in st.versions:
        raise NotFound(f"no service named {service!r}")
    return [{k: v[k] for k in ("number", "hash", "time", "outcome")} | {"spec": v["spec"]}
            for v in st.versions.get(service, [])]


# ---- plan ------------------------------------------------------------------------------------------


def plan(st: DesiredState, spec: ClusterSpec, nodes: list[NodeState]) -> dict:
    """What applying ``spec`` would change, without changing anything (like `nomad job plan`)."""
    from veo.core.desired import dump_service

    trial = copy.deepcopy(st)
    changes = trial.apply(spec, now=time.time())
    result = reconcile(trial.services, nodes, trial.slots, strategy=trial.settings.placement.value)
    services = {}
    for name in sorted(set(st.services) | set(spec.services)):
        old, new = st.services.get(name), spec.services.get(name)
        kind = next(k for k, v in changes.items() if name in v)
        entry: dict = {"change": kind}
        if old is not None and new is not None and kind == "changed":
            entry["diff"] = _diff(dump_service(old), dump_service(new))
            entry["change"] = "replaced" if old.spec_hash() != new.spec_hash() else "updated in place"
        moving = sorted(k for k, s in result.slots.items() if s.service == name and
                        (k not in st.slots or st.slots[k].generation != s.generation))
        gone = sorted(k for k in st.slots if service_of(k) == name and k not in result.slots)
        entry["instances"] = {"placed": moving, "removed": gone}
        pending = {u: r for u, r in result.pending.items()
                   if any(service_of(k) == name for k in result.unit_members.get(u, ()))}
        if pending:
            entry["problems"] = sorted(set(pending.values()))
        services[name] = entry
    changed = any(e["change"] != "unchanged" for e in services.values())
    return {"spec_index": st.spec_index, "changed": changed, "services": services}


def _diff(old: dict, new: dict, prefix: str = "") -> dict[str, list]:
    out: dict[str, list] = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(_diff(a, b, path + "."))
        elif a != b:
            out[path] = [a, b]
    return out
