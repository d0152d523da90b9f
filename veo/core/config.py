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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from veo.core.errors import SpecError, SpecProblem
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

UserPath = tuple[str, ...]
Mark = tuple[int, int]  # 1-based (line, column)

# A document whose aliases expand past this many nodes is an attack, not a cluster.
_MAX_NODES = 100_000


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
    "networks": "veo does not create networks; use network_mode: per service",
    "volumes": "Docker creates named volumes on first use",
    "secrets": _NOT_SUPPORTED,
    "configs": _NOT_SUPPORTED,
    "include": _NOT_SUPPORTED,
    "models": _NOT_SUPPORTED,
}

_USE_CPUS = "use cpus: instead"
_USE_MEMORY = "use memory: instead"

# per-service compose keys veo does not read -> why
_COMPOSE_SERVICE = {
    "build": "veo runs prebuilt images",
    "develop": "veo runs prebuilt images",
    "pull_policy": "veo pulls missing images itself",
    "depends_on": "veo starts services independently; use group: to tie their lifecycles",
    "links": "use network_mode: or ports:",
    "external_links": "use network_mode: or ports:",
    "networks": "use network_mode:",
    "expose": "use ports:",
    "deploy": "use instances:, cpus:, memory:, roles: and hosts:",
    "container_name": "veo names containers itself",
    "env_file": "put the variables in environment:",
    "extends": _NOT_SUPPORTED,
    "mem_limit": _USE_MEMORY,
    "mem_reservation": _USE_MEMORY,
    "memswap_limit": _USE_MEMORY,
    "mem_swappiness": _USE_MEMORY,
    "cpu_shares": _USE_CPUS,
    "cpu_quota": _USE_CPUS,
    "cpu_period": _USE_CPUS,
    "cpu_count": _USE_CPUS,
    "cpu_percent": _USE_CPUS,
    "cpu_rt_runtime": _USE_CPUS,
    "cpu_rt_period": _USE_CPUS,
    "cpuset": _USE_CPUS,
    "storage_opt": "use disk:",
    **dict.fromkeys(
        """hostname domainname mac_address extra_hosts dns_search dns_opt logging stdin_open tty
        init platform profiles secrets configs security_opt sysctls tmpfs shm_size stop_signal
        cgroup cgroup_parent ipc uts userns_mode read_only volumes_from group_add oom_kill_disable
        oom_score_adj pids_limit isolation runtime blkio_config device_cgroup_rules credential_spec
        annotations attach label_file gpus post_start pre_stop use_api_socket provider""".split(),
        _NOT_SUPPORTED,
    ),
}

_COMPOSE_HEALTHCHECK = {"start_interval": _NOT_SUPPORTED}
_COMPOSE_PORT = {"mode": _NOT_SUPPORTED, "app_protocol": _NOT_SUPPORTED}
_COMPOSE_VOLUME = dict.fromkeys(("bind", "volume", "tmpfs", "consistency", "image"), _NOT_SUPPORTED)


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
_SERVICE = _Shape(
    _fields(Service), _COMPOSE_SERVICE,
    {"pid": "pid_mode", "scale": "instances", "task": "schedule"},  # task: is VEO's spelling
)
_HEALTH = _Shape(_fields(HealthCheck, "cmd", "disable"), _COMPOSE_HEALTHCHECK, {})
_PORT = _Shape(_fields(Port), _COMPOSE_PORT, {})
_VOLUME = _Shape(_fields(Volume), _COMPOSE_VOLUME, {})
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
# Problems, with positions
# --------------------------------------------------------------------------------------------------


@dataclass
class _Pos:
    key: Mark | None  # where the key is (None for list items and the root)
    value: Mark


@dataclass
class _Doc:
    """One file being loaded: where each path is, and the problems found so far."""

    file: str
    strict: bool = False
    positions: dict[UserPath, _Pos] = field(default_factory=dict)
    renamed: dict[UserPath, UserPath] = field(default_factory=dict)  # veo path -> user's path
    problems: list[SpecProblem] = field(default_factory=list)

    def mark(self, path: UserPath, *, key: bool = False) -> Mark | None:
        """The position of ``path``; a path that is not in the file (a default) falls back to
        where its nearest parent's key is."""
        pos = self.positions.get(path)
        if pos is not None:
            return (pos.key or pos.value) if key else pos.value
        for i in range(len(path) - 1, -1, -1):
            pos = self.positions.get(path[:i])
            if pos is not None:
                return pos.key or pos.value
        return None

    def add(
        self, path: UserPath, message: str, *, key: bool = False, warning: bool = False
    ) -> None:
        path = self.renamed.get(path, path)
        line, column = self.mark(path, key=key) or (None, None)
        self.problems.append(
            SpecProblem(message, ".".join(path), self.file, line, column, warning=warning)
        )

    def ignored(self, path: UserPath, reason: str) -> None:
        if self.strict:
            self.add(path, f"not supported: {reason}", key=True)
        else:
            self.add(path, f"ignored: {reason}", key=True, warning=True)

    def errors(self) -> list[SpecProblem]:
        return [p for p in self.problems if not p.warning]

    def sorted_problems(self) -> list[SpecProblem]:
        return sorted(self.problems, key=lambda p: (p.line or 0, p.column or 0))


# --------------------------------------------------------------------------------------------------
# YAML: syntax, duplicate keys, positions
# --------------------------------------------------------------------------------------------------

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's base-60 numbers: ``- 22:22`` is the port string compose
    (YAML 1.2) reads, not the integer 1342."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _INT_TAG,
    re.compile(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
    ),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _mark(m: yaml.Mark) -> Mark:
    return (m.line + 1, m.column + 1)


def _read_yaml(doc: _Doc, text: str) -> Any:
    """The document's data, or None with a problem recorded."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            message = "the file is empty; expected a mapping with services:"
            doc.problems.append(SpecProblem(message, "", doc.file, 1, 1))
            return None
        doc.positions[()] = _Pos(None, _mark(node.start_mark))
        _check_duplicates(doc, node, (), set())
        data = loader.construct_document(node)  # also flattens '<<' merges in the tree
        _record_positions(doc, loader, node, (), [0])
        return data
    except yaml.MarkedYAMLError as e:
        doc.problems.append(_yaml_problem(doc.file, e))
    except yaml.YAMLError as e:
        doc.problems.append(SpecProblem(f"invalid YAML: {e}", "", doc.file, 1, 1))
    except RecursionError:
        doc.problems.append(SpecProblem("invalid YAML: nested too deeply", "", doc.file, 1, 1))
    finally:
        loader.dispose()
    return None


def _yaml_problem(file: str, e: yaml.MarkedYAMLError) -> SpecProblem:
    mark = e.problem_mark or e.context_mark
    where = _mark(mark) if mark else (None, None)
    what = e.problem or e.context or "cannot parse"
    if e.problem and e.context and e.problem.startswith("but "):
        what = f"{e.context}, {e.problem}"  # "expected a single document..., but found another"
    elif e.problem and e.context and e.context_mark:
        # "while parsing a block mapping at line 3" is what points at a bad indent
        what += f" ({e.context} at line {e.context_mark.line + 1})"
    return SpecProblem(f"invalid YAML: {what}", "", file, *where)


def _scalar_key(node: yaml.Node) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _check_duplicates(doc: _Doc, node: yaml.Node, path: UserPath, seen_nodes: set[int]) -> None:
    # PyYAML keeps the last of two equal keys without a word; compose (YAML 1.2) refuses them
    if id(node) in seen_nodes:
        return  # an alias: checked where its anchor is (and no exponential walk of alias bombs)
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, Mark] = {}
        for k, v in node.value:
            key = _scalar_key(k)
            if k.tag == _MERGE_TAG or key is None:
                continue
            if key in seen:
                problem = SpecProblem(
                    f"duplicate key {key!r} (first at line {seen[key][0]})",
                    ".".join((*path, key)),
                    doc.file,
                    *_mark(k.start_mark),
                )
                doc.problems.append(problem)
            else:
                seen[key] = _mark(k.start_mark)
            _check_duplicates(doc, v, (*path, key), seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(doc, item, (*path, str(i)), seen_nodes)


def _record_positions(
    doc: _Doc, loader: yaml.Loader, node: yaml.Node, path: UserPath, count: list[int]
) -> None:
    count[0] += 1
    if count[0] > _MAX_NODES or len(path) > 100:
        raise yaml.YAMLError(
            f"the document nests deeper than 100 levels or expands to more than {_MAX_NODES} "
            "nodes (through aliases)"
        )
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:  # merged keys first, own keys after: the last one wins, as in data
            if not isinstance(k, yaml.ScalarNode):
                continue
            sub = (*path, str(loader.construct_object(k)))
            doc.positions[sub] = _Pos(_mark(k.start_mark), _mark(v.start_mark))
            _record_positions(doc, loader, v, sub, count)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, str(i))
            doc.positions[sub] = _Pos(None, _mark(item.start_mark))
            _record_positions(doc, loader, item, sub, count)


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


def _load_data(doc: _Doc, data: Any, *, rules: bool = True,
               policy: Policy | None = None) -> ClusterSpec | None:
    """Validate parsed data into a spec, recording problems in ``doc``. ``rules``: check the
    cross-service rules too; ``policy``: check the services against it (None: the spec's own)."""
    if not isinstance(data, dict):
        doc.add((), f"expected a mapping with services: at the top level, got {_show(data)}")
        return None
    clean = _clean(doc, data)
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
    for key, svc in spec.services.items():
        for path, message in violations(svc, spec.policy if policy is None else policy):
            doc.add(("services", str(key), *path), message)
    return spec


def parse_spec(text: str, filename: str = "<string>", *, strict: bool = False,
               policy: Policy | None = None) -> LoadResult:
    """Parse cluster.yml text. Raises ``SpecError`` carrying every problem found (warnings too,
    flagged); with ``strict``, compose keys veo ignores are errors instead of warnings. The
    services are checked against ``policy`` when given (services added to a running cluster obey
    its policy), else against the file's own ``policy:``."""
    doc = _Doc(filename, strict)
    data = _read_yaml(doc, text)
    spec = None if data is None else _load_data(doc, data, policy=policy)
    if spec is None or doc.errors():
        raise SpecError(doc.sorted_problems())
    return LoadResult(spec, doc.sorted_problems())


def load_spec(path: str | Path, *, strict: bool = False) -> LoadResult:
    """Load cluster.yml from a file; see ``parse_spec``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecProblem(f"{path}: no such file")]) from None
    except IsADirectoryError:
        message = f"{path}: is a directory, expected a cluster.yml file"
        raise SpecError([SpecProblem(message)]) from None
    except UnicodeDecodeError:
        raise SpecError([SpecProblem(f"{path}: not UTF-8 text")]) from None
    except OSError as e:
        raise SpecError([SpecProblem(f"{path}: cannot read: {e.strerror or e}")]) from None
    return parse_spec(text, str(path), strict=strict)
