"""The rounds of the crash-mid-apply tests (``test_crash_apply.py``, and ``crash_apply_redis.py``
in its own Ray cluster): two specs that differ in every part a mix could show, a judge that says
which of them a spec is, and one round: SIGKILL the Scheduler while ``Cluster.apply`` is in
flight, read the crash image from the store, wait for Ray's restart."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable

import ray

from veo.adapters.store import MemoryStore, Store
from veo.core.desired import DesiredState, dump_service
from veo.core.models import ClusterSpec, Service

# old: COMMON + ONLY_OLD + CHANGED = 498 services; new: COMMON + ONLY_NEW + CHANGED = 500. Few
# differ, so a round costs the engines a dozen containers, yet a mix of any two parts shows.
COMMON, ONLY_OLD, ONLY_NEW, CHANGED = 492, 3, 5, 3
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def tiny(name: str, version: str, **kw) -> Service:
    return Service(name=name, image="veo/busybox", pull_policy="never", command=COMMAND,
                   network_mode="none", stop_grace_period=1, cpus=0.01, memory="6m",
                   environment={"V": version}, **kw)


def two_specs(base: ClusterSpec, tag: str, **kw) -> tuple[ClusterSpec, ClusterSpec]:
    """(old, new) on top of ``base`` (what the cluster runs already): old has services new has
    not and the other way round, CHANGED services differ in a field, and a setting differs."""
    def spec(only: str, count: int, version: str, grace_extra: float) -> ClusterSpec:
        names = ([f"{tag}-c{i:03d}" for i in range(COMMON)]
                 + [f"{tag}-{only}{i:02d}" for i in range(count)])
        services = {n: tiny(n, "0", **kw) for n in names}
        services |= {f"{tag}-m{i:02d}": tiny(f"{tag}-m{i:02d}", version, **kw)
                     for i in range(CHANGED)}
        settings = base.settings.model_copy(
            update={"orphan_grace": base.settings.orphan_grace + grace_extra})
        return ClusterSpec(name=base.name, nodes=base.nodes, policy=base.policy, settings=settings,
                           services={**base.services, **services})

    return spec("o", ONLY_OLD, "1", 0.0), spec("n", ONLY_NEW, "2", 1.0)


def canon(spec: ClusterSpec) -> dict:
    """What the Scheduler keeps of a spec, in one comparable form."""
    return {"name": spec.name,
            "services": {n: dump_service(s) for n, s in sorted(spec.services.items())},
            "settings": spec.settings.model_dump(mode="json"),
            "policy": spec.policy.model_dump(mode="json"),
            "nodes": [n.model_dump(mode="json") for n in spec.nodes]}


class Judge:
    """Says whether a spec is exactly the old or the new one, and what is mixed otherwise."""

    def __init__(self, old: ClusterSpec, new: ClusterSpec):
        self.known = {"old": canon(old), "new": canon(new)}

    def which(self, spec: ClusterSpec, where: str) -> str:
        got = canon(spec)
        for label, want in self.known.items():
            if got == want:
                return label
        raise AssertionError(f"{where}: the spec is a mix of old and new: {self._mix(got)}")

    def _mix(self, got: dict) -> str:
        out = []
        for part in got:
            same = [label for label, want in self.known.items() if got[part] == want[part]]
            out.append(f"{part}={'/'.join(same) or 'neither'}")
        for label, want in self.known.items():
            alike = sum(1 for n, d in got["services"].items() if want["services"].get(n) == d)
            out.append(f"{alike}/{len(got['services'])} services as in {label}")
        return ", ".join(out)


def snapshot(store: Store) -> DesiredState:
    """The desired state the store holds, read in one step (one SELECT in SQLite, one script in
    Redis), so a write by the live Scheduler cannot fall between two reads of it."""
    copy = MemoryStore()
    copy.write(store.scan(""))
    return DesiredState.load(copy)


def wait_dead(pid: int, timeout: float = 10.0) -> None:
    """Until the killed worker is gone (or a zombie): nothing it does can reach the store."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still runs {timeout:g}s after SIGKILL")


def answers_with_new_pid(handle, old: int) -> bool:
    try:
        return ray.get(handle.pid.remote(), timeout=5) != old
    except Exception:
        return False


def kill_during_apply(client, handle, target: ClusterSpec, delay: float,
                      read: Callable[[], DesiredState], wait: Callable) -> dict:
    """Start ``client.apply(target)`` in a thread, as a compare-and-set on the stored spec index
    (``veo up --check-index``), and SIGKILL the Scheduler ``delay`` s later. Returns the crash
    image (``read()`` once the worker is dead, before Ray restarts it), the restarted Scheduler's
    first ``spec()``, and what the apply call returned or raised."""
    pid = ray.get(handle.pid.remote(), timeout=30)
    index = read().spec_index
    out: dict = {}

    def call() -> None:
        try:
            out["changes"] = client.apply(target, check_index=index)
        except Exception as e:  # the caller fails the round: Ray should have retried the call
            out["error"] = e

    thread = threading.Thread(target=call, daemon=True)
    began = time.perf_counter()
    thread.start()
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    out["killed_at"] = time.perf_counter() - began
    wait_dead(pid)
    out["crash"] = read().spec()
    wait(lambda: answers_with_new_pid(handle, pid), 90, what="the Scheduler to come back")
    out["restarted"] = client.spec()
    thread.join(150)
    assert not thread.is_alive(), "the interrupted apply never returned"
    return out


class Sweep:
    """Kill delays around the instant the apply's write lands: one early, one late, then by
    turns a little before, at and after an estimate of that instant. A kill that landed after
    the write pulls the estimate down, one before it pushes it up (and one that agrees nudges it
    on, so the probing goes on); a loaded machine's jitter only moves it, it never sticks."""

    SPREAD = (0.8, 1.0, 1.25)

    def __init__(self, took: float):
        self.took, self.at, self.rounds = took, 0.5 * took, 0

    def next(self) -> float:
        self.rounds += 1
        if self.rounds <= 2:
            return (0.03 if self.rounds == 1 else 1.5) * self.took
        return self.at * self.SPREAD[self.rounds % len(self.SPREAD)]

    def landed(self, delay: float, yes: bool) -> None:
        if self.rounds <= 2:
            return
        bound = delay * (0.9 if yes else 1.1)
        if (bound < self.at) if yes else (bound > self.at):
            self.at = (self.at + bound) / 2
        else:
            self.at *= 0.95 if yes else 1.05


def round_row(judge: Judge, r: int, label: str, out: dict) -> dict:
    """One round's record; fails on a mix anywhere or on an apply the retry did not carry."""
    assert "error" not in out, f"round {r}: the interrupted apply failed: {out['error']!r}"
    row = {"round": r, "to": label, "kill_ms": round(out["killed_at"] * 1000),
           "crash_image": judge.which(out["crash"], f"round {r}, the crash image"),
           "after_restart": judge.which(out["restarted"], f"round {r}, after the restart"),
           # the write had landed and Ray's retry of the call found it done (check_index)
           "retry_found_it": not any(out["changes"][k] for k in ("added", "changed", "removed"))}
    print(f"round {r}: apply -> {label}, kill after {row['kill_ms']} ms: crash image "
          f"{row['crash_image']}, after the restart {row['after_restart']}"
          + (", the retried call found it applied" if row["retry_found_it"] else ""), flush=True)
    return row


def tally(rows: list[dict]) -> str:
    before = sum(1 for row in rows if row["crash_image"] != row["to"])
    images = [row["crash_image"] for row in rows]
    return (f"{len(rows)} rounds: killed before the write landed {before}, after {len(rows) - before}"
            f" (crash image old {images.count('old')}, new {images.count('new')}; a retried call "
            f"found its write landed {sum(1 for row in rows if row['retry_found_it'])}; kills at "
            f"{', '.join(str(row['kill_ms']) for row in rows)} ms)")


def run_rounds(client, handle, judge: Judge, specs: tuple[ClusterSpec, ClusterSpec], count: int,
               took: float, read: Callable[[], DesiredState], wait: Callable,
               check: Callable[[int, ClusterSpec, str], None] = lambda r, spec, label: None
               ) -> list[dict]:
    """``count`` rounds from the new spec: apply old, new, old, ... each killed mid-way (delays
    from a ``Sweep`` over ``took``, an uninterrupted apply's duration). After each: the apply
    returned, the Scheduler and the store hold its spec, and ``check`` passes."""
    sweep, rows = Sweep(took), []
    for r in range(count):
        target, label = (specs[0], "old") if r % 2 == 0 else (specs[1], "new")
        out = kill_during_apply(client, handle, target, sweep.next(), read, wait)
        row = round_row(judge, r, label, out)
        sweep.landed(out["killed_at"], row["crash_image"] == label)
        assert judge.which(client.spec(), f"round {r}, after the apply") == label
        check(r, target, label)
        assert judge.which(read().spec(), f"round {r}, stored") == label
        rows.append(row)
    return rows
