"""One file being loaded: its YAML node tree, the position of every path in it, and the problems
found so far. Pure.

Positions come from PyYAML's node tree, which the plain ``yaml.safe_load`` throws away. Compose's
interpolation and its ``!reset`` / ``!override`` tags are applied to that tree, before the data is
built, so an interpolated value is typed as if written literally and an error still points at the
scalar it came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from veo.core.errors import SpecProblem
from veo.core.interpolate import InterpolationError, interpolate
from veo.core.yaml_compose import FastSafeLoader, compose_single

UserPath = tuple[str, ...]
Mark = tuple[int, int]  # 1-based (line, column)

# --------------------------------------------------------------------------------------------------
# Problems, with positions
# --------------------------------------------------------------------------------------------------


@dataclass
class _Pos:
    key: Mark | None  # where the key is (None for list items and the root)
    value: Mark


@dataclass
class Doc:
    """One file being loaded: where each path is, and the problems found so far."""

    file: str
    strict: bool = False
    # the variables ${VAR} reads (None: no interpolation at all, as for REST bodies)
    env: Mapping[str, str] | None = None
    base_dir: Path | None = None  # the file's folder: relative paths in the file start here
    positions: dict[UserPath, _Pos] = field(default_factory=dict)
    renamed: dict[UserPath, UserPath] = field(default_factory=dict)  # veo path -> user's path
    problems: list[SpecProblem] = field(default_factory=list)
    # values whose interpolation failed: that error is the one to show, not a type error after it
    uninterpolated: set[UserPath] = field(default_factory=set)
    quoted: bool = False  # the whole document is one quoted string

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
        path = self.user_path(path)
        if not warning and any(path[:len(p)] == p for p in self.uninterpolated):
            return
        line, column = self.mark(path, key=key) or (None, None)
        self.problems.append(
            SpecProblem(message, ".".join(path), self.file, line, column, warning=warning)
        )

    def user_path(self, path: UserPath) -> UserPath:
        """``path`` as the user wrote it: a moved key (or anything under it) is where it was."""
        for i in range(len(path), 0, -1):
            if path[:i] in self.renamed:
                return (*self.renamed[path[:i]], *path[i:])
        return path

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


class _PyLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's base-60 numbers: ``- 22:22`` is the port string compose
    (YAML 1.2) reads, not the integer 1342."""


class _Loader(FastSafeLoader):
    """The same on libyaml's C parser (when PyYAML has it): the events of a 5 MB file in 0.3 s."""


def _yaml12_numbers(cls: type) -> None:
    cls.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    cls.add_implicit_resolver(
        _INT_TAG,
        re.compile(
            r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
        ),
        list("-+0123456789"),
    )
    cls.add_implicit_resolver(
        _FLOAT_TAG,
        re.compile(
            r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    )


_yaml12_numbers(_PyLoader)
_yaml12_numbers(_Loader)
# syntax errors: PyYAML's own parser words them better than libyaml ("while parsing ... at line")
_SYNTAX_ERRORS = (yaml.scanner.ScannerError, yaml.parser.ParserError, yaml.reader.ReaderError)


def _mark(m: yaml.Mark) -> Mark:
    return (m.line + 1, m.column + 1)


def read_yaml(doc: Doc, text: str) -> Any:
    """The document's data, or None with a problem recorded."""
    try:
        return _compose_and_construct(doc, _Loader, text)
    except yaml.YAMLError as e:
        error = e
    if FastSafeLoader is not yaml.SafeLoader and isinstance(error, _SYNTAX_ERRORS):
        try:
            _compose_and_construct(Doc(doc.file, doc.strict), _PyLoader, text)
        except yaml.YAMLError as e:
            error = e
    if isinstance(error, yaml.MarkedYAMLError):
        doc.problems.append(_yaml_problem(doc.file, error))
    else:
        doc.problems.append(SpecProblem(f"invalid YAML: {error}", "", doc.file, 1, 1))
    return None


def _compose_and_construct(doc: Doc, loader_class: type, text: str) -> Any:
    loader = loader_class(text)
    try:
        # bounded (depth, alias expansion) before any Python object is built: see yaml_compose
        node = compose_single(loader)
        if node is None:
            message = "the file is empty; expected a mapping with services:"
            doc.problems.append(SpecProblem(message, "", doc.file, 1, 1))
            return None
        doc.positions[()] = _Pos(None, _mark(node.start_mark))
        doc.quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
        _check_duplicates(doc, node, (), set())
        _apply_tags(loader, node, set())
        if doc.env is not None:
            _interpolate(doc, loader, node, (), set())
        data = loader.construct_document(node)  # also flattens '<<' merges in the tree
        _record_positions(doc, loader, node, ())
        return data
    finally:
        loader.dispose()


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


def _check_duplicates(doc: Doc, node: yaml.Node, path: UserPath, seen_nodes: set[int]) -> None:
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


def _record_positions(doc: Doc, loader: yaml.Loader, node: yaml.Node, path: UserPath) -> None:
    # the walk expands aliases: compose_single bounded what that costs
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:  # merged keys first, own keys after: the last one wins, as in data
            if not isinstance(k, yaml.ScalarNode):
                continue
            sub = (*path, str(loader.construct_object(k)))
            doc.positions[sub] = _Pos(_mark(k.start_mark), _mark(v.start_mark))
            _record_positions(doc, loader, v, sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, str(i))
            doc.positions[sub] = _Pos(None, _mark(item.start_mark))
            _record_positions(doc, loader, item, sub)


# --------------------------------------------------------------------------------------------------
# Compose's tags and interpolation, on the node tree
# --------------------------------------------------------------------------------------------------

_RESET, _OVERRIDE = "!reset", "!override"


def _apply_tags(loader: yaml.Loader, node: yaml.Node, seen: set[int]) -> None:
    """``!reset`` drops a key, ``!override`` keeps its value as written. Both matter when compose
    merges several files; veo loads one, where that is all they can mean."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        node.value = [(k, v) for k, v in node.value if v.tag != _RESET]
    for child in _children(node):
        if child.tag == _OVERRIDE:
            child.tag = _default_tag(loader, child)
        _apply_tags(loader, child, seen)


def _default_tag(loader: yaml.Loader, node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "tag:yaml.org,2002:map"
    if isinstance(node, yaml.SequenceNode):
        return "tag:yaml.org,2002:seq"
    return loader.resolve(yaml.ScalarNode, node.value, (not node.style, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [v for _, v in node.value]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _interpolate(doc: Doc, loader: yaml.Loader, node: yaml.Node, path: UserPath,
                 seen: set[int]) -> None:
    """Interpolate every scalar value (not keys) in place. A plain scalar is re-typed as YAML
    would type the result (``replicas: $N`` is a number); a quoted one stays a string."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        if "$" not in node.value or node.tag not in _TEXT_TAGS:
            return
        where = _mark(node.start_mark)
        try:
            result = interpolate(node.value, doc.env)  # type: ignore[arg-type]
        except InterpolationError as e:
            doc.problems.append(SpecProblem(str(e), ".".join(path), doc.file, *where))
            doc.uninterpolated.add(path)
            return
        for name in dict.fromkeys(result.unset):
            message = f"variable {name} is not set; it reads as an empty string"
            doc.problems.append(SpecProblem(message, ".".join(path), doc.file, *where, warning=True))
        node.value = result.text
        if not node.style:  # plain: None from PyYAML's parser, '' from libyaml's
            node.tag = loader.resolve(yaml.ScalarNode, node.value, (True, False))
        return
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _interpolate(doc, loader, v, (*path, str(k.value)), seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _interpolate(doc, loader, item, (*path, str(i)), seen)


_TEXT_TAGS = frozenset({"tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                        "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"})
