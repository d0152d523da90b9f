"""Cluster.wait (veo.waits.Waits): it reads the instances again when the Scheduler's change counter
moves, not on a fixed poll; without a counter it polls."""

from __future__ import annotations

import threading
import time

import pytest

from veo.core.errors import VeoError
from veo.core.models import Instance, InstanceStatus, NodeView
from veo.waits import Waits


class FakeClient(Waits):
    """A client whose instances turn running when ``flip`` is called (from another thread), and
    whose change counter moves with it, as the Scheduler's does on a commit."""

    def __init__(self, counter: bool = True) -> None:
        self.status = InstanceStatus.starting
        self.version = 0
        self.moved = threading.Condition()
        self.reads = 0
        self.blocked = 0  # long polls that found the counter unmoved and waited on it
        if not counter:
            self.containers_version = None  # type: ignore[assignment]

    def flip(self) -> None:
        with self.moved:
            self.status = InstanceStatus.running
            self.version += 1
            self.moved.notify_all()

    def containers_version(self, since=None, wait: float = 0.0) -> int:  # noqa: F811
        with self.moved:
            if since is not None and since == self.version and wait > 0:
                self.blocked += 1
                self.moved.wait(wait)
            return self.version

    def containers(self, service=None):
        self.reads += 1
        return [Instance(service="web", instance=0, node="n", status=self.status, container_id="c")]

    def services(self):
        from veo.core.models import Service

        return [Service(name="web", image="veo/busybox")]

    def nodes(self):
        return [NodeView(name="n", alive=True, cpus_total=2, memory_total=1 << 30)]


def running(insts) -> bool:
    return all(i.status is InstanceStatus.running for i in insts)


def test_the_wait_ends_when_the_counter_moves_not_at_the_next_poll(monkeypatch):
    import veo.waits

    sleeps: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(veo.waits.time, "sleep", lambda s: (sleeps.append(s), real_sleep(s)))
    client = FakeClient()
    timer = threading.Timer(0.2, client.flip)
    timer.start()
    out = client.wait(running, timeout=10, interval=5.0)
    timer.join()
    assert out[0].status is InstanceStatus.running
    assert client.blocked >= 1  # it waited on the counter, which the change woke
    assert 5.0 not in sleeps  # never the fixed interval (only the short read floor)
    assert client.reads <= 3  # no busy re-reading while nothing changed


def test_a_change_between_the_read_and_the_long_poll_is_not_missed():
    client = FakeClient()
    real = client.containers

    def read_then_flip(service=None):
        out = real(service)
        if client.reads == 1:
            client.flip()  # after the read, before the long poll begins
        return out

    client.containers = read_then_flip  # type: ignore[method-assign]
    client.wait(running, timeout=10)
    assert client.blocked == 0  # the counter read before the read already differed: no wait
    assert client.reads == 2


def test_without_a_counter_it_polls_and_times_out_with_the_states():
    client = FakeClient(counter=False)
    with pytest.raises(VeoError, match=r"not settled after 0.3s: web#0=starting"):
        client.wait(running, timeout=0.3, interval=0.05)
    assert client.reads >= 3
