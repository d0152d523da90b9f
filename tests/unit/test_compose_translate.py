"""Compose keys through translate: the exact Docker create arguments each one becomes."""

from __future__ import annotations

import json

import pytest
from docker.types import LogConfig, Mount

from veo.core.config import parse_spec
from veo.core.models import Service
from veo.core.translate import create_kwargs


def kwargs(**fields) -> dict:
    return create_kwargs(Service(name="web", image="x", **fields), cluster="c", instance=1,
                         generation=3, node="n1")


@pytest.mark.parametrize(("fields", "expected"), [
    ({"memswap_limit": -1}, {"memswap_limit": -1}),
    ({"memswap_limit": "1g"}, {"memswap_limit": 2**30}),
    ({"reserve_memory": "64m"}, {"mem_reservation": 64 * 2**20}),
    ({"cpu_shares": 512}, {"cpu_shares": 512}),
    ({"pids_limit": 100}, {"pids_limit": 100}),
    ({"shm_size": "1g"}, {"shm_size": 2**30}),
    ({"init": True}, {"init": True}),
    ({"read_only": True}, {"read_only": True}),
    ({"stop_signal": "SIGINT"}, {"stop_signal": "SIGINT"}),
    ({"hostname": "h", "domainname": "d.org"}, {"hostname": "h", "domainname": "d.org"}),
    ({"sysctls": ["net.core.somaxconn=1024"]}, {"sysctls": {"net.core.somaxconn": "1024"}}),
    ({"sysctls": {"net.ipv4.tcp_syncookies": 0}}, {"sysctls": {"net.ipv4.tcp_syncookies": "0"}}),
    ({"extra_hosts": ["db:10.0.0.2", "v6=::1", "b=[::2]"]},
     {"extra_hosts": ["db:10.0.0.2", "v6:::1", "b:::2"]}),
    ({"extra_hosts": {"db": "10.0.0.2", "multi": ["1.1.1.1", "::1"]}},
     {"extra_hosts": ["db:10.0.0.2", "multi:1.1.1.1", "multi:::1"]}),
    ({"security_opt": ["no-new-privileges"]}, {"security_opt": ["no-new-privileges"]}),
    ({"group_add": ["audio", 1000]}, {"group_add": ["audio", "1000"]}),
    ({"tmpfs": ["/run", "/tmp:size=64m,mode=1777"]}, {"tmpfs": {"/run": "", "/tmp": "size=64m,mode=1777"}}),
    ({"tmpfs": "/run"}, {"tmpfs": {"/run": ""}}),
    ({"logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": 3}}},
     {"log_config": LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"})}),
    ({"ports": ["6005-6015:80"]}, {"ports": {"80/tcp": "6005-6015"}}),
    ({"ports": ["127.0.0.1:8000-8001:80-81"]},
     {"ports": {"80/tcp": ("127.0.0.1", 8000), "81/tcp": ("127.0.0.1", 8001)}}),
    ({"ports": ["[::1]:6001:6001/udp"]}, {"ports": {"6001/udp": ("::1", 6001)}}),
])
def test_compose_key_reaches_docker(fields: dict, expected: dict) -> None:
    kw = kwargs(**fields)
    assert {k: kw.get(k) for k in expected} == expected


def test_mounts_of_every_kind() -> None:
    kw = kwargs(volumes=[
        "/src:/sel:ro,z",
        "data:/nc:nocopy",
        "/src:/prop:rshared",
        {"type": "volume", "source": "data", "target": "/sub", "volume": {"subpath": "a/b"}},
        {"type": "tmpfs", "target": "/t", "tmpfs": {"size": "1m", "mode": "1777"}},
        {"type": "image", "source": "veo/busybox", "target": "/img", "image": {"subpath": "bin"}},
    ])
    assert kw["volumes"] == ["/src:/sel:ro,z"]  # SELinux relabel exists only in Docker's Binds
    nc, prop, sub, tmp, img = kw["mounts"]
    assert nc == Mount("/nc", "data", type="volume", no_copy=True)
    assert prop == Mount("/prop", "/src", type="bind", propagation="rshared")
    assert sub["VolumeOptions"] == {"Subpath": "a/b"}
    assert tmp == Mount("/t", None, type="tmpfs", tmpfs_size=2**20, tmpfs_mode=0o1777)
    assert (img["Type"], img["Source"], img["ImageOptions"]) == ("image", "veo/busybox",
                                                                  {"Subpath": "bin"})


def test_network_mode_service_joins_the_group_peer_of_the_same_copy() -> None:
    spec = parse_spec(json.dumps({"name": "shop", "services": {
        "db": {"image": "x", "group": "g"},
        "probe": {"image": "x", "group": "g", "network_mode": "service:db"}}}), "c.yml").spec
    kw = create_kwargs(spec.services["probe"], cluster="shop", instance=2, generation=5, node="n")
    assert kw["network_mode"] == "container:shop_db_2_g5"


def test_update_settings_do_not_change_the_spec_hash() -> None:
    a = Service(name="w", image="x")
    b = Service(name="w", image="x", update={"parallel": 3}, reserve_cpus=2)
    assert a.spec_hash() == b.spec_hash()
