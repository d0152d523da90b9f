"""Running the server: where it may listen, with which token (``veo serve`` calls ``run``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from veo.api.deps import ApiSettings, is_loopback
from veo.core.errors import VeoError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8086
MIN_TOKEN = 16


class ServeError(VeoError):
    exit_code = 2


def read_token(token_file: str | Path | None, env: dict[str, str] | None = None) -> str | None:
    """The token: ``VEO_TOKEN``, else the first line of ``token_file`` (or ``VEO_TOKEN_FILE``)."""
    env = os.environ if env is None else env
    if env.get("VEO_TOKEN"):
        token = env["VEO_TOKEN"].strip()
    else:
        path = token_file or env.get("VEO_TOKEN_FILE")
        if not path:
            return None
        try:
            token = Path(path).read_text(encoding="utf-8").strip().splitlines()[0].strip()
        except (OSError, UnicodeDecodeError, IndexError) as e:
            why = getattr(e, "strerror", None) or ("empty file" if isinstance(e, IndexError) else e)
            raise ServeError(f"cannot read a token from {path}: {why}") from None
        if Path(path).stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ServeError(f"{path} is readable by other users; chmod 600 it (the token is "
                             "root on every node)")
    if len(token) < MIN_TOKEN:
        raise ServeError(f"the token is too short ({len(token)} characters); use at least "
                         f"{MIN_TOKEN}, e.g. `openssl rand -hex 32`")
    return token


def dashboard_url(address: str | None) -> str:
    """The local cluster's Ray dashboard (``veo up`` records it), else Ray's default."""
    if address is None:
        from veo.adapters import ray_local as local
        from veo.client import state_dir

        rec = local.read_record(state_dir())
        if rec is not None and rec.dashboard:
            return rec.dashboard if "://" in rec.dashboard else f"http://{rec.dashboard}"
    return "http://127.0.0.1:8265"


def check_bind(host: str, token: str | None) -> None:
    """Listening beyond loopback hands Docker (root) to the network: only with a token."""
    if token is None and not is_loopback(host):
        raise ServeError(f"refusing to listen on {host} without a token: Docker access is root on "
                         "every node. Set VEO_TOKEN or --token-file, or listen on 127.0.0.1")


def run(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, address: str | None = None,
        token: str | None = None, dashboard_url: str = "http://127.0.0.1:8265",
        log_level: str = "info") -> None:
    import uvicorn

    from veo.api.app import _default_factory, create_app

    check_bind(host, token)
    settings = ApiSettings(dashboard_url=dashboard_url)
    app = create_app(_default_factory(address), token=token, settings=settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws_ping_interval=20.0,
                ws_ping_timeout=20.0, proxy_headers=False, server_header=False,
                timeout_graceful_shutdown=5)  # log streams and sockets never end by themselves
