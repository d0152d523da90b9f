"""compose's ``deploy:`` in veo's terms: replicas and global mode -> ``instances``, resource limits
and reservations, placement constraints -> ``hosts`` / ``roles``, the restart policy, and the
update/rollback settings (kept for rolling updates). What veo cannot honour is refused with the
reason or, when nothing a container does depends on it, a warning. Pure; part of
``veo.core.compose``, which calls ``deploy`` for each service.

Every value moved is recorded in ``doc.renamed``, so an error on ``instances`` points at the
``deploy.replicas`` the user wrote.
"""

from __future__ import annotations

import re
from typing import Any

from veo.core.yamldoc import Doc, UserPath


_DEPLOY_IGNORED = {
    "endpoint_mode": "Swarm's load-balancing mode; veo publishes ports per container",
    "labels": "Swarm service labels; container labels go in labels:",
}


def deploy(doc: Doc, path: UserPath, body: dict) -> dict:
    """``body`` with its ``deploy:`` mapping moved onto veo's fields."""
    given = body.pop("deploy")
    dpath = (*path, "deploy")
    out = dict(body)
    handlers = {"replicas": _replicas, "mode": _mode, "resources": _resources,
                "placement": _placement, "restart_policy": _restart_policy,
                "update_config": _update, "rollback_config": _rollback}
    for key, value in given.items():
        name = str(key)
        if name in handlers:
            handlers[name](doc, (*dpath, name), value, out, path)
        elif name in _DEPLOY_IGNORED:
            doc.ignored((*dpath, name), _DEPLOY_IGNORED[name])
        else:
            doc.add((*dpath, name), "unknown key; expected one of " + ", ".join(
                sorted((*handlers, *_DEPLOY_IGNORED))), key=True)
    return out


def _move(doc: Doc, out: dict, spath: UserPath, field: str, value: Any, where: UserPath) -> None:
    """Set ``out[field]`` from ``deploy`` (its error positions pointing at ``where``), unless the
    service already sets it."""
    if field in out:
        doc.add(where, f"give either {field}: or {'.'.join(where[len(spath):])}, not both",
                key=True)
        return
    out[field] = value
    doc.renamed[(*spath, field)] = where


def _replicas(doc: Doc, where: UserPath, value: Any, out: dict, spath: UserPath) -> None:
    field = "scale" if "scale" in out else "instances"
    if field == "scale" and out["scale"] != value:
        doc.add(where, f"scale: {out['scale']} and deploy.replicas: {value} disagree", key=True)
        return
    out.pop("scale", None)
    if out.get("instances") == "all":
        doc.add(where, "mode: global runs one per node; drop replicas", key=True)
        return
    _move(doc, out, spath, "instances", value, where)


def _mode(doc: Doc, where: UserPath, value: Any, out: dict, spath: UserPath) -> None:
    if value == "global":
        if "instances" in out or "scale" in out:
            doc.add(where, "mode: global runs one per node; drop replicas/scale", key=True)
            return
        _move(doc, out, spath, "instances", "all", where)
    elif value in ("replicated-job", "global-job"):
        doc.add(where, f"{value}: veo runs jobs as services with restart: on-failure "
                "(or restart: no); write that instead")
    elif value != "replicated":
        doc.add(where, f"expected replicated or global, got {value!r}")


def _resources(doc: Doc, where: UserPath, value: Any, out: dict, spath: UserPath) -> None:
    if not isinstance(value, dict):
        doc.add(where, "expected a mapping with limits: and reservations:")
        return
    fields = {"limits": {"cpus": "cpus", "memory": "memory", "pids": "pids_limit"},
              "reservations": {"cpus": "reserve_cpus", "memory": "reserve_memory"}}
    for kind, body in value.items():
        if str(kind) not in fields or not isinstance(body, dict):
            doc.add((*where, str(kind)), "expected limits: or reservations: (a mapping)", key=True)
            continue
        for key, amount in body.items():
            target = fields[str(kind)].get(str(key))
            at = (*where, str(kind), str(key))
            if target is None:
                doc.add(at, f"not supported: {key} (veo reads "
                        + ", ".join(fields[str(kind)]) + ")", key=True)
            else:
                _move(doc, out, spath, target, amount, at)


# compose's update_config -> veo's update: (veo field, how the value reads)
_UPDATE = {"parallelism": "parallel", "delay": "delay", "failure_action": "on_failure",
           "monitor": "min_healthy", "max_failure_ratio": "max_failure_ratio", "order": "order"}


def _update(doc: Doc, where: UserPath, value: Any, out: dict, spath: UserPath) -> None:
    """``update_config`` -> ``update:`` (veo's rolling updates), with compose's own defaults
    where they differ from veo's: on failure pause, no monitor period."""
    if not isinstance(value, dict):
        doc.add(where, "expected a mapping (parallelism, delay, failure_action, monitor, "
                       "max_failure_ratio, order)")
        return
    update: dict = {"on_failure": "pause", "min_healthy": 0}
    for key, v in value.items():
        name = str(key)
        if name not in _UPDATE:
            doc.add((*where, name), "unknown key; expected one of " + ", ".join(_UPDATE), key=True)
            continue
        # compose: parallelism 0 updates everything at once
        update[_UPDATE[name]] = 1_000_000 if name == "parallelism" and v == 0 else v
        doc.renamed[(*spath, "update", _UPDATE[name])] = (*where, name)
    _move(doc, out, spath, "update", update, where)


def _rollback(doc: Doc, where: UserPath, value: Any, out: dict, spath: UserPath) -> None:
    doc.ignored(where, "veo rolls a failed update back at once, and only the units it replaced "
                       "(see update.on_failure)")


_CONSTRAINT = re.compile(r"^\s*(node\.hostname|node\.role|node\.labels\.[^\s=!]+|node\.id|"
                         r"node\.platform\.\w+|engine\.labels\.[^\s=!]+)\s*(==|!=)\s*(.+?)\s*$")


def _placement(doc: Doc, where: UserPath, value: Any, out: dict, spath: UserPath) -> None:
    if not isinstance(value, dict):
        doc.add(where, "expected a mapping with constraints:")
        return
    for key, body in value.items():
        if key in ("preferences", "max_replicas_per_node"):
            doc.ignored((*where, str(key)), "veo spreads instances over nodes itself "
                        "(settings.placement: spread | binpack)")
        elif key != "constraints":
            doc.add((*where, str(key)), "unknown key; expected constraints, preferences or "
                    "max_replicas_per_node", key=True)
        elif not isinstance(body, list):
            doc.add((*where, "constraints"), "expected a list like ['node.role == db']")
        else:
            for i, text in enumerate(body):
                _constraint(doc, (*where, "constraints", str(i)), str(text), out, spath)


def _constraint(doc: Doc, where: UserPath, text: str, out: dict, spath: UserPath) -> None:
    m = _CONSTRAINT.match(text)
    if m is None:
        doc.add(where, f"expected 'node.hostname == NAME' or 'node.role == ROLE', got {text!r}")
        return
    attr, op, value = m.groups()
    field = {"node.hostname": "hosts", "node.role": "roles"}.get(attr)
    if field is None:
        doc.add(where, f"{attr}: veo nodes have a name (node.hostname) and a role (node.role), "
                "no labels or ids; constrain on those")
    elif op == "!=":
        doc.add(where, f"{attr} != …: veo lists the nodes a service may use; write "
                f"{attr} == … for each allowed one")
    elif field in out and doc.renamed.get((*spath, field)) is None:
        doc.add(where, f"give either {field}: or this constraint, not both")
    else:
        if (*spath, field) in doc.renamed and value not in out[field]:
            # two '==' constraints on one attribute: compose ANDs them, nothing matches both
            doc.add(where, f"{attr} cannot equal both {out[field][0]!r} and {value!r}")
            return
        out[field] = [value]
        doc.renamed[(*spath, field)] = where


_CONDITIONS = {"none": "no", "on-failure": "on-failure", "any": "always"}


def _restart_policy(doc: Doc, where: UserPath, value: Any, out: dict, spath: UserPath) -> None:
    if not isinstance(value, dict):
        doc.add(where, "expected a mapping with condition:, max_attempts:, delay:, window:")
        return
    for key, item in value.items():
        at = (*where, str(key))
        if key == "condition":
            if item not in _CONDITIONS:
                doc.add(at, f"expected none, on-failure or any, got {item!r}")
            else:
                _move(doc, out, spath, "restart", _CONDITIONS[item], at)
        elif key == "max_attempts":
            _move(doc, out, spath, "restart_count", item, at)
        elif key in ("delay", "window"):
            doc.ignored(at, "veo's restart back-off and budget are cluster-wide: "
                        "settings.backoff_initial and settings.budget_period")
        else:
            doc.add(at, "unknown key; expected condition, max_attempts, delay or window", key=True)
    if "condition" not in value:
        _move(doc, out, spath, "restart", "always", where)  # compose's default condition: any
