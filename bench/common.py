"""Shared pieces of the benchmarks: statistics, tables, machine facts, a private engine with an
event recorder, and a one-node veo world (Ray + Scheduler) wrapping that engine.

Everything started here is stopped by the same object that started it: engines through
``veo.adapters.dockerd.stop_engine`` (by recorded PID), the Ray cluster through its ``shutdown()``.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

BUSYBOX = "veo/busybox:latest"
BENCH_NODE = "bench"


# --------------------------------------------------------------------------------------------------
# Numbers and tables (pure)
# --------------------------------------------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between closest ranks (numpy's
    default). NaN for no values."""
    xs = sorted(values)
    if not xs:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    pos = (len(xs) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(values: Iterable[float]) -> dict[str, float]:
    xs = list(values)
    if not xs:
        return {"n": 0, "p50": math.nan, "p95": math.nan, "mean": math.nan, "min": math.nan,
                "max": math.nan}
    return {"n": len(xs), "p50": percentile(xs, 50), "p95": percentile(xs, 95),
            "mean": sum(xs) / len(xs), "min": min(xs), "max": max(xs)}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def fmt(v: Any, digits: int = 3) -> str:
    """A cell: floats with ``digits`` decimals, None/NaN as '-', everything else as str."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return one_line(str(v))


def one_line(text: str, width: int = 110) -> str:
    """First line of ``text``, cut to ``width`` characters (error messages in table cells)."""
    lines = text.strip().splitlines() or [""]
    first = lines[0] + (" ..." if len(lines) > 1 else "")
    return first if len(first) <= width else first[: width - 3] + "..."


def timeline_gaps(events: Iterable[tuple[str, int]]) -> dict[str, list[float]]:
    """From (action, time_ns) engine events of sequential create+start work: seconds from each
    ``create`` to the following ``start`` (the engine starting a container) and from each
    ``start`` to the next ``create`` (the caller's own time between two containers)."""
    out: dict[str, list[float]] = {"create_to_start": [], "start_to_next_create": []}
    prev: tuple[str, int] | None = None
    for action, t in sorted(events, key=lambda e: e[1]):
        if prev is not None:
            if prev[0] == "create" and action == "start":
                out["create_to_start"].append((t - prev[1]) / 1e9)
            elif prev[0] == "start" and action == "create":
                out["start_to_next_create"].append((t - prev[1]) / 1e9)
        prev = (action, t)
    return out


def format_table(headers: list[str], rows: list[list[Any]], digits: int = 3) -> str:
    """A plain text table: first column left-aligned, the others right-aligned."""
    cells = [[fmt(c, digits) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells if i < len(r)]) for i, h in enumerate(headers)]

    def line(items: list[str]) -> str:
        out = []
        for i, w in enumerate(widths):
            text = items[i] if i < len(items) else ""
            out.append(text.ljust(w) if i == 0 else text.rjust(w))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def verdict(value: float | None, target: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return "met" if value <= target else "NOT met"


# --------------------------------------------------------------------------------------------------
# Machine facts
# --------------------------------------------------------------------------------------------------


def _meminfo_total() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def loadavg() -> str | None:
    """1/5/15-minute load: other work on the machine shows up here (and in the figures)."""
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return None


def _cmd_version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        if out.returncode == 0:
            return out.stdout.strip().splitlines()[0]
    return None


def machine_info(docker_host: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _meminfo_total(),
        "kernel": platform.release(),
        "loadavg": loadavg(),
        "python": platform.python_version(),
        "dockerd": _cmd_version(["dockerd", "--version"]),
        "docker_compose": _cmd_version(["docker-compose", "--version"]),
    }
    with contextlib.suppress(Exception):
        import ray

        info["ray"] = ray.__version__
    with contextlib.suppress(Exception):
        import docker

        info["docker_py"] = docker.__version__
    if docker_host:
        from veo.adapters.docker_api import DockerRuntime

        rt = DockerRuntime(docker_host)
        with contextlib.suppress(Exception):
            info["docker_server"] = rt.info().server_version
        rt.close()
    return info


# --------------------------------------------------------------------------------------------------
# Engine event recorder
# --------------------------------------------------------------------------------------------------


class EventRecorder:
    """Follows one engine's container events in a thread and keeps (action, id, time_ns, attrs)
    so a benchmark can ask 'when did container X start after time T', by the engine's clock."""

    def __init__(self, docker_host: str):
        import docker

        self._client = docker.APIClient(base_url=docker_host, timeout=None)
        self._events: list[dict] = []
        self._cond = threading.Condition()
        self._stream = self._client.events(filters={"type": "container"}, decode=True,
                                           since=time.time() - 1)
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-events")
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):
            for ev in self._stream:
                with self._cond:
                    self._events.append(ev)
                    self._cond.notify_all()

    def matching(self, action: str, after_ns: int = 0, ids: set[str] | None = None,
                 labels: dict[str, str] | None = None) -> list[dict]:
        with self._cond:
            return [e for e in self._events if _match(e, action, after_ns, ids, labels)]

    def wait(self, action: str, cid: str, after_ns: int, timeout: float = 30.0) -> dict | None:
        """The first ``action`` event of container ``cid`` stamped after ``after_ns``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self._events:
                    if _match(e, action, after_ns, {cid}, None):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
        with contextlib.suppress(Exception):
            self._client.close()
        self._thread.join(timeout=5)


def _match(e: dict, action: str, after_ns: int, ids: set[str] | None,
           labels: dict[str, str] | None) -> bool:
    if e.get("Action") != action or int(e.get("timeNano", 0)) < after_ns:
        return False
    if ids is not None and e.get("id") not in ids:
        return False
    if labels:
        attrs = (e.get("Actor") or {}).get("Attributes") or {}
        return all(attrs.get(k) == v for k, v in labels.items())
    return True


# --------------------------------------------------------------------------------------------------
# The world: one private engine, optionally a one-node Ray cluster with veo on it
# --------------------------------------------------------------------------------------------------


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what or pred}")
        time.sleep(interval)


class Engine:
    """A private dockerd under a short /tmp directory, with veo's images built."""

    NAME = "bench"

    def __init__(self) -> None:
        from veo.adapters.dockerd import ensure_engine
        from veo.adapters.images import ensure_images
        from veo.adapters.docker_api import DockerRuntime

        self.state_dir = Path(tempfile.mkdtemp(prefix="vb-", dir="/tmp"))
        self.handle = None
        try:
            self.handle = ensure_engine(self.NAME, state_dir=self.state_dir, use_existing=False)
            self.docker_host = self.handle.docker_host
            self.runtime = DockerRuntime(self.docker_host, timeout=120)
            ensure_images(self.runtime)
        except BaseException:
            self.close()
            raise

    def api(self):
        import docker

        return docker.APIClient(base_url=self.docker_host, timeout=120)

    def remove_all(self, labels: dict[str, str] | None = None) -> int:
        """Force-remove containers (all of them, or those carrying ``labels``)."""
        states = self.runtime.list(labels=labels)
        for c in states:
            self.runtime.remove(c.id)
        return len(states)

    def close(self) -> None:
        from veo.adapters.dockerd import stop_engine

        if self.handle is not None:
            with contextlib.suppress(Exception):
                self.runtime.close()
            try:
                stop_engine(self.NAME, state_dir=self.state_dir, timeout=30)
            except Exception as e:  # report, and keep going: the rest must still be stopped
                print(f"warning: could not stop engine {self.NAME}: {e}", file=sys.stderr)
            self.handle = None
        shutil.rmtree(self.state_dir, ignore_errors=True)


class VeoWorld:
    """A one-node local Ray cluster (``veo.adapters.ray_local.start_nodes``) whose node wraps ``engine``, and a
    veo Scheduler on it. ``startup_s`` is how long that took (never part of a measured figure)."""

    def __init__(self, engine: Engine):
        import ray

        from veo.adapters import ray_local as local
        from veo.deploy import start_scheduler

        self.engine = engine
        self.cluster = None
        t0 = time.monotonic()
        try:
            spec = local.NodeSpec(BENCH_NODE, None, engine.docker_host)
            with _quiet_fd2():
                self.cluster, _ = local.start_nodes([spec])
                ray.init(address=self.cluster.address, namespace="veo", log_to_driver=False,
                         logging_level="ERROR", configure_logging=False)
            self.client = start_scheduler(state_path=engine.state_dir / "scheduler.db")
            self.apply({})
            wait_until(self._reported, 120, 0.2, "the node agent's first report")
        except BaseException:
            self.close()
            raise
        self.startup_s = time.monotonic() - t0

    def _reported(self) -> bool:
        views = self.client.nodes()
        return any(v.name == BENCH_NODE and v.alive and v.memory_total > 0 for v in views)

    def apply(self, services: dict, settings=None) -> dict:
        from veo.core.models import ClusterSpec, Node, Settings

        spec = ClusterSpec(name="veo", nodes=[Node(name=BENCH_NODE)], services=services,
                           settings=settings or Settings())
        return self.client.apply(spec)

    def clear(self, timeout: float = 120.0) -> None:
        """Apply no services and wait until the engine holds no veo container."""
        from veo.core.names import LABEL_MANAGED

        self.apply({})
        wait_until(lambda: not self.engine.runtime.list(labels={LABEL_MANAGED: "true"}), timeout,
                   0.1, "veo's containers to be removed")

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            with contextlib.suppress(Exception):
                self.client.shutdown(timeout=120)
            with contextlib.suppress(Exception):
                from veo.core.names import ACTOR_NAMESPACE, SCHEDULER_NAME

                ray.kill(ray.get_actor(SCHEDULER_NAME, namespace=ACTOR_NAMESPACE))
            ray.shutdown()
        if self.cluster is not None:
            with _quiet_fd2():
                self.cluster.shutdown()
            self.cluster = None


@contextlib.contextmanager
def _quiet_fd2():
    """Ray prints start-up chatter on stderr; keep it out of the benchmark's output (into a log)."""
    log = Path(tempfile.gettempdir()) / "veo-bench-ray.log"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log, "ab") as f:
            os.dup2(f.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
