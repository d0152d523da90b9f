"""Naming one instance the way a user does: a container id, a unique prefix of it, or an instance
ref (``web#0``; ``web:0`` is accepted too). Pure: the front doors (REST, websocket, CLI) resolve
refs here, so one ref means the same everywhere.
"""

from __future__ import annotations

from typing import Iterable

from veo.core.errors import Conflict, NotFound
from veo.core.names import instance_key, parse_instance_ref
from veo.core.records import Instance


def canonical(ref: str) -> str:
    """An instance ref in its one spelling (``web:0`` -> ``web#0``); anything else as it is."""
    parsed = parse_instance_ref(ref)
    return instance_key(*parsed) if parsed else ref


def matches(ref: str, service: str | None, instance: int | None,
            container_id: str | None) -> bool:
    """Whether ``ref`` names this (service, instance, container): an instance ref names the
    instance (also while it has no container), anything else is an id or a prefix of one."""
    parsed = parse_instance_ref(ref)
    if parsed is not None:
        return (service, instance) == parsed
    return bool(container_id) and bool(ref) and container_id.startswith(ref)


def resolve(instances: Iterable[Instance], ref: str) -> Instance:
    """The instance ``ref`` names; NotFound, or Conflict for an id prefix that names several."""
    instances = list(instances)
    parsed = parse_instance_ref(ref)
    if parsed is not None:
        for inst in instances:
            if (inst.service, inst.instance) == parsed:
                return inst
        raise NotFound(f"no instance {instance_key(*parsed)}")
    exact = [i for i in instances if i.container_id == ref]
    if exact:
        return exact[0]
    found = [i for i in instances if matches(ref, i.service, i.instance, i.container_id)]
    if len(found) > 1:
        raise Conflict(f"container id prefix {ref!r} is ambiguous: "
                       + ", ".join(instance_key(i.service, i.instance) for i in found))
    if not found:
        raise NotFound(f"no container {ref!r}")
    return found[0]
