"""Changing containers: create (with the pure bridge to docker-py's arguments), start, stop,
kill, remove, and the networks and volumes a compose project declares.

``ContainerOps`` is a part of ``DockerRuntime`` (``veo.adapters.docker_api``). Every verb is
idempotent where a supervisor races the engine: a retried create adopts its own container,
stopping or removing one already gone is fine.
"""

from __future__ import annotations

import contextlib

import docker.errors
from docker.models.containers import _create_container_args

from veo.adapters.docker_observe import ObserveOps
from veo.adapters.docker_parse import _explain
from veo.core.errors import EngineError, ImageNotFound
from veo.core.names import IDENTITY_LABELS, LABEL_SERVICE


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


class ContainerOps(ObserveOps):
    """The verbs that create, run and remove containers (inspect comes from ``ObserveOps``:
    a create that clashes adopts the container by its labels, a refused start names it)."""

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
