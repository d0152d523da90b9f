"""Load at the front doors (issue 14), on loopback only: many websocket subscribers next to one
that never reads, and a REST client at a fixed request rate. The generators serve the tests
(small, assert correctness) and ``python -m bench.api_load`` (bigger, prints figures)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import math
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from websockets.asyncio.client import connect as ws_connect

from bench.common import loadavg, percentile
from veo.core.models import EventKind


# ---- a websocket client that never reads ---------------------------------------------------------

def stuck_subscriber(ws_url: str, token: str | None, rcvbuf: int = 4096) -> socket.socket:
    """Opens ``/ws``, subscribes to the whole cluster, and from then on never reads: a tiny
    receive buffer, so the server's writes back up after a few kilobytes."""
    parts = urlsplit(ws_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((parts.hostname, parts.port))
    key = base64.b64encode(os.urandom(16)).decode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n{auth}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: read the upgrade answer and nothing after it
        if not chunk:
            raise ConnectionError("the server closed the upgrade")
        head += chunk
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise ConnectionError(head.decode(errors="replace"))
    sock.sendall(_client_frame(json.dumps({"op": "subscribe", "cluster": True}).encode()))
    return sock


def _client_frame(payload: bytes) -> bytes:
    """One masked text frame (clients must mask), payload under 64 KiB."""
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | size]) if size < 126 else
                            bytes([0x80 | 126]) + size.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


# ---- many subscribers that read ------------------------------------------------------------------

@dataclass
class Readers:
    """``count`` websockets subscribed to one service, each recording the probe events it gets
    and how long after their emission (``Event.time``) they arrived."""

    ws_url: str
    token: str | None
    count: int
    service: str = "probe"
    got: list[list[int]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def start(self, expect: int) -> threading.Thread:
        self.got = [[] for _ in range(self.count)]
        thread = threading.Thread(target=lambda: asyncio.run(self._main(expect)), daemon=True,
                                  name="load-readers")
        thread.start()
        return thread

    async def _main(self, expect: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        sockets = []
        try:
            for _ in range(self.count):  # one by one: a burst of 500 handshakes helps no one
                ws = await ws_connect(self.ws_url, additional_headers=headers, open_timeout=60,
                                      max_size=None, ping_interval=None)
                await ws.recv()  # welcome
                await ws.send(json.dumps({"op": "subscribe", "service": self.service}))
                await ws.recv()  # subscribed
                sockets.append(ws)
            self.ready.set()
            await asyncio.gather(*(self._read(ws, i, expect) for i, ws in enumerate(sockets)))
        except BaseException as e:  # reported by the caller
            self.error = e
            self.ready.set()
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

    async def _read(self, ws, i: int, expect: int) -> None:
        while len(self.got[i]) < expect:
            msg = json.loads(await ws.recv())
            if msg["type"] == "event":
                self.got[i].append(msg["event"]["index"])
                self.latencies.append(time.time() - msg["event"]["time"])


def flood_and_probe(emit, rounds: int, floods: int, size: int, until=None,
                    pause: float = 0.02) -> list[int]:
    """Emits ``rounds`` x (``floods`` events of ``size`` bytes for service 'flood', then one
    probe event for service 'probe'); stops early once ``until()`` holds (after that round).
    Returns the probe events' indexes."""
    probes = []
    for _ in range(rounds):
        for _ in range(floods):
            emit(EventKind.exited, service="flood", instance=0, reason="x" * size)
        probes.append(emit(EventKind.restarted, service="probe", instance=0).index)
        time.sleep(pause)
        if until is not None and until():
            break
    return probes


# ---- REST at a fixed rate ------------------------------------------------------------------------

@dataclass
class RestResult:
    sent: int
    seconds: float
    statuses: dict[int, int]
    errors: list[str]
    latencies: list[float]
    invalid: list[str] = field(default_factory=list)  # 200s whose body ``check`` refused

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self) -> dict:
        return {"requests": self.sent, "seconds": round(self.seconds, 2),
                "req_per_s": round(self.sent / self.seconds, 1) if self.seconds else None,
                "statuses": dict(sorted(self.statuses.items())),
                "errors": len(self.errors) + self.server_errors,
                "error_samples": sorted(set(self.errors))[:3],
                "invalid": len(self.invalid), "invalid_samples": sorted(set(self.invalid))[:3],
                "p50_ms": _ms(percentile(self.latencies, 50)),
                "p99_ms": _ms(percentile(self.latencies, 99))}


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 1)


def hammer(url: str, rate: float, seconds: float, token: str | None = None,
           concurrency: int = 32, check=None) -> RestResult:
    """GETs ``url`` at ``rate`` requests per second for ``seconds`` (open loop: requests start on
    schedule whether or not earlier ones answered, at most ``concurrency`` in flight, over
    keep-alive connections). ``check(body) -> problem or None`` judges each 200's body."""
    return asyncio.run(_hammer(url, rate, seconds, token, concurrency, check))


async def _hammer(url: str, rate: float, seconds: float, token: str | None,
                  concurrency: int, check=None) -> RestResult:
    # aiohttp, not httpx: a quarter of the CPU per request (measured: 0.4 ms vs 1.5 ms), and
    # the generator shares this machine's two cores with the server it measures
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    statuses: dict[int, int] = {}
    errors: list[str] = []
    latencies: list[float] = []
    invalid: list[str] = []
    slots = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)  # keep-alive, at most this many
    async with aiohttp.ClientSession(headers=headers, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(due: float) -> None:
            async with slots:
                try:
                    async with session.get(url) as r:
                        body = await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    problem = check(body) if check and r.status == 200 else None
                    if problem:
                        invalid.append(problem[:200])
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:  # no answer at all
                    errors.append(f"{type(e).__name__}: {e}"[:200])
                # from when it was due, not when a slot freed: waiting counts (open loop)
                latencies.append(time.perf_counter() - due)

        total = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for n in range(total):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return RestResult(total, elapsed, statuses, errors, latencies, invalid)


# ---- the benchmark -------------------------------------------------------------------------------

TOKEN = "bench-api-load-token-0123456789"


class Server:
    """``veo serve``'s app under uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, client, **settings):
        import uvicorn

        from veo.api import create_app
        from veo.api.deps import ApiSettings

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        port = self.sock.getsockname()[1]
        self.url, self.ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws"
        self.app = create_app(lambda: client, token=TOKEN, settings=ApiSettings(**settings))
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning",
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def _fake_cluster(services: int = 20):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "api"))
    from fake_cluster import FakeCluster

    fake = FakeCluster()
    for i in range(services):
        fake.add_service({"name": f"web{i}", "image": "veo/busybox", "instances": 3})
    return fake


def bench_rest(rate: float, seconds: float, address: str | None) -> dict:
    """The server in a process of its own (so the load generator does not share its GIL)."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "bench.api_load", "--serve"]
    if address:
        argv += ["--address", address]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the server did not start: {url!r}")
        return hammer(f"{url}/api/containers", rate, seconds, TOKEN).summary()
    finally:
        proc.terminate()
        proc.wait(30)


def _serve(address: str | None) -> None:
    if address:
        from veo.client import connect

        client = connect(address)
    else:
        client = _fake_cluster()
    server = Server(client, poll=1.0)
    print(server.url, flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        pass


def bench_ws(fake, readers: int, rounds: int, stuck: bool) -> dict:
    """Probe latency at ``readers`` subscribers (in a process of their own) while 'flood' events
    go by, with or without a client that never reads (it follows the whole cluster, so the flood
    backs up on it)."""
    import subprocess
    import sys

    server = Server(fake, poll=0.2, queue_limit=100)
    hub = server.app.state.veo.hub
    child = subprocess.Popen([sys.executable, "-m", "bench.api_load", "--readers-child",
                              server.ws_url, str(readers), str(rounds)],
                             stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the readers did not connect")
        sock = stuck_subscriber(server.ws_url, TOKEN) if stuck else None
        t0 = time.perf_counter()
        probes = flood_and_probe(fake.emit, rounds=rounds, floods=100, size=2000)
        out = json.loads(child.stdout.readline() or "{}")
        elapsed = time.perf_counter() - t0
        if sock is not None:
            sock.close()
        if "error" in out or "got" not in out:
            raise RuntimeError(f"the readers failed: {out.get('error')}")
        return {"readers": readers, "stuck_client": stuck, "probes": len(probes),
                "readers_with_every_probe": sum(1 for got in out["got"] if got == probes),
                "dropped": hub.dropped, "seconds": round(elapsed, 2),
                "probe_p50_ms": _ms(percentile(out["latencies"], 50)),
                "probe_p99_ms": _ms(percentile(out["latencies"], 99))}
    finally:
        child.kill()
        child.wait(30)
        server.close()


def _readers_child(ws_url: str, count: int, expect: int) -> None:
    crowd = Readers(ws_url, TOKEN, count=count)
    thread = crowd.start(expect=expect)
    crowd.ready.wait()
    print("ready", flush=True)
    thread.join()
    out = ({"error": repr(crowd.error)} if crowd.error is not None else
           {"got": crowd.got, "latencies": crowd.latencies})
    print(json.dumps(out), flush=True)


def _live(quick: bool) -> None:
    from bench import rest_live
    from bench.common import Engine, VeoWorld

    print(f"load average: {loadavg()} (figures are this machine's, shared)")
    engine = Engine()
    try:
        world = VeoWorld(engine)
        try:
            res = rest_live.run(engine, world, quick)
        finally:
            world.close()
    finally:
        engine.close()
    rest_live.print_report(res)
    print(json.dumps(res))


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.api_load", description=__doc__)
    p.add_argument("--quick", action="store_true", help="5 s of REST, 100 subscribers")
    p.add_argument("--rate", type=float, default=200.0, help="REST requests per second")
    p.add_argument("--seconds", type=float, help="REST duration (default 30, quick 5)")
    p.add_argument("--readers", type=int, help="websocket subscribers (default 500, quick 100)")
    p.add_argument("--address", help="a running veo cluster's Ray address: REST goes through its "
                   "Scheduler (the websocket part always uses the in-memory fake)")
    p.add_argument("--live", action="store_true", help="REST on real processes instead: a "
                   "private engine, a one-node local Ray cluster, `veo serve` (run it inside a "
                   "loopback-only network namespace); prints the control loop's step time quiet "
                   "vs loaded (bench.rest_live)")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the REST server
    p.add_argument("--readers-child", nargs=3, help=argparse.SUPPRESS)  # the subscribers
    args = p.parse_args(argv)
    if args.serve:
        return _serve(args.address)
    if args.readers_child:
        url, count, expect = args.readers_child
        return _readers_child(url, int(count), int(expect))
    if args.live:
        return _live(args.quick)
    seconds = args.seconds or (5.0 if args.quick else 30.0)
    readers = args.readers or (100 if args.quick else 500)
    print(f"load average: {loadavg()} (figures are this machine's, shared)")
    where = (f"the cluster at {args.address}" if args.address else
             "the in-memory fake cluster (60 containers)")
    print(f"REST: GET /api/containers at {args.rate:g}/s for {seconds:g}s over {where}, the "
          "server in its own process")
    print(json.dumps(bench_rest(args.rate, seconds, args.address)))
    for stuck in (False, True):
        print(f"websocket: {readers} subscribers, {'with' if stuck else 'without'} a client "
              "that never reads")
        print(json.dumps(bench_ws(_fake_cluster(0), readers, rounds=20, stuck=stuck)))


if __name__ == "__main__":
    main()
