"""Control-plane scale, simulated: ``python -m bench.scale`` (no Ray, no engines needed).

The real Scheduler class (``actors.scheduler.Scheduler``, its loop step, its ``DesiredState``, its
state store: SQLite in a temporary directory) runs in this process against in-process fake node
agents that answer ``report``/``converge``/``resync`` at once, as if every engine did what it was
told. Ray membership is replaced by "every simulated node is alive"; the Scheduler's clock is a
simulated one that advances one tick per step. Each size runs in its own process (for a clean
memory figure) and reports:

* ``place_s``       - the first step after the apply: placement of every instance, first pushes;
* ``steady_ms``     - a step when nothing changed (median of several, 1 s of simulated time apart);
* ``event_ms``      - one instance restarted: its events recorded (persisted) and the next step;
* ``restart_bytes`` / ``fail_bytes`` - bytes written to the state store for one restart event /
                      one instance failing for good (a terminal outcome lands in its slot);
* ``fail_step_ms``  - the step after that failure (its slot changed: a plan runs);
* ``change_ms``     - the step after each other common change (``CHANGES``, median of
                      ``REPEAT``): an apply where one service's instance count grew by one, one
                      service removed, one node cordoned, one node lost, an apply where one
                      service's image changed (a rolling update starts); ``apply_ms``: the
                      apply call of those applies;
* ``rss_mb``        - the process's resident memory after the run, minus that before the apply.

Figures only: timings are never asserted. The machine is shared: read medians, not single runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

GRID = [(100, 1_000), (100, 10_000), (1_000, 10_000), (1_000, 100_000), (5_000, 100_000)]
QUICK = [(100, 1_000), (1_000, 10_000)]
TARGET_STEADY_MS = 50.0
STEADY_STEPS = 7


def _rss_mb() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Meter:
    """Wraps the Scheduler's store (whatever it is) to count bytes written."""

    def __init__(self, inner) -> None:
        self.inner, self.bytes, self.transactions = inner, 0, 0

    def write(self, puts: dict | None = None, deletes=()) -> None:
        self.transactions += 1
        self.bytes += sum(len(k) + len(json.dumps(v, sort_keys=True)) for k, v in (puts or {}).items())
        self.bytes += sum(len(k) for k in deletes)
        self.inner.write(puts, deletes)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class _Method:
    def __init__(self, fn) -> None:
        self.fn = fn
        self.calls = 0

    def remote(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


class FakeAgent:
    """An agent whose engine does everything at once: what it is told to run, runs."""

    def __init__(self, node: str) -> None:
        from veo.core.models import AgentReport

        self.node = node
        self.sched = None  # set by make_scheduler: where its events go
        self.version = 1
        self.desired: tuple | None = None
        self._report = AgentReport(node=node, docker_host="fake://", cpus=64, memory=256 * 2**30,
                                   disk=2**40, synced=False, version=1)
        self.report = _Method(self._report_call)
        self.converge = _Method(self._converge)
        self.resync = _Method(self._resync)
        self.discovery = _Method(self._discovery)

    async def _report_call(self, since=None):
        return None if since == self.version else self._report

    async def _converge(self, desired, known, removed, settings, cluster, version=None):
        from veo.core.models import Event, EventKind, Instance, InstanceStatus

        self.desired = (desired, version)
        views = [Instance(service=a.service.name, instance=a.instance, node=self.node,
                          status=InstanceStatus.running, generation=a.generation,
                          container_id=f"c-{a.key}", restarts=a.restarts) for a in desired]
        old = [(i.service, i.instance, i.generation) for i in self._report.instances]
        if not self._report.synced or old != [(i.service, i.instance, i.generation) for i in views]:
            self.version += 1
            self._report = self._report.model_copy(update={"instances": views, "synced": True,
                                                           "version": self.version})
            if desired and self.sched is not None:
                # a real agent's starts are events: the Scheduler asks it for its report next
                a = desired[0]
                await self.sched.record([Event(
                    kind=EventKind.started, service=a.service.name, instance=a.instance,
                    node=self.node, generation=a.generation, status=InstanceStatus.running)])

    def _discovery(self, table, config):
        """Serves the table it is given (as a real agent's DNS would): its report says which.
        Not awaited by the Scheduler (a Ray call it does not wait for): done at once."""
        self.version += 1
        self._report = self._report.model_copy(update={
            "dns": "127.0.0.1:53", "dns_version": table["version"], "dns_config": config,
            "version": self.version})

    async def _resync(self, version):
        return self.desired is not None and self.desired[1] == version


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_scheduler(nodes: int, state_dir: Path):
    """The real Scheduler class, outside Ray: its constructor's self-ping and the Ray calls of the
    loop (membership, agent handles) are the only parts replaced."""
    from actors.scheduler import Scheduler
    from veo.core.views import NodeRec

    cls = Scheduler.__ray_metadata__.modified_class
    agents = {f"n{i:05d}": FakeAgent(f"n{i:05d}") for i in range(nodes)}

    class SimScheduler(cls):
        dead: set[str] = set()  # nodes Ray would mark dead

        async def _membership(self) -> None:
            for name in agents:
                if name not in self.nodes:
                    self.nodes[name] = NodeRec(name=name, alive=True, host=f"h{name}")
                rec = self.nodes[name]
                if rec.alive and name in self.dead:  # as the real membership does
                    rec.alive, rec.report = False, None
                    self.nodes_version += 1

        def _agent(self, node: str):
            return agents[node]

    with mock.patch("ray.get_runtime_context"):
        sched = SimScheduler(state_path=str(state_dir / "scheduler.db"))
    for agent in agents.values():
        agent.sched = sched
    sched.store_meter = Meter(sched.store)
    sched.store = sched.event_log.store = sched.store_meter
    clock = Clock()
    if hasattr(sched, "steady"):
        sched.steady.clock = clock
    return sched, agents, clock


def make_spec(instances: int):
    from veo.core.models import ClusterSpec, Service, Settings

    per = 100 if instances >= 10_000 else 10
    services = {f"s{i:05d}": Service(name=f"s{i:05d}", image="veo/busybox:latest", instances=per,
                                     cpus=0.001, memory=1 << 20, network_mode="none")
                for i in range(instances // per)}
    return ClusterSpec(name="veo", services=services, settings=Settings())


async def _step(sched, clock: Clock, profile: str | None = None) -> float:
    import cProfile

    clock.now += sched.tick
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    t0 = time.perf_counter()
    await sched._step()
    elapsed = time.perf_counter() - t0
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    if sched.converging:  # the pushes are tasks; let them finish (instant agents) before timing on
        await asyncio.gather(*sched.converging.values())
    return elapsed


async def _scenario(nodes: int, instances: int, state_dir: Path, steps: int = STEADY_STEPS,
                    settle_steps: int = 3, profile: str | None = None,
                    profile_step: str = "fail") -> dict:
    from veo.core.models import Event, EventKind, InstanceStatus

    rss0 = _rss_mb()
    sched, agents, clock = make_scheduler(nodes, state_dir)
    t0 = time.perf_counter()
    await sched.apply(make_spec(instances))
    sched._loop.cancel()  # the bench drives the steps itself
    apply_s = time.perf_counter() - t0
    place_s = await _step(sched, clock)
    settle = [await _step(sched, clock) for _ in range(settle_steps)]
    steady = [await _step(sched, clock) for _ in range(steps)]
    placed = len(sched.state.slots)
    # one restart: the agent's two events (exited, restarted), persisted, then a step
    key = next(iter(sched.state.slots))
    slot = sched.state.slots[key]
    meter = sched.store_meter

    def ev(kind, status, **kw):
        return Event(kind=kind, service=slot.service, instance=slot.instance, node=slot.node,
                     generation=slot.generation, status=status, **kw)

    b0 = meter.bytes
    t1 = time.perf_counter()
    await sched.record([ev(EventKind.exited, InstanceStatus.exited, exit_code=1),
                        ev(EventKind.restarted, InstanceStatus.running, restarts=1)])
    record_ms = (time.perf_counter() - t1) * 1e3
    restart_bytes = meter.bytes - b0
    event_step = await _step(sched, clock)
    b1 = meter.bytes
    await sched.record([ev(EventKind.failed, InstanceStatus.failed, reason="bench")])
    fail_bytes = meter.bytes - b1
    fail_step = await _step(sched, clock, profile if profile_step == "fail" else None)
    calls = {m: sum(getattr(a, m).calls for a in agents.values()) for m in ("report", "converge", "resync")}
    await _step(sched, clock)  # the failure's own aftermath settles
    changes, applies = await _changes(sched, clock, instances,
                                      profile if profile_step != "fail" else None, profile_step)
    return {"nodes": nodes, "instances": instances, "placed": placed, "apply_s": apply_s,
            "place_s": place_s, "settle_ms": [s * 1e3 for s in settle],
            "steady_ms": statistics.median(steady) * 1e3, "steady_all_ms": [s * 1e3 for s in steady],
            "record_ms": record_ms, "event_step_ms": event_step * 1e3, "fail_step_ms": fail_step * 1e3,
            "restart_bytes": restart_bytes, "fail_bytes": fail_bytes,
            "agent_calls": calls, "rss_mb": _rss_mb() - rss0, "change_ms": changes,
            "apply_ms": applies}


CHANGES = ("scale", "remove", "cordon", "lost", "image")
REPEAT = 3  # each change is made this many times (other services, other nodes): the median counts


async def _changes(sched, clock: Clock, instances: int, profile: str | None = None,
                   profile_step: str = "") -> tuple[dict, dict]:
    """The step after each of ``CHANGES``, median of ``REPEAT`` (a settle step after each)."""
    spec = make_spec(instances)
    names = iter(sorted(spec.services)[1:])
    nodes = iter(sorted(sched.nodes)[1:])
    steps: dict[str, list[float]] = {}
    applies: dict[str, list[float]] = {}

    async def apply(kind: str, services) -> None:
        t0 = time.perf_counter()
        await sched.apply(spec.model_copy(update={"services": services}))
        applies.setdefault(kind, []).append((time.perf_counter() - t0) * 1e3)
        sched._loop.cancel()

    for kind in CHANGES:
        for rep in range(REPEAT):
            current = dict(sched.state.services)
            if kind == "scale":
                svc = current[next(names)]
                await apply(kind, {**current, svc.name: svc.model_copy(
                    update={"instances": svc.instances + 1})})
            elif kind == "remove":
                await sched.remove_service(next(names))
            elif kind == "cordon":
                await sched.cordon(next(nodes))
            elif kind == "lost":
                sched.dead.add(next(nodes))
                sched.steady.last_membership = float("-inf")  # membership is read this step
            elif kind == "image":
                svc = current[next(names)]
                await apply(kind, {**current, svc.name: svc.model_copy(
                    update={"image": "veo/httpd:latest"})})
            prof = profile if kind == profile_step and rep == 0 else None
            steps.setdefault(kind, []).append((await _step(sched, clock, prof)) * 1e3)
            await _step(sched, clock)
    med = statistics.median
    return {k: med(v) for k, v in steps.items()}, {k: med(v) for k, v in applies.items()}


def _child(nodes: int, instances: int, out, kw: dict) -> None:
    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="vb-scale-") as d:
        out.put(asyncio.run(_scenario(nodes, instances, Path(d), **kw)))


def run(quick: bool = False, sizes=None, timeout: float = 900.0, **kw) -> list[dict]:
    ctx = mp.get_context("spawn")
    rows = []
    for nodes, instances in sizes or (QUICK if quick else GRID):
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(nodes, instances, q, kw))
        p.start()
        try:
            rows.append(q.get(timeout=timeout))
        except Exception as e:  # a size too slow for the code under test: say so, go on
            rows.append({"nodes": nodes, "instances": instances,
                         "error": f"no result within {timeout:g} s ({type(e).__name__})"})
        finally:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        print(_line(rows[-1]), flush=True)
    return rows


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['nodes']:>5} nodes x {r['instances']:>7,} instances: {r['error']}"
    return (f"{r['nodes']:>5} nodes x {r['instances']:>7,} instances: place {r['place_s']:.2f} s, "
            f"steady step {r['steady_ms']:.1f} ms, record 1 restart {r['record_ms']:.2f} ms "
            f"({r['restart_bytes']:,} B written), step after it {r['event_step_ms']:.0f} ms, "
            f"1 failure {r['fail_bytes']:,} B, step after it {r['fail_step_ms']:.0f} ms, "
            f"RSS +{r['rss_mb']:.0f} MB, agent calls {r['agent_calls']}; step after: "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in r.get("change_ms", {}).items())
            + " (apply call: " + ", ".join(f"{k} {v:.0f} ms" for k, v in r.get("apply_ms", {}).items())
            + ")")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size", action="append", help="NODESxINSTANCES, e.g. 5000x100000 (repeatable)")
    p.add_argument("--timeout", type=float, default=900.0, help="per size, seconds")
    p.add_argument("--steps", type=int, default=STEADY_STEPS, help="steady steps timed")
    p.add_argument("--settle", type=int, default=3, help="steps run before the steady ones")
    p.add_argument("--profile", help="cProfile the step after one failure into this file")
    p.add_argument("--profile-step", default="fail", choices=("fail", *CHANGES),
                   help="which step --profile profiles (default: the one after a failure)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.size] if args.size else None
    rows = run(args.quick, sizes, args.timeout, steps=args.steps, settle_steps=args.settle,
               profile=args.profile, profile_step=args.profile_step)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
