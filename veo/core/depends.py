"""``depends_on``: which services must wait before their first start, and why. Pure.

Compose orders the *first* start: a dependent is created once each dependency has started
(``service_started``), is healthy (``service_healthy``) or has exited 0
(``service_completed_successfully``). veo does the same across nodes: the Scheduler asks
``held_back`` before placement, leaves the services it names unplaced, and shows them ``pending``
with the reason ("waiting for db to be healthy"). A service that already has a slot is never held:
like compose, veo does not stop a running dependent when its dependency changes. Members of one
group start in declared order on one node, so a dependency inside the group is not waited for.

``check`` is the load-time half: unknown services, cycles, and ``service_healthy`` on a service
without a health check are errors at the ``depends_on`` line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from veo.core.models import Instance, InstanceStatus, Service
from veo.core.records import Health

_WAITING = {
    "service_started": "waiting for {dep} to start",
    "service_healthy": "waiting for {dep} to be healthy",
    "service_completed_successfully": "waiting for {dep} to complete successfully",
}


def held_back(services: Mapping[str, Service], placed: Iterable[str],
              views: Iterable[Instance]) -> dict[str, str]:
    """Services that may not be placed yet -> the reason. ``placed``: services that have at
    least one slot (never held); ``views``: the instances as the Scheduler sees them."""
    placed = set(placed)
    by_service: dict[str, list[Instance]] = {}
    for v in views:
        by_service.setdefault(v.service, []).append(v)
    held: dict[str, str] = {}
    for name, svc in services.items():
        if name in placed or not svc.depends_on:
            continue
        reason = waiting_reason(svc, services, by_service)
        if reason:
            held[name] = reason
    # a group is placed as one unit: one member waiting holds them all
    for name, reason in list(held.items()):
        group = services[name].group
        for other, svc in services.items():
            if group and svc.group == group and other not in held and other not in placed:
                held[other] = f"{name} is {reason}"
    return held


def waiting_reason(svc: Service, services: Mapping[str, Service],
                   views: Mapping[str, list[Instance]]) -> str | None:
    """Why ``svc`` cannot start yet, or None when every dependency is satisfied."""
    for dep, rule in svc.depends_on.items():
        other = services.get(dep)
        if other is not None and svc.group and other.group == svc.group:
            continue  # same unit: started in declared order on one node
        if other is None or other.instances == 0:
            if rule.required:
                return f"waiting for {dep}, which is not in the cluster"
            continue
        reason = _unmet(dep, rule.condition, views.get(dep, []))
        if reason:
            return reason
    return None


def _unmet(dep: str, condition: str, views: list[Instance]) -> str | None:
    if any(v.status is InstanceStatus.failed for v in views):
        return f"waiting for {dep}, which failed"
    if condition == "service_started":
        ok = any(v.status in (InstanceStatus.running, InstanceStatus.completed) for v in views)
    elif condition == "service_healthy":
        ok = bool(views) and all(v.status is InstanceStatus.running and v.health is Health.healthy
                                 for v in views)
    else:
        ok = bool(views) and all(v.status is InstanceStatus.completed and v.exit_code == 0
                                 for v in views)
        if any(v.status is InstanceStatus.completed and v.exit_code not in (0, None) for v in views):
            return f"waiting for {dep}, which exited with an error"
    return None if ok else _WAITING[condition].format(dep=dep)


def check(services: Mapping[str, Service]) -> list[tuple[tuple[str, ...], str]]:
    """Load-time problems of ``depends_on``, as (path, message) pairs."""
    out: list[tuple[tuple[str, ...], str]] = []
    for name, svc in services.items():
        for dep, rule in svc.depends_on.items():
            path = ("services", name, "depends_on", dep)
            other = services.get(dep)
            if dep == name:
                out.append((path, "a service cannot depend on itself"))
            elif other is None and rule.required:
                out.append((path, f"no service {dep!r} in this file (write required: false if "
                                  "it may be absent)"))
            elif other is not None and rule.condition == "service_healthy" and \
                    (other.healthcheck is None or other.healthcheck.test[0] == "NONE"):
                out.append((path, f"service_healthy needs a healthcheck on {dep}, which has none"))
    cycle = _cycle(services)
    if cycle:
        out.append((("services", cycle[0], "depends_on"),
                    "services depend on each other in a circle: " + " -> ".join(cycle)))
    return out


def _cycle(services: Mapping[str, Service]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for dep in services[name].depends_on:
            if dep not in services or dep == name:  # a self-dependency is reported on its own
                continue
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep] if dep in path else [name, dep]
            if dep not in state:
                found = visit(dep, [*path, dep])
                if found:
                    return found
        state[name] = 2
        return None

    for name in services:
        if name not in state:
            found = visit(name, [name])
            if found:
                return found
    return None


def show_held(result, services: Mapping[str, Service], held: Mapping[str, str],
              nodes) -> None:
    """Add the held services to a reconcile ``result`` as pending units with their reasons, so
    views and events show them (they were left out of placement)."""
    from veo.core.names import instance_key
    from veo.core.placement import units_for

    sub = {name: services[name] for name in held}
    for unit in units_for(sub, nodes):
        keys = tuple(instance_key(m, unit.copy) for m in unit.members)
        result.unit_members[unit.key] = keys
        result.pending[unit.key] = held[unit.members[0]]
