"""The discovery zone (veo.core.discovery): which names answer what, for which instances."""

from __future__ import annotations

import pytest

from veo.core.discovery import InstanceRecord, PortRecord, Srv, Table, Zone, resolve

WEB_PORTS = (PortRecord(80, 8080, "tcp", "http"), PortRecord(53, 5353, "udp"), PortRecord(9000))


def rec(instance: int, address: str | None = "10.0.0.1", **kw) -> InstanceRecord:
    kw.setdefault("ports", WEB_PORTS)
    return InstanceRecord("web", instance, f"n{instance}", address, **kw)


TABLE = Table(
    "prod", 3, frozenset({"web", "db", "idle"}),
    (
        rec(0, "10.0.0.1"),
        rec(1, "10.0.0.2", has_healthcheck=True, health="healthy"),
        rec(2, "10.0.0.3", has_healthcheck=True, health="unhealthy"),
        rec(3, "10.0.0.4", has_healthcheck=True, health="starting"),
        rec(4, "10.0.0.5", running=False),
        rec(5, "fd00::5"),
        InstanceRecord("db", 0, "n1", "10.0.0.1", host_network=True,
                       ports=(PortRecord(5432, None, "tcp", "pg"),)),
        InstanceRecord("Cache", 0, "n1", "10.0.0.1", container_addresses=("172.17.0.2",)),
    ),
)
ZONE = Zone(TABLE, ttl=2)


@pytest.mark.parametrize(
    ("name", "rtype", "rcode", "values"),
    [
        # one record per served instance: no healthcheck, or healthy; never stopped/unhealthy/starting
        ("web.prod.veo", "A", "NOERROR", ("10.0.0.1", "10.0.0.2")),
        ("web.prod.veo.", "A", "NOERROR", ("10.0.0.1", "10.0.0.2")),
        ("WEB.Prod.VEO", "A", "NOERROR", ("10.0.0.1", "10.0.0.2")),
        ("web.veo", "A", "NOERROR", ("10.0.0.1", "10.0.0.2")),  # the local cluster's short form
        ("web.prod.veo", "AAAA", "NOERROR", ("fd00::5",)),
        ("1.web.prod.veo", "A", "NOERROR", ("10.0.0.2",)),
        ("2.web.prod.veo", "A", "NOERROR", ()),  # known instance, unhealthy: empty NOERROR
        ("9.web.prod.veo", "A", "NXDOMAIN", ()),
        ("idle.prod.veo", "A", "NOERROR", ()),  # known service with no instance
        ("cache.prod.veo", "A", "NOERROR", ("10.0.0.1",)),
        ("nope.prod.veo", "A", "NXDOMAIN", ()),
        ("web.other.veo", "A", "NXDOMAIN", ()),
        ("prod.veo", "A", "NOERROR", ()),
        ("_tcp.web.prod.veo", "A", "NOERROR", ()),  # empty non-terminal (RFC 8020)
        ("example.com", "A", "OUTSIDE", ()),
        ("veo.example.com", "A", "OUTSIDE", ()),
    ],
)
def test_address_answers(name: str, rtype: str, rcode: str, values: tuple) -> None:
    answer = ZONE.answer(name, rtype)
    assert answer.rcode == rcode
    assert answer.a + answer.aaaa == values
    assert answer.ttl == 2


def test_srv_carries_published_ports_and_names() -> None:
    http = ZONE.answer("_http._tcp.web.prod.veo", "SRV")
    assert http.srv == (
        Srv(0, 10, 8080, "0.web.prod.veo."), Srv(0, 10, 8080, "1.web.prod.veo."),
        Srv(0, 10, 8080, "5.web.prod.veo."),
    )
    assert ("0.web.prod.veo.", "A", "10.0.0.1") in http.extra
    assert ("5.web.prod.veo.", "AAAA", "fd00::5") in http.extra
    # an unnamed port is labelled with its number; protocols are kept apart
    assert [s.port for s in ZONE.answer("_53._udp.web.prod.veo", "SRV").srv] == [5353] * 3
    assert ZONE.answer("_53._tcp.web.prod.veo", "SRV").rcode == "NXDOMAIN"
    # a port that is not published has no SRV record
    assert ZONE.answer("_9000._tcp.web.prod.veo", "SRV").rcode == "NXDOMAIN"


def test_host_network_ports_are_the_nodes() -> None:
    assert ZONE.answer("_pg._tcp.db.prod.veo", "SRV").srv == (Srv(0, 10, 5432, "0.db.prod.veo."),)


def test_an_instance_leaves_with_the_next_table() -> None:
    gone = Table(TABLE.cluster, 4, TABLE.services, tuple(r for r in TABLE.records if r.instance != 0))
    assert Zone(gone).answer("web.prod.veo", "A").a == ("10.0.0.2",)
    assert Zone(gone).answer("0.web.prod.veo", "A").rcode == "NXDOMAIN"


def test_ttl_is_bounded() -> None:
    with pytest.raises(ValueError, match="between 0 and 5"):
        Zone(TABLE, ttl=600)
    assert Zone(TABLE, ttl=0).answer("web.veo", "A").ttl == 0


def test_a_remote_cluster_does_not_answer_the_short_form() -> None:
    zone = Zone(TABLE, local=False)
    assert zone.answer("web.veo", "A").rcode == "OUTSIDE"
    assert zone.answer("web.prod.veo", "A").rcode == "NOERROR"


def test_table_round_trips_through_json() -> None:
    assert Table.from_json(TABLE.to_json()) == TABLE


def test_resolve_view() -> None:
    view = resolve(TABLE, "web")
    assert view["known"] and view["version"] == 3
    assert view["addresses"] == ["10.0.0.1", "10.0.0.2", "fd00::5"]
    assert {"name": "_http._tcp", "instance": 1, "address": "10.0.0.2", "port": 8080,
            "protocol": "tcp"} in view["srv"]
    assert len(view["instances"]) == 6 and view["names"] == ["web.prod.veo", "web.veo"]
    assert resolve(TABLE, "nope")["known"] is False
    assert resolve(TABLE, "Cache")["instances"][0]["container_addresses"] == ["172.17.0.2"]


@pytest.mark.parametrize(
    ("discovery", "mode", "address", "options", "why"),
    [
        (False, None, "10.0.0.1:53", {}, None),
        (True, None, "10.0.0.1:53", {"dns": ["10.0.0.1", "1.1.1.1"], "dns_search": ["prod.veo"]}, None),
        (True, "bridge", "[fd00::1]:53", {"dns": ["fd00::1", "1.1.1.1"], "dns_search": ["prod.veo"]}, None),
        (True, "host", "10.0.0.1:53", {}, "network_mode host has no DNS of its own"),
        (True, "none", "10.0.0.1:53", {}, "network_mode none"),
        (True, None, "10.0.0.1:8053", {}, "only at port 53"),
        (True, None, "127.0.0.1:53", {}, "a container cannot reach"),
        (True, None, None, {}, "not running yet"),
    ],
)
def test_container_dns_options(discovery, mode, address, options, why) -> None:
    from veo.core.discovery import container_dns

    got, reason = container_dns(discovery, mode, ["1.1.1.1"], "Prod", address)
    assert got == options
    assert (reason is None) if why is None else (why in reason)
