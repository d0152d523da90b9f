"""Compose projects on a real private dockerd, at the adapter level: the loader's spec ->
translate + ``veo.adapters.prepare`` -> the engine. Service names resolve through Docker's
embedded DNS on the project networks veo creates (they work on veo's bridge-less test engines:
only the default bridge is off); declared volumes get their driver options; external ones must
exist; ``release`` removes the networks at ``veo down``.
"""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Iterator

import docker
import pytest

from veo.adapters.docker_api import DockerRuntime
from veo.adapters.prepare import prepare, release
from veo.core.config import parse_spec
from veo.core.errors import EngineError
from veo.core.models import ClusterSpec
from veo.core.names import LABEL_CLUSTER
from veo.core.translate import create_kwargs

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]

APP = """\
name: {cluster}
services:
  web:
    image: veo/busybox
    command: ["sleep", "600"]
    stop_grace_period: 1s
    networks: [front, back]
  db:
    image: veo/httpd
    command: ["sh", "-c", "mkdir -p /www && echo db-ok > /www/index.html && exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    networks:
      back: {{aliases: [database]}}
    volumes: ["dbdata:/data"]
  outsider:
    image: veo/busybox
    command: ["sleep", "600"]
    stop_grace_period: 1s
    networks: [front]
networks:
  front: {{}}
  back: {{labels: {{tier: back}}}}
volumes:
  dbdata:
    driver_opts: {{type: tmpfs, device: tmpfs, o: size=8m}}
    labels: {{team: storage}}
"""


@pytest.fixture
def raw(engine) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=engine.docker_host)
    yield client
    client.close()


def up(runtime: DockerRuntime, spec: ClusterSpec) -> dict[str, str]:
    ids = {}
    for name, svc in spec.services.items():
        kw = create_kwargs(svc, cluster=spec.name, instance=0, generation=1, node="n1")
        kw = prepare(runtime, svc, spec.name, kw)
        ids[name] = runtime.create(kw)
        runtime.start(ids[name])
    return ids


def wait_for(runtime: DockerRuntime, cid: str, cmd: list[str], expect: str) -> str:
    out = ""
    for _ in range(50):
        code, out = runtime.exec(cid, cmd)
        if code == 0 and expect in out:
            return out
        time.sleep(0.2)
    raise AssertionError(f"{cmd} never printed {expect!r}; last output: {out!r}")


def test_service_names_resolve_on_project_networks(runtime, raw, veo_cluster) -> None:
    spec = parse_spec(APP.format(cluster=veo_cluster), "compose.yml", env={}).spec
    try:
        ids = up(runtime, spec)
        # web reaches db by service name and by alias over 'back'
        assert "db-ok" in wait_for(runtime, ids["web"], ["wget", "-q", "-O-", "http://db/"], "db-ok")
        assert "db-ok" in wait_for(runtime, ids["web"],
                                   ["wget", "-q", "-O-", "http://database/"], "db-ok")
        # outsider is on 'front' only: db is not its business, and its name does not resolve
        code, out = runtime.exec(ids["outsider"], ["nslookup", "db"])
        assert code != 0, out
        assert runtime.exec(ids["outsider"], ["wget", "-q", "-T", "2", "-O-", "http://db/"])[0] != 0
        nets = {n.name: n for n in raw.networks.list(filters={"label": f"{LABEL_CLUSTER}={veo_cluster}"})}
        assert set(nets) == {f"{veo_cluster}_front", f"{veo_cluster}_back"}
        assert nets[f"{veo_cluster}_back"].attrs["Labels"]["tier"] == "back"
        attached = raw.containers.get(ids["web"]).attrs["NetworkSettings"]["Networks"]
        assert set(attached) == {f"{veo_cluster}_front", f"{veo_cluster}_back"}
        vol = raw.volumes.get(f"{veo_cluster}_dbdata")
        assert vol.attrs["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=8m"}
        assert vol.attrs["Labels"]["team"] == "storage"
    finally:
        for c in raw.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={veo_cluster}"}):
            c.remove(force=True)
        gone = release(runtime, veo_cluster)
        with_volume = raw.volumes.list(filters={"name": f"{veo_cluster}_dbdata"})
        for v in with_volume:
            v.remove(force=True)
    assert sorted(gone) == sorted([f"{veo_cluster}_front", f"{veo_cluster}_back"])
    assert not raw.networks.list(filters={"label": f"{LABEL_CLUSTER}={veo_cluster}"})


def test_a_compose_file_without_networks_gets_the_default_network(runtime, raw, veo_cluster) -> None:
    spec = parse_spec(textwrap.dedent(f"""\
        name: {veo_cluster}
        services:
          a: {{image: veo/httpd, command: [httpd, -f, -p, "80", -h, /], stop_grace_period: 1s}}
          b: {{image: veo/busybox, command: [sleep, "600"], stop_grace_period: 1s}}
        """), "compose.yml", env={}).spec
    try:
        ids = up(runtime, spec)
        wait_for(runtime, ids["b"], ["nslookup", "a"], "Address")
    finally:
        for cid in raw.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={veo_cluster}"}):
            cid.remove(force=True)
        assert release(runtime, veo_cluster) == [f"{veo_cluster}_default"]


@pytest.mark.parametrize("kind", ["networks", "volumes"])
def test_external_resources_must_exist(runtime, veo_cluster, kind: str) -> None:
    mount = 'volumes: ["gone:/gone"]' if kind == "volumes" else "networks: [gone]"
    spec = parse_spec(textwrap.dedent(f"""\
        name: {veo_cluster}
        services:
          a: {{image: veo/busybox, {mount}}}
        {kind}:
          gone: {{external: true, name: {veo_cluster}-missing}}
        """), "compose.yml", env={}).spec
    with pytest.raises(EngineError, match=f"{kind[:-1]} '{veo_cluster}-missing' is external"):
        kw = create_kwargs(spec.services["a"], cluster=veo_cluster, instance=0, generation=1,
                           node="n1")
        prepare(runtime, spec.services["a"], veo_cluster, kw)


def test_secrets_and_configs_are_files_only_the_container_reads(runtime, raw, veo_cluster,
                                                                tmp_path, monkeypatch) -> None:
    from veo.adapters.prepare import forget, secrets_root

    monkeypatch.setenv("VEO_SECRETS_DIR", str(tmp_path / "secrets"))
    (tmp_path / "pw.txt").write_text("s3cr3t-from-file\n")
    spec = parse_spec(textwrap.dedent(f"""\
        name: {veo_cluster}
        services:
          app:
            image: veo/busybox
            command: [sleep, "600"]
            stop_grace_period: 1s
            user: "1000"
            secrets:
              - db_password
              - {{source: token, target: api/token, uid: "0", mode: 0400}}
            configs:
              - {{source: conf, target: /etc/app.conf}}
        secrets:
          db_password: {{file: pw.txt}}
          token: {{environment: TOKEN}}
        configs:
          conf: {{content: "level=debug"}}
        """), "compose.yml", env={"TOKEN": "tok-from-env"}, base_dir=tmp_path).spec
    svc = spec.services["app"]
    assert "s3cr3t" not in repr(svc) and "s3cr3t" not in svc.model_dump_json()
    try:
        kw = prepare(runtime, svc, veo_cluster,
                     create_kwargs(svc, cluster=veo_cluster, instance=0, generation=1, node="n1"))
        cid = runtime.create(kw)
        runtime.start(cid)
        assert runtime.exec(cid, ["cat", "/run/secrets/db_password"]) == (0, "s3cr3t-from-file\n")
        assert runtime.exec(cid, ["cat", "/etc/app.conf"]) == (0, "level=debug")
        # 0400 root: the service's user 1000 may not read the token, root may
        code, out = runtime.exec(cid, ["sh", "-c", "id; ls -ln /run/secrets/api/token; cat /run/secrets/api/token"])
        assert code != 0, out
        assert raw.api.exec_start(raw.api.exec_create(cid, ["cat", "/run/secrets/api/token"],
                                                      user="0")["Id"]) == b"tok-from-env"
        code, out = runtime.exec(cid, ["sh", "-c", "echo x > /run/secrets/db_password"])
        assert code != 0  # read-only
        listing = runtime.exec(cid, ["ls", "-ln", "/run/secrets/db_password"])[1].split()
        assert listing[0] == "-r--------" and listing[2] == "1000"
        inspected = raw.api.inspect_container(cid)
        assert "s3cr3t" not in str(inspected) and "tok-from-env" not in str(inspected)
        here = secrets_root() / kw["name"]
        assert oct(os.stat(secrets_root()).st_mode & 0o777) == "0o700" and here.is_dir()
    finally:
        for c in raw.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={veo_cluster}"}):
            c.remove(force=True)
            forget(c.name)
        release(runtime, veo_cluster)
    assert not list(secrets_root().iterdir())


def test_published_ports_work_on_a_project_network(runtime, raw, veo_cluster) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:  # a free port on this (loopback-only) network namespace
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = parse_spec(textwrap.dedent(f"""\
        name: {veo_cluster}
        services:
          web:
            image: veo/httpd
            command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"]
            stop_grace_period: 1s
            ports: ["127.0.0.1:{port}:80"]
        """), "compose.yml", env={}).spec
    try:
        up(runtime, spec)
        body = None
        for _ in range(50):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        assert body == b"hello\n"
    finally:
        for c in raw.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={veo_cluster}"}):
            c.remove(force=True)
        release(runtime, veo_cluster)


def test_network_mode_service_shares_the_group_peers_namespace(runtime, raw, veo_cluster) -> None:
    spec = parse_spec(textwrap.dedent(f"""\
        name: {veo_cluster}
        services:
          db:
            image: veo/httpd
            command: ["sh", "-c", "mkdir -p /www && echo peer > /www/index.html && exec httpd -f -p 80 -h /www"]
            group: pod
            group_role: master
            stop_grace_period: 1s
          probe:
            image: veo/busybox
            command: ["sleep", "600"]
            group: pod
            network_mode: service:db
            stop_grace_period: 1s
        """), "cluster.yml", env={}).spec
    try:
        ids = {}
        for name in ("db", "probe"):  # the group's order: master first
            svc = spec.services[name]
            kw = prepare(runtime, svc, veo_cluster, create_kwargs(
                svc, cluster=veo_cluster, instance=0, generation=7 if name == "db" else 1, node="n1"))
            ids[name] = runtime.create(kw)
            runtime.start(ids[name])
        assert raw.api.inspect_container(ids["probe"])["HostConfig"]["NetworkMode"] == \
            f"container:{ids['db']}"
        assert "peer" in wait_for(runtime, ids["probe"], ["wget", "-q", "-O-", "http://127.0.0.1/"],
                                  "peer")
    finally:
        for c in raw.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={veo_cluster}"}):
            c.remove(force=True)
        release(runtime, veo_cluster)
