"""REST load on real processes (issue 14): a ``veo serve`` process (token on) in front of a real
Scheduler, hammered at a fixed rate by a generator process of its own, while the control loop's
step time is read from the Scheduler (``loop_stats``) in a quiet window and under the load, with
each process's CPU. The test (tests/integration/test_api_load_live.py) asserts correctness; the
figures (rates, latencies, step-time ratio) are printed by it and by ``make bench``'s api_load.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import loadavg

TOKEN = "bench-rest-live-token-0123456789"
ROW_FIELDS = {"key", "id", "service", "instance", "status", "node", "health"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (its own threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``veo serve --address ADDRESS`` with a token, on a free loopback port."""

    def __init__(self, address: str, token: str = TOKEN):
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.token = token
        self.log = tempfile.TemporaryFile()
        argv = [sys.executable, "-m", "veo.cli.app", "serve", "--port", self.url.rsplit(":", 1)[1],
                "--address", address, "--log-level", "warning"]
        self.proc = subprocess.Popen(argv, env={**os.environ, "VEO_TOKEN": token},
                                     stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 90.0) -> list:
        """Until it answers /api/containers (its first request connects it to Ray)."""
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.token}"}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"veo serve exited ({self.proc.returncode}): {self.output()}")
            try:
                r = httpx.get(f"{self.url}/api/containers", headers=headers, timeout=60)
                if r.status_code == 200:
                    return r.json()
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"veo serve did not answer in {timeout:g}s: {self.output()}")

    def list_counts(self) -> dict[str, float]:
        """From its /metrics: list answers from a copy, and its calls to the Scheduler."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", timeout=60,
                         headers={"Authorization": f"Bearer {self.token}"}).text
        out = {}
        for fam in text_string_to_metric_families(text):
            for sample in fam.samples:
                if sample.name == "veo_api_container_lists_total":
                    out[sample.labels["source"]] = sample.value
                elif sample.name == "veo_api_container_list_calls_total":
                    out["calls"] = sample.value
        return out

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def rows_check(expect: set[str]):
    """A body check for the generator: a JSON list of container rows in which every instance
    of ``expect`` shows as running."""
    def check(body: bytes) -> str | None:
        try:
            rows = json.loads(body)
        except ValueError as e:
            return f"not JSON: {e}"
        if not isinstance(rows, list):
            return f"not a list: {type(rows).__name__}"
        status = {}
        for row in rows:
            if not isinstance(row, dict) or not ROW_FIELDS <= row.keys():
                return f"a row without {sorted(ROW_FIELDS)}: {row!r}"
            status[row["key"]] = row["status"]
        wrong = sorted(k for k in expect if status.get(k) != "running")
        return f"not running or missing: {wrong}" if wrong else None

    return check


def generate(url: str, rate: float, seconds: float, expect: set[str], token: str = TOKEN,
             check: bool = True) -> dict:
    """The generator in a process of its own (it shares no GIL and no CPU figure with the caller,
    which may be a Ray driver); its summary and its own CPU seconds."""
    argv = [sys.executable, "-m", "bench.rest_live", url, str(rate), str(seconds),
            ",".join(expect) if check else "-"]
    out = subprocess.run(argv, env={**os.environ, "VEO_TOKEN": token}, capture_output=True,
                         text=True, timeout=seconds + 180)
    if out.returncode != 0:
        raise RuntimeError(f"the load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _scheduler_pid() -> int:
    import ray

    from veo.core.names import ACTOR_NAMESPACE, SCHEDULER_NAME

    return ray.get(ray.get_actor(SCHEDULER_NAME, namespace=ACTOR_NAMESPACE).pid.remote(),
                   timeout=30)


def measure(client, address: str, expect: set[str], rate: float = 200.0, seconds: float = 30.0,
            idle: float = 15.0, control: bool = False) -> dict:
    """A quiet window of ``idle`` seconds, then ``rate`` GET /api/containers a second for
    ``seconds``; the step times of each window (only the steps inside it: ``loop_stats(since)``)
    and the CPU of the server, the generator and the Scheduler. ``control``: then the same load
    on /healthz, which the server answers without the Scheduler: what the load costs the loop
    through this machine's CPUs alone."""
    sched = _scheduler_pid()  # the Scheduler runs on this machine (a local Ray cluster)
    server = ServeProcess(address)
    try:
        server.wait_ready()
        windows = {"quiet": _window(client, sched, server.pid, lambda: time.sleep(idle))}
        load_at_start = loadavg()
        before = server.list_counts()
        windows["loaded"] = _window(client, sched, server.pid, lambda: generate(
            f"{server.url}/api/containers", rate, seconds, expect))
        after = server.list_counts()
        served = {k: after.get(k, 0) - before.get(k, 0) for k in ("copy", "scheduler", "calls")}
        if control:
            windows["control"] = _window(client, sched, server.pid, lambda: generate(
                f"{server.url}/healthz", rate, seconds, set(), check=False))
    finally:
        server.close()
    quiet, loaded = windows["quiet"]["steps"], windows["loaded"]["steps"]
    rest = windows["loaded"]["result"]
    return {"rate": rate, "seconds": seconds, "rest": rest, "windows": windows, "served": served,
            "step_ratio_p50": _ratio(loaded["p50"], quiet["p50"]),
            "step_ratio_p95": _ratio(loaded["p95"], quiet["p95"]),
            "cpu_percent": {"server": windows["loaded"]["server_cpu"],
                            "generator": round(100 * rest["cpu_s"] / rest["seconds"], 1),
                            "scheduler_quiet": windows["quiet"]["scheduler_cpu"],
                            "scheduler_loaded": windows["loaded"]["scheduler_cpu"]},
            "loadavg_at_start": load_at_start, "loadavg_at_end": loadavg()}


def _window(client, sched: int, server: int, run) -> dict:
    """Runs ``run()``; the steps inside, and the CPU share of the Scheduler and the server."""
    mark, s0, v0, t0 = (client.loop_stats()["total"], cpu_seconds(sched), cpu_seconds(server),
                        time.monotonic())
    result = run()
    wall = time.monotonic() - t0
    return {"steps": client.loop_stats(since=mark), "result": result, "seconds": round(wall, 2),
            "scheduler_cpu": round(100 * (cpu_seconds(sched) - s0) / wall, 1),
            "server_cpu": round(100 * (cpu_seconds(server) - v0) / wall, 1)}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def report(res: dict) -> str:
    """The figures in a few lines."""
    r, cpu, w = res["rest"], res["cpu_percent"], res["windows"]
    ms = lambda s: f"{s * 1000:.1f} ms"  # noqa: E731

    def steps(name: str) -> str:
        st = w[name]["steps"]
        return f"{name} p50 {ms(st['p50'])} p95 {ms(st['p95'])} ({st['count']} steps)"

    lines = [
        f"REST GET /api/containers at {res['rate']:g}/s for {res['seconds']:g}s: achieved "
        f"{r['req_per_s']}/s, statuses {r['statuses']}, 5xx+errors {r['errors']}, invalid "
        f"{r['invalid']}, latency p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms",
        f"answers from a kept copy {res['served']['copy']:.0f}, asked of the Scheduler "
        f"{res['served']['scheduler']:.0f} ({res['served']['calls']:.0f} calls)",
        f"control-loop step: {steps('quiet')}, {steps('loaded')}; ratio loaded/quiet "
        f"p50 {res['step_ratio_p50']}, p95 {res['step_ratio_p95']}",
        f"CPU: server {cpu['server']} %, generator {cpu['generator']} %, Scheduler "
        f"{cpu['scheduler_quiet']} % quiet, {cpu['scheduler_loaded']} % loaded; load average "
        f"{res['loadavg_at_start']} -> {res['loadavg_at_end']}"]
    if "control" in w:
        c = w["control"]
        lines.append(f"control, the same load on /healthz (no Scheduler call): {steps('control')}"
                     f", ratio p50 {_ratio(c['steps']['p50'], w['quiet']['steps']['p50'])}; "
                     f"server {c['server_cpu']} %, Scheduler {c['scheduler_cpu']} %")
    return "\n".join(lines)


def run(engine, world, quick: bool = False) -> dict:
    """``make bench``'s api_load part on its one-node world: 4 services x 3 instances running."""
    from bench.common import wait_until

    services = {f"load{i}": {"name": f"load{i}", "image": "veo/busybox", "command": LOOP,
                             "network_mode": "none", "memory": "16m", "instances": 3,
                             "stop_grace_period": 1} for i in range(4)}
    expect = {f"{name}#{i}" for name in services for i in range(3)}
    world.apply(services)
    try:
        wait_until(lambda: expect <= {f"{i.service}#{i.instance}" for i in world.client.containers()
                                      if i.status.value == "running"}, 120, 0.5,
                   "the load services to run")
        return measure(world.client, world.cluster.address, expect,
                       seconds=10 if quick else 30, idle=10 if quick else 15, control=True)
    finally:
        world.clear()


def summary_rows(res: dict | None) -> list[list]:
    """(figure, value, target, verdict) rows for ``python -m bench``'s summary."""
    from bench.common import verdict

    if not res:
        return []
    if "rest" not in res:
        return [["api_load", res.get("error", "?"), "-", "-"]]
    r, q, lo = res["rest"], res["windows"]["quiet"]["steps"], res["windows"]["loaded"]["steps"]
    rate = r["req_per_s"]
    return [
        [f"REST /api/containers at {res['rate']:g}/s: achieved, 5xx+errors",
         f"{rate}/s, {r['errors']}", f">= {res['rate']:g}/s, 0",
         "met" if rate >= 0.98 * res["rate"] and r["errors"] == 0 else "NOT met"],
        ["REST latency p50 / p99", f"{r['p50_ms']} / {r['p99_ms']} ms", "-", "-"],
        ["control-loop step p50: quiet -> loaded",
         f"{q['p50'] * 1e3:.1f} -> {lo['p50'] * 1e3:.1f} ms", "-", "-"],
        ["control-loop step ratio loaded/quiet p50 (p95)",
         f"{res['step_ratio_p50']} ({res['step_ratio_p95']})", "< 2",
         verdict(res["step_ratio_p50"], 2.0)],
    ]


def print_report(res: dict) -> None:
    print("REST load on a real veo serve and Scheduler (issue 14)")
    print(report(res))


def _generator_main(argv: list[str]) -> None:
    from bench.api_load import hammer

    url, rate, seconds, expect = argv
    cpu0 = time.process_time()  # after the imports: the load's own CPU
    check = None if expect == "-" else rows_check(set(filter(None, expect.split(","))))
    result = hammer(url, float(rate), float(seconds), os.environ.get("VEO_TOKEN"), check=check)
    print(json.dumps({**result.summary(), "cpu_s": round(time.process_time() - cpu0, 3)}),
          flush=True)


if __name__ == "__main__":
    _generator_main(sys.argv[1:])
