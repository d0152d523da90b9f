"""What every veo command shares: the consoles and the one way a VeoError is reported (its text
on stderr, its ``exit_code``), never a traceback. Kept apart from ``veo.cli.app`` so command modules
can import it without importing the app (``python -m veo.cli.app`` would import it twice)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from veo.core.errors import SpecError, SpecProblem, VeoError

# piped output (CI logs, tests, `| grep`) gets wide tables instead of rich's 80-column default,
# which would cut ids and reasons
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


# --------------------------------------------------------------------------------------------------
# Error reporting shared by every command
# --------------------------------------------------------------------------------------------------


def echo_problems(problems: list[SpecProblem]) -> None:
    """One problem per line on stderr, exactly ``str(problem)``, so editors and grep can use it."""
    for problem in problems:
        typer.echo(str(problem), err=True)


def exit_with(error: VeoError) -> NoReturn:
    """Print a VeoError for a human and exit with its code."""
    if isinstance(error, SpecError):
        echo_problems(error.problems)
    else:
        typer.echo(f"error: {error}", err=True)
    raise typer.Exit(error.exit_code)


@contextmanager
def veo_errors() -> Iterator[None]:
    """Wrap a command's body: a VeoError becomes a message and an exit code, not a traceback."""
    try:
        yield
    except VeoError as error:
        exit_with(error)


# compose's --env-file: variables for ${VAR} in the file, instead of the .env beside it
EnvFiles = Annotated[
    list[Path] | None,
    typer.Option("--env-file", help="A file of KEY=VALUE variables for ${VAR} in FILE, instead "
                 "of the .env beside it (repeat for several; the environment still wins)."),
]
