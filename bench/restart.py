"""Restart latency: veo's one_for_one supervision vs Docker's own ``--restart on-failure``.

Both sides run the same busybox command, which traps SIGUSR1 and then exits with code 1. The
trigger is a SIGUSR1 sent from the host straight to the container's init process (its host PID
from ``inspect``): the process exits by itself, so Docker's restart manager treats the exit as a
failure (``docker kill`` would count as a manual stop and disable Docker's restart). Latency is
from the moment the signal is sent to the engine's ``start`` event of the same container - one
method, one clock, for both. The engine's ``die`` event splits it into "process exit seen by the
engine" (the same path for both) and "die -> running again" (the restart machinery).

Back-off: every trigger hits a container that has not failed before, so both sides use their
*initial* restart delay with their default settings - veo restarts a first death at once (its
``backoff_initial`` applies from the second quick death), Docker's restart manager waits 100 ms -
and veo's restart budget (10 per 60 s per unit) is never touched.
Triggers alternate veo / Docker, one at a time, with a pause after each replacement is running.
"""

from __future__ import annotations

import os
import signal
import time

from bench.agent_trace import AgentTrace, split
from bench.common import BENCH_NODE, BUSYBOX, Engine, EventRecorder, VeoWorld, format_table, ratio, summarize, verdict, wait_until

TARGET_RATIO = {"p50": 0.75, "p95": 1.0}  # veo / Docker, same run (issue 13)
# `wait` returns at once when a trapped signal arrives, so the exit is immediate
COMMAND = ["sh", "-c", 'trap "exit 1" USR1; while :; do sleep 60 & wait $!; done']
PAUSE_S = 0.3  # after a replacement is running, before the next trigger


def _veo_services(n: int) -> dict:
    from veo.core.models import Service

    return {f"rs-{i:02d}": Service(name=f"rs-{i:02d}", image=BUSYBOX, command=COMMAND,
                                   network_mode="none", restart="restart") for i in range(n)}


def _docker_containers(engine: Engine, n: int, prefix: str = "dock_rs") -> list[str]:
    api = engine.api()
    try:
        ids = []
        for i in range(n):
            hc = api.create_host_config(network_mode="none", restart_policy={"Name": "on-failure"})
            cid = api.create_container(BUSYBOX, COMMAND, name=f"{prefix}_{i:02d}", host_config=hc,
                                       labels={"bench": "restart"})["Id"]
            api.start(cid)
            ids.append(cid)
        return ids
    finally:
        api.close()


def _running_pid(api, cid: str, timeout: float = 30) -> int:
    def pid() -> int:
        st = api.inspect_container(cid)["State"]
        return st.get("Pid") if st.get("Running") and st.get("Pid") else 0

    return wait_until(pid, timeout, 0.02, f"container {cid[:12]} to run")


def _trigger(api, rec: EventRecorder, cid: str) -> dict:
    pid = _running_pid(api, cid)
    time.sleep(0.05)  # let sh reach its `wait` with the trap set (it has run for a while anyway)
    t0 = time.time_ns()
    os.kill(pid, signal.SIGUSR1)
    die = rec.wait("die", cid, t0, timeout=30)
    start = rec.wait("start", cid, t0, timeout=60)
    if start is None:
        return {"error": f"no start event for {cid[:12]} within 60 s of the trigger"}
    out = {"latency_s": (int(start["timeNano"]) - t0) / 1e9}
    if die is not None:
        out["to_die_s"] = (int(die["timeNano"]) - t0) / 1e9
        out["die_to_start_s"] = (int(start["timeNano"]) - int(die["timeNano"])) / 1e9
        out["exit_code"] = int(((die.get("Actor") or {}).get("Attributes") or {}).get("exitCode", -1))
    return out


def supervisor_round_trip(node: str = "bench", n: int = 20) -> dict:
    """What a death cost when the agent asked the GroupSupervisor (one Ray call and its answer)
    before acting: measured here from the driver to the node's supervisor, same machine."""
    import ray

    from veo.core.names import ACTOR_NAMESPACE, actor_name

    sup = ray.get_actor(actor_name("supervisor", node), namespace=ACTOR_NAMESPACE)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        ray.get(sup.snapshot.remote())
        times.append(time.perf_counter() - t0)
    return summarize(times)


def run(engine: Engine, world: VeoWorld, triggers: int = 20) -> dict:
    from veo.core.models import InstanceStatus, Settings

    settings = Settings()  # the defaults, printed with the result
    services = _veo_services(triggers)
    world.apply(services, settings)

    def veo_ready():
        insts = [i for i in world.client.containers() if i.service in services]
        ok = len(insts) == triggers and all(i.status is InstanceStatus.running and i.container_id
                                            for i in insts)
        return insts if ok else None

    insts = wait_until(veo_ready, 300, 0.1, f"{triggers} veo restart services to run")
    veo_ids = [i.container_id for i in sorted(insts, key=lambda i: i.service)]
    docker_ids = _docker_containers(engine, triggers)
    rec = EventRecorder(engine.docker_host)
    api = engine.api()
    samples: dict[str, list[dict]] = {"veo": [], "docker": []}
    try:
        time.sleep(1.0)  # every process is past its start-up
        for i in range(triggers):
            for side, cid in (("veo", veo_ids[i]), ("docker", docker_ids[i])):
                samples[side].append(_trigger(api, rec, cid))
                time.sleep(PAUSE_S)
        restarts = {i.service: i.restarts for i in world.client.containers() if i.service in services}
    finally:
        api.close()
        rec.close()
        world.clear()
        engine.remove_all({"bench": "restart"})
    res: dict = {"triggers_each": triggers, "samples": samples, "target_ratio": TARGET_RATIO,
                 "veo_settings": settings.model_dump(mode="json"),
                 "docker_policy": "on-failure (restart manager: 100 ms initial delay, doubling, reset after 10 s up)",
                 "veo_restart_counts": restarts, "command": COMMAND, "pause_s": PAUSE_S}
    for side, rows in samples.items():
        errors = [r["error"] for r in rows if "error" in r]
        if errors:
            res.setdefault("errors", {})[side] = f"{len(errors)} trigger(s) failed: {errors[0]}"
        for key in ("latency_s", "to_die_s", "die_to_start_s"):
            res.setdefault(key, {})[side] = summarize(r[key] for r in rows if key in r)
    try:
        res["supervisor_round_trip_s"] = supervisor_round_trip()
    except Exception as e:  # a figure for the notes, not a result
        res["supervisor_round_trip_s"] = {"error": str(e)}
    lat = res["latency_s"]
    res["ratio_p50"] = ratio(lat["veo"]["p50"], lat["docker"]["p50"])
    res["ratio_p95"] = ratio(lat["veo"]["p95"], lat["docker"]["p95"])
    return res


def print_report(res: dict) -> None:
    s = res["veo_settings"]
    print(f"Restart latency: SIGUSR1 -> exit 1 -> replacement running (engine 'start' event); "
          f"{res['triggers_each']} triggers each, alternating, one at a time, each on a container "
          "that had not failed before")
    print(f"veo settings (defaults): backoff_initial {s['backoff_initial']:g} s, factor "
          f"{s['backoff_factor']:g}, backoff_max {s['backoff_max']:g} s, budget {s['budget_restarts']} "
          f"per {s['budget_period']:g} s; docker: {res['docker_policy']}")
    rows = []
    for side in ("veo", "docker"):
        lat, die, d2s = (res[k][side] for k in ("latency_s", "to_die_s", "die_to_start_s"))
        rows.append([side, lat["n"], lat["p50"] * 1e3, lat["p95"] * 1e3, lat["min"] * 1e3,
                     lat["max"] * 1e3, die["p50"] * 1e3, d2s["p50"] * 1e3])
    print(format_table(["side", "n", "p50 ms", "p95 ms", "min ms", "max ms", "to die p50 ms",
                        "die->start p50 ms"], rows, 1))
    for side, err in (res.get("errors") or {}).items():
        print(f"{side}: {err}")
    rt = res.get("supervisor_round_trip_s") or {}
    if "p50" in rt:
        print(f"a Ray round trip to the node's GroupSupervisor (what each death cost before the agent "
              f"decided itself): p50 {rt['p50'] * 1e3:.1f} ms, max {rt['max'] * 1e3:.1f} ms")
    r50, r95 = res["ratio_p50"], res["ratio_p95"]
    t = res["target_ratio"]
    print(f"veo / docker p50 = {_r(r50)} (target <= {t['p50']}): {verdict(r50, t['p50'])}; "
          f"p95 = {_r(r95)} (target <= {t['p95']}): {verdict(r95, t['p95'])}")


def _r(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


# --------------------------------------------------------------------------------------------------
# Restart during a deploy: a crash on a node busy creating many other containers
# --------------------------------------------------------------------------------------------------

BUSY_TARGET = 2.0  # x the idle restart latency, same run


def run_busy(engine: Engine, world: VeoWorld, deploy: int = 100, triggers: int = 8) -> dict:
    """Idle: ``triggers`` restarts on a quiet node. Busy: the same count while the node's agent
    creates ``deploy`` other containers (one apply of that many services); each trigger waits
    until the deploy is under way and checks it is still going when the replacement runs."""
    from veo.core.models import InstanceStatus, Service

    idle_svcs = {f"ri-{i:02d}": s for i, s in enumerate(_veo_services(triggers).values())}
    busy_svcs = {f"rb-{i:02d}": s for i, s in enumerate(_veo_services(triggers).values())}
    victims = {n: s.model_copy(update={"name": n}) for n, s in {**idle_svcs, **busy_svcs}.items()}
    world.apply(victims)

    def ready():
        insts = {i.service: i for i in world.client.containers() if i.service in victims}
        ok = len(insts) == len(victims) and all(i.status is InstanceStatus.running and i.container_id
                                                for i in insts.values())
        return insts if ok else None

    insts = wait_until(ready, 300, 0.1, "the restart victims to run")
    # Docker's own restart policy on the same engine, same moments: the engine's floor
    dock_idle = _docker_containers(engine, triggers, "dock_ri")
    dock_busy = _docker_containers(engine, triggers, "dock_rb")
    rec = EventRecorder(engine.docker_host)
    api = engine.api()
    probe = AgentTrace(BENCH_NODE)  # the agent's side of each restart (bench/agent_trace.py)
    out: dict = {"deploy": deploy, "triggers_each": triggers, "target_ratio": BUSY_TARGET,
                 "idle": [], "busy": [], "docker_idle": [], "docker_busy": []}
    try:
        time.sleep(1.0)
        for n, dock in zip(sorted(idle_svcs), dock_idle):
            out["idle"].append(_trigger(api, rec, insts[n].container_id))
            time.sleep(PAUSE_S)
            out["docker_idle"].append(_trigger(api, rec, dock))
            time.sleep(PAUSE_S)
        out["agent_idle"] = split(probe.take(), [insts[n].container_id for n in sorted(idle_svcs)])
        load = {f"load-{i:03d}": Service(name=f"load-{i:03d}", image=BUSYBOX,
                                         command=["sleep", "3600"], network_mode="none")
                for i in range(deploy)}
        t_apply = time.time_ns()
        world.apply({**victims, **load})
        for n, dock in zip(sorted(busy_svcs), dock_busy):
            # the deploy is under way: some, not all, of its containers exist
            wait_until(lambda: _created(rec, t_apply) >= 5, 120, 0.02, "the deploy to start")
            row = _trigger(api, rec, insts[n].container_id)
            row["load_created_at_trigger"] = _created(rec, t_apply)
            out["busy"].append(row)
            out["docker_busy"].append(_trigger(api, rec, dock))
        out["load_created_when_done"] = _created(rec, t_apply)
        out["agent_busy"] = split(probe.take(), [insts[n].container_id for n in sorted(busy_svcs)])
    finally:
        api.close()
        rec.close()
        world.clear()
        engine.remove_all({"bench": "restart"})
    for side in ("idle", "busy", "docker_idle", "docker_busy"):
        out[f"{side}_latency_s"] = summarize(r["latency_s"] for r in out[side] if "latency_s" in r)
    out["ratio_p50"] = ratio(out["busy_latency_s"]["p50"], out["idle_latency_s"]["p50"])
    out["ratio_max"] = ratio(out["busy_latency_s"]["max"], out["idle_latency_s"]["p50"])
    out["docker_ratio_p50"] = ratio(out["docker_busy_latency_s"]["p50"],
                                    out["docker_idle_latency_s"]["p50"])
    # the part after the engine reported the exit (its die event): veo's reaction and the start
    for side in ("idle", "busy", "docker_idle", "docker_busy"):
        out[f"{side}_die_to_start_s"] = summarize(r["die_to_start_s"] for r in out[side]
                                                  if "die_to_start_s" in r)
    out["die_to_start_ratio_max"] = ratio(out["busy_die_to_start_s"]["max"],
                                          out["idle_die_to_start_s"]["p50"])
    return out


def _created(rec: EventRecorder, after_ns: int) -> int:
    from veo.core.names import LABEL_SERVICE

    return sum(1 for e in rec.matching("create", after_ns)
               if ((e.get("Actor") or {}).get("Attributes") or {}).get(LABEL_SERVICE, "").startswith("load-"))


def print_busy(res: dict) -> None:
    idle, busy = res["idle_latency_s"], res["busy_latency_s"]
    print(f"Restart during a deploy: {res['triggers_each']} crashes while the node's agent creates "
          f"{res['deploy']} other containers, vs {res['triggers_each']} on the idle node (same run)")
    di, db = res["docker_idle_latency_s"], res["docker_busy_latency_s"]
    rows = [["veo idle", idle["n"], idle["p50"] * 1e3, idle["max"] * 1e3, "-"],
            ["veo busy", busy["n"], busy["p50"] * 1e3, busy["max"] * 1e3,
             " ".join(str(r.get("load_created_at_trigger", "?")) for r in res["busy"])],
            ["docker on-failure idle", di["n"], di["p50"] * 1e3, di["max"] * 1e3, "-"],
            ["docker on-failure busy", db["n"], db["p50"] * 1e3, db["max"] * 1e3, "same moments"]]
    print(format_table(["node", "n", "p50 ms", "max ms", "deploy containers created at each trigger"],
                       rows, 1))
    for side in ("idle", "busy"):
        a = res.get(f"agent_{side}") or {}
        if a.get("start_call_s", {}).get("n"):
            print(f"veo {side}, inside the agent (p50): engine die -> agent saw it "
                  f"{a['seen_s']['p50'] * 1e3:.0f} ms, -> start call sent {a['react_s']['p50'] * 1e3:.0f} ms, "
                  f"the engine's start call {a['start_call_s']['p50'] * 1e3:.0f} ms "
                  f"(max {a['start_call_s']['max'] * 1e3:.0f} ms)")
    print(f"deploy containers created when the last busy restart was done: "
          f"{res.get('load_created_when_done')} of {res['deploy']}")
    r, m = res["ratio_p50"], res["ratio_max"]
    print(f"veo busy / idle p50 = {_r(r)} (target <= {BUSY_TARGET}): {verdict(r, BUSY_TARGET)}; worst "
          f"busy / idle p50 = {_r(m)}: {verdict(m, BUSY_TARGET)}; from the engine's die event on "
          f"(veo's part), worst / idle p50 = {_r(res.get('die_to_start_ratio_max'))}; Docker's own "
          f"restart on the same busy engine: busy / idle p50 = {_r(res.get('docker_ratio_p50'))}")
