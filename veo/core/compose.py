"""What a compose file means, in veo's terms: the steps between the YAML and the model that only a
compose file needs. Pure apart from reading the files a compose file names (``env_file:``,
secrets' and configs' ``file:``).

* ``x-veo:`` carries veo's own top-level keys (``policy``, ``name``, ``nodes``, ``settings``) in a
  place the compose schema allows, so one file serves both tools;
* defaults: a file with no veo-only key is a compose file and gets compose's (Docker's) defaults —
  ``restart: no``, health checks every 30 s with a 30 s timeout, an unhealthy container left
  running (``on_unhealthy: leave``); a cluster.yml keeps veo's
  (``x-veo: {defaults: veo | compose}`` chooses explicitly);
* ``environment:``: a bare ``KEY`` takes KEY from the command's environment, or leaves it unset;
  ``env_file:`` is read relative to the file, each file overriding the one before and
  ``environment:`` overriding them all;
* ``deploy:`` maps onto veo's fields (``veo.core.compose_deploy``);
* ``networks:`` become each service's networks with their definitions (a compose file's services
  join its ``default`` network), ``secrets:``/``configs:`` files with their content, declared
  volumes the engine's ``<project>_<key>``, so the node that runs a service needs nothing else;
* after validation: relative bind mounts resolved against the file's folder, ``network_mode:
  service:NAME`` checked against the groups, ``depends_on`` checked (``veo.core.depends``).

Every value it moves is recorded in ``doc.renamed``, so an error on ``instances`` still points at
the ``deploy.replicas`` the user wrote.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from veo.core import depends
from veo.core.compose_deploy import deploy
from veo.core.interpolate import DotenvError, parse_dotenv
from veo.core.models import expand_ports
from veo.core.yamldoc import Doc, UserPath

# top-level keys only a cluster.yml has; service keys compose does not know
_VEO_TOP = ("nodes", "settings", "policy")
_VEO_SERVICE = frozenset({"group", "group_role", "group_policy", "on_unhealthy", "instances",
                          "roles", "hosts", "restart_count", "restart_on_success", "disk",
                          "memory", "auto_remove", "pid_mode"})
_X_VEO_KEYS = ("name", "nodes", "settings", "policy")

# Docker's own defaults, which compose leaves in place
COMPOSE_HEALTH_DEFAULTS = {"interval": "30s", "timeout": "30s"}
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def normalise(doc: Doc, data: dict, *, defaults: str | None = None) -> dict:
    """The top-level mapping with compose's meaning made explicit in veo's keys."""
    # decided on the file as written: keys under x-veo leave it a compose file
    flavour = defaults or _flavour(data)
    data = _x_veo(doc, data)
    if isinstance(data.get("name"), str) and "_" in data["name"] and _PROJECT_NAME.match(data["name"]):
        new = data["name"].replace("_", "-")
        doc.add(("name",), f"veo separates the parts of container names with '_'; the "
                f"project {data['name']!r} runs as cluster {new!r}", warning=True)
        data = {**data, "name": new}
    services = data.get("services")
    if isinstance(services, dict):
        data = {**data, "services": {
            key: _service(doc, ("services", str(key)), body, flavour) if isinstance(body, dict)
            else body for key, body in services.items()}}
        data = _networks(doc, data, flavour)
        data = _secrets(doc, data)
    return data


def _x_veo(doc: Doc, data: dict) -> dict:
    ext = data.get("x-veo")
    if ext is None:
        return data
    if not isinstance(ext, dict):
        doc.add(("x-veo",), "expected a mapping with policy:, name:, nodes:, settings: or "
                "defaults:")
        return data
    out = dict(data)
    for key, value in ext.items():
        if key == "defaults":
            continue
        if key not in _X_VEO_KEYS:
            doc.add(("x-veo", str(key)), "unknown key; expected one of "
                    + ", ".join((*_X_VEO_KEYS, "defaults")), key=True)
        elif key in data and not (key == "name" and data[key] == value):
            doc.add(("x-veo", str(key)), f"given both here and at the top level; keep one",
                    key=True)
        else:
            out[key] = value
            doc.renamed[(key,)] = ("x-veo", key)
    return out


def _flavour(data: dict) -> str:
    ext = data.get("x-veo")
    if isinstance(ext, dict) and ext.get("defaults") in ("veo", "compose"):
        return ext["defaults"]
    if any(k in data for k in _VEO_TOP):
        return "veo"
    services = data.get("services")
    if isinstance(services, dict) and any(
            isinstance(b, dict) and _VEO_SERVICE & set(map(str, b)) for b in services.values()):
        return "veo"
    return "compose"


# what a service without an image has instead -> why veo refuses it
_NO_IMAGE = {
    "build": "veo runs prebuilt images: build this one (docker build -t NAME …), load it on the "
             "nodes, and give image: NAME",
    "extends": "veo reads one file and does not support extends: copy the base service's keys "
               "into this one",
    "provider": "provider services are not supported by veo",
}


def _service(doc: Doc, path: UserPath, body: dict, flavour: str) -> dict:
    body = dict(body)
    for key, why in _NO_IMAGE.items():
        if key in body and not body.get("image"):
            doc.add((*path, key), why, key=True)
            body["image"] = "unbuilt"  # the one problem above, not a second 'missing image'
            del body[key]
            break
    env = doc.env if doc.env is not None else {}
    if "environment" in body or "env_file" in body:
        body["environment"] = _environment(doc, path, body, env)
        body.pop("env_file", None)
    if isinstance(body.get("deploy"), dict):
        body = deploy(doc, path, body)
    if isinstance(body.get("ports"), list):
        body["ports"] = _port_ranges(doc, (*path, "ports"), body["ports"])
    if isinstance(body.get("depends_on"), list):  # [db, cache]: a problem with db is at its item
        for i, dep in enumerate(body["depends_on"]):
            doc.renamed[(*path, "depends_on", str(dep))] = (*path, "depends_on", str(i))
    if flavour == "compose":
        body.setdefault("restart", "no")
        # compose files reach peers by service name: across nodes that is veo's DNS
        body.setdefault("discovery", True)
        health = body.get("healthcheck")
        if isinstance(health, dict):
            body["healthcheck"] = {**COMPOSE_HEALTH_DEFAULTS, **health}
        if health is not None:
            # Docker only reports 'unhealthy'; compose restarts nothing for it
            body.setdefault("on_unhealthy", "leave")
    return body


def _port_ranges(doc: Doc, path: UserPath, ports: list) -> list:
    """Container-port ranges split here rather than in the model, so that each port of a range
    (and every item after it) keeps the position of the item the user wrote."""
    out: list = []
    for i, item in enumerate(ports):
        for one in expand_ports([item]):
            if len(out) != i:
                doc.renamed[(*path, str(len(out)))] = (*path, str(i))
            out.append(one)
    return out


# --------------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------------

# per-service network settings veo does not apply
_NET_IGNORED = ("ipv4_address", "ipv6_address", "link_local_ips", "mac_address", "priority",
                "gw_priority", "driver_opts", "interface_name")


_NETDEF_IGNORED = {"ipam": "the engine chooses the subnet and addresses",
                   "enable_ipv4": "the engine's default (IPv4 on) applies"}


def _networks(doc: Doc, data: dict, flavour: str) -> dict:
    """Each service's networks with their definitions (engine name ``<project>_<key>``, as
    compose names them); in a compose file a service with neither ``networks`` nor
    ``network_mode`` joins the project's ``default`` network, as in compose."""
    top = data.get("networks")
    top = dict(top) if isinstance(top, dict) else {}
    for key, definition in list(top.items()):
        if isinstance(definition, dict) and set(definition) & set(_NETDEF_IGNORED):
            for extra in _NETDEF_IGNORED:
                if extra in definition:
                    doc.ignored(("networks", str(key), extra), _NETDEF_IGNORED[extra])
            top[key] = {k: v for k, v in definition.items() if k not in _NETDEF_IGNORED}
    project = data.get("name") if isinstance(data.get("name"), str) else "veo"
    services = dict(data["services"])
    for key, body in services.items():
        if not isinstance(body, dict):
            continue
        path = ("services", str(key))
        if "networks" not in body:
            if flavour != "compose" or "network_mode" in body:
                continue
            body = {**body, "networks": {"default": {}}}
            top.setdefault("default", None)
        elif "network_mode" in body:
            doc.add((*path, "networks"), "give either networks: or network_mode:, not both",
                    key=True)
            continue
        services[key] = {**body, "networks": _service_networks(doc, (*path, "networks"), body,
                                                                top, project)}
    out = {**data, "services": services}
    if top:
        out["networks"] = top
    return out


def _service_networks(doc: Doc, path: UserPath, body: dict, top: dict, project: str) -> Any:
    given = body["networks"]
    if isinstance(given, list):
        given = {str(n): None for n in given}
    if not isinstance(given, dict):
        return given  # the model reports it
    out: dict[str, Any] = {}
    for name, conf in given.items():
        name = str(name)
        if name not in top and name != "default":
            doc.add((*path, name), f"network {name!r} is not declared under the top-level "
                    "networks:", key=True)
            continue
        conf = dict(conf) if isinstance(conf, dict) else {}
        for extra in [k for k in conf if k in _NET_IGNORED]:
            doc.ignored((*path, name, extra), "veo lets the engine choose addresses and options")
            conf.pop(extra)
        definition = top.get(name)
        definition = dict(definition) if isinstance(definition, dict) else {}
        if not definition.get("name"):
            definition["name"] = name if definition.get("external") else f"{project}_{name}"
        aliases = conf.pop("aliases", [])
        out[name] = {**conf, "aliases": aliases, "network": definition}
    return out


# --------------------------------------------------------------------------------------------------
# secrets and configs
# --------------------------------------------------------------------------------------------------

_MAX_SECRET = 1024 * 1024  # what Swarm allows is 500 KiB; a file this big is no secret


def _secrets(doc: Doc, data: dict) -> dict:
    """Service ``secrets:``/``configs:`` references -> files with their content, read now from
    the top-level definitions (``file:`` relative to the compose file, ``environment:`` from the
    command's environment, ``content:`` inline), so the content travels with the spec."""
    out = {k: v for k, v in data.items() if k not in ("secrets", "configs")}
    services = dict(out["services"])
    for kind in ("secret", "config"):
        key = f"{kind}s"
        defs = data.get(key) if isinstance(data.get(key), dict) else {}
        contents: dict[str, str | None] = {}
        for name, body in services.items():
            if isinstance(body, dict) and isinstance(body.get(key), list):
                path = ("services", str(name), key)
                refs = [_secret_ref(doc, (*path, str(i)), kind, ref, defs, contents)
                        for i, ref in enumerate(body[key])]
                services[name] = {**body, key: [r for r in refs if r is not None]}
    out["services"] = services
    return out


def _secret_ref(doc: Doc, where: UserPath, kind: str, ref: Any, defs: dict,
                contents: dict) -> dict | None:
    ref = {"source": ref} if isinstance(ref, str) else ref
    if not isinstance(ref, dict) or not isinstance(ref.get("source"), str):
        doc.add(where, f"expected a {kind} name, or a mapping with source:")
        return None
    source = ref["source"]
    if source not in defs:
        doc.add(where, f"{kind} {source!r} is not declared under the top-level {kind}s:")
        return None
    if source not in contents:
        contents[source] = _secret_content(doc, (f"{kind}s", source), kind, defs[source])
    if contents[source] is None:
        return None
    target = str(ref.get("target") or (source if kind == "secret" else f"/{source}"))
    if kind == "secret" and not target.startswith("/"):
        target = f"/run/secrets/{target}"
    extra = {k: ref[k] for k in ("uid", "gid", "mode") if ref.get(k) is not None}
    return {"kind": kind, "source": source, "target": target, "content": contents[source], **extra}


def _secret_content(doc: Doc, where: UserPath, kind: str, body: Any) -> str | None:
    body = body if isinstance(body, dict) else {}
    if body.get("external"):
        doc.add(where, f"external {kind}s live in Swarm, and veo has no {kind} store: use "
                "file:, environment: or content:")
        return None
    if isinstance(body.get("content"), str):
        text = body["content"]
    elif isinstance(body.get("environment"), str):
        text = (doc.env or {}).get(body["environment"])
        if text is None:
            doc.add(where, f"environment variable {body['environment']} is not set")
            return None
    elif isinstance(body.get("file"), str):
        if doc.base_dir is None:
            doc.add(where, "file: needs the compose file on disk (the path is relative to it)")
            return None
        full = (doc.base_dir / body["file"]).expanduser()
        try:
            text = full.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            doc.add(where, f"{full}: cannot read: {getattr(e, 'strerror', None) or e}")
            return None
    else:
        doc.add(where, "expected file:, environment: or content:")
        return None
    if len(text.encode()) > _MAX_SECRET:
        doc.add(where, f"the content is larger than {_MAX_SECRET // 1024} KiB")
        return None
    return text


# --------------------------------------------------------------------------------------------------
# environment and env_file
# --------------------------------------------------------------------------------------------------


def _environment(doc: Doc, path: UserPath, body: dict, env: Any) -> Any:
    own = body.get("environment")
    merged: dict[str, str] = {}
    if "env_file" in body:
        merged.update(_env_files(doc, (*path, "env_file"), body["env_file"], env))
    if isinstance(own, list):
        for i, item in enumerate(own):
            if isinstance(item, str) and "=" not in item and item:
                # compose: a bare KEY takes the command's KEY, or stays unset
                if item in env:
                    merged[item] = env[item]
                else:
                    merged.pop(item, None)
            elif isinstance(item, str):
                key, _, value = item.partition("=")
                merged[key] = value
            else:
                return own  # the model reports the odd item, at its line
        return merged
    if isinstance(own, dict):
        for key, value in own.items():
            if value is None:
                if str(key) in env:
                    merged[str(key)] = env[str(key)]
                else:
                    merged.pop(str(key), None)
            else:
                merged[str(key)] = value
        return merged
    return merged if own is None else own


def _env_files(doc: Doc, path: UserPath, spec: Any, env: Any) -> dict[str, str]:
    items = spec if isinstance(spec, list) else [spec]
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        where = (*path, str(i)) if isinstance(spec, list) else path
        file, required = item, True
        if isinstance(item, dict):
            file, required = item.get("path"), item.get("required", True)
        if not isinstance(file, str) or not isinstance(required, bool):
            doc.add(where, "expected a path, or a mapping with path: and required: true|false")
            continue
        if doc.base_dir is None:
            doc.add(where, "env_file needs the compose file on disk (a path is relative to it); "
                    "put the variables in environment:")
            continue
        full = (doc.base_dir / file).expanduser()
        try:
            text = full.read_text(encoding="utf-8")
        except FileNotFoundError:
            if required:
                doc.add(where, f"{full}: no such file (write required: false to make it optional)")
            continue
        except (OSError, UnicodeDecodeError) as e:
            doc.add(where, f"{full}: cannot read: {getattr(e, 'strerror', None) or e}")
            continue
        try:
            values = parse_dotenv(text, env.get)
        except DotenvError as e:
            doc.add(where, f"{full}:{e.line}: {e}")
            continue
        out.update({k: v for k, v in values.items() if v is not None})
    return out


# --------------------------------------------------------------------------------------------------
# After validation: paths and namespaces that need the whole spec
# --------------------------------------------------------------------------------------------------


def resolve(doc: Doc, spec: Any) -> None:
    """Relative bind mounts become absolute (against the file's folder, ``~`` against the home of
    whoever runs veo), with a warning that the path must exist on the node; ``network_mode:
    service:NAME`` is checked against the groups."""
    for key, svc in spec.services.items():
        path = ("services", str(key))
        for i, vol in enumerate(svc.volumes):
            if vol.type == "volume" and vol.source:
                _named_volume(doc, spec, (*path, "volumes", str(i)), svc, vol)
            if vol.type != "bind" or not vol.source or vol.source.startswith("/"):
                continue
            _bind_source(doc, (*path, "volumes", str(i)), vol)
        mode = svc.network_mode or ""
        if mode.startswith("service:"):
            _service_network(doc, spec, (*path, "network_mode"), svc, mode.split(":", 1)[1])
        for dep, rule in svc.depends_on.items():
            if rule.restart:
                doc.ignored((*path, "depends_on", dep, "restart"), f"veo does not restart {key} "
                            f"when {dep} restarts")
    for where, message in depends.check(spec.services):
        doc.add(where, message, key=True)
    if len(spec.nodes) > 1:
        _spread_networks(doc, spec)


def _spread_networks(doc: Doc, spec: Any) -> None:
    """A warning per network whose services may land on different nodes: Docker's DNS resolves
    names only between containers of one engine, and veo has no cross-node discovery yet."""
    members: dict[str, list[Any]] = {}
    for svc in spec.services.values():
        for key in svc.networks:
            members.setdefault(key, []).append(svc)
    for key, svcs in members.items():
        places = {svc.group or (svc.hosts[0] if len(svc.hosts) == 1 else f"?{svc.name}")
                  for svc in svcs}
        if len(svcs) > 1 and len(places) > 1:
            names = ", ".join(s.name for s in svcs)
            doc.add(("services", svcs[0].name, "networks"),
                    f"{names} share network {key!r} but may run on different nodes, where their "
                    "names do not resolve (veo has no cross-node discovery yet): put them in one "
                    "group, or give them the same hosts:", warning=True)


def _named_volume(doc: Doc, spec: Any, where: UserPath, svc: Any, vol: Any) -> None:
    """A declared volume is the engine's ``<project>_<key>`` (its ``name:``, or the key itself
    when external), as compose names it; the service carries its definition to the node."""
    definition = spec.volumes.get(vol.source)
    if definition is None:
        if spec.volumes:
            doc.add(where, f"volume {vol.source!r} is not declared under the top-level volumes: "
                    f"(compose refuses this); veo mounts the engine's volume {vol.source!r}",
                    warning=True)
        return
    engine = definition.name or (vol.source if definition.external else f"{spec.name}_{vol.source}")
    # assigned, not updated in place: the state store keeps only the fields that were set
    svc.volume_defs = {**svc.volume_defs, engine: definition}
    vol.source = engine


def _bind_source(doc: Doc, where: UserPath, vol: Any) -> None:
    src = vol.source
    if src.startswith("~/") or src == "~":
        # the home of whoever runs veo, as compose does (from the command's environment)
        home = (doc.env or {}).get("HOME") or str(Path.home())
        full = str(Path(home) / src[2:])
    elif doc.base_dir is None:
        doc.add(where, f"a bind mount needs an absolute path on the node, got {src!r} (a "
                "relative path needs the compose file on disk)")
        return
    else:
        full = str((doc.base_dir / src).resolve())
    doc.add(where, f"bind mount {src} is {full}: that path must exist on the node that runs "
            "the container", warning=True)
    vol.source = full


def _service_network(doc: Doc, spec: Any, where: UserPath, svc: Any, other: str) -> None:
    peer = spec.services.get(other)
    if peer is None:
        doc.add(where, f"no service {other!r} in this file")
    elif other == svc.name:
        doc.add(where, "a service cannot share its own network namespace")
    elif not svc.group or peer.group != svc.group:
        doc.add(where, f"service:{other} shares {other}'s network namespace, which works only on "
                f"the node that runs {other}: put both in one group (group: NAME on each), so "
                "veo places them together")
    else:
        order = [m.name for m in spec.groups()[svc.group]]
        if order.index(other) > order.index(svc.name):
            doc.add(where, f"service:{other} needs {other}'s container first, and the group "
                    f"starts {', '.join(order)} in that order: make {other} the master, or "
                    f"declare it before {svc.name}")
