"""``veo engine``: make a Docker engine available on this machine, or stop one veo started."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from veo.adapters.dockerd import EngineHandle, engine_status, ensure_engine, stop_engine
from veo.core.errors import VeoError
from veo.adapters.images import ensure_images
from veo.adapters.docker_api import DockerRuntime

T = TypeVar("T")

engine_app = typer.Typer(
    help=(
        "Docker engines on this machine: use the one that answers on DOCKER_HOST or "
        "/var/run/docker.sock, or run a private dockerd under the state dir."
    ),
    no_args_is_help=True,
)

# soft_wrap: never break a line such as `export DOCKER_HOST=...` that users copy
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

NameArg = Annotated[
    str, typer.Argument(help="Engine name (a directory under <state-dir>/engines).")
]
StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="VEO_STATE_DIR",
        help="Where private engines live (default: $VEO_STATE_DIR or ~/.veo).",
    ),
]


def _run(action: Callable[[], T]) -> T:
    """A VeoError becomes its message and exit code, never a traceback."""
    try:
        return action()
    except VeoError as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(code=e.exit_code) from None


@engine_app.command()
def up(
    name: NameArg = "default",
    private: Annotated[
        bool,
        typer.Option("--private", help="Start (or reuse) a private dockerd even if one answers."),
    ] = False,
    images: Annotated[
        bool,
        typer.Option("--images/--no-images", help="Build veo/busybox and veo/httpd if missing."),
    ] = True,
    state_dir: StateDirOpt = None,
) -> None:
    """Make an engine available and print its DOCKER_HOST."""
    handle: EngineHandle = _run(
        lambda: ensure_engine(name, state_dir=state_dir, use_existing=not private)
    )
    if images:
        runtime = DockerRuntime(handle.docker_host)
        built = _run(lambda: ensure_images(runtime))
        runtime.close()
        if built:
            out.print(f"built {', '.join(built)}", markup=False)
    kind = f"private, pid {handle.pid}" if handle.private else "existing"
    out.print(f"engine {handle.name}: {handle.docker_host} ({kind})", markup=False)
    out.print(f"export DOCKER_HOST={handle.docker_host}", markup=False)


@engine_app.command()
def down(name: NameArg = "default", state_dir: StateDirOpt = None) -> None:
    """Stop a private engine veo started (only the process it recorded)."""
    if _run(lambda: stop_engine(name, state_dir=state_dir)):
        out.print(f"engine {name}: stopped", markup=False)
    else:
        out.print(f"engine {name}: not running", markup=False)


@engine_app.command()
def status(state_dir: StateDirOpt = None) -> None:
    """List the private engines under the state dir."""
    engines = _run(lambda: engine_status(state_dir))
    if not engines:
        out.print("no private engines", markup=False)
        return
    table = Table()
    for column in ("NAME", "PID", "ALIVE", "ANSWERS", "DOCKER_HOST", "LOG"):
        table.add_column(column, overflow="fold")
    for e in engines:
        table.add_row(
            e.name,
            str(e.pid) if e.pid else "-",
            "yes" if e.alive else "no",
            "yes" if e.answering else "no",
            e.docker_host,
            str(e.log),
        )
    out.print(table)
