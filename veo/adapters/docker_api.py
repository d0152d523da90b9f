"""The only module that talks to a Docker engine.

``DockerRuntime`` wraps one engine with thin, synchronous methods (the actors call them from worker
threads). Every Docker failure leaves here as ``EngineError`` / ``ImageNotFound`` with a message
that names the engine and the container, so no user ever sees a docker-py traceback. Turning
Docker's JSON into ``ContainerState`` and stats numbers is done by pure functions.

Decisions:

* No implicit pulls. ``create`` of a missing image raises ``ImageNotFound`` at once; pulls are
  explicit (``pull``, called by ``veo.adapters.images.ensure_image`` per the service's
  pull_policy), so a missing image and an unreachable registry are told apart.
* A container without ``network_mode`` on an engine that has no bridge network (``dockerd
  --bridge=none``, as veo's private engines) is created with ``network_mode: none``. Docker would
  call it "default" and give it only loopback anyway; saying so makes ``inspect`` tell the truth.
  Published ports on such an engine are refused, since Docker would silently drop them. A
  container on a user network (``network``, a compose project's) keeps it: user networks, their
  DNS and their published ports work without the default bridge.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import _create_container_args

from veo.core.errors import EngineError, EngineUnavailable, ImageNotFound, RegistryUnavailable
from veo.core.names import DEFAULT_DOCKER_HOST, IDENTITY_LABELS, LABEL_SERVICE, docker_host_from
_ZERO_TIME = "0001-01-01T00:00:00Z"


def default_docker_host() -> str:
    return docker_host_from()


# --------------------------------------------------------------------------------------------------
# What the engine says, parsed (pure)
# --------------------------------------------------------------------------------------------------


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


def api_create_args(kwargs: dict, api_version: str) -> dict:
    """``translate.create_kwargs`` output -> arguments of docker-py's low-level create_container.

    docker-py's high-level ``containers.create`` lacks ``stop_timeout``, so we do what it does
    (its private ``_create_container_args``) and add that one back.
    """
    kw = dict(kwargs)
    stop_timeout = kw.pop("stop_timeout", None)
    kw.setdefault("command", None)
    kw["version"] = api_version
    args = _create_container_args(kw)
    if stop_timeout is not None:
        args["stop_timeout"] = stop_timeout
    return args


# --------------------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------------------


class EngineStream:
    """A blocking iterator over an engine stream (events, followed logs).

    ``close()`` may be called from any thread: it shuts the socket, and the iterating thread's
    loop then ends quietly. Also usable as a context manager.
    """

    def __init__(self, inner: Any, convert: Callable[[Any], Any], what: str):
        self._inner = inner
        self._convert = convert
        self._what = what
        self._closed = False

    def __iter__(self) -> EngineStream:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._inner)
        except StopIteration:
            raise
        except Exception as e:  # the socket was shut under us, or the engine went away
            if self._closed:
                raise StopIteration from None
            raise EngineError(f"{self._what} broke: {e}") from None
        return self._convert(item)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._inner.close()

    def __enter__(self) -> EngineStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


# --------------------------------------------------------------------------------------------------
# The runtime
# --------------------------------------------------------------------------------------------------


class DockerRuntime:
    """One Docker engine. Thread-safe for concurrent calls; the client is created on first use."""

    def __init__(
        self, base_url: str | None = None, *, timeout: float = 30.0, client: Any = None
    ):
        self.base_url = base_url or (client.api.base_url if client else default_docker_host())
        self.timeout = timeout
        self._client = client
        self._lock = threading.Lock()
        self._has_bridge: bool | None = None

    def __repr__(self) -> str:
        return f"DockerRuntime({self.base_url!r})"

    @property
    def host(self) -> str:
        """How messages name this engine: the URL it was given (docker-py's own base_url says
        http+docker://localhost for every unix socket)."""
        return self.base_url

    def _docker(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                with self._errors("connect"):
                    self._client = docker.DockerClient(
                        base_url=self.base_url, timeout=self.timeout
                    )
            return self._client

    @contextlib.contextmanager
    def _errors(self, action: str, container: str | None = None) -> Iterator[None]:
        what = f"{action} {container!r}" if container else action
        where = f"engine {self.host}"
        try:
            yield
        except docker.errors.APIError as e:
            raise EngineError(f"{where}: {what}: {_explain(e)}") from None
        except requests.exceptions.Timeout:
            raise EngineUnavailable(f"{where} did not answer within {self.timeout:g}s ({what})") from None
        except (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError) as e:
            raise EngineUnavailable(f"{where} is not answering ({what}): {_unreachable(e)}") from None
        except docker.errors.DockerException as e:
            if "Error while fetching server API version" in str(e):  # raised by the first call
                raise EngineUnavailable(f"{where} is not answering: {_unreachable(e)}") from None
            raise EngineError(f"{where}: {what}: {e}") from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None

    # ---- the engine ------------------------------------------------------------------------------

    def ping(self) -> bool:
        try:
            return bool(self._docker().ping())
        except Exception:
            return False

    def info(self) -> EngineInfo:
        api = self._docker().api
        with self._errors("info"):
            info, version = api.info(), api.version()
        root = info.get("DockerRootDir") or ""
        disk = 0
        if self.base_url.startswith("unix://") and root and os.path.isdir(root):
            disk = shutil.disk_usage(root).total
        return EngineInfo(
            cpus=int(info.get("NCPU") or 0),
            memory=int(info.get("MemTotal") or 0),
            disk=disk,
            docker_root_dir=root,
            server_version=version.get("Version") or info.get("ServerVersion") or "",
            name=info.get("Name") or "",
        )

    def has_bridge(self) -> bool:
        """Whether the engine has Docker's default bridge network (cached: it is a dockerd flag)."""
        if self._has_bridge is None:
            with self._errors("list networks"):
                nets = self._docker().api.networks(names=["bridge"])
            self._has_bridge = any(n.get("Name") == "bridge" for n in nets)
        return self._has_bridge

    # ---- containers ------------------------------------------------------------------------------

    def create(self, kwargs: dict) -> str:
        """Create a container from ``translate.create_kwargs`` output; returns its id.

        Idempotent: a name clash with a container carrying the same veo identity labels returns
        that container's id (a retried create); any other clash is an EngineError.
        """
        kwargs = self._network_default(dict(kwargs))
        # Docker before API 1.44 joins one network at create; the others are connected after
        more_networks = kwargs.pop("extra_networks", None) or {}
        name, image = kwargs.get("name"), kwargs.get("image")
        api = self._docker().api
        with self._errors("create container", name):
            try:
                cid = api.create_container(**api_create_args(kwargs, api.api_version))["Id"]
                for net, aliases in more_networks.items():
                    api.connect_container_to_network(cid, net, aliases=aliases)
                return cid
            except docker.errors.ImageNotFound:
                raise ImageNotFound(
                    f"image {image!r} not found on engine {self.host} (veo has no registry access "
                    "here; build or load it on every node)"
                ) from None
            except docker.errors.APIError as e:
                if e.status_code != 409 or not name:
                    raise
                return self._adopt(name, kwargs.get("labels") or {}, e)

    def _adopt(self, name: str, labels: dict, clash: Exception) -> str:
        existing = self.inspect(name)
        if existing is None:  # removed between the clash and now: the caller may simply retry
            raise EngineError(f"engine {self.host}: create {name!r}: {_explain(clash)}")
        mine = {k: labels.get(k) for k in IDENTITY_LABELS}
        theirs = {k: existing.labels.get(k) for k in IDENTITY_LABELS}
        if mine != theirs:
            raise EngineError(
                f"engine {self.host}: a container named {name!r} ({existing.id[:12]}) already "
                "exists and is not this veo instance (its labels differ); remove it or rename it"
            )
        return existing.id

    def _network_default(self, kwargs: dict) -> dict:
        mode = kwargs.get("network_mode")
        if kwargs.get("network") or mode not in (None, "bridge", "default") or self.has_bridge():
            return kwargs
        if kwargs.get("ports"):
            raise EngineError(
                f"engine {self.host}: {kwargs.get('name')!r}: ports: this engine has no bridge "
                "network (dockerd --bridge=none), so published ports cannot work; "
                "use network_mode: host and listen on the port directly"
            )
        if mode is None:
            kwargs["network_mode"] = "none"
        return kwargs

    def start(self, id: str) -> None:
        """Start; a refusal (e.g. privileges this kernel denies) names the container and service
        and quotes the engine."""
        with self._errors("start container", id):
            try:
                self._docker().api.start(id)
            except docker.errors.APIError as e:
                if e.status_code == 404:
                    raise
                raise self._start_error(id, _explain(e)) from None

    def _start_error(self, id: str, reason: str) -> EngineError:
        state = None
        with contextlib.suppress(EngineError):
            state = self.inspect(id)
        if state is None:
            return EngineError(f"engine {self.host}: cannot start container {id!r}: {reason}")
        service = state.labels.get(LABEL_SERVICE)
        who = f"container {state.name!r}" + (f" of service {service!r}" if service else "")
        return EngineError(f"engine {self.host}: cannot start {who}: {reason}")

    def stop(self, id: str, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s. Already stopped or gone is fine."""
        with self._errors("stop container", id):
            try:
                self._docker().api.stop(id, timeout=int(max(0, timeout)))
            except docker.errors.NotFound:
                pass

    def kill(self, id: str, signal: str = "SIGKILL") -> None:
        """Already stopped or gone is fine (a supervisor races exits all the time)."""
        with self._errors("kill container", id):
            try:
                self._docker().api.kill(id, signal=signal)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if e.status_code != 409 or "is not running" not in _explain(e):
                    raise

    def remove(self, id: str, force: bool = True) -> None:
        """Remove with its anonymous volumes (each restart would otherwise leave one behind).
        Already gone, or already being removed, is fine."""
        with self._errors("remove container", id):
            try:
                self._docker().api.remove_container(id, force=force, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if e.status_code != 409 or "already in progress" not in _explain(e):
                    raise

    # ---- networks and volumes a compose project declares (veo.adapters.prepare) -----------------

    def ensure_network(self, name: str, labels: dict[str, str], *, driver: str | None = None,
                       options: dict | None = None, internal: bool = False,
                       attachable: bool = False, ipv6: bool = False, external: bool = False) -> None:
        """A network called ``name`` exists: created with ``labels`` when missing, or an
        ``EngineError`` when it is ``external`` and missing (compose's rule)."""
        with self._errors("network", name):
            api = self._docker().api
            if any(n.get("Name") == name for n in api.networks(names=[name])):
                return
            if external:
                raise EngineError(f"engine {self.host}: network {name!r} is external (external: "
                                  "true) and does not exist; create it first")
            api.create_network(name, driver=driver or "bridge", options=options or None,
                               internal=internal, attachable=attachable, enable_ipv6=ipv6,
                               labels=labels, check_duplicate=True)

    def remove_networks(self, labels: dict[str, str]) -> list[str]:
        """Remove the networks carrying all ``labels`` that no container uses; their names."""
        gone = []
        with self._errors("remove networks"):
            api = self._docker().api
            wanted = [f"{k}={v}" for k, v in labels.items()]
            for net in api.networks(filters={"label": wanted}):
                try:
                    api.remove_network(net["Id"])
                    gone.append(net["Name"])
                except docker.errors.APIError as e:
                    if e.status_code not in (403, 404, 409):  # in use, or already gone
                        raise
        return gone

    def ensure_volume(self, name: str, labels: dict[str, str], *, driver: str | None = None,
                      options: dict | None = None, external: bool = False) -> None:
        """A volume called ``name`` exists (created when missing; ``external`` must exist)."""
        with self._errors("volume", name):
            api = self._docker().api
            try:
                api.inspect_volume(name)
                return
            except docker.errors.NotFound:
                if external:
                    raise EngineError(f"engine {self.host}: volume {name!r} is external "
                                      "(external: true) and does not exist; create it first") from None
            api.create_volume(name, driver=driver or "local", driver_opts=options or None,
                              labels=labels)

    def inspect(self, id: str) -> ContainerState | None:
        """None when the container does not exist (any more)."""
        with self._errors("inspect container", id):
            try:
                return parse_inspect(self._docker().api.inspect_container(id))
            except docker.errors.NotFound:
                return None

    def list(
        self, labels: dict[str, str] | None = None, all: bool = True, detailed: bool = False
    ) -> list[ContainerState]:
        """Containers carrying all ``labels``. ``detailed`` inspects each one (start/finish
        times, OOM, errors), which costs a call per container."""
        filters = {"label": [f"{k}={v}" for k, v in (labels or {}).items()]} if labels else None
        with self._errors("list containers"):
            entries = self._docker().api.containers(all=all, filters=filters)
        if not detailed:
            return [parse_list_entry(e) for e in entries]
        states = (self.inspect(e["Id"]) for e in entries)
        return [s for s in states if s is not None]

    def events(
        self, since: float | None = None, until: float | None = None, filters: dict | None = None
    ) -> EngineStream:
        """Container events (dicts as Docker sends them: ``Action``, ``id``,
        ``Actor.Attributes`` with labels and ``exitCode`` on die, ``time``, ``timeNano``).

        Blocks while waiting; ends by itself at ``until``. Call ``close()`` from another thread to
        end it early.
        """
        flt = {"type": "container", **(filters or {})}
        with self._errors("events"):
            inner = self._docker().api.events(
                since=_stamp(since), until=_stamp(until), filters=flt, decode=True
            )
        return EngineStream(inner, lambda e: e, f"event stream of engine {self.host}")

    def exec(self, id: str, cmd: list[str] | str) -> tuple[int, str]:
        """Run ``cmd`` in a running container; ``(exit code, stdout+stderr)``."""
        api = self._docker().api
        with self._errors("exec in container", id):
            exec_id = api.exec_create(id, cmd, stdout=True, stderr=True)["Id"]
            output = api.exec_start(exec_id)
            code = api.exec_inspect(exec_id).get("ExitCode")
        return (-1 if code is None else int(code)), _text(output)

    def logs(
        self, id: str, tail: int | None = 100, follow: bool = False, since: float | None = None
    ) -> str | EngineStream:
        """stdout+stderr. ``follow=False``: the text. ``follow=True``: an ``EngineStream`` of text
        chunks that ends when the container stops (or on ``close()``)."""
        kw: dict[str, Any] = {"tail": "all" if tail is None else tail}
        if since is not None:
            kw["since"] = float(since)
        with self._errors("logs of container", id):
            out = self._docker().api.logs(id, stream=follow, follow=follow, **kw)
        if not follow:
            return _text(out)
        return EngineStream(out, _text, f"log stream of {id!r} on engine {self.host}")

    def stats(self, id: str) -> dict[str, float | int]:
        """One sample, see ``compute_stats``. Takes about a second (the engine samples twice)."""
        with self._errors("stats of container", id):
            return compute_stats(self._docker().api.stats(id, stream=False))

    # ---- images ----------------------------------------------------------------------------------

    def image_labels(self, ref: str) -> dict[str, str] | None:
        """The image's labels, or None when the engine does not have it."""
        with self._errors("inspect image", ref):
            try:
                data = self._docker().api.inspect_image(ref)
            except docker.errors.NotFound:
                return None
        return dict((data.get("Config") or {}).get("Labels") or {})

    def image_exists(self, ref: str) -> bool:
        return self.image_labels(ref) is not None

    def pull(self, ref: str, registry: str) -> None:
        """Pull ``ref`` through the engine with this process's Docker credentials (docker-py
        reads ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``, as ``docker pull``
        does). ``registry`` only names the registry in messages. Raises ImageNotFound (no such
        image, denied) or RegistryUnavailable (the registry did not answer)."""
        repo, tag = docker.utils.parse_repository_tag(ref)
        with self._errors("pull image", ref):
            try:
                for item in self._docker().api.pull(repo, tag or "latest", stream=True,
                                                    decode=True):
                    if isinstance(item, dict) and item.get("error"):  # failed mid-stream
                        raise pull_error(ref, registry, self.host, 0, str(item["error"]))
            except docker.errors.APIError as e:
                raise pull_error(ref, registry, self.host, e.status_code or 0,
                                 _explain(e)) from None

    def import_image(self, tar: bytes, ref: str, changes: list[str] | None = None) -> str:
        """``docker import`` of a rootfs tar held in memory; returns the image id."""
        repo, tag = _split_ref(ref)
        with self._errors("import image", ref):
            out = self._docker().api.import_image_from_data(
                tar, repository=repo, tag=tag, changes=changes or []
            )
        match = re.search(r"sha256:[0-9a-f]{64}", _text(out) if out else "")
        if not match:
            raise EngineError(f"engine {self.host}: import {ref!r}: unexpected answer {out!r}")
        return match.group(0)


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
