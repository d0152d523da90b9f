"""Make a Docker engine available: the system one if it answers, else a private ``dockerd``.

A private engine lives under ``<state_dir>/engines/<name>/`` (data-root, pidfile, log, a record of
the PID we started) and runs with ``--bridge=none --iptables=false --ip-masq=false``: it touches no
firewall and no host network configuration, so several can run side by side, also inside a
loopback-only network namespace (where ``make test`` and ``make run`` put them). Containers on it
use network mode ``none`` or ``host``; ``host`` means the namespace dockerd was started in.

Only PIDs this module recorded are ever signalled, and only after checking that the process is
still the dockerd started with our pidfile (PIDs get reused).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from veo.core.errors import EngineError, VeoError
from veo.core.models import NAME_RE
from veo.adapters.docker_api import DockerRuntime
from veo.core.names import DEFAULT_DOCKER_HOST

STATE_DIR_ENV = "VEO_STATE_DIR"
# AF_UNIX paths hold at most 107 bytes; the longest socket under exec-root is containerd's
# <exec-root>/containerd/containerd.sock.ttrpc, so that one must fit with some room to spare.
_MAX_SOCKET_PATH = 100
_LONGEST_SOCKET = "exec/containerd/containerd.sock.ttrpc"
_MNT_DETACH = 2

# dockerd processes this interpreter started, so that stopping one also reaps it (no zombie that
# still looks alive to kill(pid, 0)).
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class EngineHandle:
    name: str
    docker_host: str
    pid: int | None  # None when veo did not start it
    private: bool
    state_dir: Path | None


@dataclass(frozen=True)
class EngineStatus:
    name: str
    pid: int | None
    alive: bool
    answering: bool
    docker_host: str
    state_dir: Path
    log: Path


@dataclass(frozen=True)
class EnginePaths:
    root: Path
    data_root: Path
    exec_root: Path
    socket: Path
    pidfile: Path
    log: Path
    record: Path
    config: Path

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or Path.home() / ".veo")


def engine_paths(name: str, state_dir: Path | None = None) -> EnginePaths:
    """Where engine ``name`` keeps its files. Deterministic, so every call finds the same engine."""
    if not NAME_RE.match(name):
        raise VeoError(f"engine name {name!r}: use letters, digits, '_', '.', '-'")
    root = (Path(state_dir) if state_dir else default_state_dir()).absolute() / "engines" / name
    short = root
    if len(str(root / _LONGEST_SOCKET)) > _MAX_SOCKET_PATH:
        short = Path("/tmp") / f"veo-{hashlib.sha256(str(root).encode()).hexdigest()[:10]}"
    return EnginePaths(
        root=root,
        data_root=root / "data",
        exec_root=short / "exec",
        socket=short / "docker.sock",
        pidfile=root / "docker.pid",
        log=root / "dockerd.log",
        record=root / "engine.json",
        config=root / "daemon.json",
    )


# --------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_our_dockerd(pid: int | None, paths: EnginePaths) -> bool:
    """Alive, and still the dockerd we started with this pidfile."""
    if pid is None or not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.path.basename(argv[0]) == b"dockerd" and f"--pidfile={paths.pidfile}".encode() in argv


def _recorded_pid(paths: EnginePaths) -> int | None:
    for path, read in ((paths.record, _pid_from_record), (paths.pidfile, _pid_from_file)):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return read(path)
    return None


def _pid_from_record(path: Path) -> int:
    return int(json.loads(path.read_text())["pid"])


def _pid_from_file(path: Path) -> int:
    return int(path.read_text().strip())


def _answers(docker_host: str, timeout: float = 2.0) -> bool:
    rt = DockerRuntime(docker_host, timeout=timeout)
    try:
        return rt.ping()
    finally:
        rt.close()


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@contextlib.contextmanager
def _locked(paths: EnginePaths) -> Iterator[None]:
    """One starter at a time per engine, across processes (two CLIs, parallel test sessions)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.root / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n".join("  " + line for line in text) or "  (empty log)"


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def ensure_engine(
    name: str = "default",
    *,
    state_dir: Path | None = None,
    use_existing: bool = True,
    timeout: float = 30.0,
    die_with_parent: bool = False,
) -> EngineHandle:
    """An engine that answers. ``use_existing``: ``$DOCKER_HOST`` or the system socket when one
    answers. Otherwise the private engine ``name``: reused when its recorded dockerd is alive,
    else started. Raises EngineError (quoting dockerd's log) when it cannot be made to answer."""
    if use_existing:
        candidates = [os.environ.get("DOCKER_HOST"), DEFAULT_DOCKER_HOST]
        for url in dict.fromkeys(c for c in candidates if c):
            if _answers(url):
                return EngineHandle(name, url, None, False, None)
    paths = engine_paths(name, state_dir)
    with _locked(paths):
        pid = _recorded_pid(paths)
        if not _is_our_dockerd(pid, paths):
            pid = _start_dockerd(name, paths, die_with_parent)
        _wait_answering(name, paths, pid, timeout)
    return EngineHandle(name, paths.docker_host, pid, True, paths.root.parent.parent)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started us dies (Linux), so an
    interrupted test session cannot leave its engines behind."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_dockerd(name: str, paths: EnginePaths, die_with_parent: bool = False) -> int:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineError(
            f"cannot start engine {name!r}: dockerd is not installed "
            "(Debian package docker.io; `make install` installs it)"
        )
    if os.geteuid() != 0:
        raise EngineError(
            f"cannot start engine {name!r}: a private dockerd needs root "
            "(run as root, e.g. through `make run` / `make test`)"
        )
    try:
        for d in (paths.data_root, paths.exec_root):
            d.mkdir(parents=True, exist_ok=True)
        # a stale pidfile whose number now belongs to another process makes dockerd refuse to start
        paths.pidfile.unlink(missing_ok=True)
        # our own (empty) config file, so /etc/docker/daemon.json cannot clash with our flags
        paths.config.write_text("{}\n")
    except OSError as e:
        raise EngineError(f"cannot prepare engine {name!r} under {paths.root}: {e}") from None
    _unmount_leftovers(paths)  # of an earlier dockerd that crashed; none of ours is alive now
    argv = [
        dockerd,
        f"--host={paths.docker_host}",
        f"--data-root={paths.data_root}",
        f"--exec-root={paths.exec_root}",
        f"--pidfile={paths.pidfile}",
        f"--config-file={paths.config}",
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
    ]
    with open(paths.log, "wb") as log:
        # its own session: a Ctrl-C in the terminal that ran `veo engine up` must not reach it
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )  # fmt: skip
    _CHILDREN[proc.pid] = proc
    record = {"name": name, "pid": proc.pid, "docker_host": paths.docker_host}
    paths.record.write_text(json.dumps({**record, "started": time.time()}) + "\n")
    return proc.pid


def _wait_answering(name: str, paths: EnginePaths, pid: int | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if _answers(paths.docker_host, timeout=1.0):
            return
        if pid is None or not _alive(pid):
            _unmount_leftovers(paths)
            raise EngineError(
                f"engine {name!r}: dockerd (pid {pid}) exited before answering on "
                f"{paths.docker_host}; last lines of {paths.log}:\n{_log_tail(paths.log)}"
            )
        if time.monotonic() > deadline:
            _stop_pid(pid, paths, timeout=5.0)
            raise EngineError(
                f"engine {name!r}: dockerd (pid {pid}) did not answer on {paths.docker_host} "
                f"within {timeout:g}s, stopped it; last lines of {paths.log}:\n"
                f"{_log_tail(paths.log)}"
            )
        time.sleep(0.1)


def stop_engine(
    name: str = "default", state_dir: Path | None = None, timeout: float = 30.0
) -> bool:
    """Stop private engine ``name``: SIGTERM to the recorded dockerd, SIGKILL after ``timeout``.
    True when it stopped something, False when it was not running. Containers still running are
    stopped by dockerd itself on SIGTERM (it waits up to their stop timeouts, 15 s at most)."""
    paths = engine_paths(name, state_dir)
    with _locked(paths):
        pid = _recorded_pid(paths)
        stopped = _is_our_dockerd(pid, paths)
        if stopped:
            assert pid is not None
            _stop_pid(pid, paths, timeout)
        paths.record.unlink(missing_ok=True)
    return stopped


def _stop_pid(pid: int, paths: EnginePaths, timeout: float) -> None:
    _signal(pid, signal.SIGTERM)
    if not _wait_dead(pid, timeout):
        _signal(pid, signal.SIGKILL)
        _wait_dead(pid, 5.0)
        _kill_orphan_containerd(paths)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)
    if not _alive(pid):
        _unmount_leftovers(paths)


def _unmount_leftovers(paths: EnginePaths) -> None:
    """dockerd leaves mounts behind (the nsfs bind of the host-network sandbox under
    exec-root/netns, sometimes data-root on itself); they would pin a network namespace and make
    the state dir undeletable. Only mounts under this engine's own roots are touched."""
    roots = tuple(f"{r}/" for r in (paths.exec_root, paths.data_root))
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    ours = [p for p in points if f"{p}/".startswith(roots)]
    libc = ctypes.CDLL(None, use_errno=True)
    for point in sorted(set(ours), key=len, reverse=True):
        libc.umount2(point.encode(), _MNT_DETACH)


def _kill_orphan_containerd(paths: EnginePaths) -> None:
    """A SIGKILLed dockerd leaves the containerd it started; that one is ours too."""
    pidfile = paths.exec_root / "containerd" / "containerd.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = _pid_from_file(pidfile)
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        ours = f"{paths.exec_root}/containerd/".encode() in b" ".join(argv)
        if os.path.basename(argv[0]) == b"containerd" and ours:
            _signal(pid, signal.SIGKILL)


def engine_status(state_dir: Path | None = None) -> list[EngineStatus]:
    """Every private engine under the state dir, whether running or not."""
    base = (Path(state_dir) if state_dir else default_state_dir()).absolute() / "engines"
    out = []
    for root in sorted(p for p in base.glob("*") if p.is_dir()):
        with contextlib.suppress(VeoError):
            paths = engine_paths(root.name, base.parent)
            pid = _recorded_pid(paths)
            alive = _is_our_dockerd(pid, paths)
            out.append(
                EngineStatus(
                    name=root.name,
                    pid=pid if alive else None,
                    alive=alive,
                    answering=alive and _answers(paths.docker_host, timeout=1.0),
                    docker_host=paths.docker_host,
                    state_dir=paths.root,
                    log=paths.log,
                )
            )
    return out
