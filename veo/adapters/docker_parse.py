"""What a Docker engine says, parsed, and what veo says back about it (pure: no engine here).

Turning Docker's JSON into ``ContainerState`` and stats numbers, and an engine's failure text
into a message a user can act on, are plain functions so they are tested without an engine
(``tests/unit/test_runtime_parse.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from veo.core.errors import EngineError, ImageNotFound, RegistryUnavailable

_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class EngineInfo:
    cpus: int
    memory: int
    disk: int
    docker_root_dir: str
    server_version: str
    name: str


@dataclass(frozen=True)
class ContainerState:
    """One container as the engine reports it. Fields the list endpoint does not carry
    (started_at, finished_at, oom_killed, error, restart_count) are None/False/""/0 there."""

    id: str
    name: str
    labels: dict[str, str] = field(hash=False)
    status: str  # created, running, paused, restarting, removing, exited, dead
    running: bool
    exit_code: int | None  # only once the container has exited
    started_at: str | None
    finished_at: str | None
    health: str  # none, starting, healthy, unhealthy
    oom_killed: bool
    error: str
    restart_count: int
    image: str


def _time(value: str | None) -> str | None:
    return None if not value or value == _ZERO_TIME else value


def parse_inspect(data: dict) -> ContainerState:
    """From ``GET /containers/{id}/json``."""
    state = data.get("State") or {}
    config = data.get("Config") or {}
    status = state.get("Status") or "unknown"
    exited = status in ("exited", "dead")
    return ContainerState(
        id=data.get("Id", ""),
        name=(data.get("Name") or "").lstrip("/"),
        labels=dict(config.get("Labels") or {}),
        status=status,
        running=bool(state.get("Running")),
        exit_code=state.get("ExitCode") if exited else None,
        started_at=_time(state.get("StartedAt")),
        finished_at=_time(state.get("FinishedAt")),
        health=((state.get("Health") or {}).get("Status")) or "none",
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or "",
        restart_count=int(data.get("RestartCount") or 0),
        image=config.get("Image") or data.get("Image", ""),
    )


_EXIT_RE = re.compile(r"^(?:Exited|Restarting) \((-?\d+)\)")


def _health_from_status(text: str) -> str:
    if "(health: starting)" in text:
        return "starting"
    if "(unhealthy)" in text:
        return "unhealthy"
    if "(healthy)" in text:
        return "healthy"
    return "none"


def parse_list_entry(data: dict) -> ContainerState:
    """From one entry of ``GET /containers/json`` (its human ``Status`` carries exit code and
    health, e.g. ``Exited (3) 2 seconds ago``, ``Up 5 seconds (healthy)``)."""
    text = data.get("Status") or ""
    status = data.get("State") or "unknown"
    m = _EXIT_RE.match(text)
    names = data.get("Names") or [""]
    return ContainerState(
        id=data.get("Id", ""),
        name=names[0].lstrip("/"),
        labels=dict(data.get("Labels") or {}),
        status=status,
        running=status == "running",
        exit_code=int(m.group(1)) if m and status in ("exited", "dead") else None,
        started_at=None,
        finished_at=None,
        health=_health_from_status(text),
        oom_killed=False,
        error="",
        restart_count=0,
        image=data.get("Image", ""),
    )


def parse_state(data: dict) -> ContainerState:
    """Either shape: inspect has a ``State`` object, list has a ``State`` string."""
    return parse_inspect(data) if isinstance(data.get("State"), dict) else parse_list_entry(data)


def compute_stats(sample: dict) -> dict[str, float | int]:
    """Numbers from one ``stats(stream=False)`` sample, as ``docker stats`` computes them.

    cpu_percent = (cpu_total - precpu_total) / (system - presystem) * online_cpus * 100, i.e. 100
    means one full CPU. The engine fills ``precpu_stats`` from its previous read about a second
    earlier, so one sample suffices. memory_usage = usage minus inactive page cache (cgroup v1
    ``total_inactive_file``, v2 ``inactive_file``): cache the kernel can drop is not the
    container's load.
    """
    cpu, pre = sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    )
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    percpu = (cpu.get("cpu_usage") or {}).get("percpu_usage") or []
    online = cpu.get("online_cpus") or len(percpu) or 1
    cpu_percent = cpu_delta / sys_delta * online * 100.0 if cpu_delta > 0 and sys_delta > 0 else 0.0
    mem = sample.get("memory_stats") or {}
    usage = mem.get("usage", 0)
    detail = mem.get("stats") or {}
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    if inactive < usage:
        usage -= inactive
    limit = mem.get("limit", 0)
    return {
        "cpu_percent": round(cpu_percent, 2),
        "memory_usage": usage,
        "memory_limit": limit,
        "memory_percent": round(usage / limit * 100.0, 2) if limit else 0.0,
        "pids": (sample.get("pids_stats") or {}).get("current", 0),
    }

def _text(chunk: bytes | str) -> str:
    return chunk.decode("utf-8", errors="replace") if isinstance(chunk, bytes) else chunk


def _unreachable(e: BaseException) -> str:
    """The gist of a connection failure, without urllib3's nesting."""
    text = str(e)
    for needle, gist in (
        ("No such file or directory", "no socket there (is dockerd running? `veo engine up`)"),
        ("Connection refused", "connection refused (is dockerd running? `veo engine up`)"),
        ("Permission denied", "permission denied (run as root or join the docker group)"),
        ("timed out", "timed out"),
    ):
        if needle in text:
            return gist
    return text


def _explain(e: BaseException) -> str:
    """The engine's own words when it gave some, with a hint for refusals this kernel makes."""
    text = getattr(e, "explanation", None) or str(e)
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if "unable to apply caps" in text or "operation not permitted" in text:
        text += (
            " (the kernel refused the container's privileges: privileged, cap_add or devices "
            "are not allowed on this machine)"
        )
    return text


# what an engine says when it cannot reach a registry (Go's net and http errors)
_UNREACHABLE = ("connection refused", "dial tcp", "no such host", "i/o timeout",
                "network is unreachable", "tls handshake timeout", "connection reset",
                "timeout exceeded", "eof", "toomanyrequests", "503 service unavailable",
                "502 bad gateway", "504 gateway timeout", "server misbehaving")
_DENIED = ("denied", "unauthorized", "no basic auth credentials", "authentication required",
           "forbidden")


def pull_error(ref: str, registry: str, engine: str, status: int, text: str) -> EngineError:
    """The engine's answer to a failed pull as a veo error: permanent when the registry answered
    that there is no such image or refused us, temporary when it did not answer at all."""
    low = text.lower()
    if any(w in low for w in _DENIED):
        return ImageNotFound(
            f"pull of image {ref!r} from registry {registry} was denied ({text}); give the "
            f"node's Docker credentials for it (`docker login {registry}` as the user veo runs "
            "as on that node)")
    if status == 404 or "manifest unknown" in low or "not found" in low:
        return ImageNotFound(f"image {ref!r} does not exist in registry {registry} ({text})")
    if any(w in low for w in _UNREACHABLE):
        return RegistryUnavailable(
            f"registry {registry} did not answer the pull of {ref!r} by engine {engine} ({text})")
    return ImageNotFound(f"engine {engine} could not pull image {ref!r} from registry "
                         f"{registry}: {text}")


def _stamp(t: float | None) -> str | None:
    """Docker reads ``seconds.fraction`` with the fraction scaled to nanoseconds."""
    return None if t is None else f"{t:.9f}"


def _split_ref(ref: str) -> tuple[str, str]:
    """``veo/busybox:latest`` -> (``veo/busybox``, ``latest``); a ':' before the last '/' is a
    registry port, not a tag."""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, _, tag = ref.rpartition(":")
        return repo, tag
    return ref, "latest"
