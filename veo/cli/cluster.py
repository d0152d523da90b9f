"""``veo up / ps / nodes / rm / restart / cordon / uncordon / events / logs / down``.

Thin: each command converts arguments into one client call and the result into a table or JSON.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.live import Live
from rich.table import Table

from veo.cli.common import err, out, veo_errors
from veo.core.errors import NotConnected
from veo.core.models import Event, Instance, NodeView
from veo.core.units import format_size

PS_FIELDS = ("service", "instance", "group", "node", "status", "health", "restarts",
             "container_id", "started_at", "reason")
NODE_FIELDS = ("name", "role", "alive", "cordoned", "cpus_total", "cpus_allocated", "memory_total",
               "memory_allocated", "disk_total", "disk_allocated", "docker_host", "containers")

Address = Annotated[Optional[str], typer.Option("--address", envvar="RAY_ADDRESS",
                                                help="Ray cluster address (default: the local one).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _connect(address: str | None):
    from veo.client import _local_address, connect

    if address is None and _local_address() is None:
        raise NotConnected("no veo cluster is running here (start one with `veo up cluster.yml`)")
    return connect(address)


def ps_rows(instances: list[Instance]) -> list[dict]:
    return [{f: _jsonable(getattr(i, f)) for f in PS_FIELDS} for i in instances]


def _jsonable(v):
    return v.value if hasattr(v, "value") else v


def ps_table(instances: list[Instance]) -> Table:
    t = Table("SERVICE", "#", "GROUP", "NODE", "STATUS", "HEALTH", "RESTARTS", "CONTAINER",
              "STARTED", "REASON", title="instances")
    colour = {"running": "green", "failed": "red", "pending": "yellow", "backoff": "yellow"}
    for i in instances:
        st = i.status.value
        t.add_row(i.service, str(i.instance), i.group or "", i.node or "",
                  f"[{colour.get(st, 'white')}]{st}[/]", "" if i.health.value == "none" else i.health.value,
                  str(i.restarts), (i.container_id or "")[:12], _short_time(i.started_at),
                  i.reason or "")
    return t


def _short_time(ts: str | None) -> str:
    return ts[11:19] if ts and len(ts) >= 19 else (ts or "")


def nodes_table(nodes: list[NodeView]) -> Table:
    t = Table("NODE", "ROLE", "ALIVE", "CPUS", "MEMORY", "DISK", "DOCKER_HOST", "CONTAINERS", title="nodes")
    for n in nodes:
        alive = "[green]yes[/]" if n.alive else "[red]no[/]" + (" (expected)" if n.expected else "")
        if n.cordoned:
            alive += " cordoned"
        t.add_row(n.name, n.role or "", alive, f"{n.cpus_allocated:g}/{n.cpus_total:g}",
                  f"{format_size(n.memory_allocated)}/{format_size(n.memory_total)}",
                  f"{format_size(n.disk_allocated)}/{format_size(n.disk_total)}",
                  n.docker_host or "", str(n.containers))
    return t


def event_line(e: Event) -> str:
    when = datetime.fromtimestamp(e.time).strftime("%H:%M:%S.%f")[:-3]
    what = " ".join(x for x in (
        f"{e.service}#{e.instance}" if e.instance is not None else (e.service or ""),
        f"on {e.node}" if e.node else "", (e.container_id or "")[:12],
    ) if x)
    return f"{e.index:>6} {when} {e.kind.value:<11} {what}" + (f"  ({e.reason})" if e.reason else "")


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        file: Annotated[Path, typer.Argument(help="cluster.yml to deploy.")] = Path("cluster.yml"),
        address: Address = None,
        engine_per_node: Annotated[bool, typer.Option(
            "--engine-per-node", help="Give each local node its own private Docker engine.")] = False,
        watch: Annotated[bool, typer.Option("--watch", help="Keep a live table until Ctrl-C.")] = False,
        timeout: Annotated[float, typer.Option(help="Seconds to wait for the instances.")] = 120.0,
    ) -> None:
        """Deploy FILE: start a local Ray cluster if there is none, apply, wait, show."""
        from veo.deploy import deploy

        with veo_errors():
            cluster, changes = deploy(file, address=address, engine_per_node=engine_per_node,
                                      log=lambda m: err.print(f"[dim]{m}[/]"))
            err.print("applied: " + (", ".join(f"{k} {', '.join(v)}" for k, v in changes.items() if v)
                                     or "nothing"))
            instances = cluster.wait(timeout=timeout)
            out.print(ps_table(instances))
            if watch:
                _watch(cluster)

    @app.command()
    def ps(address: Address = None, as_json: AsJson = False,
           service: Annotated[Optional[str], typer.Option(help="Only this service.")] = None) -> None:
        """One row per instance: where it runs, its status, health and restarts."""
        with veo_errors():
            instances = _connect(address).containers(service)
            if as_json:
                typer.echo(json.dumps(ps_rows(instances), indent=2))
            else:
                out.print(ps_table(instances))

    @app.command()
    def nodes(address: Address = None, as_json: AsJson = False) -> None:
        """Nodes with capacity, allocation, liveness and their Docker engine."""
        with veo_errors():
            views = _connect(address).nodes()
            if as_json:
                typer.echo(json.dumps([{f: getattr(n, f) for f in NODE_FIELDS} for n in views], indent=2))
            else:
                out.print(nodes_table(views))

    @app.command()
    def rm(service: str, address: Address = None) -> None:
        """Remove SERVICE: its containers are stopped and removed on every node."""
        with veo_errors():
            _connect(address).remove_service(service)
            err.print(f"removed {service}")

    @app.command()
    def restart(service: str, instance: Annotated[int, typer.Option("--instance", "-i")] = 0,
                address: Address = None) -> None:
        """Restart one instance (also brings back an instance that failed or completed)."""
        with veo_errors():
            _connect(address).restart(service, instance)
            err.print(f"restarting {service}#{instance}")

    @app.command()
    def cordon(node: str, address: Address = None) -> None:
        """Place nothing new on NODE (what runs there stays)."""
        with veo_errors():
            _connect(address).cordon(node)

    @app.command()
    def drain(node: str, address: Address = None) -> None:
        """Move everything off NODE (groups as units) and cordon it; refuses when it cannot."""
        with veo_errors():
            moving = _connect(address).drain(node)
            err.print(f"draining {node}: moving {', '.join(moving) or 'nothing'}")

    @app.command()
    def uncordon(node: str, address: Address = None) -> None:
        """Let placement use NODE again."""
        with veo_errors():
            _connect(address).uncordon(node)

    @app.command()
    def events(address: Address = None, follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
               as_json: AsJson = False,
               since: Annotated[Optional[int], typer.Option(help="Only events after this index.")] = None,
               ) -> None:
        """The event stream: placed, started, exited, restarted, failed, node_lost, ..."""
        with veo_errors():
            try:
                for e in _connect(address).events(since=since, follow=follow):
                    typer.echo(e.model_dump_json() if as_json else event_line(e))
            except KeyboardInterrupt:
                pass

    @app.command()
    def logs(service: str, instance: Annotated[int, typer.Option("--instance", "-i")] = 0,
             tail: int = 100, follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
             address: Address = None) -> None:
        """The logs of one instance's container (wherever it runs)."""
        with veo_errors():
            from veo.client import tail_growth

            cluster = _connect(address)
            text = cluster.logs(service, instance, tail)
            typer.echo(text, nl=False)
            seen = text
            try:
                while follow:
                    time.sleep(1.0)
                    text = cluster.logs(service, instance, tail)
                    typer.echo(tail_growth(seen, text), nl=False)
                    seen = text
            except KeyboardInterrupt:
                pass

    @app.command()
    def stats(service: str, instance: Annotated[int, typer.Option("--instance", "-i")] = 0,
              address: Address = None, as_json: AsJson = False) -> None:
        """One resource sample of one instance's container (wherever it runs)."""
        with veo_errors():
            sample = _connect(address).stats(service, instance)
        if as_json:
            typer.echo(json.dumps(sample, indent=2))
            return
        from veo.core.units import format_size

        typer.echo(f"{service}#{instance}  cpu {sample.get('cpu_percent', 0):.1f}%  memory "
                   f"{format_size(sample.get('memory_usage'))} / {format_size(sample.get('memory_limit'))}"
                   f"  pids {sample.get('pids', 0)}")

    @app.command()
    def down(address: Address = None,
             keep_cluster: Annotated[bool, typer.Option(help="Leave the local Ray cluster running.")] = False,
             ) -> None:
        """Remove every veo container and stop the local cluster (and engines) veo up started."""
        from veo.deploy import teardown

        with veo_errors():
            for line in teardown(address=address, keep_cluster=keep_cluster):
                err.print(line)


def _watch(cluster) -> None:
    try:
        with Live(ps_table(cluster.containers()), console=out, refresh_per_second=2) as live:
            while True:
                time.sleep(1.0)
                live.update(ps_table(cluster.containers()))
    except KeyboardInterrupt:
        pass
