"""YAML text -> one node tree, fast and bounded, before any Python object is built.

PyYAML's own composer is recursive (a document nested a few hundred levels deep ends in a
RecursionError; libyaml's C composer can overflow the C stack instead) and counts nothing (a
"billion laughs" document of aliases is a few hundred bytes). This composer reads the event
stream (libyaml's C parser when PyYAML has it: 10x faster than the pure-Python scanner on a 5 MB
file) and builds the nodes in a loop with an explicit stack, refusing, at the offending line:

* nesting deeper than ``MAX_DEPTH`` collections;
* aliases that expand the document by more than ``max(MAX_ALIAS_NODES, nodes written out)``
  nodes (what constructing, checking and validating it would walk), and an alias inside its own
  anchor (a recursive document).

Nodes are PyYAML's, with the same tags and marks as its composer gives, so the rest of the loader
(duplicate keys, positions, the SafeConstructor) is unchanged.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import yaml
from yaml.composer import ComposerError
from yaml.events import (AliasEvent, DocumentEndEvent, MappingEndEvent, MappingStartEvent,
                         ScalarEvent, SequenceEndEvent, SequenceStartEvent, StreamEndEvent)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 100
MAX_ALIAS_NODES = 100_000

FastSafeLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic GC rescans every live object each time ~700 more are allocated: over the
    ~1 million objects of a 5 MB file that is quadratic (20 s instead of 1 s). The node tree and
    the data built from it hold no cycles (a recursive document is refused), so reference
    counting frees them."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Open:
    """A collection being composed: its node, where its anchor's count started, a pending key."""

    __slots__ = ("node", "anchor", "start", "key")

    def __init__(self, node: Node, anchor: str | None, start: int):
        self.node, self.anchor, self.start, self.key = node, anchor, start, None

    def add(self, child: Node) -> None:
        if isinstance(self.node, SequenceNode):
            self.node.value.append(child)
        elif self.key is None:
            self.key = child
        else:
            self.node.value.append((self.key, child))
            self.key = None


class _State:
    def __init__(self, loader) -> None:
        self.loader = loader
        self.anchors: dict[str, tuple[Node, int | None]] = {}  # anchor -> (node, expanded size)
        self.stack: list[_Open] = []
        self.nodes = 0  # nodes written out
        self.expanded = 0  # nodes added by aliases
        self.tags: dict[tuple[str, tuple], str] = {}  # plain scalars repeat: resolve each once

    def scalar_tag(self, ev: ScalarEvent) -> str:
        if ev.tag is not None and ev.tag != "!":
            return ev.tag
        key = (ev.value, ev.implicit)
        tag = self.tags.get(key)
        if tag is None:
            tag = self.tags[key] = self.loader.resolve(ScalarNode, ev.value, ev.implicit)
        return tag

    def anchor(self, name: str | None, node: Node, ev, size: int | None) -> None:
        if name is None:
            return
        if name in self.anchors:
            first = self.anchors[name][0]
            raise ComposerError(f"found duplicate anchor {name!r}; first occurrence",
                                first.start_mark, "second occurrence", ev.start_mark)
        self.anchors[name] = (node, size)

    def alias(self, ev: AliasEvent) -> Node:
        if ev.anchor not in self.anchors:
            raise ComposerError(None, None, f"found undefined alias {ev.anchor!r}", ev.start_mark)
        node, size = self.anchors[ev.anchor]
        if size is None:
            raise ComposerError(None, None, f"alias *{ev.anchor} is inside its own anchor "
                                "(a recursive document)", ev.start_mark)
        self.expanded += size
        limit = max(MAX_ALIAS_NODES, self.nodes)
        if self.expanded > limit:
            raise ComposerError(None, None, f"the document expands to more than {limit} nodes "
                                "through aliases (a YAML bomb?)", ev.start_mark)
        return node

    def open(self, ev, node: Node) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise ComposerError(None, None, f"the document nests deeper than {MAX_DEPTH} levels",
                                ev.start_mark)
        self.nodes += 1
        self.anchor(ev.anchor, node, ev, None)  # known, but its size only once it is closed
        self.stack.append(_Open(node, ev.anchor, self.nodes + self.expanded))

    def close(self, ev) -> Node:
        done = self.stack.pop()
        done.node.end_mark = ev.end_mark
        if done.anchor is not None:
            size = self.nodes + self.expanded - done.start + 1
            self.anchors[done.anchor] = (done.node, size)
        return done.node


def _collection(st: _State, ev, node_class: type) -> None:
    tag = ev.tag if ev.tag not in (None, "!") else st.loader.resolve(node_class, None, ev.implicit)
    st.open(ev, node_class(tag, [], ev.start_mark, None, flow_style=ev.flow_style))


def compose_single(loader) -> Node | None:
    """The one document of ``loader``'s stream as a node tree (None for an empty stream). Raises
    ``yaml.MarkedYAMLError`` for bad syntax, a second document, or the limits above."""
    loader.get_event()  # stream start
    if loader.check_event(StreamEndEvent):
        loader.get_event()
        return None
    start = loader.get_event()  # document start
    st = _State(loader)
    root: Node | None = None
    get_event, stack, scalar_tag = loader.get_event, st.stack, st.scalar_tag
    # one tight loop: a 5 MB file is ~400,000 events, and each function call here shows
    while root is None:
        ev = get_event()
        kind = type(ev)
        if kind is ScalarEvent:
            st.nodes += 1
            node = ScalarNode(scalar_tag(ev), ev.value, ev.start_mark, ev.end_mark, style=ev.style)
            if ev.anchor is not None:
                st.anchor(ev.anchor, node, ev, 1)
        elif kind is MappingStartEvent:
            _collection(st, ev, MappingNode)
            continue
        elif kind is SequenceStartEvent:
            _collection(st, ev, SequenceNode)
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            node = st.close(ev)
        elif kind is AliasEvent:
            node = st.alias(ev)
        else:
            continue
        if stack:
            stack[-1].add(node)
        else:
            root = node
    if not isinstance(loader.get_event(), DocumentEndEvent):
        raise ComposerError(None, None, "expected the end of the document", start.start_mark)
    if not loader.check_event(StreamEndEvent):
        ev = loader.get_event()
        raise ComposerError("expected a single document in the stream", start.start_mark,
                            "but found another document", ev.start_mark)
    return root
