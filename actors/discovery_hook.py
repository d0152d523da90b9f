"""Service discovery inside the actors, called from marked hooks (``HOOK(discovery)``).

Scheduler side (``push``, after each step's converge): builds the discovery table from the slots,
the agents' reports (status, health) and the services (ports) — only when a cheap key of those
changed (``veo.core.discovery.Rebuilds``) — and sends it to every agent whose last report shows
another version, once per version. The version is the time of the change in nanoseconds, so it
grows across Scheduler restarts and an agent can ignore a late, older table.

Agent side (``serve``, ``report``): the DNS server runs in the NodeAgent's own asyncio loop — no
extra actor or process per node — on ``settings.discovery``'s address and port.
"""

from __future__ import annotations

import logging
import re
import time

from veo.adapters.dns import DnsConfig, DnsServer
from veo.core.discovery import RESEND, InstanceRecord, PortRecord, Rebuilds, Table, resolve
from veo.core.models import DiscoverySettings, EventKind, InstanceStatus
from veo.core.names import instance_key

log = logging.getLogger("veo.discovery")

# health changes alter the answers; they wake the control loop like lifecycle changes do
PROMPT = frozenset({EventKind.healthy, EventKind.unhealthy})


def prompts(events) -> bool:
    return any(e.kind in PROMPT for e in events)


# ---- Scheduler side ----------------------------------------------------------------------------


class _Cache:
    """The Scheduler's discovery table between steps, and what each agent was last sent."""

    def __init__(self) -> None:
        self.rebuilds = Rebuilds()
        self.content: tuple | None = None
        self.table: Table | None = None
        self.payload: dict | None = None  # table.to_json(), once per version
        self.sent: dict[str, tuple[int, dict, float]] = {}  # node -> (version, config, when)
        self.settled: tuple | None = None  # (table, config, nodes, reports) when all had it


def cache(sched) -> _Cache:
    if "_discovery" not in sched.__dict__:
        sched._discovery = _Cache()
    return sched._discovery


def _now(sched) -> float:
    return getattr(sched, "clock", time.time)()


def inputs_key(sched) -> tuple:
    """What the table is built from, cheaply (see ``veo.core.discovery.Rebuilds``): O(1) — the
    Scheduler counts changes of its nodes (liveness, address) and of their reports."""
    st = sched.state
    return (st.cluster, st.spec_index, st.event_index, st.slots, sched.nodes_version,
            sched.reports_version)


def table_content(sched) -> tuple:
    """The records of every instance in the slots, as the Scheduler knows them now."""
    reported = {}
    for rec in sched.nodes.values():
        if rec.alive and rec.report:
            for inst in rec.report.instances:
                reported[instance_key(inst.service, inst.instance)] = inst
    records = []
    st = sched.state
    for key, slot in sorted(st.slots.items()):
        svc = st.services.get(slot.service)
        rec = sched.nodes.get(slot.node)
        inst = reported.get(key)
        if svc is None or rec is None or inst is None or inst.generation != slot.generation:
            continue
        records.append(InstanceRecord(
            service=slot.service, instance=slot.instance, node=slot.node,
            node_address=rec.host if rec.alive else None,
            ports=tuple(PortRecord(p.target, p.published, p.protocol, p.name) for p in svc.ports),
            running=inst.status is InstanceStatus.running,
            health=inst.health.value, has_healthcheck=svc.healthcheck is not None,
            host_network=svc.network_mode == "host",
        ))
    return tuple(sorted(st.services)), tuple(records)


def current(sched) -> Table:
    """The table; rebuilt only when its inputs changed, with a new version only when its content
    did (the version is the time of the change in nanoseconds)."""
    c = cache(sched)
    if not c.rebuilds.due(inputs_key(sched), _now(sched)) and c.table is not None:
        return c.table
    began = time.perf_counter()
    content = (sched.state.cluster, *table_content(sched))
    c.rebuilds.built(time.perf_counter() - began)
    if content != c.content:
        cluster, services, records = content
        c.content, c.payload = content, None
        c.table = Table(cluster, time.time_ns(), frozenset(services), records)
    return c.table


def push(sched) -> None:
    """HOOK(discovery) in Scheduler._step: send the table to the agents that do not have it —
    once per version, and again only if an agent's report still lacks it ``RESEND`` s later (a
    lost message, a restarted agent)."""
    table = current(sched)
    c = cache(sched)
    config = sched.state.settings.discovery.model_dump(mode="json")
    now = _now(sched)
    settled = (table.version, config, sched.nodes_version, sched.reports_version)
    if c.settled == settled:
        return  # every live node reported this table and config, and nothing moved since
    pending = False
    for rec in sched.nodes.values():
        report = rec.report
        if not rec.alive or (report is not None and report.dns_version == table.version
                             and report.dns_config == config):
            continue
        pending = True
        sent = c.sent.get(rec.name)
        if sent is not None and sent[:2] == (table.version, config) and now - sent[2] < RESEND:
            continue
        if c.payload is None:
            c.payload = table.to_json()
        try:
            # not awaited: the next report says whether it arrived
            sched._agent(rec.name).discovery.remote(c.payload, config)
            c.sent[rec.name] = (table.version, config, now)
        except Exception as e:
            log.warning("cannot send the discovery table to %s: %s", rec.name, e)
    c.settled = None if pending else settled


def lookup(sched, service: str) -> dict:
    """HOOK(discovery) Scheduler.discovery: ``GET /api/discovery/{service}``, ``veo resolve``."""
    view = resolve(current(sched), service)
    view["dns"] = {r.name: r.report.dns if r.report else None
                   for r in sched.nodes.values() if r.alive}
    return view


# ---- agent side ----------------------------------------------------------------------------------


def _resolvers(path: str = "/etc/resolv.conf") -> tuple[str, ...]:
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return ()
    return tuple(re.findall(r"^\s*nameserver\s+(\S+)", text, re.M))


def dns_config(settings: DiscoverySettings, node_address: str) -> DnsConfig:
    forward: tuple[str, ...] | None
    if settings.forward == "refuse":
        forward = None
    elif settings.forward == "resolver":
        forward = tuple(a for a in _resolvers() if a != (settings.host or node_address)) or None
    else:
        forward = tuple(settings.forward)
    return DnsConfig(host=settings.host or node_address, port=settings.port, ttl=settings.ttl,
                     forward=forward)


async def serve(agent, table: dict, config: dict) -> str | None:
    """HOOK(discovery) NodeAgent.discovery: serve ``table``; (re)start the server when the
    settings changed. Returns where it answers."""
    settings = DiscoverySettings.model_validate(config)
    server: DnsServer | None = getattr(agent, "_dns", None)
    if server is None or getattr(agent, "_dns_config", None) != config:
        if server is not None:
            await server.stop()
        import ray

        dns = dns_config(settings, ray.util.get_node_ip_address())
        server = DnsServer(dns, Table.from_json(table))
        try:
            await server.start()
        except OSError as e:
            if not dns.port:
                raise
            # another node on this address holds the port (simulated nodes share a machine)
            log.warning("DNS port %s taken on %s (%s); using a free port", dns.port, dns.host, e)
            server = DnsServer(DnsConfig(dns.host, 0, dns.ttl, dns.forward), Table.from_json(table))
            await server.start()
        agent._dns, agent._dns_config = server, config
    await server.update_off_loop(Table.from_json(table))
    return server.address


def report(agent) -> dict:
    """HOOK(discovery) NodeAgent.report: where the DNS answers and which table it serves."""
    server: DnsServer | None = getattr(agent, "_dns", None)
    if server is None:
        return {"dns": None, "dns_version": None, "dns_config": None}
    return {"dns": server.address, "dns_version": server.zone.version,
            "dns_config": getattr(agent, "_dns_config", None)}


def container_dns(agent, svc) -> dict:
    """HOOK(discovery) in NodeAgent._create: ``dns``/``dns_search`` for a container with
    ``discovery: true`` (see veo.core.discovery.container_dns); when it cannot work, the create
    goes ahead without them and the reason is logged once per service."""
    from veo.core.discovery import container_dns as options

    server: DnsServer | None = getattr(agent, "_dns", None)
    out, why = options(svc.discovery, svc.network_mode, list(svc.dns), agent.cluster,
                       server.address if server else None, server.config.domain if server else "veo")
    warned = agent.__dict__.setdefault("_dns_warned", set())
    if why and svc.name not in warned:
        warned.add(svc.name)
        log.warning("%s: %s", svc.name, why)
    return out
