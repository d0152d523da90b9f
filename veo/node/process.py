"""The node process's loop: keep the Ray node up, boot the Scheduler on the head, fence when cut
off. One thread, one step per second; SIGTERM (or SIGINT) stops the Ray node and returns.

States of the Ray node: down -> starting (``ray start`` launched, no raylet yet) -> up (raylet
alive) -> down again when the raylet or ``ray start`` exits. A worker starts its Ray node only
while the head's GCS port answers (``ray start`` would only fail otherwise), and fences after
``stop_after`` without it: the Ray node is stopped first (so no agent restarts what is being
stopped), then the containers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from veo.core.names import docker_host_from
from veo.adapters import handoff
from veo.node.fence import Watch, gcs_reachable, stop_node_containers
from veo.node.raynode import RayNode, RayNodeConfig

STEP = 1.0
START_TIMEOUT = 90.0  # ray start to a running raylet, on a loaded machine
BOOT_RETRY = 5.0
RESTART_PAUSE = 3.0  # between two `ray start` runs
RECORD = "node.json"
FENCE_STOP_TIMEOUT = 1.0


class NodeProcess:
    def __init__(self, cfg: RayNodeConfig, state: Path, log: Callable[[str], None] = print):
        self.cfg, self.log = cfg, log
        self.dir = state / "node"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ray = RayNode(cfg, self.dir, self.dir / "ray.log")
        self.docker_host = cfg.docker_host or docker_host_from()
        self.watch = Watch(handoff.load_stop_after(self.dir))
        self.stopping = threading.Event()
        self.boot: subprocess.Popen | None = None
        self.booted = False
        self.next_boot = 0.0
        self.was_up = False
        self.next_start = 0.0

    # ---- the loop ------------------------------------------------------------------------------

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        self._write_record()
        host, port = self.cfg.gcs()
        self.log(f"veo node {self.cfg.name}: {'head' if self.cfg.head else 'worker'}, cluster at "
                 f"{host}:{port}, engine {self.docker_host}")
        try:
            while not self.stopping.is_set():
                self.step()
                self.stopping.wait(STEP)
        finally:
            self._shutdown()
        return 0

    def step(self) -> None:
        reachable = self.cfg.head or gcs_reachable(*self.cfg.gcs())
        self._keep_ray_up(reachable)
        if self.cfg.head:
            self._keep_scheduler()
        else:
            self._fence_if_cut_off(reachable)

    def _keep_ray_up(self, reachable: bool) -> None:
        raylet = self.ray.raylet_pid()
        if raylet is not None:
            if not self.was_up:
                self.log(f"Ray node up (raylet pid {raylet})")
            self.was_up = True
            return
        still_starting = not self.was_up and not self.ray.exited()
        if still_starting and time.monotonic() - self.ray.started < START_TIMEOUT:
            return
        if self.was_up or not self.ray.exited():
            why = "its raylet exited" if self.was_up else "ray start did not bring a raylet up"
            self.log(f"Ray node down ({why}); restarting it (log: {self.ray.log_path})")
            self.ray.stop()
            self.was_up, self.booted = False, False
        # a failed `ray start` (the head refused or is restarting) is retried after a pause
        if reachable and not self.stopping.is_set() and time.monotonic() >= self.next_start:
            handoff.mark_fencing(self.dir, False)  # a new Ray node: its agent takes over
            self.ray.start()
            self.next_start = time.monotonic() + RESTART_PAUSE
            self.log(f"ray start (pid {self.ray.pid})")

    def _keep_scheduler(self) -> None:
        """On the head, once per Ray node run: ``start_scheduler`` in a child, retried."""
        if self.booted or not self.was_up:
            return
        if self.boot is not None:
            code = self.boot.poll()
            if code is None:
                return
            self.boot, self.booted = None, code == 0
            self.log("veo scheduler running" if code == 0 else f"scheduler boot failed ({code}); retrying")
            if code != 0:
                self.next_boot = time.monotonic() + BOOT_RETRY
            return
        if time.monotonic() >= self.next_boot:
            host, port = self.cfg.gcs()
            with open(self.dir / "boot.log", "ab") as out:
                self.boot = subprocess.Popen([sys.executable, "-m", "veo.node.boot", f"{host}:{port}"],
                                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def _fence_if_cut_off(self, reachable: bool) -> None:
        self.watch.stop_after = handoff.load_stop_after(self.dir)
        if not self.watch.observe(reachable):
            return
        lost = self.watch.stop_after
        self.log(f"the cluster has been out of reach for {lost:g}s: stopping the Ray node and this "
                 "machine's veo containers (they run elsewhere by now)")
        # an agent that outlives its raylet for a moment decides restarts by itself: it must
        # leave alone what the fence stops (see actors/rejoin.cut_off)
        handoff.mark_fencing(self.dir, True)
        # no graceful stop: it would only wait for the GCS it cannot reach
        self.ray.stop(timeout=FENCE_STOP_TIMEOUT)
        self.was_up = False
        reason = f"stopped by its machine: the cluster was out of reach for {lost:g}s"
        try:
            stopped = stop_node_containers(self.docker_host, self.cfg.name, reason)
        except Exception as e:  # the engine is down too: nothing runs there to fence
            self.log(f"could not stop containers on {self.docker_host}: {e}")
            self.watch.fenced = False  # try again next step
            return
        handoff.record_fenced(self.dir, stopped)
        self.log(f"stopped {len(stopped)} container(s): {', '.join(c['name'] for c in stopped) or '-'}")

    # ---- start and stop ------------------------------------------------------------------------

    def _write_record(self) -> None:
        host, port = self.cfg.gcs()
        rec = {"pid": os.getpid(), "address": f"{host}:{port}", "config": asdict(self.cfg)}
        tmp = self.dir / f".{RECORD}.tmp"
        tmp.write_text(json.dumps(rec))
        tmp.replace(self.dir / RECORD)

    def _shutdown(self) -> None:
        self.log("stopping the Ray node (containers keep running)")
        if self.boot is not None and self.boot.poll() is None:
            self.boot.terminate()
            self.boot.wait(10)
        self.ray.stop()
        (self.dir / RECORD).unlink(missing_ok=True)


def read_record(state: Path) -> dict | None:
    """The running node process of this machine (its cluster address), if any."""
    try:
        rec = json.loads((state / "node" / RECORD).read_text())
        os.kill(int(rec["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rec


def stop_recorded(state: Path, timeout: float = 40.0) -> int | None:
    """SIGTERM the recorded node process and wait for it. Its PID, or None when none runs."""
    rec = read_record(state)
    if rec is None:
        return None
    pid = int(rec["pid"])
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if b"node" not in cmdline or b"start" not in cmdline:
        return None  # the PID was reused by something else: not ours to signal
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        time.sleep(0.2)
    from veo.core.errors import VeoError

    raise VeoError(f"the veo node process (pid {pid}) did not stop within {timeout:g}s")
