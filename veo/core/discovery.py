"""Service discovery: instance records -> the answers veo's DNS gives. Pure (no sockets, no
dnspython): a ``Zone`` maps each name to its records, built once per table version, so a query
costs a dictionary look-up.

Names (all lower case; ``<cluster>.veo`` and, for the local cluster, ``veo``)::

    <service>.<cluster>.veo                      A/AAAA, one per served instance
    <instance>.<service>.<cluster>.veo           A/AAAA of one instance
    _<port>._<proto>.<service>.<cluster>.veo     SRV, one per served instance and published port;
                                                 <port> is the port's name, else its number

Rules:

* an instance is *served* while it runs and, if it has a healthcheck, while it is healthy; one
  that stops, dies or turns unhealthy leaves the answers with the next table (no stale TTL: 0-5 s);
* the address is the instance's node address — where its published ports answer, from any
  machine; container addresses are kept in the record (``veo resolve`` shows them) but not served,
  since a bridge address is reachable only from its own node;
* SRV records carry the published host port (on the host network, the container's port is the
  node's), and point at ``<instance>.<service>.<cluster>.veo``;
* a name under the zone that names nothing is NXDOMAIN; a known service (or one of its names)
  with no served instance is an empty NOERROR, so a client retries instead of giving up on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal

ROOT = "veo"
MAX_TTL = 5

Rcode = Literal["NOERROR", "NXDOMAIN", "OUTSIDE"]


@dataclass(frozen=True)
class PortRecord:
    target: int
    published: int | None = None
    protocol: str = "tcp"
    name: str | None = None

    @property
    def label(self) -> str:
        return f"_{(self.name or str(self.target)).lower()}._{self.protocol.lower()}"


@dataclass(frozen=True)
class InstanceRecord:
    """One instance, as the Scheduler knows it."""

    service: str
    instance: int
    node: str
    node_address: str | None
    ports: tuple[PortRecord, ...] = ()
    container_addresses: tuple[str, ...] = ()
    running: bool = True
    health: str = "none"  # none / starting / healthy / unhealthy
    has_healthcheck: bool = False
    host_network: bool = False

    @property
    def served(self) -> bool:
        if not self.running or not self.node_address:
            return False
        return self.health == "healthy" if self.has_healthcheck else True

    def to_json(self) -> dict:
        out = dict(self.__dict__)
        out["ports"] = [p.__dict__.copy() for p in self.ports]
        out["container_addresses"] = list(self.container_addresses)
        out["served"] = self.served
        return out

    @classmethod
    def from_json(cls, d: dict) -> InstanceRecord:
        d = {k: v for k, v in d.items() if k != "served"}
        d["ports"] = tuple(PortRecord(**p) for p in d.get("ports", ()))
        d["container_addresses"] = tuple(d.get("container_addresses", ()))
        return cls(**d)


@dataclass(frozen=True)
class Table:
    """What the Scheduler pushes to every node: a version, the known services (a service with no
    instance still answers NOERROR), and the instances."""

    cluster: str
    version: int = 0
    services: frozenset[str] = frozenset()
    records: tuple[InstanceRecord, ...] = ()

    def to_json(self) -> dict:
        return {
            "cluster": self.cluster, "version": self.version, "services": sorted(self.services),
            "records": [r.to_json() for r in self.records],
        }

    @classmethod
    def from_json(cls, d: dict) -> Table:
        return cls(d["cluster"], d.get("version", 0), frozenset(d.get("services", ())),
                   tuple(InstanceRecord.from_json(r) for r in d.get("records", ())))

    def of(self, service: str) -> list[InstanceRecord]:
        return [r for r in self.records if r.service == service]


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str  # absolute name, with the trailing dot


@dataclass
class Node:
    """The records of one name."""

    a: list[str] = field(default_factory=list)
    aaaa: list[str] = field(default_factory=list)
    srv: list[Srv] = field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    rcode: Rcode
    ttl: int
    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    srv: tuple[Srv, ...] = ()
    # A/AAAA of the SRV targets, for the additional section
    extra: tuple[tuple[str, str, str], ...] = ()  # (name, "A"|"AAAA", address)


def domains(cluster: str, local: bool = True, root: str = ROOT) -> tuple[str, ...]:
    """The zone suffixes served: ``<cluster>.veo`` and, for the local cluster, ``veo``."""
    root = normalise(root)
    own = f"{cluster.lower()}.{root}"
    return (own, root) if local else (own,)


def normalise(name: str) -> str:
    return name.lower().rstrip(".")


class Zone:
    """Every name of one table, and the answers to queries on them."""

    def __init__(self, table: Table, *, ttl: int = 1, local: bool = True, root: str = ROOT) -> None:
        if not 0 <= ttl <= MAX_TTL:
            raise ValueError(f"the discovery TTL must be between 0 and {MAX_TTL} s, got {ttl}")
        self.table = table
        self.ttl = ttl
        self.suffixes = domains(table.cluster, local, root)
        self.names: dict[str, Node] = {}
        for suffix in self.suffixes:
            self._add_suffix(suffix)

    @property
    def version(self) -> int:
        return self.table.version

    def _add_suffix(self, suffix: str) -> None:
        # every name is registered with its parents (empty non-terminals answer NOERROR, RFC
        # 8020); the shape is fixed, so no general walk up the tree is needed
        names = self.names
        names.setdefault(suffix, Node())
        for service in self.table.services | {r.service for r in self.table.records}:
            names.setdefault(f"{service.lower()}.{suffix}", Node())
        for r in self.table.records:
            base = f"{r.service.lower()}.{suffix}"
            one = f"{r.instance}.{base}"
            node = names.setdefault(one, Node())
            if not r.served:
                continue
            family = "aaaa" if ":" in r.node_address else "a"  # addresses come from Ray: valid
            for target in (names[base], node):
                addrs = getattr(target, family)
                if r.node_address not in addrs:
                    addrs.append(r.node_address)
            for p in r.ports:
                port = p.target if r.host_network else p.published
                if port is None:
                    continue
                label = p.label
                names.setdefault(f"{label.partition('.')[2]}.{base}", Node())  # _tcp.<base>
                names.setdefault(f"{label}.{base}", Node()).srv.append(Srv(0, 10, port, one + "."))

    def inside(self, name: str) -> bool:
        name = normalise(name)
        return any(name == s or name.endswith("." + s) for s in self.suffixes)

    def answer(self, name: str, rtype: str) -> Answer:
        """The answer for ``rtype`` (A, AAAA, SRV, ANY...) at ``name``."""
        name = normalise(name)
        if not self.inside(name):
            return Answer("OUTSIDE", self.ttl)
        node = self.names.get(name)
        if node is None:
            return Answer("NXDOMAIN", self.ttl)
        rtype = rtype.upper()
        want = {"A", "AAAA", "SRV"} if rtype == "ANY" else {rtype}
        srv = tuple(node.srv) if "SRV" in want else ()
        extra = []
        for s in srv:
            target = self.names.get(normalise(s.target))
            for addr in target.a if target else ():
                extra.append((s.target, "A", addr))
            for addr in target.aaaa if target else ():
                extra.append((s.target, "AAAA", addr))
        return Answer(
            "NOERROR", self.ttl,
            a=tuple(node.a) if "A" in want else (),
            aaaa=tuple(node.aaaa) if "AAAA" in want else (),
            srv=srv, extra=tuple(extra),
        )


def resolve(table: Table, service: str) -> dict:
    """What ``GET /api/discovery/{service}``, ``Cluster.resolve`` and ``veo resolve`` show."""
    records = table.of(service)
    known = service in table.services or bool(records)
    served = [r for r in records if r.served]
    srv: list[dict] = []
    for r in served:
        for p in r.ports:
            port = p.target if r.host_network else p.published
            if port is not None:
                srv.append({"name": p.label, "instance": r.instance, "address": r.node_address,
                            "port": port, "protocol": p.protocol})
    return {
        "service": service, "known": known, "version": table.version,
        "names": [f"{service.lower()}.{d}" for d in domains(table.cluster)],
        "addresses": sorted({r.node_address for r in served if r.node_address}),
        "srv": srv,
        "instances": [r.to_json() for r in records],
    }


def table_from(cluster: str, version: int, services: Iterable[str],
               records: Iterable[InstanceRecord]) -> Table:
    return Table(cluster, version, frozenset(services), tuple(records))


# a change that reaches the table without an event (none is known) shows within this many seconds
REFRESH = 15.0
COST_SHARE = 10  # a rebuild at most every COST_SHARE x its own duration ...
PACED_COST = 0.05  # ... once it costs this many seconds (small tables follow every change)
# Under churn (a deploy: an instance starts every few ms) each rebuild is a new table that every
# agent parses and serves, O(instances) each, so a deploy of N cost O(N^2) in the control plane.
# A burst of rebuilds goes at once; beyond it, at most CHURN_RATE per second (token bucket): a
# single change still answers at once, a change during a deploy within 1 / CHURN_RATE s.
CHURN_BURST = 4
CHURN_RATE = 2.0
# an agent whose report still lacks the table this long after it was sent gets it again
RESEND = 5.0


@dataclass
class Rebuilds:
    """When the Scheduler rebuilds its discovery table, which reads every slot and every reported
    instance (O(instances)): only when a cheap key of those inputs changed, not every step.

    The key is what changes the table's content: the slots (placement replaces them when they
    change, so an unchanged step compares them by identity), the spec index (services and their
    ports), the event index (every lifecycle move and health change of an instance is an event
    the Scheduler records, after the agent changed the state it reports) and per node its
    liveness, address and number of reported instances. A change rebuilds twice, this step and
    the next: a report collected before an event recorded during the same step is stale, the next
    one is not. ``REFRESH`` bounds what a change without an event would cost.
    """

    refresh: float = REFRESH
    key: tuple | None = None
    at: float = float("-inf")
    settle: bool = False
    count: int = 0  # rebuilds so far (tests and benchmarks read it)
    cost: float = 0.0  # seconds the last rebuild took (``built``)
    tokens: float = CHURN_BURST  # rebuilds that may go at once (``CHURN_RATE`` refills them)
    refilled: float = float("-inf")

    def due(self, key: tuple, now: float) -> bool:
        changed = key != self.key
        if not (changed or self.settle or now - self.at >= self.refresh):
            return False
        # the table's cost bounded to ~1/COST_SHARE of the loop: at 100k instances a rebuild
        # takes ~0.5 s, so under churn it comes every ~5 s rather than every step (a change
        # that is not rebuilt yet stays due: the key is kept until it is)
        if self.cost >= PACED_COST and now - self.at < self.cost * COST_SHARE:
            return False
        # the first call refills from -inf: a full bucket
        self.tokens = min(CHURN_BURST, self.tokens + (now - self.refilled) * CHURN_RATE)
        self.refilled = now
        if self.tokens < 1:
            return False  # churn: this change goes with a later rebuild (it stays due)
        self.tokens -= 1
        self.key, self.at, self.settle = key, now, changed
        self.count += 1
        return True

    def built(self, seconds: float) -> None:
        self.cost = seconds


def container_dns(discovery: bool, network_mode: str | None, own_dns: list[str], cluster: str,
                  dns_address: str | None, root: str = ROOT) -> tuple[dict, str | None]:
    """Create options that point an opted-in container (``discovery: true``) at its node's veo
    DNS: ``dns`` first, then the service's own, and ``dns_search`` with the cluster's domain, so
    ``db`` resolves as ``db.<cluster>.veo``. Returns ``({}, why)`` when that cannot work: Docker
    refuses ``dns`` on the host network, a container has no DNS without a network, Docker's
    ``dns`` option can only name port 53, and the node's loopback is not the container's."""
    if not discovery:
        return {}, None
    if network_mode in ("host", "none") or (network_mode or "").startswith("container:"):
        return {}, (f"discovery: network_mode {network_mode} has no DNS of its own "
                    "(host shares the node's resolv.conf)")
    if not dns_address:
        return {}, "discovery: this node's veo DNS is not running yet"
    host, _, port = dns_address.rpartition(":")
    host = host.strip("[]")
    if port != "53":
        return {}, (f"discovery: the node's veo DNS answers on {dns_address}; Docker can point a "
                    "container only at port 53 (settings.discovery.port: 53)")
    if host.startswith("127.") or host == "::1":
        return {}, f"discovery: the node's veo DNS is on {host}, which a container cannot reach"
    return {"dns": [host, *own_dns], "dns_search": [f"{cluster.lower()}.{normalise(root)}"]}, None
