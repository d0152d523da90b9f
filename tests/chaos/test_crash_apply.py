"""kill -9 of the Scheduler in the middle of an apply of 500 services, many times (issue 14).

The real Scheduler actor of the shared Ray world is SIGKILLed while ``Cluster.apply`` of a big
spec is in flight, at delays spread over the apply's duration (some kills before the call reaches
the actor, some during its work and store write, some after). The two specs alternate and differ
in every part a mix could show: services added, removed and changed, and a setting. Each round:

- the crash image (the SQLite file read right after the kill, before Ray restarts the actor) is
  exactly the old or exactly the new spec;
- the restarted Scheduler's ``spec()`` is exactly the old or the new one;
- Ray retries the interrupted call (``max_task_retries=-1``), so the apply returns and the spec is
  the new one; once the loop has run, the slot rows name exactly the services of that spec.

After the last round every service of the final (500-service) spec runs: one container each, of
the spec it was last given. Everything is removed at the end and the world is as it was.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
import ray
from ray_world import Faults, NotYet, containers_of, wait_for

from veo.adapters.store import SqliteStore
from veo.core.desired import DesiredState, dump_service
from veo.core.models import ClusterSpec, InstanceStatus, Service
from veo.core.names import LABEL_GENERATION, LABEL_INSTANCE, LABEL_SERVICE, LABEL_SPEC_HASH
from veo.core.names import service_of

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.chaos, pytest.mark.timeout(900)]

# old: COMMON + ONLY_OLD + CHANGED = 480 services; new: COMMON + ONLY_NEW + CHANGED = 500
COMMON, ONLY_OLD, ONLY_NEW, CHANGED = 460, 10, 30, 10
ROUNDS = 10  # alternating new, old, new, ...: the last round lands on the 500-service spec
# where each kill falls, as a fraction of a measured uninterrupted apply of the same size
FRACTIONS = (0.05, 0.9, 0.3, 1.1, 0.5, 0.7, 0.15, 0.8, 0.6, 1.5)
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
CONVERGE_TIMEOUT = 420


def tiny(name: str, version: str) -> Service:
    return Service(name=name, image="veo/busybox", pull_policy="never", command=COMMAND,
                   network_mode="none", stop_grace_period=1, cpus=0.01, memory="6m",
                   environment={"V": version})


def two_specs(base: ClusterSpec, tag: str) -> tuple[ClusterSpec, ClusterSpec]:
    """(old, new) on top of whatever the world runs already (normally nothing)."""
    def spec(only: str, count: int, version: str, grace_extra: float) -> ClusterSpec:
        names = ([f"{tag}-c{i:03d}" for i in range(COMMON)]
                 + [f"{tag}-{only}{i:02d}" for i in range(count)])
        services = {n: tiny(n, "0") for n in names}
        services |= {f"{tag}-m{i:02d}": tiny(f"{tag}-m{i:02d}", version) for i in range(CHANGED)}
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
        svcs = got["services"]
        for label, want in self.known.items():
            alike = sum(1 for n, d in svcs.items() if want["services"].get(n) == d)
            out.append(f"{alike}/{len(svcs)} services as in {label}")
        return ", ".join(out)


def stored(world) -> DesiredState:
    """The desired state as the store file holds it (a reader beside the Scheduler: WAL)."""
    store = SqliteStore(world.state_path)
    try:
        return DesiredState.load(store)
    finally:
        store.close()


def wait_dead(pid: int, timeout: float = 10.0) -> None:
    """Until the killed worker is gone (or a zombie): nothing it does can reach the store."""
    def dead() -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True
    wait_for(dead, timeout, interval=0.01, what=f"process {pid} to die")


def timed_apply(world, spec: ClusterSpec) -> float:
    began = time.perf_counter()
    world.client.apply(spec)
    return time.perf_counter() - began


def kill_during_apply(world, handle, target: ClusterSpec, delay: float) -> dict:
    """Start ``apply(target)`` in a thread, SIGKILL the Scheduler ``delay`` s later; returns the
    crash image, the restarted Scheduler's first spec, and what the apply call returned."""
    pid = ray.get(handle.pid.remote(), timeout=30)
    out: dict = {}

    def call() -> None:
        try:
            out["changes"] = world.client.apply(target)
        except Exception as e:  # reported by the caller: Ray should have retried the call
            out["error"] = e

    thread = threading.Thread(target=call, daemon=True)
    began = time.perf_counter()
    thread.start()
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    out["killed_at"] = time.perf_counter() - began
    wait_dead(pid)
    out["crash"] = stored(world).spec()
    wait_for(lambda: Faults._answers_with_new_pid(handle, pid), 90, what="the Scheduler to come back")
    out["restarted"] = world.client.spec()
    thread.join(150)
    assert not thread.is_alive(), "the interrupted apply never returned"
    return out


def slots_match(world, spec: ClusterSpec):
    """The slot rows name exactly the services of ``spec`` (the loop placed each, and dropped
    the slots of services the spec does not have)."""
    placed = {service_of(key) for key in stored(world).slots}
    extra, missing = placed - set(spec.services), set(spec.services) - placed
    if extra or missing:
        return NotYet(f"{len(extra)} slotted services not in the spec (e.g. {sorted(extra)[:3]}), "
                      f"{len(missing)} services of the spec unplaced")
    return True


def all_running(world, spec: ClusterSpec, mine: set[str]):
    """Every service of ``spec`` runs one instance, in one container across the engines, of the
    generation veo shows and the spec it was last given; none of ``mine`` outside it remains."""
    views = {(v.service, v.instance): v for v in world.client.containers()
             if v.service in spec.services}
    running = sum(1 for v in views.values() if v.status is InstanceStatus.running)
    if running < len(spec.services):
        return NotYet(f"{running}/{len(spec.services)} running")
    seen: dict[tuple, int] = {}
    for c in containers_of(world, mine | set(spec.services)):
        key = (c.labels[LABEL_SERVICE], int(c.labels[LABEL_INSTANCE]))
        view = views.get(key)
        if view is None:
            return NotYet(f"container {c.name} of a service the spec does not have")
        if int(c.labels[LABEL_GENERATION]) != view.generation:
            return NotYet(f"container {c.name} is not the generation veo shows")
        if c.labels.get(LABEL_SPEC_HASH) != spec.services[key[0]].spec_hash():
            return NotYet(f"container {c.name} runs an older spec of {key[0]}")
        seen[key] = seen.get(key, 0) + 1
    if set(seen) != set(views) or any(n != 1 for n in seen.values()):
        return NotYet(f"{len(seen)} instances with containers of {len(views)}; "
                      f"{sum(1 for n in seen.values() if n > 1)} with more than one")
    return running


def restore(world, base: ClusterSpec, mine: set[str]) -> None:
    """The world as it was: its own spec back, and no container of ours on any engine."""
    def applied() -> bool:
        try:
            world.client.apply(base)
            return True
        except Exception:
            return False

    wait_for(applied, 120, interval=1.0, what="the original spec to be applied again")
    wait_for(lambda: not containers_of(world, mine), 300, interval=1.0,
             what="every container of the test to be removed")


def test_kill_9_mid_apply_of_500_services_leaves_old_or_new_and_converges(world):
    handle = Faults(world).actor("scheduler")
    base = world.client.spec()
    old, new = two_specs(base, f"ca{uuid.uuid4().hex[:6]}")
    judge, mine = Judge(old, new), (set(old.services) | set(new.services)) - set(base.services)
    began = time.perf_counter()
    try:
        first = timed_apply(world, new)  # 500 added (no kill): the start of the rounds
        again = timed_apply(world, new)  # the same spec again: what an apply costs the rounds
        assert judge.which(world.client.spec(), "before the rounds") == "new"
        rounds = []
        for r, fraction in enumerate(FRACTIONS[:ROUNDS]):
            target, label = (old, "old") if r % 2 == 0 else (new, "new")
            out = kill_during_apply(world, handle, target, fraction * again)
            assert "error" not in out, f"round {r}: the interrupted apply failed: {out['error']!r}"
            row = {"round": r, "to": label, "kill_ms": round(out["killed_at"] * 1000),
                   "crash_image": judge.which(out["crash"], f"round {r}, the crash image"),
                   "after_restart": judge.which(out["restarted"], f"round {r}, after the restart")}
            assert judge.which(world.client.spec(), f"round {r}, after the apply") == label
            wait_for(lambda: slots_match(world, target), 90, what=f"round {r}: slots of {label}")
            assert judge.which(stored(world).spec(), f"round {r}, stored") == label
            rounds.append(row)
            print(f"round {r}: apply -> {label}, kill after {row['kill_ms']} ms: crash image "
                  f"{row['crash_image']}, after the restart {row['after_restart']}")
        last = time.perf_counter()
        running = wait_for(lambda: all_running(world, new, mine), CONVERGE_TIMEOUT, interval=2.0,
                           what="all 500 services to run")
        done = time.perf_counter()
        images = [row["crash_image"] for row in rounds]
        before_write = sum(1 for row in rounds if row["crash_image"] != row["to"])
        print(f"apply of 500 (added) {first:.2f} s, again (unchanged) {again:.2f} s; "
              f"{len(rounds)} rounds: crash image = previous spec {before_write}, = target "
              f"{len(rounds) - before_write} ({images.count('old')} old, {images.count('new')} "
              f"new); {running} running {done - last:.1f} s after the last round, "
              f"{done - began:.1f} s after the first apply")
    finally:
        restore(world, base, mine)
    assert world.client.spec().services.keys() == base.services.keys()
