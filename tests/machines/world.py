"""A world of machines on one host: each machine a network namespace of its own with its own
address, its own dockerd and its own ``veo node start``, joined by one bridge.

Made inside the loopback-only namespace the tests run in (``make test-machines``), so no packet
leaves it: the bridge ``br<tag>`` (10.99.0.1/24 on the outer side, so the test process can reach
the machines' REST API), one veth per machine into it, the machine at 10.99.0.<11+i>. Machines are
entered with ``nsenter --net=/run/netns/<ns>`` (``ip netns exec`` remounts /sys, which breaks
dockerd). Alone in its namespace, each dockerd keeps its default bridge and iptables.

Every process is started here and recorded by PID; ``close`` stops exactly those (and, for a
"reboot", every process found in the machine's namespace and below it), then deletes the
namespaces and the bridge. Run as a script it is ``make multiple``'s world (see ``main``).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from veo.adapters.docker_api import DockerRuntime  # noqa: E402
from veo.adapters.images import ensure_images  # noqa: E402

SUBNET = "10.99.0"
# the machines suite's and benchmark's cluster.yml: one instance per machine (spread)
SPEC = """
name: machines
settings:
  placement: spread
  backoff_initial: 0.1
  backoff_max: 2s
  orphan_grace: 2s
  disconnect:
    stop_after: {stop_after}
services:
  spread:
    image: veo/busybox
    command: ["sh", "-c", "echo hello from $(hostname); trap 'exit 0' TERM; while true; do sleep 1; done"]
    instances: 3
    network_mode: none
    cpus: 0.1
    memory: 16m
    stop_grace_period: 1s
"""
API_PORT = 8086
_MNT_DETACH = 2


def _die_with_parent() -> None:
    # an interrupted session (pytest killed) must not leave dockerds or Ray nodes behind
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


@dataclass
class Machine:
    name: str
    role: str
    ip: str
    netns: str
    veth: str  # the bridge-side end: down = the machine is cut off
    root: Path
    head: bool = False
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def docker_host(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    @property
    def ns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    def enter(self) -> list[str]:
        return ["nsenter", f"--net={self.ns_path}"]

    def runtime(self, timeout: float = 30) -> DockerRuntime:
        return DockerRuntime(self.docker_host, timeout=timeout)


class Machines:
    def __init__(self, specs: list[tuple[str, str]], *, stop_after: str = "30s", tag: str | None = None,
                 subnet: str = SUBNET):
        """``specs``: (name, role) per machine, the head first; another ``subnet`` (and ``tag``)
        lets a second world live beside the suite's."""
        self.tag = tag or f"vm{os.getpid() % 100000}"
        self.subnet = subnet
        self.root = Path("/tmp") / self.tag  # short: sockets live under it
        self.root.mkdir(parents=True, exist_ok=False)
        self.bridge = f"br{self.tag}"[:15]
        self.token = self.root / "ray-token"
        self.token.write_text(secrets.token_hex(32))
        self.token.chmod(0o600)
        self.api_token = self.root / "api-token"
        self.api_token.write_text(secrets.token_hex(24))
        self.api_token.chmod(0o600)
        self.stop_after = stop_after
        self.machines: dict[str, Machine] = {}
        for i, (name, role) in enumerate(specs):
            self.machines[name] = Machine(name=name, role=role, ip=f"{subnet}.{11 + i}",
                                          netns=f"{self.tag}-{name}", veth=f"v{self.tag}{i}"[:15],
                                          root=self.root / name, head=i == 0)
        self.head = next(iter(self.machines.values()))

    # ---- building --------------------------------------------------------------------------------

    def start(self) -> "Machines":
        _sh("ip", "link", "add", self.bridge, "type", "bridge")
        _sh("ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _sh("ip", "link", "set", self.bridge, "up")
        for m in self.machines.values():
            self._network(m)
        for m in self.machines.values():
            self.start_engine(m)
        for m in self.machines.values():
            self._wait_engine(m)
            ensure_images(m.runtime(timeout=120))
        for m in self.machines.values():
            self.start_node(m)
        self.start_api()
        return self

    def _network(self, m: Machine) -> None:
        _sh("ip", "netns", "add", m.netns)
        _sh("ip", "link", "add", m.veth, "type", "veth", "peer", "name", "eth0", "netns", m.netns)
        _sh("ip", "link", "set", m.veth, "master", self.bridge, "up")
        inside = f"ip link set lo up && ip addr add {m.ip}/24 dev eth0 && ip link set eth0 up"
        _sh(*m.enter(), "sh", "-c", inside)

    def env(self, m: Machine) -> dict[str, str]:
        """What the operator's service manager gives the machine's processes: the Ray token,
        the machine's engine, veo's state dir."""
        return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token),
                "DOCKER_HOST": m.docker_host, "VEO_STATE_DIR": str(m.root / "veo"),
                "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}

    def _spawn(self, m: Machine, key: str, argv: list[str], log: str) -> subprocess.Popen:
        m.root.mkdir(parents=True, exist_ok=True)
        with open(m.root / log, "ab") as out:
            proc = subprocess.Popen(m.enter() + argv, env=self.env(m), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        m.procs[key] = proc
        return proc

    def start_engine(self, m: Machine) -> None:
        m.root.mkdir(parents=True, exist_ok=True)
        # the machines' own registry (on the head, test_machines.py) speaks plain HTTP:
        # trusted on this private network, as an operator's daemon.json would say
        (m.root / "daemon.json").write_text(json.dumps({"insecure-registries": [f"{self.subnet}.0/24"]}))
        (m.root / "docker.pid").unlink(missing_ok=True)
        self._spawn(m, "dockerd", [
            "dockerd", f"--host={m.docker_host}", f"--data-root={m.root / 'data'}",
            f"--exec-root={m.root / 'exec'}", f"--pidfile={m.root / 'docker.pid'}",
            f"--config-file={m.root / 'daemon.json'}"], "dockerd.log")

    def _wait_engine(self, m: Machine, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if m.procs["dockerd"].poll() is not None:
                raise RuntimeError(f"dockerd of {m.name} exited; see {m.root / 'dockerd.log'}")
            if m.runtime(timeout=2).ping():
                return
            time.sleep(0.2)
        raise RuntimeError(f"dockerd of {m.name} did not answer within {timeout}s")

    def node_argv(self, m: Machine) -> list[str]:
        """``veo node start`` exactly as README tells an operator, plus a Ray temp dir and a small
        object store per machine (they share one filesystem and little memory here)."""
        join = ["--head"] if m.head else ["--address", f"{self.head.ip}:6379"]
        return [sys.executable, "-m", "veo.cli", "node", "start", "--name", m.name, "--role", m.role,
                *join, "--node-ip", m.ip, "--docker-host", m.docker_host, "--no-dashboard",
                f"--ray-opt=--temp-dir={m.root / 'ray'}", "--ray-opt=--object-store-memory=80000000",
                "--ray-opt=--num-cpus=2", "--ray-opt=--include-log-monitor=false"]

    def start_node(self, m: Machine) -> None:
        self._spawn(m, "node", self.node_argv(m), "node.log")

    def start_api(self) -> None:
        """``veo serve`` on the head, beyond loopback (token required), for the tests to poll."""
        env_token = ["--token-file", str(self.api_token)]
        self._spawn(self.head, "serve", [sys.executable, "-m", "veo.cli", "serve", "--host", self.head.ip,
                                         "--port", str(API_PORT), *env_token, "--log-level", "warning"],
                    "serve.log")

    @property
    def api(self) -> str:
        return f"http://{self.head.ip}:{API_PORT}"

    def veo(self, m: Machine, *args: str, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """A ``veo`` command on machine ``m``, as its operator would run it there."""
        return subprocess.run(m.enter() + [sys.executable, "-m", "veo.cli", *args],
                              env={**self.env(m), **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)

    def up(self, spec_text: str) -> str:
        """``veo up`` of a cluster.yml on the head, as its operator would; its output."""
        f = self.head.root / "cluster.yml"
        f.write_text(spec_text)
        r = self.veo(self.head, "up", str(f), timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"veo up failed ({r.returncode}): {r.stdout}{r.stderr}")
        return r.stdout + r.stderr

    # ---- faults ----------------------------------------------------------------------------------

    def cut(self, m: Machine) -> None:
        _sh("ip", "link", "set", m.veth, "down")

    def heal(self, m: Machine) -> None:
        _sh("ip", "link", "set", m.veth, "up")

    def pids_of(self, m: Machine) -> list[int]:
        """Every process in the machine's network namespace, and everything below them
        (containers have namespaces of their own but are children of its containerd-shims)."""
        try:
            target = os.stat(m.ns_path).st_ino
        except OSError:
            return []
        parent: dict[int, int] = {}
        inside: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                parent[pid] = int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1])
                if os.stat(entry / "ns" / "net").st_ino == target:
                    inside.add(pid)
            except (OSError, ValueError, IndexError):
                continue
        found, grew = set(inside), True
        while grew:
            below = {p for p, pp in parent.items() if pp in found and p not in found}
            found |= below
            grew = bool(below)
        return sorted(found)

    def power_off(self, m: Machine) -> int:
        """A crash: SIGKILL to every process of the machine at once. Returns how many."""
        pids = self.pids_of(m)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in m.procs.values():
            proc.wait(timeout=30)
        m.procs.clear()
        deadline = time.monotonic() + 30
        while self.pids_of(m) and time.monotonic() < deadline:
            time.sleep(0.2)
        self._unmount(m)
        # exec-root is the machine's /run: a reboot wipes it (else the new dockerd trusts the
        # dead containerd's pidfile and waits for it)
        shutil.rmtree(m.root / "exec", ignore_errors=True)
        return len(pids)

    def boot(self, m: Machine) -> None:
        """What the service manager does at boot: dockerd, then ``veo node start``."""
        self.start_engine(m)
        self._wait_engine(m)
        self.start_node(m)
        if m.head:
            self.start_api()

    # ---- teardown --------------------------------------------------------------------------------

    def close(self) -> None:
        for m in self.machines.values():
            for key in ("serve", "node"):
                self._terminate(m, key, 40)
        for m in self.machines.values():
            try:
                rt = m.runtime(timeout=20)
                for c in rt.list():
                    rt.remove(c.id, force=True)
            except Exception:
                pass
            self._terminate(m, "dockerd", 30)
            self.power_off(m)  # whatever of ours is still in there
        for m in self.machines.values():
            _sh("ip", "netns", "del", m.netns, check=False)
        _sh("ip", "link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _terminate(m: Machine, key: str, timeout: float) -> None:
        proc = m.procs.pop(key, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def _unmount(self, m: Machine) -> None:
        """dockerd leaves mounts under its roots when killed (netns binds, overlay)."""
        prefix = f"{m.root}/"
        points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        libc = ctypes.CDLL(None, use_errno=True)
        for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
            libc.umount2(point.encode(), _MNT_DETACH)

    def describe(self) -> str:
        return json.dumps({m.name: {"ip": m.ip, "netns": m.ns_path, "docker_host": m.docker_host,
                                    "state": str(m.root / "veo")} for m in self.machines.values()})


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> int:
    """``make multiple``: machines uno (head, role front) and dos (role back), the demo
    (cluster.yml) deployed on them with ``veo up``; Ctrl-C removes it all."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("file", nargs="?", default=str(REPO / "cluster.yml"))
    args = p.parse_args()
    world = Machines([("uno", "front"), ("dos", "back")], tag="veo-multi")
    try:
        print("building machines uno and dos (own namespace, address, dockerd, veo node)...", flush=True)
        world.start()
        for m in world.machines.values():
            print(f"  {m.name}: {m.ip}  nsenter --net={m.ns_path} env DOCKER_HOST={m.docker_host} "
                  f"VEO_STATE_DIR={m.root / 'veo'} RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={world.token} "
                  "veo ps", flush=True)
        from cluster_view import ClusterView

        view = ClusterView(world)
        view.wait(lambda: view.nodes_alive() == set(world.machines), 300, "uno and dos in the cluster")
        print(world.up(Path(args.file).read_text()), flush=True)
        print("running; Ctrl-C stops the machines and removes everything", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        world.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
