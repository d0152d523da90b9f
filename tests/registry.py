"""A real image registry for the tests: Debian's ``docker-registry`` (the CNCF distribution
registry) on 127.0.0.1 at a free port, with its own config and storage under a temp dir, stopped
by its PID. Docker engines trust registries on 127.0.0.0/8 without TLS by default, so the
session's private engines push to and pull from it as they would from any registry.

``auth=True`` makes it ask for a user and password (an htpasswd file, bcrypt as it requires).
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from veo.adapters.dockerd import _die_with_parent

USER, PASSWORD = "veo", "s3cret-pw"


class Registry:
    """``ip``/``port``/``enter``: where it listens, and the command prefix that runs it there
    (the machines suite runs one inside a machine's namespace: ``nsenter --net=…``)."""

    def __init__(self, *, auth: bool = False, ip: str = "127.0.0.1", port: int | None = None,
                 enter: list[str] | None = None):
        if shutil.which("docker-registry") is None:
            pytest.fail("docker-registry is not installed; run `make install` (Debian package "
                        "docker-registry)", pytrace=False)
        self.dir = Path(tempfile.mkdtemp(prefix="veo-registry-"))
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.ip, self.port, self.enter = ip, port, list(enter or [])
        self.host = f"{ip}:{port}"
        self.auth = auth
        self.proc: subprocess.Popen | None = None
        self._write_config()
        self.start()

    def _write_config(self) -> None:
        auth = ""
        if self.auth:
            import bcrypt

            digest = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
            (self.dir / "htpasswd").write_text(f"{USER}:{digest}\n")
            auth = (f"auth:\n  htpasswd:\n    realm: veo-test\n"
                    f"    path: {self.dir / 'htpasswd'}\n")
        (self.dir / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {self.dir / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n{auth}")

    def start(self) -> None:
        log = open(self.dir / "registry.log", "ab")
        # dies with this pytest process even when it is killed before its teardown
        self.proc = subprocess.Popen([*self.enter, "docker-registry", "serve",
                                      str(self.dir / "config.yml")],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log()[-2000:]}")
            try:
                if self._answers():
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not listen within 20s")

    def _answers(self) -> bool:
        if not self.enter:
            try:
                socket.create_connection((self.ip, self.port), timeout=0.5).close()
                return True
            except OSError:
                return False
        probe = f"import socket; socket.create_connection(('{self.ip}', {self.port}), 0.5)"
        return subprocess.run([*self.enter, sys.executable, "-c", probe],
                              capture_output=True).returncode == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return (self.dir / "registry.log").read_text(errors="replace")

    def docker_config(self, path: Path) -> Path:
        """A Docker client config dir holding this registry's credentials (as `docker login`
        writes it): point DOCKER_CONFIG at it."""
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"auths": {self.host: {"auth": token}}}))
        return path

    def push(self, client, source: str, repo: str, tag: str) -> str:
        """Tag ``source`` on a docker-py client's engine as ``HOST/repo:tag`` and push it;
        returns the reference."""
        ref = f"{self.host}/{repo}"
        client.api.tag(source, ref, tag)
        auth = {"username": USER, "password": PASSWORD} if self.auth else None
        for item in client.api.push(ref, tag, stream=True, decode=True, auth_config=auth):
            if item.get("error"):
                raise RuntimeError(f"push of {ref}:{tag} failed: {item['error']}")
        return f"{ref}:{tag}"
