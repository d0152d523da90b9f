"""The Python API: ``veo.connect()`` returns a ``Cluster`` that drives the Scheduler actor.

Every front door (CLI, REST, UI) goes through this one client, so they all show the same errors:
exceptions raised in the Scheduler arrive here as the same ``VeoError`` subclasses with the same
messages, never as Ray tracebacks.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import ray

from veo.core.errors import NotConnected, SpecError, SpecProblem, VeoError
from veo.core.names import ACTOR_NAMESPACE as NAMESPACE, SCHEDULER_NAME
from veo.core.models import ClusterSpec, Event, Instance, InstanceStatus, Node, NodeView, Service



def state_dir() -> Path:
    return Path(os.environ.get("VEO_STATE_DIR") or Path.home() / ".veo")


def _call(ref: Any, timeout: float | None = 120.0) -> Any:
    try:
        return ray.get(ref, timeout=timeout)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, VeoError):
            raise cause from None
        if isinstance(cause, ValueError):  # pydantic validation inside the Scheduler: a 422
            raise SpecError([SpecProblem(str(cause))]) from None
        raise VeoError(f"the veo scheduler failed: {cause or e}") from None
    except ray.exceptions.RayActorError as e:
        raise NotConnected(f"the veo scheduler is not reachable: {e}") from None
    except ray.exceptions.GetTimeoutError:
        raise VeoError(f"the veo scheduler did not answer within {timeout:g}s") from None


def settled(instances: list[Instance]) -> bool:
    """Every instance running, ended, or pending with a reason: what ``veo up`` waits for."""
    done = {InstanceStatus.running, InstanceStatus.completed, InstanceStatus.failed}
    return all(i.status in done or (i.status is InstanceStatus.pending and i.reason)
               for i in instances)


def tail_growth(old: str, new: str) -> str:
    """What a re-read log tail adds to the previous read (``logs --follow`` polls the tail)."""
    if new.startswith(old):
        return new[len(old):]
    overlap = old[-2000:]
    at = new.rfind(overlap) if overlap else -1
    return new[at + len(overlap):] if at >= 0 else new


class Cluster:
    """A connection to one veo cluster (one Scheduler on one Ray cluster)."""

    def __init__(self, scheduler: ray.actor.ActorHandle):
        self._s = scheduler

    # ---- desired state -------------------------------------------------------------------------

    def apply(self, spec: str | Path | ClusterSpec) -> dict[str, list[str]]:
        """Make the cluster run exactly the services of ``spec`` (a cluster.yml path or a spec)."""
        if not isinstance(spec, ClusterSpec):
            from veo.core.config import load_spec

            spec = load_spec(spec).spec
        return _call(self._s.apply.remote(spec))

    def add_service(self, service: Service | dict) -> None:
        if isinstance(service, dict):
            service = Service.model_validate(service)
        _call(self._s.add_service.remote(service))

    def remove_service(self, name: str) -> None:
        _call(self._s.remove_service.remote(name))

    def restart(self, service: str, instance: int = 0) -> None:
        _call(self._s.restart.remote(service, instance))

    def cordon(self, node: str) -> None:
        _call(self._s.cordon.remote(node, True))

    def uncordon(self, node: str) -> None:
        _call(self._s.cordon.remote(node, False))

    def drain(self, node: str) -> list[str]:
        """Move every instance off ``node`` and cordon it; refuses (Conflict) when some would fit
        nowhere. Returns the instance keys that move."""
        return _call(self._s.drain.remote(node))

    def add_node(self, node: Node | dict) -> None:
        _call(self._s.add_node.remote(node if isinstance(node, Node) else Node.model_validate(node)))

    def remove_node(self, name: str) -> list[str]:
        return _call(self._s.remove_node.remote(name))

    def shutdown(self, timeout: float = 300.0) -> int:
        """Forget every service and remove every container of the cluster (``veo down``);
        returns how many containers were removed."""
        return _call(self._s.shutdown.remote(), timeout=timeout)

    def stats(self, service: str, instance: int = 0) -> dict:
        return _call(self._s.stats.remote(service, instance))

    # ---- reads ---------------------------------------------------------------------------------

    def spec(self) -> ClusterSpec:
        return _call(self._s.spec.remote())

    def services(self) -> list[Service]:
        return _call(self._s.services_list.remote())

    def containers(self, service: str | None = None) -> list[Instance]:
        return _call(self._s.instances.remote(service))

    def nodes(self) -> list[NodeView]:
        return _call(self._s.node_views.remote())

    def logs(self, service: str, instance: int = 0, tail: int = 100) -> str:
        return _call(self._s.logs.remote(service, instance, tail))

    def events(self, since: int | None = None, follow: bool = False,
               poll: float = 10.0) -> Iterator[Event]:
        """Events after index ``since`` (recent ones when None); with follow, waits for more."""
        batch = _call(self._s.events_since.remote(since))
        while True:
            for ev in batch:
                since = ev.index
                yield ev
            if not follow:
                return
            batch = _call(self._s.events_since.remote(since, 1000, poll), timeout=poll + 30)

    def _nodes_reported(self) -> bool:
        """Every live node has reported its capacity (so 'pending' reasons are real ones)."""
        live = [n for n in self.nodes() if n.alive]
        return bool(live) and all(n.cpus_total > 0 or n.memory_total > 0 for n in live)

    def events_batch(self, since: int | None = None, limit: int = 1000,
                     wait: float = 0.0) -> list[Event]:
        """One read of the event stream: up to ``limit`` events after ``since``, waiting up to
        ``wait`` seconds for the first (the web server's single follower uses this)."""
        return _call(self._s.events_since.remote(since, limit, wait), timeout=wait + 30)

    def wait(self, predicate: Callable[[list[Instance]], bool] = settled, timeout: float = 120.0,
             service: str | None = None, interval: float = 0.25) -> list[Instance]:
        """Poll the instances until ``predicate`` holds; returns them. Raises VeoError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            instances = self.containers(service)
            if instances and predicate(instances) and self._nodes_reported():
                return instances
            if time.monotonic() > deadline:
                states = ", ".join(f"{i.service}#{i.instance}={i.status.value}" for i in instances)
                raise VeoError(f"not settled after {timeout:g}s: {states or 'no instances'}")
            time.sleep(interval)


def connect(address: str | None = None) -> Cluster:
    """Connect to the Ray cluster at ``address`` (or RAY_ADDRESS, or the local one) and to its veo
    Scheduler, looked up by name. The Scheduler is made where a cluster is made (``veo up``,
    ``veo node start --head``: ``veo.deploy.start_scheduler``), never by a client."""
    init_ray(address)
    try:
        return Cluster(ray.get_actor(SCHEDULER_NAME, namespace=NAMESPACE))
    except ValueError:
        raise NotConnected("veo is not running on this Ray cluster (run `veo up FILE`)") from None


def init_ray(address: str | None = None) -> None:
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or _local_address() or "auto"
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=False)
    except (ConnectionError, RuntimeError) as e:
        raise NotConnected(
            f"no Ray cluster at {address}: {e}. Start one with `veo up cluster.yml`."
        ) from None


def _local_address() -> str | None:
    from veo.adapters import ray_local

    rec = ray_local.read_record(state_dir())
    if rec:
        return rec.address
    # a machine joined with `veo node start`: its node process knows the head's address
    from veo.node.process import read_record

    node = read_record(state_dir())
    return node["address"] if node else None
