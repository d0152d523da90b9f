"""``python -m bench``: veo's benchmarks, figures only (no pass/fail on timings).

    placement  - bench.placement.run(): placements per second on simulated clusters
    e2e        - N services on one engine: veo vs raw docker-py (x1, x4, x8, x16) vs docker-compose
    restart    - restart latency: veo one_for_one vs Docker's --restart on-failure
    rolling    - a rolling update of 10 instances vs Swarm's rule of thumb
    store      - bench.store: state store bytes and time per event / slot change, SQLite vs Redis
    loader     - bench.big_spec: a 5 MB cluster.yml with 5,000 services through the loader
    api_load   - bench.rest_live: GET /api/containers at 200/s on a real veo serve and Scheduler;
                 the control loop's step time quiet vs loaded
    machines   - 3 machines (own address, dockerd, veo node): partition -> running elsewhere,
                 heal -> no twin, reboot -> converged
    busy       - restart latency while the node creates 100 other containers, vs idle
    scale      - bench.scale: the real Scheduler step at 100-5,000 nodes x 1k-100k instances
    realscale  - bench.realscale: 500 instances on 3 real Ray nodes, 50 killed at once, actor RSS

Anything that starts Ray must run in a loopback-only network namespace: ``make bench`` does that
(``make bench BENCH_ARGS="--quick --only e2e"``). Results go to artifacts/bench.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench.common import Engine, VeoWorld, fmt, format_table, loadavg, machine_info, verdict

PARTS = ("placement", "e2e", "restart", "busy", "rolling", "store", "loader", "api_load", "scale",
         "realscale", "machines")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "artifacts" / "bench.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes (a minute or two)")
    p.add_argument("--only", action="append", choices=PARTS, help="run only this part (repeatable)")
    p.add_argument("--services", type=int, action="append",
                   help="e2e: number of services (repeatable; default 40 and 200, quick 10)")
    p.add_argument("--rounds", type=int, help="e2e: interleaved rounds up to 100 services "
                   "(default 5, quick 1)")
    p.add_argument("--large-rounds", type=int, default=1,
                   help="e2e: interleaved rounds above 100 services (default %(default)s)")
    p.add_argument("--triggers", type=int, help="restart: triggers per side (default 20, quick 6)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results (default %(default)s)")
    return p.parse_args(argv)


def _placement(quick: bool) -> dict:
    try:
        from bench import placement
    except ImportError as e:
        return {"error": f"bench.placement is not available yet ({e})"}
    if not hasattr(placement, "run"):
        return {"error": "bench.placement has no run() yet"}
    t0 = time.perf_counter()
    rows = placement.run(quick=quick)
    out = {"rows": rows, "seconds": time.perf_counter() - t0}
    target = getattr(placement, "TARGET", None)
    if target:
        out["target_per_s"] = target
    return out


def _print_placement(res: dict) -> None:
    print("Placement throughput (bench.placement.run)")
    if "error" in res:
        print(f"  {res['error']}")
        return
    rows = res["rows"]
    keys = ["nodes", "services", "strategy", "units", "placed", "pending", "units_for_s", "place_s",
            "placements_per_s"]
    keys = [k for k in keys if all(k in r for r in rows)] or sorted(rows[0]) if rows else keys
    print(format_table(keys, [[r.get(k) for k in keys] for r in rows], 3))
    target = res.get("target_per_s")
    spread = [r for r in rows if r.get("strategy") == "spread" and "placements_per_s" in r]
    if target and spread:
        big = max(spread, key=lambda r: r.get("services", 0))
        met = "met" if big["placements_per_s"] >= target else "NOT met"
        print(f"target >= {target:,}/s at {big['nodes']} nodes x {big['services']} services (spread): {met}")


def _store_parts(parts: list[str], quick: bool, results: dict, errors: dict) -> None:
    """The parts that need no engine and no Ray: the state store and the loader."""
    if "store" in parts:
        from bench import store

        results["store"] = _guard("store", lambda: store.run(quick=quick), errors)
        if "error" not in results["store"]:
            store.print_report(results["store"])
        print()
    if "loader" in parts:
        from bench import big_spec

        results["loader"] = _guard("loader", big_spec.run, errors)
        lo = results["loader"]
        if "error" not in lo:
            print(f"Loader: {lo['services']} services, {lo['bytes'] / 1e6:.1f} MB validated in "
                  f"{lo['load_s']:.2f} s ({lo['cpu_s']:.2f} s CPU; target < {lo['target_s']:g} s)\n")


def _guard(name: str, fn, errors: dict):
    try:
        return fn()
    except Exception as e:  # one broken part must not hide the others' figures
        traceback.print_exc()
        errors[name] = f"{type(e).__name__}: {e}"
        return {"error": errors[name]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parts = [p for p in PARTS if not args.only or p in args.only]
    sizes = args.services or ([10] if args.quick else [40, 200])
    rounds = args.rounds or (1 if args.quick else 5)
    triggers = args.triggers or (6 if args.quick else 20)
    results: dict = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "quick": args.quick, "parts": parts, "loadavg_at_start": loadavg()}
    errors: dict[str, str] = {}
    engine = world = None
    t_all = time.perf_counter()
    try:
        if "placement" in parts:
            results["placement"] = _guard("placement", lambda: _placement(args.quick), errors)
            _print_placement(results["placement"])
            print()
        _store_parts(parts, args.quick, results, errors)
        if "scale" in parts:
            from bench import scale

            print("Control-plane scale (bench.scale: real Scheduler, in-process fake agents)")
            results["scale"] = _guard("scale", lambda: {"rows": scale.run(quick=args.quick)}, errors)
            print()
        if {"e2e", "restart", "busy", "rolling", "api_load"} & set(parts):
            print("starting a private Docker engine and a one-node Ray cluster (not timed) ...",
                  flush=True)
            engine = Engine()
            world = VeoWorld(engine)
            results["setup"] = {"ray_startup_s": world.startup_s, "docker_host": engine.docker_host}
            print(f"ready in {world.startup_s:.1f} s\n", flush=True)
        if "e2e" in parts:
            from bench import e2e

            results["e2e"] = _guard("e2e", lambda: e2e.run(engine, world, sizes, rounds,
                                                                args.large_rounds), errors)
            if "error" not in results["e2e"]:
                e2e.print_report(results["e2e"])
            print()
        if "restart" in parts:
            from bench import restart

            results["restart"] = _guard("restart", lambda: restart.run(engine, world, triggers), errors)
            if "error" not in results["restart"]:
                restart.print_report(results["restart"])
            print()
        if "busy" in parts:
            from bench import restart

            deploy = 30 if args.quick else 100
            results["busy"] = _guard("busy", lambda: restart.run_busy(engine, world, deploy), errors)
            if "error" not in results["busy"]:
                restart.print_busy(results["busy"])
            print()
        if "rolling" in parts:
            from bench import rolling

            results["rolling"] = _guard("rolling", lambda: rolling.run(engine, world), errors)
            if "error" not in results["rolling"]:
                rolling.print_report(results["rolling"])
        if "api_load" in parts:
            from bench import rest_live

            results["api_load"] = _guard("api_load", lambda: rest_live.run(engine, world,
                                                                            args.quick), errors)
            if "error" not in results["api_load"]:
                rest_live.print_report(results["api_load"])
            print()
        if "machines" in parts:
            from bench import machines

            results["machines"] = _guard("machines", lambda: machines.run(1 if args.quick else 2),
                                         errors)
            if "error" not in results["machines"]:
                machines.print_report(results["machines"])
            print()
        results["machine"] = machine_info(engine.docker_host if engine else None)
    finally:
        if world is not None:
            world.close()
        if engine is not None:
            engine.close()
    if "realscale" in parts:  # its own Ray cluster: after the one-node world is gone
        results["realscale"] = _guard("realscale", lambda: _realscale(args.quick), errors)
        if "error" not in results["realscale"]:
            from bench import realscale

            realscale.print_report(results["realscale"])
        print()
    if "machine" not in results:
        results["machine"] = machine_info(None)
    results["total_s"] = time.perf_counter() - t_all
    if errors:
        results["errors"] = errors
    print_summary(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=_json_default) + "\n")
    print(f"\nresults: {args.out}")
    return 1 if errors else 0


def _realscale(quick: bool) -> dict:
    from bench import realscale

    print("starting a private Docker engine and a three-node Ray cluster (not timed) ...", flush=True)
    engine = Engine()
    try:
        return realscale.run(engine, total=200 if quick else 500, kill=20 if quick else 50)
    finally:
        engine.close()


def _json_default(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    return str(o)


def summary_rows(results: dict) -> list[list]:
    """(figure, value, target, verdict) rows for whatever parts ran."""
    rows: list[list] = []
    pl = results.get("placement")
    if pl and "rows" in pl:
        spread = [r for r in pl["rows"] if r.get("strategy") == "spread"] or pl["rows"]
        big = max(spread, key=lambda r: r.get("services", 0))
        target = pl.get("target_per_s")
        value = big.get("placements_per_s")
        ok = None if not target or value is None else ("met" if value >= target else "NOT met")
        rows.append([f"placement, {big.get('nodes')} nodes x {big.get('services')} services",
                     f"{fmt(value, 0)}/s", f">= {fmt(target, 0)}/s" if target else "-", ok or "-"])
    elif pl:
        rows.append(["placement", pl.get("error", "?"), "-", "-"])
    e = results.get("e2e")
    for one in (e or {}).get("sizes", []):
        n = one["services"]
        for mode, t in one["median_s"].items():
            rows.append([f"e2e {n} services: {mode}", f"{fmt(t, 2)} s" if t is not None else
                         one.get("errors", {}).get(mode, "n/a"), "-", "-"])
        r = one.get("ratio_veo_fastest_raw")
        p = one.get("paired_ratio_veo_fastest_raw")
        rows.append([f"e2e {n}: veo / fastest raw ({one.get('fastest_raw')}), ratio of medians",
                     fmt(r, 2), "-", "-"])
        rows.append([f"e2e {n}: veo / fastest raw, paired (median of rounds)", fmt(p, 2),
                     f"<= {one['target_ratio']}", verdict(p if p is not None else r, one["target_ratio"])])
        c = one.get("ratio_veo_compose")
        rows.append([f"e2e {n}: veo / compose", fmt(c, 2), "< 1", verdict(c, 0.9999)])
    if e and "error" in e:
        rows.append(["e2e", e.get("error", "?"), "-", "-"])
    rs = results.get("restart")
    if rs and "latency_s" in rs:
        for side in ("veo", "docker"):
            lat = rs["latency_s"][side]
            rows.append([f"restart {side} p50 / p95", f"{fmt(lat['p50'] * 1e3, 0)} / "
                         f"{fmt(lat['p95'] * 1e3, 0)} ms", "-", "-"])
        for q in ("p50", "p95"):
            r = rs.get(f"ratio_{q}")
            t = rs["target_ratio"]
            t = t[q] if isinstance(t, dict) else t
            rows.append([f"restart ratio veo / docker {q}", fmt(r, 2), f"<= {t}", verdict(r, t)])
    elif rs:
        rows.append(["restart", rs.get("error", "?"), "-", "-"])
    ro = results.get("rolling")
    if ro and "veo_s" in ro:
        rows.append([f"rolling update of {ro['instances']}: veo / Swarm's rule",
                     f"{fmt(ro['veo_s'], 1)} / {fmt(ro['swarm_rule_s'], 1)} s", "-",
                     f"ratio {fmt(ro['ratio'], 2)}"])
    elif ro:
        rows.append(["rolling", ro.get("error", "?"), "-", "-"])
    ms = results.get("machines")
    if ms and "median_s" in ms:
        for k, med in ms["median_s"].items():
            rows.append([f"machines: {k.removesuffix('_s').replace('_', ' ')} (median)",
                         f"{fmt(med, 1)} s", "-", "-"])
    elif ms:
        rows.append(["machines", ms.get("error", "?"), "-", "-"])
    rr = results.get("realscale")
    if rr and "scheduler_rest_cpu" in rr:
        rows.append([f"Scheduler CPU at rest, {rr['total']} instances",
                     f"{fmt(rr['scheduler_rest_cpu'] * 100, 2)} %", "< 2 %",
                     verdict(rr["scheduler_rest_cpu"], 0.02)])
        rows.append([f"{rr['kill']} killed at once -> all running again", f"{fmt(rr['kill_s'], 1)} s",
                     "-", "-"])
    b = results.get("busy")
    if b and "ratio_max" in b:
        rows.append([f"restart during a {b['deploy']}-container deploy: busy / idle p50",
                     fmt(b["ratio_p50"], 2), f"<= {b['target_ratio']}",
                     verdict(b["ratio_p50"], b["target_ratio"])])
        rows.append([f"restart during a {b['deploy']}-container deploy: worst / idle p50",
                     fmt(b["ratio_max"], 2), f"<= {b['target_ratio']}",
                     verdict(b["ratio_max"], b["target_ratio"])])
    sc = results.get("scale")
    for r in (sc or {}).get("rows", []):
        if "steady_ms" in r:
            from bench.scale import TARGET_STEADY_MS

            big = r["nodes"] >= 5000 and r["instances"] >= 100_000
            rows.append([f"steady step, {r['nodes']:,} nodes x {r['instances']:,} instances",
                         f"{fmt(r['steady_ms'], 1)} ms", f"< {TARGET_STEADY_MS:g} ms" if big else "-",
                         verdict(r["steady_ms"], TARGET_STEADY_MS) if big else "-"])
    rows += _store_summary_rows(results)
    from bench.rest_live import summary_rows as api_load_rows

    rows += api_load_rows(results.get("api_load"))
    return rows


def _store_summary_rows(results: dict) -> list[list]:
    rows: list[list] = []
    st = results.get("store")
    if st and "rows" in st:
        target = st["target_event_ms"]
        for r in st["rows"]:
            if r["slots"] == max(x["slots"] for x in st["rows"]) and r["what"] in ("event", "slot row"):
                rows.append([f"store {r['store']} {r['slots']:,} slots: one {r['what']} p50",
                             f"{fmt(r['p50_ms'], 3)} ms, {fmt(r['bytes_per_op'], 0)} B",
                             f"< {target:g} ms" if r["what"] == "event" else "-",
                             verdict(r["p50_ms"], target) if r["what"] == "event" else "-"])
    lo = results.get("loader")
    if lo and "load_s" in lo:
        # the verdict on CPU time: on a shared machine the wall time measures the neighbours
        rows.append([f"loader {lo['services']:,} services, {lo['bytes'] / 1e6:.1f} MB (CPU)",
                     f"{fmt(lo['load_s'], 2)} s wall, {fmt(lo['cpu_s'], 2)} s CPU",
                     f"< {lo['target_s']:g} s", verdict(lo["cpu_s"], lo["target_s"])])
    return rows


def print_summary(results: dict) -> None:
    m = results.get("machine") or {}
    mem = m.get("memory_bytes")
    print("Summary")
    print(f"machine: nproc {m.get('nproc')}, memory {mem / 2**30:.1f} GiB" if mem else
          f"machine: nproc {m.get('nproc')}", end="")
    print(f", docker engine {m.get('docker_server') or m.get('dockerd') or '?'}, "
          f"docker-py {m.get('docker_py', '?')}, ray {m.get('ray', '?')}, python {m.get('python')}, "
          f"kernel {m.get('kernel')}, {m.get('docker_compose') or 'docker-compose: not installed'}")
    print(f"load average at start {results.get('loadavg_at_start')}, at end {m.get('loadavg')} "
          f"(on {m.get('nproc')} CPUs: anything else running on the machine shows in the figures)")
    print(format_table(["figure", "value", "target", "verdict"], summary_rows(results)))
    if results.get("errors"):
        for part, err in results["errors"].items():
            print(f"{part} failed: {err}")


if __name__ == "__main__":
    sys.exit(main())
