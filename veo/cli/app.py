"""The ``veo`` command line.

Every command reports a ``VeoError`` the same way (its text on stderr, its ``exit_code``), never a
traceback: see ``veo_errors``. Human output goes through rich on ``out``; anything meant for
programs (``--json``, problem lines) is written plainly so that it can be parsed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from veo.cli.common import EnvFiles, echo_problems, err, exit_with, out, veo_errors  # noqa: F401
from veo.core.errors import SpecError, SpecProblem, VeoError  # noqa: F401
from veo.core.config import LoadResult, load_spec
from veo.core.models import ClusterSpec, Service, group_policy_of
from veo.core.units import format_size

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="veo: run Docker containers across the nodes of a Ray cluster, as cluster.yml describes.",
)


@app.callback()
def _root() -> None:
    # a callback keeps `veo validate FILE` a sub-command while it is the only one
    pass


# --------------------------------------------------------------------------------------------------
# veo validate
# --------------------------------------------------------------------------------------------------


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="cluster.yml or docker-compose.yml to check.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the normalised spec as JSON on stdout.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Treat ignored docker-compose keys as errors.")
    ] = False,
    env_file: EnvFiles = None,
) -> None:
    """Check a cluster.yml without touching the cluster: every problem, with its line."""
    with veo_errors():
        result = load_spec(file, strict=strict, env_files=env_file)
    if as_json:
        typer.echo(json.dumps(result.spec.model_dump(mode="json"), indent=2))
    else:
        _print_summary(file, result)
    echo_problems(result.warnings)


def _print_summary(file: Path, result: LoadResult) -> None:
    spec = result.spec
    out.print(
        f"[green]✓[/] {_escape(str(file))} is valid: cluster [bold]{_escape(spec.name)}[/], "
        f"{len(spec.nodes)} node(s), {len(spec.services)} service(s)",
        soft_wrap=True,
    )
    for node in spec.nodes:
        capacity = ", ".join(
            part
            for part in (
                f"cpus {node.cpus:g}" if node.cpus is not None else "",
                f"memory {format_size(node.memory)}" if node.memory is not None else "",
                f"disk {format_size(node.disk)}" if node.disk is not None else "",
            )
            if part
        )
        line = f"  node {node.name}@{node.host}  role {node.role or '-'}"
        out.print(_escape(line + (f"  ({capacity})" if capacity else "")), soft_wrap=True)
    if spec.services:
        out.print(_services_table(spec))
    for group, members in spec.groups().items():
        names = ", ".join(m.name for m in members)
        policy = group_policy_of(members).value
        out.print(_escape(f"  group {group} ({policy}): {names}"), soft_wrap=True)


def _services_table(spec: ClusterSpec) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("service", "image", "inst", "cpus/mem/disk", "group", "restart", "health"):
        table.add_column(column, overflow="fold")  # fold: never hide a name
    for name, svc in spec.services.items():
        resources = "/".join(
            (
                f"{svc.cpus:g}" if svc.cpus is not None else "-",
                format_size(svc.memory),
                format_size(svc.disk),
            )
        )
        table.add_row(
            _escape(name),
            _escape(svc.image),
            str(svc.instances),
            resources,
            _escape(_group_text(svc)),
            _restart_text(svc),
            "yes" if svc.healthcheck is not None else "no",
        )
    return table


def _group_text(svc: Service) -> str:
    if not svc.group:
        return "-"
    return f"{svc.group}/{svc.group_role.value}" if svc.group_role else svc.group


def _restart_text(svc: Service) -> str:
    text = svc.restart.value
    if svc.restart.value == "restart" and not svc.restart_on_success:
        text = "on-failure"
    if svc.restart_count is not None and svc.restart.value == "restart":
        text += f" ×{svc.restart_count}"
    return text


def _escape(text: str) -> str:
    # names come from the user's file; '[' would otherwise start rich markup
    return escape(text)


def _register_commands() -> None:
    # the other command modules import `out`, `err` and `veo_errors` from here, so they are
    # registered last; their heavy imports (ray) happen inside the commands
    from veo.cli.cluster import register
    from veo.cli.engine import engine_app
    from veo.cli.node import node_app
    from veo.cli.serve import register as register_serve
    from veo.cli.tasks import register as register_tasks  # veo tasks / run / resolve
    from veo.cli.updates import register as register_updates

    register(app)
    register_serve(app)
    register_updates(app)
    register_tasks(app)
    app.add_typer(engine_app, name="engine", help="Make a Docker engine available (private dockerd).")
    app.add_typer(node_app, name="node", help="This machine as a veo node: `veo node start`.")


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
