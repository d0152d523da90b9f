"""Instance refs (veo.core.refs) and the cluster summary (veo.core.summary): pure, table-driven."""

from __future__ import annotations

import pytest

from veo.core.errors import Conflict, NotFound
from veo.core.models import ClusterSpec, Instance, InstanceStatus, NodeView
from veo.core.refs import canonical, matches, resolve
from veo.core.summary import status_counts, summarize

INSTANCES = [Instance(service="web", instance=0, container_id="abc0" + "0" * 60),
             Instance(service="web", instance=1, container_id="abc1" + "0" * 60),
             Instance(service="db", instance=0)]  # pending: no container yet


@pytest.mark.parametrize("ref, want", [
    ("web#1", ("web", 1)), ("web:1", ("web", 1)), ("db#0", ("db", 0)), ("db:0", ("db", 0)),
    ("abc1", ("web", 1)), ("abc0" + "0" * 60, ("web", 0)),
])
def test_resolve(ref, want):
    inst = resolve(INSTANCES, ref)
    assert (inst.service, inst.instance) == want


@pytest.mark.parametrize("ref, error, message", [
    ("abc", Conflict, "container id prefix 'abc' is ambiguous: web#0, web#1"),
    ("web:9", NotFound, "no instance web#9"),
    ("fff", NotFound, "no container 'fff'"),
    ("web:x", NotFound, "no container 'web:x'"),
])
def test_resolve_refuses(ref, error, message):
    with pytest.raises(error) as info:
        resolve(INSTANCES, ref)
    assert str(info.value) == message


@pytest.mark.parametrize("ref, service, instance, cid, want", [
    ("web#0", "web", 0, None, True), ("web:0", "web", 0, "x", True),
    ("web#0", "web", 1, "x", False),
    ("abc", "web", 0, "abcdef", True), ("abd", "web", 0, "abcdef", False),
    ("abc", "web", 0, None, False), ("", "web", 0, "abc", False),
])
def test_matches(ref, service, instance, cid, want):
    assert matches(ref, service, instance, cid) is want


def test_canonical_spelling():
    assert canonical("web:3") == "web#3" and canonical("web#3") == "web#3"
    assert canonical("abc123") == "abc123"


def test_summary_counts_every_status_and_live_nodes_only():
    instances = [Instance(service="a", instance=i, status=s) for i, s in
                 enumerate([InstanceStatus.running, InstanceStatus.running, InstanceStatus.failed])]
    assert status_counts(instances)[InstanceStatus.pending] == 0
    nodes = [NodeView(name="uno", alive=True, cpus_total=4, memory_total=10),
             NodeView(name="dos", alive=False, cpus_total=8)]
    s = summarize(ClusterSpec(name="demo"), nodes, instances)
    assert s.containers == {"pending": 0, "starting": 0, "running": 2, "backoff": 0, "exited": 0,
                            "completed": 0, "failed": 1}
    got = (s.nodes_alive, s.nodes_total, s.totals.cpus_total, s.totals.memory_total)
    assert got == (1, 2, 4, 10)
