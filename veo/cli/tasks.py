"""``veo tasks``, ``veo run TASK``, ``veo resolve SERVICE``: scheduled tasks and discovery.

Thin, like the other command modules: one client call each, the result as a table or JSON.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from veo.cli.cluster import Address, AsJson, _connect
from veo.cli.common import err, out, veo_errors


def tasks_table(tasks: list[dict]) -> Table:
    t = Table("TASK", "SCHEDULE", "ZONE", "NEXT RUN", "LAST RUN", "RESULT", "DURATION", "ACTIVE",
              title="tasks")
    for task in tasks:
        last = task.get("last_run") or {}
        colour = {"succeeded": "green", "failed": "red"}.get(last.get("state"), "white")
        duration = last.get("duration")
        t.add_row(task["name"], f"{', '.join(task['schedule'])}\n[dim]{task['words']}[/]",
                  task["time_zone"], task.get("next_run") or "never", last.get("scheduled") or "",
                  f"[{colour}]{last.get('state') or ''}[/]",
                  "" if duration is None else f"{duration:g}s", str(task["active"]))
    return t


def resolve_table(view: dict) -> Table:
    t = Table("INSTANCE", "NODE", "ADDRESS", "SERVED", "HEALTH", "PORTS", title=", ".join(view["names"]))
    for r in view["instances"]:
        ports = ", ".join(f"{p['name'] or p['target']}:{p['published'] or '-'}/{p['protocol']}"
                          for p in r["ports"])
        t.add_row(str(r["instance"]), r["node"], r["node_address"] or "",
                  "[green]yes[/]" if r["served"] else "[red]no[/]", r["health"], ports)
    return t


def register(app: typer.Typer) -> None:
    @app.command()
    def tasks(address: Address = None, as_json: AsJson = False) -> None:
        """Scheduled tasks: schedule in words, next run, last run (when, result, duration)."""
        with veo_errors():
            views = _connect(address).tasks()
            if as_json:
                typer.echo(json.dumps(views, indent=2))
            else:
                out.print(tasks_table(views))

    @app.command()
    def run(task: Annotated[str, typer.Argument(help="The task to run now.")],
            address: Address = None, as_json: AsJson = False) -> None:
        """Start a run of TASK now (outside its schedule); it shows in `veo ps` and `veo tasks`."""
        with veo_errors():
            started = _connect(address).run_task(task)
            if as_json:
                typer.echo(json.dumps(started))
            else:
                err.print(f"started {task}: {', '.join(started['instances'])}")

    @app.command()
    def resolve(service: str, address: Address = None, as_json: AsJson = False) -> None:
        """What veo's DNS answers for SERVICE: addresses, SRV ports, and each instance."""
        with veo_errors():
            view = _connect(address).resolve(service)
            if as_json:
                typer.echo(json.dumps(view, indent=2))
                return
            if not view["known"]:
                err.print(f"no service named {service!r} (DNS answers NXDOMAIN)")
                raise typer.Exit(1)
            out.print(resolve_table(view))
            out.print("addresses: " + (", ".join(view["addresses"]) or "none (empty NOERROR)"))
            for srv in view["srv"]:
                out.print(f"SRV {srv['name']}.{view['names'][0]} -> {srv['address']}:{srv['port']}")
