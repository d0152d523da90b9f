"""Loading cluster.yml (or a plain docker-compose.yml) into a ``ClusterSpec``.

Pure: no Ray, no Docker. Every problem is reported at once, each as ``FILE:LINE:COL: path: what``,
so a user fixes a file in one pass. Positions come from PyYAML's node tree, which the plain
``yaml.safe_load`` throws away.

The steps: compose the YAML node tree (syntax errors, duplicate keys, positions); check every
mapping's keys against what veo reads (unknown keys are errors with a suggestion, compose keys veo
does not support are warnings, a few compose spellings are renamed); validate with pydantic; then
check the cross-field rules (``check_cluster_rules``) and the cluster policy (``veo.core.policy``) and
point each at its line. ``veo.core.bodies`` runs REST API JSON bodies through the same steps, so a
mistake reads the same in every front door.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from veo.core import compose
from veo.core.errors import SpecError, SpecProblem
from veo.core.interpolate import DotenvError, parse_dotenv
from veo.core.models import (
    ClusterSpec,
    DiscoverySettings,
    HealthCheck,
    Node,
    Port,
    Service,
    Settings,
    TaskHistory,
    Ulimit,
    Volume,
    check_cluster_rules,
    service_rule_errors,
)
from veo.core.policy import Policy, violations
from veo.core.yaml_compose import gc_paused

# the loaded file's tree, positions and problems; _Doc is the name bodies.py (REST) imports
from veo.core.yamldoc import Doc as _Doc  # noqa: E402
from veo.core.yamldoc import UserPath, read_yaml  # noqa: E402


@dataclass
class LoadResult:
    spec: ClusterSpec
    warnings: list[SpecProblem] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Which keys each mapping may hold
# --------------------------------------------------------------------------------------------------

_NOT_SUPPORTED = "not supported by veo"

# top-level compose keys veo does not read -> why
_COMPOSE_TOP = {
    "version": "obsolete compose file version",
    "include": _NOT_SUPPORTED,
    "models": _NOT_SUPPORTED,
}

# per-service compose keys veo does not read -> why (every other compose key is a field, a
# rename, or handled by veo.core.compose)
_COMPOSE_SERVICE = {
    "build": "veo runs prebuilt images",
    "develop": "veo runs prebuilt images",
    "pull_refresh_after": "veo pulls missing images itself",
    "links": "services on one network reach each other by service name already",
    "external_links": "use a network (external: true) shared with those containers",
    "container_name": "veo names containers itself (<cluster>_<service>_<instance>_g<gen>)",
    "extends": _NOT_SUPPORTED,
    "mem_swappiness": _NOT_SUPPORTED,
    "cpu_quota": "use cpus: instead",
    "cpu_period": "use cpus: instead",
    "cpu_count": "use cpus: instead",
    "cpu_percent": "use cpus: instead",
    "cpu_rt_runtime": _NOT_SUPPORTED,
    "cpu_rt_period": _NOT_SUPPORTED,
    "cpuset": _NOT_SUPPORTED,
    "storage_opt": "use disk: (a placement reservation)",
    "profiles": "veo runs every service of the file",
    "platform": "veo runs the image the engine has",
    "stdin_open": "veo runs services detached, with no terminal",
    "tty": "veo runs services detached, with no terminal",
    "attach": "veo shows logs with veo logs",
    "pre_start": "lifecycle hooks are not supported by veo",
    "post_start": "lifecycle hooks are not supported by veo",
    "pre_stop": "lifecycle hooks are not supported by veo",
    "gpus": _NOT_SUPPORTED,
    "use_api_socket": "it exposes the Docker socket; bind-mount it under policy instead",
    "provider": _NOT_SUPPORTED,
    "models": _NOT_SUPPORTED,
    **dict.fromkeys(
        """mac_address dns_search dns_opt cgroup cgroup_parent ipc uts userns_mode volumes_from
        oom_kill_disable oom_score_adj isolation runtime blkio_config device_cgroup_rules
        credential_spec annotations label_file""".split(),
        _NOT_SUPPORTED,
    ),
}

_COMPOSE_HEALTHCHECK = {"start_interval": _NOT_SUPPORTED}
_COMPOSE_PORT = {"mode": "Swarm's ingress mode; veo publishes on the node (host mode)",
                 "app_protocol": "a hint for other tools; no effect on Docker"}
_COMPOSE_VOLUME = {"consistency": "macOS only; no effect on Linux"}
_SERVICE_RENAMES = {"pid": "pid_mode", "scale": "instances", "mem_limit": "memory",
                    "mem_reservation": "reserve_memory", "task": "schedule"}  # task: VEO's spelling


@dataclass(frozen=True)
class _Shape:
    """The keys one kind of mapping may hold."""

    fields: frozenset[str]
    compose: dict[str, str]  # known compose keys veo ignores -> why
    renames: dict[str, str]  # compose spelling -> veo field (1:1)


def _fields(model: type[pydantic.BaseModel], *extra: str) -> frozenset[str]:
    names = set(model.model_fields)
    names.update(f.alias for f in model.model_fields.values() if f.alias)
    return frozenset(names | set(extra))


_TOP = _Shape(_fields(ClusterSpec), _COMPOSE_TOP, {})
_SERVICE = _Shape(_fields(Service), _COMPOSE_SERVICE, _SERVICE_RENAMES)
_HEALTH = _Shape(_fields(HealthCheck, "cmd", "disable"), _COMPOSE_HEALTHCHECK, {})
# published_end is how a range 'published: 8000-8010' is kept, not a key to write
_PORT = _Shape(_fields(Port) - {"published_end"}, _COMPOSE_PORT, {})
_VOLUME = _Shape(_fields(Volume, "bind", "volume", "tmpfs", "image"), _COMPOSE_VOLUME, {})
_ULIMIT = _Shape(_fields(Ulimit), {}, {})
_NODE = _Shape(_fields(Node, "node"), {}, {})
_SETTINGS = _Shape(_fields(Settings), {}, {})
_POLICY = _Shape(_fields(Policy), {}, {})
_HISTORY = _Shape(_fields(TaskHistory), {}, {})
_DISCOVERY = _Shape(_fields(DiscoverySettings), {}, {})

# every field name any model has: a loc part that is one of these names a key, not a pydantic tag
_FIELD_NAMES = frozenset().union(
    *(s.fields for s in (_TOP, _SERVICE, _HEALTH, _PORT, _VOLUME, _ULIMIT, _NODE, _SETTINGS, _POLICY,
                         _HISTORY, _DISCOVERY))
)
# the field a model reports an error on -> the spelling the user may have written instead
_ALIASES = {"name": "node", "test": "cmd", "restart_count": "restart"}


# --------------------------------------------------------------------------------------------------
# Keys: unknown ones, compose ones, renamed ones
# --------------------------------------------------------------------------------------------------


def _clean_mapping(doc: _Doc, path: UserPath, value: dict, shape: _Shape) -> dict:
    """``value`` with only the keys the model reads; a problem recorded for each other key."""
    out: dict = {}
    for key, item in value.items():
        name = str(key)
        if name.startswith("x-"):
            continue  # compose extension fields, often anchors for '<<' merges
        if name in shape.fields:
            out[key] = item
        elif name in shape.renames:
            new = shape.renames[name]
            if new in value:
                doc.add((*path, name), f"give either {name!r} or {new!r}, not both", key=True)
            else:
                out[new] = item
                doc.renamed[(*path, new)] = (*path, name)
        elif name in shape.compose:
            doc.ignored((*path, name), shape.compose[name])
        else:
            doc.add((*path, name), _unknown_key(name, shape), key=True)
    return out


def _unknown_key(name: str, shape: _Shape) -> str:
    close = difflib.get_close_matches(name, sorted(shape.fields | set(shape.renames)), n=1)
    if close:
        return f"unknown key, did you mean {close[0]!r}?"
    if len(shape.fields) <= 10:
        return "unknown key; expected one of " + ", ".join(sorted(shape.fields))
    return "unknown key"


def _clean(doc: _Doc, data: dict) -> dict:
    top = _clean_mapping(doc, (), data, _TOP)
    for key, shape in (("settings", _SETTINGS), ("policy", _POLICY)):
        if isinstance(top.get(key), dict):
            top[key] = _clean_mapping(doc, (key,), top[key], shape)
    settings = top.get("settings")
    if isinstance(settings, dict) and isinstance(settings.get("discovery"), dict):
        settings["discovery"] = _clean_mapping(doc, ("settings", "discovery"), settings["discovery"],
                                               _DISCOVERY)
    if isinstance(top.get("nodes"), list):
        top["nodes"] = [
            _clean_mapping(doc, ("nodes", str(i)), n, _NODE) if isinstance(n, dict) else n
            for i, n in enumerate(top["nodes"])
        ]
    if isinstance(top.get("services"), dict):
        top["services"] = {
            name: _clean_service(doc, ("services", str(name)), body)
            if isinstance(body, dict)
            else body
            for name, body in top["services"].items()
        }
    return top


def _clean_service(doc: _Doc, path: UserPath, body: dict) -> dict:
    out = _clean_mapping(doc, path, body, _SERVICE)
    if isinstance(out.get("healthcheck"), dict):
        out["healthcheck"] = _clean_healthcheck(doc, (*path, "healthcheck"), out["healthcheck"])
    if isinstance(out.get("history"), dict):
        out["history"] = _clean_mapping(doc, (*path, "history"), out["history"], _HISTORY)
    for key, shape in (("ports", _PORT), ("volumes", _VOLUME)):
        if isinstance(out.get(key), list):
            out[key] = [
                _clean_mapping(doc, (*path, key, str(i)), item, shape)
                if isinstance(item, dict)
                else item
                for i, item in enumerate(out[key])
            ]
    if isinstance(out.get("ulimits"), dict):
        out["ulimits"] = {
            name: _clean_mapping(doc, (*path, "ulimits", str(name)), lim, _ULIMIT)
            if isinstance(lim, dict)
            else lim
            for name, lim in out["ulimits"].items()
        }
    return out


def _clean_healthcheck(doc: _Doc, path: UserPath, body: dict) -> dict:
    out = _clean_mapping(doc, path, body, _HEALTH)
    if "disable" not in out:
        return out
    disable = out.pop("disable")
    if not isinstance(disable, bool):
        doc.add((*path, "disable"), f"expected true or false, got {_show(disable)}")
    elif disable and ("test" in out or "cmd" in out):
        doc.add((*path, "disable"), "give either 'disable: true' or a test, not both", key=True)
    elif disable:
        out["test"] = ["NONE"]  # compose's spelling of Docker's HEALTHCHECK NONE
    return out


# --------------------------------------------------------------------------------------------------
# Pydantic errors, in the user's words
# --------------------------------------------------------------------------------------------------

# what a model accepts, for "expected ..., got ..." when the input has the wrong shape
_MODEL_SHAPES = {
    "Port": "a port like '8080:80' or a mapping with target:",
    "Volume": "a volume like '/src:/dst:ro' or a mapping with target:",
    "Ulimit": "a number or a mapping with soft: and hard:",
    "HealthCheck": "a command (string or list) or a mapping with test:",
    "Node": "'name@host' or a mapping with name:",
    "Service": "a mapping with image:",
}

_TYPE_WORDS = {
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
}

_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: Any) -> str:
    kind, ctx, got = err["type"], err.get("ctx") or {}, _show(err.get("input"))
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return f"missing required field {str(err['loc'][-1])!r}"
    if kind in ("literal_error", "enum"):
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"expected one of {', '.join(allowed)}, got {got}"
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {got}"
    if kind in ("model_type", "model_attributes_type"):
        return f"expected {_MODEL_SHAPES.get(ctx.get('class_name'), 'a mapping')}, got {got}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()), "?")
        return f"expected a number {_BOUNDS[kind]} {limit}, got {got}"
    if kind == "extra_forbidden":
        return "unknown key"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{msg[:1].lower()}{msg[1:]}, got {got}"


def _user_path(loc: tuple, data: Any) -> tuple[UserPath, bool]:
    """Pydantic's ``loc`` as the path the user wrote, and whether its last key is absent.

    Walks the data alongside the loc, so that pydantic's internal parts (``function-after[...]``,
    union members like ``int``) that match nothing in the data drop out.
    """
    out: list[str] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict):
            keys = {str(k): v for k, v in cur.items()}
            if str(part) in keys:
                out.append(str(part))
                cur = keys[str(part)]
            elif isinstance(part, str) and part in _FIELD_NAMES:
                alias = _ALIASES.get(part)
                if alias in keys:
                    return (*out, alias), False
                return (*out, part), True
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(str(part))
            cur = cur[part]
    return tuple(out), False


def _add_validation_errors(doc: _Doc, exc: pydantic.ValidationError, data: Any) -> set[str]:
    """Add a problem per pydantic error; return the keys of the services that had one."""
    bad: set[str] = set()
    for err in exc.errors(include_url=False):
        path, absent = _user_path(err["loc"], data)
        if len(path) >= 2 and path[0] == "services":
            bad.add(path[1])
        message = _message(err)
        if err["type"] == "missing" and absent:
            doc.add(path[:-1], message, key=True)  # at the mapping that lacks it
        elif err["type"] == "extra_forbidden":
            doc.add(path, message, key=True)
        else:
            doc.add(path, message)
    return bad


def _add_service_rules(doc: _Doc, clean: dict, bad: set[str]) -> None:
    """The one-service rules of the services that did validate, when others did not: the
    cross-service rules need a whole ``ClusterSpec``, these do not."""
    services = clean.get("services")
    if not isinstance(services, dict):
        return
    for key, body in services.items():
        if not isinstance(body, dict) or str(key) in bad:
            continue
        try:
            svc = Service.model_validate({"name": key, **body}, context={"defer_rules": True})
        except pydantic.ValidationError:
            continue
        for name, message in service_rule_errors(svc):
            doc.add(("services", str(key), name), message)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def _load_data(doc: _Doc, data: Any, *, rules: bool = True, policy: Policy | None = None,
               defaults: str | None = None) -> ClusterSpec | None:
    """Validate parsed data into a spec, recording problems in ``doc``. ``rules``: check the
    cross-service rules too; ``policy``: check the services against it (None: the spec's own);
    ``defaults``: 'veo' or 'compose' (None: decided from the file, see ``veo.core.compose``)."""
    if not isinstance(data, dict):
        got = _top_level(data, doc.quoted)
        doc.add((), f"expected a mapping with services: at the top level, got {got}")
        return None
    clean = _clean(doc, compose.normalise(doc, data, defaults=defaults))
    try:
        spec = ClusterSpec.model_validate(clean, context={"defer_rules": True})
    except pydantic.ValidationError as exc:
        _add_service_rules(doc, clean, _add_validation_errors(doc, exc, clean))
        return None
    checks = check_cluster_rules(spec) if rules else [
        (("services", key, name), message)
        for key, svc in spec.services.items() for name, message in service_rule_errors(svc)]
    for path, message in checks:
        doc.add(tuple(str(p) for p in path), message)
    compose.resolve(doc, spec)
    for key, svc in spec.services.items():
        for path, message in violations(svc, spec.policy if policy is None else policy):
            doc.add(("services", str(key), *path), message)
    return spec


def _top_level(data: Any, quoted: bool) -> str:
    if data is None:
        return "nothing (the document is null)"
    if quoted:  # most likely the file's text, quoted or JSON-encoded once more by a client
        return (f"a string ({_show(data)}), not a mapping: send the cluster.yml text itself, not "
                "a quoted or JSON-encoded string")
    return _show(data)


def parse_spec(text: str, filename: str = "<string>", *, strict: bool = False,
               policy: Policy | None = None, env: Mapping[str, str] | None = None,
               base_dir: Path | None = None) -> LoadResult:
    """Parse cluster.yml text. Raises ``SpecError`` carrying every problem found (warnings too,
    flagged); with ``strict``, compose keys veo ignores are errors instead of warnings. The
    services are checked against ``policy`` when given (services added to a running cluster obey
    its policy), else against the file's own ``policy:``.

    ``env``: the variables ``${VAR}`` reads (None: none, every variable is unset); ``base_dir``:
    the folder relative paths (bind mounts, ``env_file:``) start from (None: they are refused)."""
    doc = _Doc(filename, strict, env if env is not None else {}, base_dir)
    with gc_paused():
        data = read_yaml(doc, text)
        # a document that is null ('~', 'null') parsed fine: say what it should have been
        spec = None if data is None and doc.errors() else _load_data(doc, data, policy=policy)
    if spec is None or doc.errors():
        raise SpecError(doc.sorted_problems())
    return LoadResult(spec, doc.sorted_problems())


def load_spec(path: str | Path, *, strict: bool = False,
              env_files: Sequence[str | Path] | None = None,
              environ: Mapping[str, str] | None = None) -> LoadResult:
    """Load cluster.yml (or a compose file) from a file; see ``parse_spec``.

    Variables come from ``environ`` (default: this process's environment) and from the ``.env``
    file beside ``path`` — or from ``env_files`` instead, in order, each overriding the one
    before. As in compose, the environment wins over any file."""
    path = Path(path)
    text = _read_text(path, "a cluster.yml file")
    env = dict(os.environ if environ is None else environ)
    files = [Path(f) for f in env_files] if env_files else [path.parent / ".env"]
    merged: dict[str, str] = {}
    for file in files:
        if not env_files and not file.is_file():
            continue  # the default .env is optional
        try:
            values = parse_dotenv(_read_text(file, "an env file"), lambda n: env.get(n, merged.get(n)))
        except DotenvError as e:
            raise SpecError([SpecProblem(str(e), "", str(file), e.line, 1)]) from None
        merged.update({k: v for k, v in values.items() if v is not None})
    return parse_spec(text, str(path), strict=strict, env={**merged, **env},
                      base_dir=path.parent.resolve())


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecProblem(f"{path}: no such file")]) from None
    except IsADirectoryError:
        raise SpecError([SpecProblem(f"{path}: is a directory, expected {what}")]) from None
    except UnicodeDecodeError:
        raise SpecError([SpecProblem(f"{path}: not UTF-8 text")]) from None
    except OSError as e:
        raise SpecError([SpecProblem(f"{path}: cannot read: {e.strerror or e}")]) from None
