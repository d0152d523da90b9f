"""A compose app end to end on the real Ray world (one engine per node): a web server, a
database and a cache, written as a compose file. The database's ``service_healthy`` dependency
holds the web server back (pending, with the reason) until the database is healthy; then the web
server reaches ``db`` by its service name on the project network, and reads its secret, which only
the container can see."""

from __future__ import annotations

import textwrap

import pytest
from ray_world import wait_for

from veo.core.config import parse_spec
from veo.core.models import InstanceStatus

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(300)]

LOOP = '["sh", "-c", "trap \'exit 0\' TERM; while :; do sleep 1 & wait $$!; done"]'


def test_web_db_cache_from_a_compose_file(world, names, tmp_path) -> None:
    web, db, cache = names("web"), names("db"), names("cache")
    (tmp_path / "pw.txt").write_text("pw-from-file")
    text = textwrap.dedent(f"""\
        name: veo
        x-here: &here
          deploy: {{placement: {{constraints: ["node.hostname == dos"]}}}}
          stop_grace_period: 1s
        services:
          {db}:
            <<: *here
            image: veo/httpd
            command: ["sh", "-c", "mkdir -p /www && echo db-ok > /www/index.html && exec httpd -f -p 80 -h /www"]
            healthcheck: {{test: ["CMD", "test", "-f", "/tmp/ready"], interval: 1s, timeout: 1s}}
          {cache}:
            <<: *here
            image: veo/busybox
            command: {LOOP}
          {web}:
            <<: *here
            image: veo/busybox
            command: {LOOP}
            depends_on:
              {db}: {{condition: service_healthy}}
              {cache}: {{condition: service_started}}
            secrets: [db_password]
        secrets:
          db_password: {{file: pw.txt}}
        """)
    spec = parse_spec(text, "compose.yml", env={}, base_dir=tmp_path).spec
    for name in (web, db, cache):  # the dependent first: it must wait all the same
        world.client.add_service(spec.services[name])

    world.wait_running(db)
    held = wait_for(lambda: [i for i in world.instances(web) if i.status is InstanceStatus.pending
                             and i.reason == f"waiting for {db} to be healthy"], 30,
                    what=f"{web} to wait for {db}")
    assert held[0].node is None
    assert not [c for c in world.runtime("dos").list(labels={"veo.service": web})]

    db_inst = world.instances(db)[0]
    rt = world.runtime("dos")
    assert rt.exec(db_inst.container_id, ["touch", "/tmp/ready"])[0] == 0
    web_inst = world.wait_running(web, timeout=60)[0]
    assert web_inst.node == "dos"
    code, out = rt.exec(web_inst.container_id, ["wget", "-q", "-O-", f"http://{db}/"])
    assert (code, out) == (0, "db-ok\n")
    assert rt.exec(web_inst.container_id, ["nslookup", cache])[0] == 0
    assert rt.exec(web_inst.container_id, ["cat", "/run/secrets/db_password"]) == (0, "pw-from-file")
    assert "pw-from-file" not in str(world.client.events_batch(limit=100000))
