"""The Python API: ``veo.connect()`` returns a ``Cluster`` that drives the Scheduler actor.

Every front door (CLI, REST, UI) goes through this one client, so they all show the same errors:
exceptions raised in the Scheduler arrive here as the same ``VeoError`` subclasses with the same
messages, never as Ray tracebacks.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable

import ray

from veo.core import refs
from veo.core.errors import Conflict, NotConnected, NotFound, SpecError, SpecProblem, VeoError
from veo.core.models import ClusterSpec, Event, Instance, Node, NodeView, Service
from veo.core.names import ACTOR_NAMESPACE as NAMESPACE, SCHEDULER_NAME
from veo.core.summary import ClusterSummary, summarize
from veo.waits import Waits, settled, tail_growth  # noqa: F401 (settled, tail_growth re-exported)


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


def _spec(spec: str | Path | ClusterSpec) -> ClusterSpec:
    if isinstance(spec, ClusterSpec):
        return spec
    from veo.core.config import load_spec

    return load_spec(spec).spec




class ServiceExists(Conflict):
    """``create_services`` was given names the cluster has already (``names``)."""

    def __init__(self, names: list[str]):
        self.names = names
        super().__init__(f"these services exist already: {', '.join(names)}"
                         if len(names) > 1 else f"service {names[0]!r} exists already")


class Cluster(Waits):
    """A connection to one veo cluster (one Scheduler on one Ray cluster).

    The methods under "what every front door asks" are built only on the other public methods,
    so a stand-in with those (the API tests' fake) gets the same lookups and checks by inheriting.
    """

    def __init__(self, scheduler: ray.actor.ActorHandle):
        self._s = scheduler

    # ---- desired state -------------------------------------------------------------------------

    def apply(self, spec: str | Path | ClusterSpec,
              check_index: int | None = None) -> dict[str, list[str]]:
        """Make the cluster run exactly the services of ``spec`` (a cluster.yml path or a spec).
        Changed services that run are rolled by their ``update:`` rules. ``check_index``: apply
        only if the cluster's spec index is still that (``plan()`` returns it)."""
        return _call(self._s.apply.remote(_spec(spec), check_index))

    def plan(self, spec: str | Path | ClusterSpec) -> dict:
        """What ``apply(spec)`` would change, changing nothing: per service the kind of change, a
        field-level diff, the instances placed or removed, placement problems; ``changed`` and
        ``spec_index`` (for ``apply(..., check_index=)``)."""
        return _call(self._s.plan.remote(_spec(spec)))

    def updates(self) -> list[dict]:
        """Rolling updates: in progress, and the last one of each service or group."""
        return _call(self._s.updates.remote())

    def update(self, action: str, target: str) -> None:
        """``resume``, ``promote``, ``pause`` or ``rollback`` the update of ``target`` (a service,
        or ``group:NAME``)."""
        _call(self._s.update_control.remote(target, action))

    def history(self, service: str) -> list[dict]:
        """The kept versions of ``service`` (last 10): number, time, outcome, spec."""
        return _call(self._s.history.remote(service))

    def rollback(self, service: str, to: int | None = None) -> int:
        """Go back to version ``to`` (default: the last stable one); returns its number."""
        return _call(self._s.rollback.remote(service, to))

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

    def loop_stats(self, since: int | None = None) -> dict:
        """The control loop's last step durations: ``count``, ``p50``, ``p95``, ``max``
        (seconds) over the kept steps, and ``total`` steps so far; ``since``: only the steps
        after that ``total`` (compare a quiet window with a busy one)."""
        return _call(self._s.loop_stats.remote(since))

    def containers_version(self, since: int | None = None, wait: float = 0.0) -> int:
        """A counter that moves whenever ``containers()`` may answer differently; with ``wait``,
        blocks up to that many seconds until it differs from ``since`` (the web server follows
        it to keep one copy of the list instead of asking per request)."""
        return _call(self._s.containers_version.remote(since, wait), timeout=wait + 30)

    def logs(self, service: str, instance: int = 0, tail: int = 100) -> str:
        return _call(self._s.logs.remote(service, instance, tail))

    def tasks(self) -> list[dict]:
        """Each scheduled task: its schedule in words, next run, last run, runs kept."""
        return _call(self._s.tasks.remote())

    def run_task(self, name: str) -> dict:
        """Start a run of task ``name`` now (``veo run``); returns its tick and instance keys."""
        return _call(self._s.run_task.remote(name))

    def resolve(self, service: str) -> dict:
        """What discovery answers for ``service``: addresses, SRV ports, every instance's record
        (served or not, and why), and where each node's DNS answers."""
        return _call(self._s.discovery.remote(service))

    def service(self, name: str) -> Service:
        for svc in self.services():
            if svc.name == name:
                return svc
        raise NotFound(f"no service named {name!r}")

    def node(self, name: str) -> NodeView:
        for node in self.nodes():
            if node.name == name:
                return node
        raise NotFound(f"no node named {name!r}")

    def instance(self, ref: str) -> Instance:
        """The instance ``ref`` names: a container id, a unique prefix of it, or ``service#N``
        (``service:N`` too). NotFound, or Conflict for an ambiguous prefix."""
        return refs.resolve(self.containers(), ref)

    def create_services(self, services: Iterable[Service]) -> list[str]:
        """Add services the cluster does not have yet. Checked together before any is added:
        ServiceExists (a Conflict) naming those it has (``replace_service`` replaces one,
        ``apply`` a whole file), SpecError when they break the group rules with the running ones.
        The Scheduler then enforces the cluster policy on each add (a refused one stops the rest;
        front doors that can check it with positions first, as a cluster.yml body's, do)."""
        from veo.core.bodies import check_additions

        new = {svc.name: svc for svc in services}
        current = {svc.name: svc for svc in self.services()}
        taken = sorted(set(new) & set(current))
        if taken:
            raise ServiceExists(taken)
        check_additions(current, new)
        for svc in new.values():
            self.add_service(svc)
        return list(new)

    def replace_service(self, name: str, service: Service) -> Service:
        """Replace the service ``name`` (NotFound when there is none; ``create_services`` adds
        one) after checking the group rules with the other services."""
        from veo.core.bodies import check_additions

        if service.name != name:
            raise SpecError([SpecProblem(f"the service is named {service.name!r}, not {name!r}",
                                         "name")])
        current = {svc.name: svc for svc in self.services()}
        if name not in current:
            raise NotFound(f"no service named {name!r}")
        check_additions(current, {name: service})
        self.add_service(service)
        return service

    def summary(self) -> ClusterSummary:
        """The cluster at a glance: name, policy, totals over live nodes, instances by status."""
        return summarize(self.spec(), self.nodes(), self.containers())

    def events_batch(self, since: int | None = None, limit: int = 1000,
                     wait: float = 0.0) -> list[Event]:
        """One read of the event stream: up to ``limit`` events after ``since``, waiting up to
        ``wait`` seconds for the first (the web server's single follower uses this)."""
        return _call(self._s.events_since.remote(since, limit, wait), timeout=wait + 30)


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
