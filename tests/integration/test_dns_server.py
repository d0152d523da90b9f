"""veo's DNS server (veo.adapters.dns) on 127.0.0.1 and a free port, asked by real DNS clients:
dnspython's stub resolver and Debian's ``dig``, over UDP and TCP. Names outside the zone are
refused, or forwarded to another veo DNS server on loopback (no outside traffic)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from veo.adapters.dns import DnsConfig, DnsServer
from veo.core.discovery import InstanceRecord, PortRecord, Table

pytestmark = pytest.mark.timeout(60)


class Loop:
    """An asyncio loop in a thread, as the NodeAgent's: the tests' clients block, the server
    does not."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def call(self, fn, *args):
        async def _do():
            return fn(*args)
        return self.run(_do())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def web(instance: int, address: str, **kw) -> InstanceRecord:
    ports = (PortRecord(80, 8000 + instance, "tcp", "http"),)
    return InstanceRecord("web", instance, f"n{instance}", address, ports=ports, **kw)


def table(version: int, *records: InstanceRecord) -> Table:
    return Table("prod", version, frozenset({"web", "db"}), records)


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


def start(loop: Loop, config: DnsConfig, tbl: Table) -> DnsServer:
    server = DnsServer(config, tbl)
    loop.run(server.start())
    return server


@pytest.fixture
def server(loop: Loop) -> Iterator[DnsServer]:
    srv = start(loop, DnsConfig(ttl=0), table(1, web(0, "10.1.0.1"), web(1, "10.1.0.2")))
    yield srv
    loop.run(srv.stop())


def resolver(server: DnsServer, tcp: bool = False) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = server.port
    r.lifetime = 3
    r.cache = None
    return r


def addresses(server: DnsServer, name: str, tcp: bool = False) -> list[str]:
    try:
        answer = resolver(server).resolve(name, "A", tcp=tcp)
    except dns.resolver.NoAnswer:
        return []
    return sorted(r.address for r in answer)


def dig(server: DnsServer, *args: str) -> str:
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(server.port), "+time=2", "+tries=1", *args],
        capture_output=True, text=True, timeout=15, check=False)
    return out.stdout


needs_dig = pytest.mark.skipif(shutil.which("dig") is None, reason="dig (bind9-dnsutils) missing")


def test_address_records_over_udp_and_tcp(server: DnsServer) -> None:
    assert addresses(server, "web.prod.veo") == ["10.1.0.1", "10.1.0.2"]
    assert addresses(server, "web.veo", tcp=True) == ["10.1.0.1", "10.1.0.2"]
    assert addresses(server, "1.web.prod.veo") == ["10.1.0.2"]
    assert server.address == f"127.0.0.1:{server.port}"


def test_srv_records(server: DnsServer) -> None:
    answer = resolver(server).resolve("_http._tcp.web.prod.veo", "SRV")
    assert sorted((r.port, r.target.to_text()) for r in answer) == [
        (8000, "0.web.prod.veo."), (8001, "1.web.prod.veo.")]
    # the targets' addresses come in the additional section
    extra = {rr.name.to_text(): [r.address for r in rr] for rr in answer.response.additional}
    assert extra == {"0.web.prod.veo.": ["10.1.0.1"], "1.web.prod.veo.": ["10.1.0.2"]}


def test_unknown_name_is_nxdomain_and_known_empty_service_is_noerror(server: DnsServer) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver(server).resolve("nope.prod.veo", "A")
    with pytest.raises(dns.resolver.NoAnswer):  # NOERROR, no records: db is known, not running
        resolver(server).resolve("db.prod.veo", "A")


def test_outside_names_are_refused(server: DnsServer) -> None:
    q = dns.message.make_query("example.com", "A")
    reply = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=3)
    assert reply.rcode() == dns.rcode.REFUSED


def test_answers_follow_updates_within_a_second(loop: Loop, server: DnsServer) -> None:
    changes = [
        table(2, web(0, "10.1.0.1"), web(1, "10.1.0.2"), web(2, "10.1.0.3")),  # one starts
        table(3, web(1, "10.1.0.2"), web(2, "10.1.0.3")),  # one dies
        table(4, web(1, "10.1.0.2", has_healthcheck=True, health="unhealthy"),
              web(2, "10.1.0.3")),  # one turns unhealthy
        table(5, web(1, "10.1.0.9"), web(2, "10.1.0.3")),  # one moves to another machine
    ]
    expected = [["10.1.0.1", "10.1.0.2", "10.1.0.3"], ["10.1.0.2", "10.1.0.3"], ["10.1.0.3"],
                ["10.1.0.3", "10.1.0.9"]]
    for tbl, want in zip(changes, expected):
        loop.call(server.update, tbl)
        deadline = time.monotonic() + 1.0
        got = addresses(server, "web.prod.veo")
        while got != want and time.monotonic() < deadline:
            time.sleep(0.02)
            got = addresses(server, "web.prod.veo")
        assert got == want
    # an older table arriving late is ignored
    assert loop.call(server.update, table(3, web(0, "10.1.0.1"))) is False
    assert addresses(server, "web.prod.veo") == ["10.1.0.3", "10.1.0.9"]


def test_a_large_answer_is_truncated_over_udp_and_whole_over_tcp(loop: Loop) -> None:
    many = [web(i, f"10.2.{i // 250}.{i % 250 + 1}") for i in range(80)]
    srv = start(loop, DnsConfig(), table(1, *many))
    try:
        q = dns.message.make_query("web.prod.veo", "A", use_edns=False)
        udp = dns.query.udp(q, "127.0.0.1", port=srv.port, timeout=3)
        assert udp.flags & dns.flags.TC
        tcp = dns.query.tcp(q, "127.0.0.1", port=srv.port, timeout=3)
        assert len(tcp.answer[0]) == 80
        assert len(resolver(srv).resolve("web.prod.veo", "A")) == 80  # the stub retries over TCP
    finally:
        loop.run(srv.stop())


def test_garbage_does_not_stop_the_server(server: DnsServer) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"\x12\x34\x01\x00" + b"\xff" * 20, ("127.0.0.1", server.port))
        reply, _ = s.recvfrom(512)
        assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR
        s.sendto(b"\x00", ("127.0.0.1", server.port))  # too short: dropped
    assert addresses(server, "web.prod.veo") == ["10.1.0.1", "10.1.0.2"]


def test_forwarding_to_the_nodes_resolver(loop: Loop) -> None:
    # the "node's resolver" is another veo DNS on loopback, serving another domain
    upstream = start(loop, DnsConfig(domain="corp"), Table("other", 1, frozenset({"api"}),
                                              (InstanceRecord("api", 0, "x", "10.9.0.1"),)))
    srv = start(loop, DnsConfig(forward=(f"127.0.0.1:{upstream.port}",)), table(1, web(0, "10.1.0.1")))
    try:
        assert addresses(srv, "api.other.corp") == ["10.9.0.1"]
        assert addresses(srv, "api.other.corp", tcp=True) == ["10.9.0.1"]
        with pytest.raises(dns.resolver.NXDOMAIN):  # the upstream's own answer, passed on
            resolver(srv).resolve("nope.other.corp", "A")
        assert addresses(srv, "web.prod.veo") == ["10.1.0.1"]
        assert upstream.queries == 3  # own names are never forwarded
    finally:
        loop.run(srv.stop())
        loop.run(upstream.stop())


def test_forwarding_to_a_dead_resolver_is_servfail(loop: Loop) -> None:
    srv = start(loop, DnsConfig(forward=("127.0.0.1:9",)), table(1))
    try:
        q = dns.message.make_query("example.com", "A")
        reply = dns.query.udp(q, "127.0.0.1", port=srv.port, timeout=8)
        assert reply.rcode() == dns.rcode.SERVFAIL
    finally:
        loop.run(srv.stop())


@needs_dig
def test_dig(loop: Loop, server: DnsServer) -> None:
    assert sorted(dig(server, "+short", "web.prod.veo").split()) == ["10.1.0.1", "10.1.0.2"]
    assert dig(server, "+short", "+tcp", "1.web.prod.veo").split() == ["10.1.0.2"]
    srv = dig(server, "+short", "SRV", "_http._tcp.web.prod.veo").splitlines()
    assert sorted(srv) == ["0 10 8000 0.web.prod.veo.", "0 10 8001 1.web.prod.veo."]
    assert "status: NXDOMAIN" in dig(server, "nope.prod.veo")
    empty = dig(server, "db.prod.veo")
    assert "status: NOERROR" in empty and "ANSWER: 0" in empty
    assert "status: REFUSED" in dig(server, "example.com")
    assert "flags: qr aa" in dig(server, "web.veo")
    loop.call(server.update, table(2, web(7, "10.1.0.7")))
    assert dig(server, "+short", "web.veo").split() == ["10.1.0.7"]


def test_update_off_the_loop_keeps_answering(loop: Loop, server: DnsServer) -> None:
    big = table(9, *[web(i, f"10.3.{i // 250}.{i % 250 + 1}") for i in range(2000)])
    assert loop.run(server.update_off_loop(big)) is True
    assert len(resolver(server).resolve("web.prod.veo", "A")) == 2000
    assert loop.run(server.update_off_loop(table(8, web(0, "10.1.0.1")))) is False  # older


def test_no_forwarding_for_public_askers(loop: Loop) -> None:
    from veo.adapters.dns import _private

    assert _private("127.0.0.1") and _private("10.1.2.3") and _private("fd00::1")
    assert not _private("8.8.8.8") and not _private("2001:4860::1") and not _private("junk")
    upstream = start(loop, DnsConfig(domain="corp"), Table("other", 1, frozenset({"api"}),
                                                           (InstanceRecord("api", 0, "x", "10.9.0.1"),)))
    srv = start(loop, DnsConfig(forward=(f"127.0.0.1:{upstream.port}",)), table(1))
    try:
        wire = dns.message.make_query("api.other.corp", "A").to_wire()
        public = dns.message.from_wire(loop.run(srv.handle(wire, tcp=False, client="8.8.4.4")))
        assert public.rcode() == dns.rcode.REFUSED and upstream.queries == 0
        local = dns.message.from_wire(loop.run(srv.handle(wire, tcp=False, client="127.0.0.1")))
        assert local.rcode() == dns.rcode.NOERROR and upstream.queries == 1
    finally:
        loop.run(srv.stop())
        loop.run(upstream.stop())
