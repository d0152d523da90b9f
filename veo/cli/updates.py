"""``veo plan``, ``veo history``, ``veo rollback``, ``veo update resume|promote|pause|rollback``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from veo.cli.cluster import Address, AsJson, Server, TokenFile, _connect
from veo.cli.common import EnvFiles, err, out, veo_errors
from veo.core.errors import SpecError

update_app = typer.Typer(help="Drive a rolling update: resume, promote, pause, rollback.",
                         no_args_is_help=True)
ACTIONS = ("resume", "promote", "pause", "rollback")


def plan_lines(plan: dict) -> list[str]:
    lines = []
    for name, entry in plan["services"].items():
        change = entry["change"]
        if change == "unchanged":
            continue
        sign = {"added": "+", "removed": "-"}.get(change, "~")
        lines.append(f"{sign} {name}: {change}")
        for field, (old, new) in entry.get("diff", {}).items():
            lines.append(f"    {field}: {json.dumps(old)} -> {json.dumps(new)}")
        placed, removed = entry["instances"]["placed"], entry["instances"]["removed"]
        if placed:
            lines.append(f"    instances placed: {', '.join(placed)}")
        if removed:
            lines.append(f"    instances removed: {', '.join(removed)}")
        for problem in entry.get("problems", []):
            lines.append(f"    problem: {problem}")
    return lines or ["no changes"]


def register(app: typer.Typer) -> None:
    @app.command()
    def plan(file: Annotated[Path, typer.Argument(help="cluster.yml to compare with the cluster.")],
             address: Address = None, server: Server = None, token_file: TokenFile = None,
             as_json: AsJson = False, env_file: EnvFiles = None) -> None:
        """What `veo up FILE` would change, changing nothing. Exit 0: no change, 1: changes,
        2: an invalid file (like `nomad job plan`). Apply it with
        `veo up FILE --check-index N` so that nobody else's apply slips in between."""
        from veo.core.config import load_spec

        try:
            spec = load_spec(file, env_files=env_file).spec
        except SpecError as e:
            for p in e.problems:
                err.print(str(p), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        with veo_errors():
            result = _connect(address, server, token_file).plan(spec)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            for line in plan_lines(result):
                out.print(line, markup=False, highlight=False, soft_wrap=True)
            out.print(f"spec index {result['spec_index']}: `veo up {file} --check-index "
                      f"{result['spec_index']}` applies exactly this", markup=False, highlight=False)
        raise typer.Exit(1 if result["changed"] else 0)

    @app.command()
    def history(service: str, address: Address = None, server: Server = None,
                token_file: TokenFile = None, as_json: AsJson = False) -> None:
        """The kept versions of SERVICE (last 10) with time and outcome."""
        with veo_errors():
            versions = _connect(address, server, token_file).history(service)
        if as_json:
            typer.echo(json.dumps(versions, indent=2))
            return
        t = Table("VERSION", "APPLIED", "OUTCOME", "IMAGE", "SPEC HASH", title=service)
        for v in versions:
            when = datetime.fromtimestamp(v["time"]).strftime("%Y-%m-%d %H:%M:%S")
            t.add_row(str(v["number"]), when, v["outcome"], v["spec"].get("image", ""), v["hash"])
        out.print(t)

    @app.command()
    def rollback(service: str,
                 to: Annotated[Optional[int], typer.Option("--to", help="Version number.")] = None,
                 address: Address = None, server: Server = None,
                 token_file: TokenFile = None) -> None:
        """Go back to an earlier version of SERVICE (default: the last stable one), rolled like
        any update."""
        with veo_errors():
            number = _connect(address, server, token_file).rollback(service, to)
        err.print(f"rolling {service} back to version {number}")

    def control(action: str):
        def command(target: Annotated[str, typer.Argument(help="SERVICE, or group:NAME")],
                    address: Address = None, server: Server = None,
                    token_file: TokenFile = None) -> None:
            with veo_errors():
                _connect(address, server, token_file).update(action, target)
            err.print(f"{action}: {target}")

        command.__doc__ = {
            "resume": "Go on with a paused update.",
            "promote": "Go on after the canaries proved healthy.",
            "pause": "Stop letting units go (those in flight finish).",
            "rollback": "Revert the replaced units at once to the version before the update.",
        }[action]
        return command

    for action in ACTIONS:
        update_app.command(name=action)(control(action))

    @update_app.command(name="list")
    def list_updates(address: Address = None, server: Server = None, token_file: TokenFile = None,
                     as_json: AsJson = False) -> None:
        """Updates in progress and the last one of each service or group."""
        with veo_errors():
            ups = _connect(address, server, token_file).updates()
        if as_json:
            typer.echo(json.dumps(ups, indent=2))
            return
        t = Table("TARGET", "STATE", "DONE", "IN FLIGHT", "FAILED", "REASON", title="updates")
        for u in ups:
            t.add_row(u["target"], u["state"], f"{len(u['done'])}/{len(u['units'])}",
                      ", ".join(u["in_flight"]), ", ".join(u["failed"]), u.get("reason") or "")
        out.print(t)

    app.add_typer(update_app, name="update")
