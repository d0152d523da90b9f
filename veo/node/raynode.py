"""The machine's Ray node as a child process: ``ray start --block`` with veo's labels, the
machine's DOCKER_HOST and, on the head, veo's node-loss detection settings.

``ray start --block`` exits when one of its processes dies with an error, but not when the raylet
exits cleanly (which it does when the cluster tells it that it was declared dead). So the node
counts as up only while its raylet process is alive, and the caller restarts it otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from veo.adapters.ray_local import HEALTH_CHECK_CONFIG
from veo.core.names import NODE_LABEL, ROLE_LABEL

DEFAULT_PORT = 6379
STOP_TIMEOUT = 20.0


@dataclass
class RayNodeConfig:
    name: str
    role: str | None = None
    head: bool = False
    address: str | None = None  # HEAD:PORT, for a worker
    port: int = DEFAULT_PORT
    node_ip: str | None = None
    docker_host: str | None = None
    redis: str | None = None  # external Redis for GCS fault tolerance (head)
    dashboard: bool = True
    ray_opts: list[str] = field(default_factory=list)

    def labels(self) -> str:
        pairs = {NODE_LABEL: self.name, **({ROLE_LABEL: self.role} if self.role else {})}
        return ",".join(f"{k}={v}" for k, v in pairs.items())

    def gcs(self) -> tuple[str, int]:
        """Where this machine reaches the cluster: the head's GCS."""
        if self.head:
            return self.node_ip or _ray_node_ip(), self.port
        host, _, port = (self.address or "").rpartition(":")
        return host, int(port)


def _ray_node_ip() -> str:
    """The address `ray start --head` picks when not told (so clients use the same one)."""
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


def ray_executable() -> str:
    """The ``ray`` next to this interpreter (the venv's), else the one on PATH."""
    here = Path(sys.executable).with_name("ray")
    return str(here) if here.exists() else (shutil.which("ray") or "ray")


def argv(cfg: RayNodeConfig) -> list[str]:
    args = [ray_executable(), "start", "--block", "--disable-usage-stats", f"--labels={cfg.labels()}"]
    if cfg.node_ip:
        args.append(f"--node-ip-address={cfg.node_ip}")
    if cfg.head:
        args += ["--head", f"--port={cfg.port}", f"--system-config={json.dumps(HEALTH_CHECK_CONFIG)}"]
        if not cfg.dashboard:
            args.append("--include-dashboard=false")
    else:
        args.append(f"--address={cfg.address}")
    return args + list(cfg.ray_opts)


def env(cfg: RayNodeConfig, node_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The raylet's environment, inherited by every worker (so by the NodeAgent)."""
    from veo.adapters.handoff import NODE_DIR_ENV

    out = dict(os.environ if base is None else base)
    if cfg.docker_host:
        out["DOCKER_HOST"] = cfg.docker_host
    if cfg.redis and cfg.head:
        out["RAY_REDIS_ADDRESS"] = cfg.redis
    out[NODE_DIR_ENV] = str(node_dir)
    return out


class RayNode:
    """One run of ``ray start --block`` in its own process group (so a stop reaches all of it)."""

    def __init__(self, cfg: RayNodeConfig, node_dir: Path, log_path: Path):
        self.cfg, self.node_dir, self.log_path = cfg, node_dir, log_path
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv(self.cfg), env=env(self.cfg, self.node_dir),
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def raylet_pid(self) -> int | None:
        """The raylet among ``ray start``'s children, when it runs."""
        if self.exited():
            return None
        for pid in _children(self.proc.pid):
            try:
                exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if os.path.basename(exe) == b"raylet":
                return pid
        return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM to ``ray start`` (it stops its processes), SIGKILL to its group after
        ``timeout``. Containers are dockerd's children, never in this group."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group is ours alone
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # what is left of the group (raylet, workers)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.proc = None


def _children(ppid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[1]) == ppid and fields[0] != "Z":
            out.append(int(entry.name))
    return out
