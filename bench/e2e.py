"""End-to-end start-up: N single-container services on ONE engine, several ways, in the same run.

* ``veo``      - ``Cluster.apply(spec)`` on a one-node Ray cluster wrapping the engine; timed from
                 the apply call until `Cluster.wait` (what `veo up` waits with: it follows the
                 Scheduler's change counter) sees all N running (Ray and the Scheduler are started,
                 and the node agent has reported, before the clock starts).
* ``raw xT``   - docker-py ``create_container`` + ``start`` per container from T threads, for T in
                 1, 4, 8, 16: the baseline is the *fastest* of them (the engine's best parallelism on
                 this machine, which is also what the agent's parallelism is chosen from).
* ``compose``  - ``docker-compose up -d`` of the equivalent compose file (Debian's 1.29.2).

Every container is busybox ``sleep`` with ``network_mode: none``; the raw runs use exactly the
create arguments veo's translation produces (labels aside, so veo's agent never sees them).
Everything is removed between runs; rounds are interleaved so drift hits every mode alike.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import (BUSYBOX, Engine, EventRecorder, VeoWorld, format_table, percentile, ratio,
                          timeline_gaps, verdict, wait_until)

TARGET_RATIO = 1.1
COMMAND = ["sleep", "3600"]
COMPOSE_PROJECT = "benche2e"
THREADS = (1, 4, 8, 16)
RAW_MODES = tuple(f"raw x{t}" for t in THREADS)
MODES = ("veo", *RAW_MODES, "compose")
SIZES = (40, 200)


def _services(prefix: str, n: int) -> dict:
    from veo.core.models import Service

    return {f"{prefix}-{i:02d}": Service(name=f"{prefix}-{i:02d}", image=BUSYBOX, command=COMMAND,
                                         network_mode="none") for i in range(n)}


# --------------------------------------------------------------------------------------------------
# veo
# --------------------------------------------------------------------------------------------------


def run_veo(world: VeoWorld, rec: EventRecorder, n: int, prefix: str, timeout: float = 300) -> dict:
    """Apply N services; time until every one shows as running through the client."""
    from veo.core.models import InstanceStatus
    from veo.core.names import LABEL_MANAGED

    services = _services(prefix, n)
    names = set(services)
    client = world.client
    t0_ns = time.time_ns()
    t0 = time.perf_counter()
    world.apply(services)
    t_applied = time.perf_counter()
    polls = 0

    def all_running(insts) -> bool:
        nonlocal polls
        polls += 1
        insts = [i for i in insts if i.service in names]
        return len(insts) == n and all(i.status is InstanceStatus.running for i in insts)

    # what `veo up` does: Cluster.wait, which follows the Scheduler's change counter
    client.wait(all_running, timeout)
    elapsed = time.perf_counter() - t0
    # where the time went, by the engine's clock
    mine = {"veo.managed": "true"}
    creates = sorted(int(e["timeNano"]) for e in rec.matching("create", t0_ns, labels=mine)
                     if _svc(e) in names)
    starts = sorted(int(e["timeNano"]) for e in rec.matching("start", t0_ns, labels=mine)
                    if _svc(e) in names)
    running = [c for c in world.engine.runtime.list(labels={LABEL_MANAGED: "true"})
               if c.running and c.labels.get("veo.service") in names]
    out = {"seconds": elapsed, "apply_call_s": t_applied - t0, "polls": polls,
           "engine_running": len(running)}
    out.update(_gap_medians([("create", t) for t in creates] + [("start", t) for t in starts], elapsed))
    if creates and starts:
        out["to_first_create_s"] = (creates[0] - t0_ns) / 1e9
        out["first_create_to_last_start_s"] = (starts[-1] - creates[0]) / 1e9
        out["last_start_to_seen_running_s"] = elapsed - (starts[-1] - t0_ns) / 1e9
    return out


def _gap_medians(events: list[tuple[str, int]], elapsed: float) -> dict:
    gaps = timeline_gaps(events)
    out = {f"{k}_median_s": percentile(v, 50) for k, v in gaps.items() if v}
    if gaps["create_to_start"]:
        out["engine_s"] = sum(gaps["create_to_start"])  # inside the engine's create -> start
        out["outside_engine_s"] = elapsed - out["engine_s"]
    return out


def _svc(e: dict) -> str | None:
    return ((e.get("Actor") or {}).get("Attributes") or {}).get("veo.service")


# --------------------------------------------------------------------------------------------------
# raw docker-py
# --------------------------------------------------------------------------------------------------


def raw_create_args(i: int, api_version: str, prefix: str) -> dict:
    """veo's own create arguments for the same service, with neutral name and labels."""
    from veo.core.models import Service
    from veo.adapters.docker_api import api_create_args
    from veo.core.translate import create_kwargs

    svc = Service(name=f"{prefix}-{i:02d}", image=BUSYBOX, command=COMMAND, network_mode="none")
    kw = create_kwargs(svc, cluster="raw", instance=0, generation=1, node="raw")
    kw["name"] = f"{prefix}_{i:02d}"
    kw["labels"] = {"bench": prefix}
    return api_create_args(kw, api_version)


def run_raw(engine: Engine, n: int, threads: int, prefix: str, rec: EventRecorder | None = None) -> dict:
    api = engine.api()
    try:
        args = [raw_create_args(i, api.api_version, prefix) for i in range(n)]

        def one(a: dict) -> None:
            cid = api.create_container(**a)["Id"]
            api.start(cid)

        t0_ns = time.time_ns()
        t0 = time.perf_counter()
        if threads <= 1:
            for a in args:
                one(a)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, args))
        elapsed = time.perf_counter() - t0
        running = [c for c in api.containers(filters={"label": f"bench={prefix}"})
                   if c.get("State") == "running"]
        out = {"seconds": elapsed, "threads": threads, "engine_running": len(running)}
        if rec is not None and threads <= 1:
            time.sleep(0.2)  # let the last events arrive
            mine = {"bench": prefix}
            out.update(_gap_medians([(a, int(e["timeNano"])) for a in ("create", "start")
                                     for e in rec.matching(a, t0_ns, labels=mine)], elapsed))
        return out
    finally:
        api.close()


# --------------------------------------------------------------------------------------------------
# docker-compose
# --------------------------------------------------------------------------------------------------


def compose_file(n: int, prefix: str) -> str:
    lines = ['version: "2.4"', "services:"]
    for i in range(n):
        lines += [f"  {prefix}-{i:02d}:", f"    image: {BUSYBOX}",
                  f"    command: {json.dumps(COMMAND)}", "    network_mode: none"]
    return "\n".join(lines) + "\n"


def compose_available() -> str | None:
    """None when docker-compose can be used, else why not."""
    if shutil.which("docker-compose") is None:
        return "docker-compose is not installed (`make bench` installs Debian's docker-compose as root)"
    return None


def run_compose(engine: Engine, n: int, prefix: str, timeout: float = 300) -> dict:
    why = compose_available()
    if why:
        return {"error": why}
    d = Path(tempfile.mkdtemp(prefix="vb-compose-"))
    env = {**os.environ, "DOCKER_HOST": engine.docker_host, "COMPOSE_PROJECT_NAME": COMPOSE_PROJECT}
    try:
        (d / "docker-compose.yml").write_text(compose_file(n, prefix))
        t0 = time.perf_counter()
        r = subprocess.run(["docker-compose", "up", "-d"], cwd=d, env=env, capture_output=True,
                           text=True, timeout=timeout)
        elapsed = time.perf_counter() - t0
        if r.returncode != 0:
            return {"error": f"docker-compose up failed ({r.returncode}): {r.stderr.strip()[-500:]}"}
        label = f"com.docker.compose.project={COMPOSE_PROJECT}"
        running = [c for c in engine.runtime.list(labels=dict([label.split("=", 1)])) if c.running]
        return {"seconds": elapsed, "engine_running": len(running)}
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": f"docker-compose could not run: {e}"}
    finally:
        with_down = (d / "docker-compose.yml").exists()
        if with_down:
            subprocess.run(["docker-compose", "down", "-t", "0", "--remove-orphans"], cwd=d,
                           env=env, capture_output=True, timeout=timeout)
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------


def run(engine: Engine, world: VeoWorld, sizes=SIZES, rounds: int = 3, large_rounds: int = 1) -> dict:
    """Every size in ``sizes``: interleaved rounds of every mode (``large_rounds`` above 100
    services, where a round takes minutes); medians, all samples and veo's ratios."""
    rec = EventRecorder(engine.docker_host)
    try:
        # untimed warm-up of every path (first calls in the agent's worker, first creates)
        run_veo(world, rec, 2, "warm")
        world.clear()
        run_raw(engine, 2, 1, "warm")
        engine.remove_all({"bench": "warm"})
        out = [_one_size(engine, world, rec, n, rounds if n <= 100 else large_rounds) for n in sizes]
    finally:
        rec.close()
    return {"sizes": out, "target_ratio": TARGET_RATIO}


def _one_size(engine: Engine, world: VeoWorld, rec: EventRecorder, n: int, rounds: int) -> dict:
    samples: dict[str, list[dict]] = {m: [] for m in MODES}
    for r in range(rounds):
        samples["veo"].append(run_veo(world, rec, n, f"e2e{n}r{r}"))
        world.clear()
        for threads, mode in zip(THREADS, RAW_MODES):
            prefix = f"raw{threads}n{n}r{r}"
            samples[mode].append(run_raw(engine, n, threads, prefix, rec))
            engine.remove_all({"bench": prefix})
        samples["compose"].append(run_compose(engine, n, f"c{r}"))
        engine.remove_all({"com.docker.compose.project": COMPOSE_PROJECT})
        _settle(engine)
    result: dict = {"services": n, "rounds": rounds, "samples": samples,
                    "ray_startup_excluded": True, "ray_startup_s": world.startup_s,
                    "scheduler_tick_s": 1.0, "target_ratio": TARGET_RATIO, "wait": "Cluster.wait (long poll)",
                    "warm_up": "2 services through veo and 2 raw containers, untimed, first"}
    med = {}
    for mode, rows in samples.items():
        times = [s["seconds"] for s in rows if "seconds" in s]
        med[mode] = percentile(times, 50) if times else None
        errors = [s["error"] for s in rows if "error" in s]
        if errors:
            result.setdefault("errors", {})[mode] = errors[0]
    result["median_s"] = med
    raw = {m: med[m] for m in RAW_MODES if med[m] is not None}
    fastest = min(raw, key=raw.get) if raw else None
    result["fastest_raw"] = fastest
    result["ratio_veo_fastest_raw"] = ratio(med["veo"], med[fastest]) if fastest else None
    # the rounds are interleaved so that each veo run has its raw runs beside it: the median of
    # the per-round ratios cancels the machine's drift between rounds (the verdict's figure)
    pairs = [ratio(a["seconds"], b["seconds"]) for a, b in zip(samples["veo"], samples.get(fastest, []))
             if "seconds" in a and "seconds" in b]
    result["paired_ratios"] = pairs
    result["paired_ratio_veo_fastest_raw"] = percentile(pairs, 50) if pairs else None
    for m in RAW_MODES:
        result[f"ratio_veo_{m.replace(' ', '')}"] = ratio(med["veo"], med[m])
    result["ratio_veo_compose"] = ratio(med["veo"], med["compose"])
    for mode in ("veo", "raw x1"):
        for k in ("to_first_create_s", "first_create_to_last_start_s", "last_start_to_seen_running_s",
                  "create_to_start_median_s", "start_to_next_create_median_s", "engine_s",
                  "outside_engine_s"):
            vals = [s[k] for s in samples[mode] if k in s]
            if vals:
                result.setdefault("breakdown_median_s", {}).setdefault(mode, {})[k] = percentile(vals, 50)
    return result


def _settle(engine: Engine) -> None:
    wait_until(lambda: not engine.runtime.list(), 120, 0.1, "the engine to hold no container")


def print_report(res: dict) -> None:
    for one in res["sizes"]:
        _print_size(one)
        print()


def _print_size(res: dict) -> None:
    n = res["services"]
    rows = []
    for mode in MODES:
        ss = res["samples"][mode]
        times = [s["seconds"] for s in ss if "seconds" in s]
        if not times:
            rows.append([mode, None, "-", "-", res.get("errors", {}).get(mode, "no result")])
            continue
        per = res["median_s"][mode] / n * 1000
        note = ""
        if mode == "veo":
            r, c = res["ratio_veo_fastest_raw"], res["ratio_veo_compose"]
            note = (f"{r:.2f}x fastest raw" if r else "") + (f", {c:.2f}x compose" if c else "")
        elif mode == res["fastest_raw"]:
            note = "fastest raw: the baseline"
        rows.append([mode, res["median_s"][mode], per, " ".join(f"{t:.2f}" for t in times), note])
    print(f"End-to-end: {n} busybox services on one engine, {res['rounds']} interleaved round(s); "
          f"Ray start-up ({res['ray_startup_s']:.1f} s) excluded, clock runs from apply to all running")
    print(format_table(["mode", "median s", "ms/container", "all runs s", "note"], rows, 2))
    if "compose" in res.get("errors", {}):
        print(f"docker-compose: {res['errors']['compose']}")
    b = (res.get("breakdown_median_s") or {}).get("veo") or {}
    if b.get("first_create_to_last_start_s") is not None:
        print(f"veo, where the time goes (medians, engine clock): apply -> first create "
              f"{b['to_first_create_s']:.2f} s, first create -> last start "
              f"{b['first_create_to_last_start_s']:.2f} s, last start -> all seen running by the "
              f"client {b['last_start_to_seen_running_s']:.2f} s (Cluster.wait follows the change counter)")
    r, p = res["ratio_veo_fastest_raw"], res.get("paired_ratio_veo_fastest_raw")
    if p is not None:
        print(f"per round, veo / {res['fastest_raw']}: "
              + " ".join(f"{x:.2f}" for x in res["paired_ratios"]) + f" (median {p:.2f})")
    v = p if p is not None else r  # the verdict's figure, as in the summary
    print(f"veo / fastest raw ({res['fastest_raw']}) = {v:.2f} paired, {r:.2f} as a ratio of "
          f"medians (target <= {TARGET_RATIO}): {verdict(v, TARGET_RATIO)}; veo / compose = "
          f"{res['ratio_veo_compose'] or float('nan'):.2f} (target < 1): "
          f"{verdict(res['ratio_veo_compose'], 0.9999)}" if r else "veo / fastest raw: n/a")
