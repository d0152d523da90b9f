"""Restart latency: veo's one_for_one supervision vs Docker's own ``--restart on-failure``.

Both sides run the same busybox command, which traps SIGUSR1 and then exits with code 1. The
trigger is a SIGUSR1 sent from the host straight to the container's init process (its host PID
from ``inspect``): the process exits by itself, so Docker's restart manager treats the exit as a
failure (``docker kill`` would count as a manual stop and disable Docker's restart). Latency is
from the moment the signal is sent to the engine's ``start`` event of the same container - one
method, one clock, for both. The engine's ``die`` event splits it into "process exit seen by the
engine" (the same path for both) and "die -> running again" (the restart machinery).

Back-off: every trigger hits a container that has not failed before, so both sides use their
*initial* restart delay with their default settings - veo ``backoff_initial`` 0.1 s, Docker's
restart manager 100 ms - and veo's restart budget (10 per 60 s per unit) is never touched.
Triggers alternate veo / Docker, one at a time, with a pause after each replacement is running.
"""

from __future__ import annotations

import os
import signal
import time

from bench.common import BUSYBOX, Engine, EventRecorder, VeoWorld, format_table, ratio, summarize, verdict, wait_until

TARGET_RATIO = 1.5
# `wait` returns at once when a trapped signal arrives, so the exit is immediate
COMMAND = ["sh", "-c", 'trap "exit 1" USR1; while :; do sleep 60 & wait $!; done']
PAUSE_S = 0.3  # after a replacement is running, before the next trigger


def _veo_services(n: int) -> dict:
    from veo.core.models import Service

    return {f"rs-{i:02d}": Service(name=f"rs-{i:02d}", image=BUSYBOX, command=COMMAND,
                                   network_mode="none", restart="restart") for i in range(n)}


def _docker_containers(engine: Engine, n: int) -> list[str]:
    api = engine.api()
    try:
        ids = []
        for i in range(n):
            hc = api.create_host_config(network_mode="none", restart_policy={"Name": "on-failure"})
            cid = api.create_container(BUSYBOX, COMMAND, name=f"dock_rs_{i:02d}", host_config=hc,
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
    r50, r95 = res["ratio_p50"], res["ratio_p95"]
    print(f"veo / docker p50 = {_r(r50)}, p95 = {_r(r95)} (target <= {TARGET_RATIO}): "
          f"p50 {verdict(r50, TARGET_RATIO)}, p95 {verdict(r95, TARGET_RATIO)}")


def _r(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"
