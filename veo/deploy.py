"""``veo up`` and ``veo down`` as functions: engines, images, the local Ray cluster, apply.

``deploy`` reuses what is already running (the local cluster recorded in the state directory, an
engine that answers) and starts only what is missing, recording every PID it starts; ``teardown``
removes every veo container and stops exactly those recorded processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Sequence
from typing import Callable

import ray

from veo.adapters import ray_local as local
from veo.client import Cluster, _call, connect, init_ray, state_dir
from veo.core.config import load_spec
from veo.adapters.dockerd import ensure_engine, stop_engine
from veo.core.errors import NotConnected
from veo.adapters.images import ensure_images
from veo.core.models import ClusterSpec, Node
from veo.core.names import ACTOR_NAMESPACE, SCHEDULER_NAME
from veo.adapters.docker_api import DockerRuntime


def start_scheduler(address: str | None = None, state_path: str | Path | None = None) -> Cluster:
    """Connect to the Ray cluster and make sure its Scheduler runs (detached, on the head node).
    The one place that creates it: clients only look it up by name."""
    from actors.scheduler import Scheduler

    init_ray(address)
    # VEO_STATE_STORE=redis://host:port/0 keeps the desired state in Redis (off the head machine)
    path = str(state_path or os.environ.get("VEO_STATE_STORE") or state_dir() / "state" / "scheduler.db")
    handle = Scheduler.options(
        name=SCHEDULER_NAME, namespace=ACTOR_NAMESPACE, lifetime="detached", get_if_exists=True,
        max_restarts=-1, resources={"node:__internal_head__": 0.001},
    ).remote(path)
    _call(handle.ping.remote())
    return Cluster(handle)


def _joined_address() -> str | None:
    """The cluster this machine joined with `veo node start` (its node process's record)."""
    from veo.node.process import read_record

    rec = read_record(state_dir())
    return rec["address"] if rec else None


def _nodes(spec: ClusterSpec) -> list[Node]:
    return spec.nodes or [Node(name="local")]


def start_local(spec: ClusterSpec, *, engine_per_node: bool, log: Callable[[str], None]) -> local.LocalRecord:
    """Engines (shared or one per node), images on each, then the local Ray cluster."""
    nodes = _nodes(spec)
    if engine_per_node:
        handles = {n.name: ensure_engine(n.name, use_existing=False) for n in nodes}
    else:
        shared = ensure_engine("default")
        handles = {n.name: shared for n in nodes}
    started = []
    for h in {h.docker_host: h for h in handles.values()}.values():
        log(f"engine {h.name}: {h.docker_host}" + (f" (private, pid {h.pid})" if h.private else ""))
        built = ensure_images(DockerRuntime(h.docker_host))
        if built:
            log(f"built images on {h.name}: {', '.join(built)}")
        if h.private:
            started.append(h.name)
    specs = [local.NodeSpec(n.name, n.role, handles[n.name].docker_host) for n in nodes]
    log(f"starting a local Ray cluster: {', '.join(n.name for n in nodes)}")
    rec = local.launch(specs, state_dir(), started)
    log(f"Ray cluster at {rec.address} (launcher pid {rec.pid}); dashboard: http://{rec.dashboard}")
    return rec


def deploy(file: str | Path, *, address: str | None = None, engine_per_node: bool = False,
           env_files: Sequence[str | Path] | None = None,
           log: Callable[[str], None] = print,
           check_index: int | None = None) -> tuple[Cluster, dict[str, list[str]]]:
    loaded = load_spec(file, env_files=env_files)
    for w in loaded.warnings:
        log(str(w))
    if address is None:
        address = _joined_address()
    if address is None:
        rec = local.read_record(state_dir())
        if rec is None:
            rec = start_local(loaded.spec, engine_per_node=engine_per_node, log=log)
        address = rec.address
    cluster = start_scheduler(address)
    return cluster, cluster.apply(loaded.spec, check_index=check_index)


def teardown(*, address: str | None = None, keep_cluster: bool = False) -> list[str]:
    lines: list[str] = []
    address = address or _joined_address()
    rec = local.read_record(state_dir()) if address is None else None
    if address is None and rec is None:
        raise NotConnected("no veo cluster is running here (nothing to stop)")
    try:
        cluster = connect(address or rec.address)
        removed = cluster.shutdown()
        lines.append(f"removed {removed} containers")
        ray.kill(ray.get_actor(SCHEDULER_NAME, namespace=ACTOR_NAMESPACE))
    except NotConnected as e:
        lines.append(f"no veo scheduler to stop ({e})")
    finally:
        if ray.is_initialized():
            ray.shutdown()
    if rec is not None and not keep_cluster:
        local.stop(rec, state_dir())
        lines.append(f"stopped the local Ray cluster (pid {rec.pid})")
        for name in rec.engines:
            if stop_engine(name):
                lines.append(f"stopped private engine {name}")
    return lines
