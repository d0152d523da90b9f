"""veo's DNS server: answers from a ``veo.core.discovery.Zone`` over UDP and TCP, in the asyncio
loop it is started in (the NodeAgent's: one server per node, no extra actor).

dnspython does the wire format. Names outside the zone are forwarded to the node's resolvers
(``forward``: a list of ``host`` or ``host:port``) or refused (``forward=None``) — never guessed.
A new table swaps the zone in one assignment, so the next query sees it; nothing is cached here
beyond the TTL the answer carries (0-5 s).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from veo.core.discovery import ROOT, Answer, Table, Zone

log = logging.getLogger("veo.dns")

_UDP_PLAIN = 512  # without EDNS, a UDP answer fits in 512 bytes or is truncated (RFC 1035)
_FORWARD_TIMEOUT = 2.0


@dataclass(frozen=True)
class DnsConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (the server reports the one it got)
    ttl: int = 1
    forward: tuple[str, ...] | None = None  # None: refuse names outside the zone
    domain: str = ROOT  # the zone's root: <service>.<cluster>.<domain>


class DnsServer:
    """One node's DNS server. ``update(table)`` replaces what it serves."""

    def __init__(self, config: DnsConfig, table: Table | None = None) -> None:
        self.config = config
        self.zone = Zone(table or Table("veo"), ttl=config.ttl, root=config.domain)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self.port: int | None = None
        self.queries = 0

    @property
    def address(self) -> str:
        """``HOST:PORT`` where it answers (what ``veo nodes --json`` shows as ``dns``)."""
        host = self.config.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def update(self, table: Table) -> bool:
        """Serve ``table`` from now on; an older version than the one served is ignored (tables
        can arrive out of order). Returns whether it was taken."""
        if self._stale(table):
            return False
        return self.swap(self.build(table))

    async def update_off_loop(self, table: Table) -> bool:
        """``update``, with the zone built in a thread: a large table (10,000 instances: a few
        tenths of a second) must not hold up the loop the queries and engine events share."""
        if self._stale(table):
            return False
        return self.swap(await asyncio.to_thread(self.build, table))

    def build(self, table: Table) -> Zone:
        return Zone(table, ttl=self.config.ttl, root=self.config.domain)

    def swap(self, zone: Zone) -> bool:
        if self._stale(zone.table):
            return False
        self.zone = zone  # one assignment: a query sees the old zone or the new one
        return True

    def _stale(self, table: Table) -> bool:
        return table.version < self.zone.version and table.cluster == self.zone.table.cluster

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # UDP first: with port 0 it picks the port, TCP then takes the same one (retry if taken)
        for _ in range(20):
            transport, _proto = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.config.host, self.config.port))
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.config.host, port)
            except OSError:
                transport.close()
                if self.config.port:
                    raise
                continue
            self._udp, self.port = transport, port
            log.info("veo DNS answering on %s", self.address)
            return
        raise OSError("no port free for both UDP and TCP")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None

    # ---- one query ---------------------------------------------------------------------------

    async def handle(self, wire: bytes, *, tcp: bool, client: str | None = None) -> bytes | None:
        """The response to one query message, or None (unparsable: dropped, as servers do).
        ``client``: the asker's address; only private and loopback askers are forwarded for, so a
        node's DNS on a public address is no open resolver."""
        self.queries += 1
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        if query.flags & dns.flags.QR:
            return None  # a response sent to us; answering it could loop
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            return _error(query, dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY
                          else dns.rcode.FORMERR, tcp)
        q = query.question[0]
        answer = self.zone.answer(q.name.to_text(), dns.rdatatype.to_text(q.rdtype))
        if answer.rcode == "OUTSIDE":
            if client is not None and not _private(client):
                return _error(query, dns.rcode.REFUSED, tcp)
            return await self._outside(query, wire, tcp)
        return _wire(_response(query, q, answer), query, tcp)

    async def _outside(self, query: dns.message.Message, wire: bytes, tcp: bool) -> bytes:
        if not self.config.forward:
            return _error(query, dns.rcode.REFUSED, tcp)
        for upstream in self.config.forward:
            host, _, port = upstream.rpartition(":") if upstream.count(":") == 1 else (upstream, "", "")
            try:
                if tcp:
                    reply = await dns.asyncquery.tcp(query, host or upstream, timeout=_FORWARD_TIMEOUT,
                                                     port=int(port or 53))
                else:
                    reply = await dns.asyncquery.udp(query, host or upstream, timeout=_FORWARD_TIMEOUT,
                                                     port=int(port or 53), ignore_trailing=True)
            except (dns.exception.DNSException, OSError) as e:
                log.debug("forwarding to %s failed: %s", upstream, e)
                continue
            return _wire(reply, query, tcp)
        return _error(query, dns.rcode.SERVFAIL, tcp)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), timeout=10)
                (size,) = struct.unpack("!H", head)
                wire = await asyncio.wait_for(reader.readexactly(size), timeout=10)
                peer = writer.get_extra_info("peername")
                out = await self.handle(wire, tcp=True, client=peer[0] if peer else None)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        asyncio.ensure_future(self._reply(data, addr))

    async def _reply(self, data: bytes, addr) -> None:
        try:
            out = await self.server.handle(data, tcp=False, client=addr[0])
        except Exception:  # one bad query must never stop the server
            log.exception("DNS query from %s failed", addr)
            return
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


# --------------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------------


def _response(query: dns.message.Message, q: dns.rrset.RRset, answer: Answer) -> dns.message.Message:
    resp = dns.message.make_response(query)
    resp.flags |= dns.flags.AA
    resp.flags &= ~dns.flags.RA  # veo does not recurse for its own zone
    if answer.rcode == "NXDOMAIN":
        resp.set_rcode(dns.rcode.NXDOMAIN)
        return resp
    name, ttl = q.name, answer.ttl
    for rtype, values in (("A", answer.a), ("AAAA", answer.aaaa)):
        if values:
            resp.answer.append(_rrset(name, ttl, rtype, values))
    if answer.srv:
        texts = [f"{s.priority} {s.weight} {s.port} {s.target}" for s in answer.srv]
        resp.answer.append(_rrset(name, ttl, "SRV", texts))
    by_name: dict[tuple[str, str], list[str]] = {}
    for target, rtype, addr in answer.extra:
        by_name.setdefault((target, rtype), []).append(addr)
    for (target, rtype), addrs in by_name.items():
        resp.additional.append(_rrset(dns.name.from_text(target), ttl, rtype, addrs))
    return resp


def _rrset(name: dns.name.Name, ttl: int, rtype: str, texts) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(name, ttl, dns.rdataclass.IN, dns.rdatatype.from_text(rtype),
                                    list(texts))


def _wire(resp: dns.message.Message, query: dns.message.Message, tcp: bool) -> bytes:
    limit = 65535 if tcp else max(_UDP_PLAIN, query.payload if query.edns >= 0 else _UDP_PLAIN)
    try:
        return resp.to_wire(max_size=limit)
    except dns.exception.TooBig:
        # too big for UDP: an empty truncated answer tells the client to ask again over TCP
        resp.answer.clear()
        resp.additional.clear()
        resp.flags |= dns.flags.TC
        return resp.to_wire(max_size=limit)


def _private(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


def _error(query: dns.message.Message, rcode: int, tcp: bool) -> bytes:
    resp = dns.message.make_response(query)
    resp.set_rcode(rcode)
    return _wire(resp, query, tcp)


def _formerr(wire: bytes) -> bytes | None:
    # a header we can read gets FORMERR with its id; anything shorter is dropped
    if len(wire) < 12:
        return None
    (qid, flags) = struct.unpack("!HH", wire[:4])
    if flags & 0x8000:
        return None
    return struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7800) | dns.rcode.FORMERR, 0, 0, 0, 0)
