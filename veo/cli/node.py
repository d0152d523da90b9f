"""``veo node start``: join this machine to a veo cluster (or start the cluster on the head).

One command per machine, the same by hand, under systemd (deploy/veo-node.service) and in
ray-cluster.yaml. It runs in the foreground until SIGTERM/SIGINT, which stop the machine's Ray
node and never its containers.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from veo.cli.common import veo_errors
from veo.core.errors import VeoError
from veo.core.models import NAME_RE

node_app = typer.Typer(no_args_is_help=True, help="This machine as a veo node (`veo node start`).")
_ADDRESS_RE = re.compile(r"^[^\s:]+:\d{1,5}$")


class NodeOptionError(VeoError):
    exit_code = 2


def _log(text: str) -> None:
    print(f"{datetime.now().strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


@node_app.command("start")
def start(
    name: Annotated[str, typer.Option(help="This machine's veo node name (label veo.node).")],
    role: Annotated[Optional[str], typer.Option(help="Its role (label veo.role).")] = None,
    head: Annotated[bool, typer.Option("--head", help="Start the cluster here (Ray head, "
                                       "veo Scheduler).")] = False,
    address: Annotated[Optional[str], typer.Option(help="The head's HEAD:PORT, to join it.")] = None,
    node_ip: Annotated[Optional[str], typer.Option(help="The address other machines reach this "
                                                   "one at (default: Ray's guess).")] = None,
    docker_host: Annotated[Optional[str], typer.Option(
        envvar="DOCKER_HOST", help="This machine's Docker engine (default: DOCKER_HOST or "
                                   "/var/run/docker.sock).")] = None,
    port: Annotated[int, typer.Option(help="The head's GCS port.")] = 6379,
    redis: Annotated[Optional[str], typer.Option(help="redis://… for GCS fault tolerance on "
                                                 "the head (RAY_REDIS_ADDRESS).")] = None,
    dashboard: Annotated[bool, typer.Option(help="Ray dashboard on the head.")] = True,
    ray_opt: Annotated[Optional[list[str]], typer.Option(
        "--ray-opt", help="Extra `ray start` argument, e.g. --ray-opt=--num-cpus=8 (repeat).")] = None,
    state_dir: Annotated[Optional[Path], typer.Option(
        envvar="VEO_STATE_DIR", help="veo's state here (default ~/.veo): node/, the Scheduler's "
                                     "store on the head.")] = None,
) -> None:
    """Run this machine's Ray node with veo's labels and keep it in the cluster (foreground)."""
    from veo.node.process import NodeProcess
    from veo.node.raynode import RayNodeConfig

    with veo_errors():
        _check(name, role, head, address, port)
        cfg = RayNodeConfig(name=name, role=role, head=head, address=address, port=port,
                            node_ip=node_ip, docker_host=docker_host, redis=redis,
                            dashboard=dashboard, ray_opts=list(ray_opt or []))
        from veo.client import state_dir as default_state

        state = state_dir or default_state()
        if state_dir is not None:
            import os

            os.environ["VEO_STATE_DIR"] = str(state)  # the head's Scheduler store follows it
        code = NodeProcess(cfg, state, log=_log).run()
    raise typer.Exit(code)


def _check(name: str, role: str | None, head: bool, address: str | None, port: int) -> None:
    if not NAME_RE.match(name):
        raise NodeOptionError(f"--name {name!r}: use letters, digits, '_', '.', '-'")
    if role is not None and not NAME_RE.match(role):
        raise NodeOptionError(f"--role {role!r}: use letters, digits, '_', '.', '-'")
    if head == (address is not None):
        raise NodeOptionError("give exactly one of --head (start the cluster here) and "
                              "--address HEAD:PORT (join it)")
    if address is not None and not _ADDRESS_RE.match(address):
        raise NodeOptionError(f"--address {address!r}: expected HEAD:PORT, e.g. 10.0.0.1:6379")
    if not 0 < port < 65536:
        raise NodeOptionError(f"--port {port}: not a TCP port")


@node_app.command("stop")
def stop(
    state_dir: Annotated[Optional[Path], typer.Option(envvar="VEO_STATE_DIR",
                                                      help="veo's state (default ~/.veo).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait before giving up.")] = 40.0,
) -> None:
    """Stop this machine's `veo node start` (its recorded PID): its Ray node stops, its
    containers keep running. Exit code 1 when none runs."""
    from veo.node.process import stop_recorded

    with veo_errors():
        from veo.client import state_dir as default_state

        pid = stop_recorded(state_dir or default_state(), timeout)
    if pid is None:
        typer.echo("no veo node process runs here", err=True)
        raise typer.Exit(1)
    typer.echo(f"stopped the veo node process (pid {pid})")
