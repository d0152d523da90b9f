"""A local multi-node Ray cluster for ``veo up`` and the tests: one Ray node per veo node.

Each Ray node carries the labels ``veo.node=<name>`` (and ``veo.role``) and, through its raylet's
environment, the ``DOCKER_HOST`` of the engine that node wraps (shared, or one private engine per
node with ``--engine-per-node``). ``veo up`` runs ``python -m veo.adapters.ray_local`` as a background process
that owns the cluster; its PID is recorded so that ``veo down`` stops exactly that process (which
shuts its Ray nodes down) and nothing else.

Node death is made visible in seconds rather than Ray's default ~15-30 s by the health-check
settings below (see README, Guarantees).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Ray's GCS asks each raylet for a heartbeat every period; after `threshold` misses the node is
# dead: ~0.5 s x 4 + timeout = ~3 s to notice a lost node instead of ~15 s.
HEALTH_CHECK_CONFIG = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 4,
}


@dataclass
class NodeSpec:
    name: str
    role: str | None = None
    docker_host: str | None = None

    def labels(self) -> dict[str, str]:
        out = {"veo.node": self.name}
        if self.role:
            out["veo.role"] = self.role
        return out

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.docker_host} if self.docker_host else {}


@dataclass
class LocalRecord:
    """What ``veo up`` leaves in the state directory for ``veo down``."""

    address: str
    pid: int
    nodes: list[dict] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)  # private engines veo up started
    dashboard: str | None = None  # the Ray dashboard's address


def record_path(state: Path) -> Path:
    return state / "local-cluster.json"


DASHBOARD_PORT = 8265


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else a free port the kernel picks."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def start_nodes(nodes: list[NodeSpec], *, num_cpus: int = 1, dashboard: bool = True):
    """Start a ``ray.cluster_utils.Cluster`` with one Ray node per veo node (in this process).
    The dashboard (where the veo actors show by name) takes 8265, or a free port if that is
    taken (another Ray cluster on this machine)."""
    from ray.cluster_utils import Cluster

    head, *rest = nodes
    head_args = {"num_cpus": num_cpus, "labels": head.labels(), "env_vars": head.env(),
                 "_system_config": HEALTH_CHECK_CONFIG, "include_dashboard": dashboard}
    if dashboard:
        head_args["dashboard_port"] = free_port(DASHBOARD_PORT)
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    workers = {head.name: cluster.head_node}
    for n in rest:
        workers[n.name] = cluster.add_node(num_cpus=num_cpus, labels=n.labels(), env_vars=n.env())
    cluster.wait_for_nodes()
    return cluster, workers


def launch(nodes: list[NodeSpec], state: Path, engines: list[str], timeout: float = 120.0) -> LocalRecord:
    """Start ``python -m veo.adapters.ray_local`` in the background and wait for its address."""
    state.mkdir(parents=True, exist_ok=True)
    rec_file = record_path(state)
    rec_file.unlink(missing_ok=True)
    log = open(state / "local-cluster.log", "ab")
    args = [sys.executable, "-m", "veo.adapters.ray_local", "--record", str(rec_file), "--engines", ",".join(engines)]
    for n in nodes:
        args += ["--node", json.dumps(asdict(n))]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rec_file.exists():
            return LocalRecord(**json.loads(rec_file.read_text()))
        if proc.poll() is not None:
            raise RuntimeError(f"the local Ray cluster failed to start; see {state / 'local-cluster.log'}")
        time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"the local Ray cluster did not start within {timeout:g}s")


def read_record(state: Path) -> LocalRecord | None:
    try:
        rec = LocalRecord(**json.loads(record_path(state).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return rec if _alive(rec.pid) else None


def stop(rec: LocalRecord, state: Path, timeout: float = 60.0) -> bool:
    """Stop the launcher process we recorded (it shuts its Ray nodes down). True when it is gone."""
    if _alive(rec.pid):
        os.kill(rec.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(rec.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(rec.pid):
        os.kill(rec.pid, signal.SIGKILL)
    record_path(state).unlink(missing_ok=True)
    return not _alive(rec.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _serve(args: argparse.Namespace) -> None:
    nodes = [NodeSpec(**json.loads(n)) for n in args.node]
    cluster, _ = start_nodes(nodes)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    rec = LocalRecord(address=cluster.address, pid=os.getpid(), nodes=[asdict(n) for n in nodes],
                      engines=[e for e in args.engines.split(",") if e],
                      dashboard=cluster.head_node.address_info.get("webui_url"))
    tmp = Path(args.record + ".tmp")
    tmp.write_text(json.dumps(asdict(rec)))
    tmp.replace(args.record)
    done.wait()
    cluster.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description="own a local multi-node Ray cluster for veo")
    p.add_argument("--node", action="append", required=True, help="JSON NodeSpec, head first")
    p.add_argument("--record", required=True)
    p.add_argument("--engines", default="")
    _serve(p.parse_args())


if __name__ == "__main__":
    main()
