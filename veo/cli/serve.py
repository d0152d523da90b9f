"""``veo serve``: the REST API, the websocket and the web UI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from veo.cli.cluster import Address
from veo.cli.common import err, veo_errors


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="Address to listen on. Anything but loopback "
                                          "needs a token.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8086,
        address: Address = None,
        token_file: Annotated[Optional[Path], typer.Option(
            "--token-file", envvar="VEO_TOKEN_FILE",
            help="File whose first line is the bearer token (or set VEO_TOKEN).")] = None,
        dashboard: Annotated[Optional[str], typer.Option(
            help="The Ray dashboard the UI links to (default: the local cluster's, or "
                 "http://127.0.0.1:8265).")] = None,
        log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
    ) -> None:
        """Serve the REST API (/api, /docs), live events (/ws), /metrics and the web UI (/)."""
        from veo.api.serve import check_bind, dashboard_url, read_token, run

        with veo_errors():
            token = read_token(token_file)
            check_bind(host, token)
            shown = f"[{host}]" if ":" in host else host
            err.print(f"veo serve: http://{shown}:{port}/ (API docs at /docs)"
                      + (", token required" if token else ", no token: loopback only"))
            run(host, port, address=address, token=token,
                dashboard_url=dashboard or dashboard_url(address), log_level=log_level)
