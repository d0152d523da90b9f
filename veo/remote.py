"""``RemoteCluster``: ``veo.client.Cluster``'s methods over a ``veo serve`` REST API (httpx), so the
CLI works from a machine that cannot reach the Ray cluster (``--server URL`` / ``VEO_SERVER``).

Errors come back as the same ``veo.errors`` kinds with the same text: the server answers every
``VeoError`` with an ``ErrorBody`` naming its kind (``veo.api.errors``), and ``error_from`` turns
that back into the exception (the one inverse of that mapping). Answers that are not veo errors
(a wrong token, a server that is not veo) become a ``VeoError`` that names the server.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from veo.core import errors as kinds
from veo.core.names import SPEC_JSON
from veo.core.errors import NotConnected, SpecError, SpecProblem, VeoError
from veo.core.models import ClusterSpec, Event, Instance, Node, NodeView, Service
from veo.waits import Waits

# the kinds the server can name: every VeoError class of veo.core.errors, by class name
ERROR_KINDS: dict[str, type[VeoError]] = {
    name: cls for name, cls in inspect.getmembers(kinds, inspect.isclass)
    if issubclass(cls, VeoError)
}
_DEFER = {"defer_rules": True}  # the server checked the rules; its answers are taken as they are


def error_from(status: int, body: Any, server: str) -> VeoError:
    """The exception an error answer stands for (status and ``ErrorBody``)."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return VeoError(f"veo server {server} answered HTTP {status}, not a veo error "
                        "(is it a veo server?)")
    kind, message = ERROR_KINDS.get(str(body.get("error"))), body["message"]
    if kind is SpecError:
        problems = [SpecProblem(p.get("message", ""), p.get("path", ""), p.get("file"),
                                p.get("line"), p.get("column"), bool(p.get("warning")))
                    for p in body.get("problems") or [] if isinstance(p, dict)]
        return SpecError(problems or [SpecProblem(message)])
    if kind is not None:
        return kind(message)
    if status in (401, 403):  # the server's own guard (token, Host, Origin), not the cluster
        return VeoError(f"veo server {server} refused the request: {message}")
    return VeoError(message)


class RemoteCluster(Waits):
    """A connection to one veo cluster through its web server."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 120.0,
                 client: httpx.Client | None = None):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = client or httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, *, timeout: float | None = None,
                 **kw: Any) -> httpx.Response:
        extra = {"timeout": timeout} if timeout is not None else {}
        try:
            r = self._http.request(method, path, **kw, **extra)
        except httpx.TimeoutException:
            raise VeoError(f"veo server {self.url} did not answer in time ({method} {path})") \
                from None
        except httpx.TransportError as e:
            raise NotConnected(f"no veo server at {self.url}: {e or type(e).__name__}") from None
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = None
            raise error_from(r.status_code, body, self.url)
        return r

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self._request(method, path, **kw).json()

    # ---- desired state -------------------------------------------------------------------------

    def apply(self, spec: str | Path | ClusterSpec, check_index: int | None = None,
              env_files=None) -> dict[str, list[str]]:
        """Like ``Cluster.apply``: a path is loaded here (problems name this file and its lines;
        its variables come from this command's environment and .env, as over Ray), and the
        spec it means is sent."""
        if not isinstance(spec, ClusterSpec):
            from veo.core.config import load_spec

            spec = load_spec(spec, env_files=env_files).spec
        # the model's own form (lossless); secret contents travel to the Scheduler, as over Ray
        body = spec.model_dump_json(exclude_unset=True, context={"secrets": "plain"}).encode()
        params = {} if check_index is None else {"check_index": check_index}
        return self._json("PUT", "/api/services", content=body, params=params,
                          headers={"Content-Type": SPEC_JSON})


    def plan(self, spec: str | Path | ClusterSpec, env_files=None) -> dict:
        if not isinstance(spec, ClusterSpec):
            from veo.core.config import load_spec

            spec = load_spec(spec, env_files=env_files).spec
        body = spec.model_dump_json(exclude_unset=True, context={"secrets": "plain"}).encode()
        return self._json("POST", "/api/plan", content=body,
                          headers={"Content-Type": SPEC_JSON})

    def updates(self) -> list[dict]:
        return self._json("GET", "/api/updates")

    def update(self, action: str, target: str) -> None:
        self._json("POST", f"/api/updates/{_q(target)}/{_q(action)}")

    def history(self, service: str) -> list[dict]:
        return self._json("GET", f"/api/services/{_q(service)}/history")

    def rollback(self, service: str, to: int | None = None) -> int:
        params = {} if to is None else {"to": to}
        return self._json("POST", f"/api/services/{_q(service)}/rollback", params=params)["version"]

    def add_service(self, service: Service | dict) -> None:
        """Adds, or replaces a service of the same name (as ``Cluster.add_service`` does)."""
        if isinstance(service, dict):
            service = Service.model_validate(service)
        body = service.model_dump(mode="json", exclude_unset=True)
        names = {s.name for s in self.services()}
        if service.name in names:
            self._json("PUT", f"/api/services/{_q(service.name)}", json=body)
        else:
            self._json("POST", "/api/services", json=body)

    def remove_service(self, name: str) -> None:
        self._json("DELETE", f"/api/services/{_q(name)}")

    def restart(self, service: str, instance: int = 0) -> None:
        self._json("POST", f"{_instance(service, instance)}/restart")

    def cordon(self, node: str) -> None:
        self._json("POST", f"/api/nodes/{_q(node)}/cordon")

    def uncordon(self, node: str) -> None:
        self._json("POST", f"/api/nodes/{_q(node)}/uncordon")

    def drain(self, node: str) -> list[str]:
        return self._json("POST", f"/api/nodes/{_q(node)}/drain")["moving"]

    def add_node(self, node: Node | dict) -> None:
        node = node if isinstance(node, Node) else Node.model_validate(node)
        self._json("POST", "/api/nodes", json=node.model_dump(mode="json", exclude_unset=True))

    def remove_node(self, name: str) -> list[str]:
        return self._json("DELETE", f"/api/nodes/{_q(name)}")["moving"]

    def shutdown(self, timeout: float = 300.0) -> int:
        return self._json("POST", "/api/cluster/shutdown", timeout=timeout)["removed"]

    def stats(self, service: str, instance: int = 0) -> dict:
        return self._json("GET", f"{_instance(service, instance)}/stats")

    # ---- reads ---------------------------------------------------------------------------------

    def spec(self) -> ClusterSpec:
        return ClusterSpec.model_validate(self._json("GET", "/api/spec"), context=_DEFER)

    def services(self) -> list[Service]:
        return [Service.model_validate(s, context=_DEFER)
                for s in self._json("GET", "/api/services")]

    def containers(self, service: str | None = None) -> list[Instance]:
        params = {"service": service} if service is not None else {}
        return [_instance_of(row) for row in self._json("GET", "/api/containers", params=params)]

    def nodes(self) -> list[NodeView]:
        return [NodeView.model_validate(n) for n in self._json("GET", "/api/nodes")]

    def loop_stats(self, since: int | None = None) -> dict:
        return self._json("GET", "/api/cluster/loop",
                          params={} if since is None else {"since": since})

    def logs(self, service: str, instance: int = 0, tail: int = 100) -> str:
        return self._request("GET", f"{_instance(service, instance)}/logs",
                             params={"tail": tail}).text

    def events_batch(self, since: int | None = None, limit: int = 1000,
                     wait: float = 0.0) -> list[Event]:
        params: dict[str, Any] = {"limit": limit, "wait": wait}
        if since is not None:
            params["since"] = since
        rows = self._json("GET", "/api/events/wait", params=params, timeout=wait + 30)
        return [Event.model_validate(e) for e in rows]



def _q(name: str) -> str:
    return quote(name, safe="")


def _instance(service: str, instance: int) -> str:
    return f"/api/services/{_q(service)}/instances/{int(instance)}"


def _instance_of(row: dict) -> Instance:
    """An ``/api/containers`` row (a ContainerView) as the Instance it was made from."""
    fields = {k: v for k, v in row.items() if k in Instance.model_fields}
    return Instance(**fields, container_id=row.get("id"))


def connect_remote(url: str, token_file: str | Path | None = None) -> RemoteCluster:
    """A RemoteCluster for ``url`` with the token from ``VEO_TOKEN``, else from ``token_file``
    (or ``VEO_TOKEN_FILE``), read by the rules ``veo serve`` reads its own by."""
    if not url.startswith(("http://", "https://")):
        raise VeoError(f"--server/VEO_SERVER must be an http:// or https:// URL, got {url!r}")
    token = os.environ.get("VEO_TOKEN", "").strip() or None
    if token is None and (token_file or os.environ.get("VEO_TOKEN_FILE")):
        from veo.api.serve import read_token  # imports the web stack: only for a token file

        token = read_token(token_file)
    return RemoteCluster(url, token)


def deploy_remote(cluster: RemoteCluster, file: str | Path, log=print, env_files=None,
                  check_index: int | None = None) -> dict[str, list[str]]:
    """``veo up FILE --server URL``: load FILE here (its warnings logged), then apply it there."""
    from veo.core.config import load_spec

    loaded = load_spec(file, env_files=env_files)
    for w in loaded.warnings:
        log(str(w))
    return cluster.apply(loaded.spec, check_index=check_index)
