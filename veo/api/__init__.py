"""The REST API, websocket and UI server (``veo serve``)."""

from veo.api.app import create_app
from veo.api.deps import get_client

__all__ = ["create_app", "get_client"]
