"""A real ``veo serve``-style uvicorn server on a free loopback port, in a thread of the test
process, backed by the Ray world's client (real Ray, real engines)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from veo.api import create_app
from veo.api.deps import ApiSettings


class LiveServer:
    def __init__(self, client, *, token: str | None = None, settings: ApiSettings | None = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))  # bound here, so no other process can take the port
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.app = create_app(lambda: client, token=token,
                              settings=settings or ApiSettings(poll=2.0))
        config = uvicorn.Config(self.app, log_level="warning", ws_ping_interval=20.0,
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name=f"veo-serve-{self.port}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
