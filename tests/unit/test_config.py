"""The cluster.yml loader and ``veo validate``: what loads, and the exact text and position of
every problem a user can make."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from veo.cli.app import app
from veo.core.config import LoadResult, load_spec, parse_spec
from veo.core.errors import SpecError
from veo.core.models import GroupRole, Port, RestartPolicy, Volume


def load(text: str, *, strict: bool = False) -> LoadResult:
    return parse_spec(textwrap.dedent(text), "cluster.yml", strict=strict)


def problems(text: str, *, strict: bool = False) -> list[str]:
    """Every problem the loader reports, as the user sees them."""
    with pytest.raises(SpecError) as info:
        load(text, strict=strict)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


FULL = """\
name: demo
settings: {placement: binpack, budget_restarts: 5, budget_period: 2m}
nodes:
  - node: uno@10.0.0.1
    role: web
  - {name: dos, host: localhost, role: db, cpus: 2, memory: 4g}
services:
  web:
    image: veo/httpd
    command: httpd -f -p 8080
    environment: [MODE=prod]
    labels: {tier: front}
    ports: ["8080:80", {target: 443, published: 8443}]
    volumes: ["/srv:/www:ro", "cache:/cache"]
    ulimits: {nofile: 1024}
    instances: all
    cpus: 0.5
    memory: 512m
    disk: 1g
    roles: web
    restart: on-failure:3
    stop_grace_period: 1m30s
    healthcheck:
      test: wget -q -O- localhost:8080
      interval: 10s
    on_unhealthy: kill
  db:
    image: veo/db
    group: store
    group_role: master
    group_policy: master_kills_all
  backup:
    image: veo/busybox
    group: store
    restart: "no"
policy: {allow_host_mounts: true}
"""


def test_full_example_loads_and_normalises() -> None:
    result = load(FULL)
    spec = result.spec
    assert result.warnings == []
    assert spec.name == "demo"
    assert spec.settings.placement.value == "binpack" and spec.settings.budget_period == 120.0
    assert [(n.name, n.host, n.role) for n in spec.nodes] == [("uno", "10.0.0.1", "web"), ("dos", "localhost", "db")]
    assert spec.nodes[1].memory == 4 * 1024**3
    web = spec.services["web"]
    assert web.command == ["httpd", "-f", "-p", "8080"]
    assert web.environment == {"MODE": "prod"} and web.labels == {"tier": "front"}
    assert web.ports == [Port(target=80, published=8080), Port(target=443, published=8443)]
    assert web.volumes == [
        Volume(type="bind", source="/srv", target="/www", read_only=True),
        Volume(type="volume", source="cache", target="/cache"),
    ]
    assert web.ulimits["nofile"].soft == 1024
    assert (web.instances, web.cpus, web.memory, web.disk) == ("all", 0.5, 512 * 1024**2, 1024**3)
    assert (web.restart, web.restart_on_success, web.restart_count) == (RestartPolicy.restart, False, 3)
    assert web.stop_grace_period == 90.0 and web.roles == ["web"]
    assert web.healthcheck is not None and web.healthcheck.interval == 10.0
    assert spec.services["db"].group_role is GroupRole.master
    assert spec.services["backup"].restart is RestartPolicy.never


def test_load_spec_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text(FULL)
    assert load_spec(path).spec.name == "demo"
    assert load_spec(str(path)).spec.services["web"].image == "veo/httpd"


# --------------------------------------------------------------------------------------------------
# One problem, exact text and position
# --------------------------------------------------------------------------------------------------

def web(*lines: str) -> str:
    """A cluster.yml with one service ``web`` whose ``image:`` is line 3 and ``lines`` follow."""
    return "services:\n  web:\n    image: veo/httpd\n" + "".join(f"    {line}\n" for line in lines)


F = "cluster.yml"
ONE_PROBLEM = [
    # (id, text, the one problem reported)
    ("bad-memory", web("memory: lots"),
     f"{F}:4:13: services.web.memory: expected a size like 512m, got 'lots'"),
    ("unknown-key", web("memroy: 1g"),
     f"{F}:4:5: services.web.memroy: unknown key, did you mean 'memory'?"),
    ("missing-image", "services:\n  web:\n    command: sleep 10\n",
     f"{F}:2:3: services.web: missing required field 'image'"),
    ("yaml-syntax", "services:\n  web:\n    image: [veo/httpd\n",
     f"{F}:4:1: invalid YAML: expected ',' or ']', but got '<stream end>' "
     "(while parsing a flow sequence at line 3)"),
    ("yaml-indent", "services:\n  web:\n    image: a\n   bad: b\n",
     f"{F}:4:4: invalid YAML: expected <block end>, but found '<block mapping start>' "
     "(while parsing a block mapping at line 2)"),
    ("yaml-2-docs", "a: 1\n---\nb: 2\n",
     f"{F}:2:1: invalid YAML: expected a single document in the stream, but found another document"),
    ("yaml-unsafe-tag", "a: !!python/name:os.system\n",
     f"{F}:1:4: invalid YAML: could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/name:os.system'"),
    ("duplicate-key", web("image: b"),
     f"{F}:4:5: services.web.image: duplicate key 'image' (first at line 3)"),
    ("duplicate-service", "services:\n  web: {image: a}\n  web: {image: b}\n",
     f"{F}:3:3: services.web: duplicate key 'web' (first at line 2)"),
    ("enum", web("group: g", "group_role: boss"),
     f"{F}:5:17: services.web.group_role: expected one of master, slave, got 'boss'"),
    ("bool", web("privileged: maybe"),
     f"{F}:4:17: services.web.privileged: expected true or false, got 'maybe'"),
    ("restart", web("restart: sometimes"),
     f"{F}:4:14: services.web.restart: expected never or restart "
     "(or no, always, on-failure, unless-stopped), got 'sometimes'"),
    ("port-protocol", web('ports: ["80", {target: 80, protocol: icmp}]'),
     f"{F}:4:42: services.web.ports.1.protocol: expected one of tcp, udp, sctp, got 'icmp'"),
    ("port-range", web("ports:", "  - 80", "  - 70000"),
     f"{F}:6:9: services.web.ports.1: expected a number <= 65535, got 70000"),
    ("port-shape", web("ports: [true]"),
     f"{F}:4:13: services.web.ports.0: expected a port like '8080:80' or a mapping with target:, "
     "got true"),
    ("port-unknown", web("ports: [{target: 80, pubished: 8080}]"),
     f"{F}:4:26: services.web.ports.0.pubished: unknown key, did you mean 'published'?"),
    ("port-unknown-no-match", web("ports: [{target: 80, colour: red}]"),
     f"{F}:4:26: services.web.ports.0.colour: unknown key; expected one of "
     "host_ip, name, protocol, published, target"),
    ("healthcheck-interval", web("healthcheck:", "  test: curl localhost", "  interval: 10x"),
     f"{F}:6:17: services.web.healthcheck.interval: expected a duration like 5s or 500ms, got '10x'"),
    ("healthcheck-retries", web("healthcheck: {test: curl localhost, retries: 0}"),
     f"{F}:4:50: services.web.healthcheck.retries: expected a number >= 1, got 0"),
    ("instances", web("instances: -1"),
     f"{F}:4:16: services.web.instances: expected a number of instances >= 0 or 'all', got -1"),
    ("list-type", web("dns: 5"), f"{F}:4:10: services.web.dns: expected a list, got 5"),
    ("int", web("ulimits: {nofile: {soft: 10, hard: five}}"),
     f"{F}:4:40: services.web.ulimits.nofile.hard: expected a whole number, got 'five'"),
    ("volume-target", web('volumes: ["data"]'),
     f"{F}:4:15: services.web.volumes.0: the mount target must be an absolute path, got 'data'"),
    ("scale-and-instances", web("scale: 2", "instances: 2"),
     f"{F}:4:5: services.web.scale: give either 'scale' or 'instances', not both"),
    ("empty-service", "services:\n  web:\n",
     f"{F}:2:7: services.web: expected a mapping with image:, got nothing"),
    ("services-list", "services:\n  - web\n", f"{F}:2:3: services: expected a mapping, got a list"),
    ("unknown-top-level", "servics:\n  web: {image: a}\n",
     f"{F}:1:1: servics: unknown key, did you mean 'services'?"),
    ("settings-enum", "settings:\n  placement: random\n",
     f"{F}:2:14: settings.placement: expected one of spread, binpack, got 'random'"),
    ("settings-unknown", "settings:\n  budget: 3\n",
     f"{F}:2:3: settings.budget: unknown key, did you mean 'budget_period'?"),
    ("node-name", "nodes:\n  - node: bad name@host\n",
     f"{F}:2:11: nodes.0.node: 'bad name' is not a valid node name"),
    ("node-cpus", "nodes:\n  - {name: uno, cpus: lots}\n",
     f"{F}:2:23: nodes.0.cpus: expected a number, got 'lots'"),
    ("node-unknown", "nodes:\n  - {name: uno, rol: web}\n",
     f"{F}:2:17: nodes.0.rol: unknown key, did you mean 'role'?"),
    ("empty", "", f"{F}:1:1: the file is empty; expected a mapping with services:"),
    ("comments", "# nothing\n", f"{F}:1:1: the file is empty; expected a mapping with services:"),
    ("top-list", "- a\n- b\n", f"{F}:1:1: expected a mapping with services: at the top level, got a list"),
    ("top-str", "hello\n", f"{F}:1:1: expected a mapping with services: at the top level, got 'hello'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=i) for i, t, e in ONE_PROBLEM])
def test_one_problem(text: str, expected: str) -> None:
    assert problems(text) == [expected]


# --------------------------------------------------------------------------------------------------
# Cross-field rules, pointed at their line
# --------------------------------------------------------------------------------------------------

RULES = [
    ("group-role-without-group", web("group_role: master"),
     f"{F}:4:17: services.web.group_role: needs a group"),
    ("two-masters",
     "services:\n  a: {image: x, group: g, group_role: master}\n  b: {image: x, group: g, group_role: master}\n",
     f"{F}:3:39: services.b.group_role: group 'g' has more than one master: ['a', 'b']"),
    ("master-kills-all-without-master",
     "services:\n  a: {image: x, group: g, group_policy: master_kills_all}\n  b: {image: x, group: g}\n",
     f"{F}:2:41: services.a.group_policy: group 'g' uses master_kills_all but no member has "
     "group_role: master"),
    ("policies-disagree",
     "services:\n  a: {image: x, group: g, group_policy: one_kills_all}\n"
     "  b: {image: x, group: g, group_policy: one_for_one}\n",
     f"{F}:2:41: services.a.group_policy: members of group 'g' disagree on group_policy: "
     "one_for_one, one_kills_all"),
    # a's instances is the default, so the problem points at the service a
    ("instances-disagree",
     "services:\n  a:\n    image: x\n    group: g\n  b: {image: x, group: g, instances: 3}\n",
     f"{F}:2:3: services.a.instances: members of group 'g' disagree on instances (a=1, b=3); "
     "a group runs as a unit, so every member needs the same count"),
    ("restart-count-with-never", web("restart: never", "restart_count: 3"),
     f"{F}:5:20: services.web.restart_count: needs restart: restart (this service has restart: never)"),
    ("on-unhealthy-without-healthcheck", web("on_unhealthy: kill"),
     f"{F}:4:19: services.web.on_unhealthy: needs a healthcheck"),
    ("reserved-label", web("labels:", "  veo.service: other"),
     f"{F}:5:7: services.web.labels: labels starting with 'veo.' are reserved for veo itself: "
     "['veo.service']"),
    ("auto-remove-with-restart", web("auto_remove: true", "restart: always"),
     f"{F}:4:18: services.web.auto_remove: cannot be combined with restart: restart; use restart: never"),
    ("name-differs", web("name: other"), f"{F}:4:11: services.web.name: name 'other' differs from its key 'web'"),
    ("node-twice", "nodes: [uno@a, uno@b]\n", f"{F}:1:16: nodes.1.name: node 'uno' is listed twice"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=i) for i, t, e in RULES])
def test_rules(text: str, expected: str) -> None:
    assert problems(text) == [expected]


# --------------------------------------------------------------------------------------------------
# Several problems at once
# --------------------------------------------------------------------------------------------------


def test_every_problem_is_reported_sorted_by_line() -> None:
    text = """
    servics: {}
    services:
      web:
        image: veo/httpd
        memory: lots
        cpu: 2
        build: .
      db:
        image: a
        image: b
        restart: never
        restart_count: 2
      cache:
        ports: ["x:y"]
    """
    assert problems(text) == [
        "cluster.yml:2:1: servics: unknown key, did you mean 'services'?",
        "cluster.yml:6:13: services.web.memory: expected a size like 512m, got 'lots'",
        "cluster.yml:7:5: services.web.cpu: unknown key, did you mean 'cpus'?",
        "cluster.yml:8:5: warning: services.web.build: ignored: veo runs prebuilt images",
        "cluster.yml:11:5: services.db.image: duplicate key 'image' (first at line 10)",
        # a rule of a service that validated, although others did not
        "cluster.yml:13:20: services.db.restart_count: needs restart: restart (this service has restart: never)",
        "cluster.yml:14:3: services.cache: missing required field 'image'",
        "cluster.yml:15:13: services.cache.ports.0: expected a port like '8080:80/udp', '80' or '3000-3005', got 'x:y'",
    ]


# --------------------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------------------

COMPOSE = """\
version: "3.8"
x-defaults: &defaults
  restart: unless-stopped
  environment:
    TZ: UTC
services:
  web:
    <<: *defaults
    image: nginx:1.27
    build: ./web
    container_name: web
    depends_on: [db]
    mem_limit: 512m
    pid: host
    ports:
      - 22:22
      - target: 80
        published: 8080
        mode: host
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost"]
      start_interval: 1s
    x-note: ignored silently
  db:
    image: postgres:16
    scale: 2
    healthcheck:
      disable: true
networks:
  default: {}
volumes:
  data: {}
policy:
  allow_host_pid: true
"""

COMPOSE_WARNINGS = [
    "docker-compose.yml:1:1: warning: version: ignored: obsolete compose file version",
    "docker-compose.yml:10:5: warning: services.web.build: ignored: veo runs prebuilt images",
    "docker-compose.yml:11:5: warning: services.web.container_name: ignored: veo names containers "
    "itself (<cluster>_<service>_<instance>_g<gen>)",
    "docker-compose.yml:19:9: warning: services.web.ports.1.mode: ignored: Swarm's ingress mode; "
    "veo publishes on the node (host mode)",
    "docker-compose.yml:22:7: warning: services.web.healthcheck.start_interval: ignored: not supported by veo",
]


def test_plain_compose_file_loads_with_warnings() -> None:
    result = parse_spec(COMPOSE, "docker-compose.yml")
    assert [str(w) for w in result.warnings] == COMPOSE_WARNINGS
    assert all(w.warning for w in result.warnings)
    web, db = result.spec.services["web"], result.spec.services["db"]
    assert web.restart is RestartPolicy.restart and web.environment == {"TZ": "UTC"}  # via '<<'
    assert web.pid_mode == "host"  # compose 'pid' is veo's pid_mode
    assert web.memory == 512 * 1024 * 1024  # compose 'mem_limit'
    assert web.ports == [Port(target=22, published=22), Port(target=80, published=8080)]  # not base 60
    assert web.healthcheck is not None and web.healthcheck.test == ["CMD", "curl", "-f", "http://localhost"]
    assert db.instances == 2  # compose 'scale'
    assert db.healthcheck is not None and db.healthcheck.test == ["NONE"]  # 'disable: true'
    assert result.spec.name == "veo"


def test_compose_keys_are_errors_when_strict() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(COMPOSE, "docker-compose.yml", strict=True)
    got = [str(p) for p in info.value.problems]
    expected = [w.replace("warning: ", "").replace("ignored: ", "not supported: ") for w in COMPOSE_WARNINGS]
    assert got == expected
    assert not any(p.warning for p in info.value.problems)


def test_warnings_come_with_errors() -> None:
    text = """
    version: "3"
    services:
      web: {image: a, memory: lots}
    """
    assert problems(text) == [
        "cluster.yml:2:1: warning: version: ignored: obsolete compose file version",
        "cluster.yml:4:27: services.web.memory: expected a size like 512m, got 'lots'",
    ]


def test_renamed_compose_key_errors_point_at_the_users_key() -> None:
    text = """
    services:
      web:
        image: a
        scale: lots
    """
    assert problems(text) == [
        "cluster.yml:5:12: services.web.scale: expected a number of instances >= 0 or 'all', got 'lots'"
    ]


def test_healthcheck_disable_with_a_test_is_an_error() -> None:
    text = """
    services:
      web:
        image: a
        healthcheck: {test: "true", disable: true}
    """
    assert problems(text) == [
        "cluster.yml:5:33: services.web.healthcheck.disable: give either 'disable: true' or a test, not both"
    ]


# --------------------------------------------------------------------------------------------------
# YAML details
# --------------------------------------------------------------------------------------------------


def test_anchors_and_merges_do_not_count_as_duplicates() -> None:
    text = """
    x-base: &base {image: veo/busybox, restart: never}
    services:
      a: {<<: *base, restart: always}
      b: *base
    """
    spec = load(text).spec
    assert spec.services["a"].restart is RestartPolicy.restart
    assert spec.services["b"].restart is RestartPolicy.never


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = "\n".join(lines) + "\nservices: {}\n"
    with pytest.raises(SpecError, match="expands to more than 100000 nodes through aliases"):
        parse_spec(text, "bomb.yml")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("22:22", Port(target=22, published=22)), ("1:30", Port(target=30, published=1)), ("80", Port(target=80))],
)
def test_port_short_forms_are_text_not_base_60(value: str, expected: Port) -> None:
    spec = load(f"services:\n  web:\n    image: a\n    ports:\n      - {value}\n").spec
    assert spec.services["web"].ports == [expected]


def test_numbers_in_text_fields() -> None:
    spec = load("services:\n  web: {image: a, user: 1000, healthcheck: [nc, -z, localhost, 80]}\n").spec
    web = spec.services["web"]
    assert web.user == "1000"
    assert web.healthcheck is not None and web.healthcheck.test == ["CMD", "nc", "-z", "localhost", "80"]


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yml")
    assert str(info.value) == f"{tmp_path / 'nope.yml'}: no such file"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_bytes(b"services: \xff\xfe\n")
    with pytest.raises(SpecError, match="not UTF-8 text"):
        load_spec(path)


# --------------------------------------------------------------------------------------------------
# veo validate
# --------------------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def spec_file(tmp_path: Path):
    def write(text: str, name: str = "cluster.yml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write


def test_validate_ok(spec_file) -> None:
    path = spec_file(FULL)
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 0, result.output
    assert "is valid: cluster demo, 2 node(s), 3 service(s)" in result.stdout
    assert "uno@10.0.0.1" in result.stdout and "veo/httpd" in result.stdout
    assert "master_kills_all" in result.stdout
    assert result.stderr == ""


def test_validate_errors_exit_2_one_per_line(spec_file) -> None:
    path = spec_file("services:\n  web:\n    memory: lots\n")
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}:2:3: services.web: missing required field 'image'",
        f"{path}:3:13: services.web.memory: expected a size like 512m, got 'lots'",
    ]
    assert "Traceback" not in result.output


def test_validate_missing_file_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{path}: no such file"
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_validate_yaml_error(spec_file) -> None:
    path = spec_file("services: [\n")
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}:2:1: invalid YAML: ")


def test_validate_json(spec_file) -> None:
    path = spec_file(FULL)
    result = runner.invoke(app, ["validate", "--json", path])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"name", "nodes", "services", "settings", "policy", "volumes", "networks"}
    assert data["name"] == "demo"
    assert data["nodes"][1] == {
        "name": "dos", "host": "localhost", "role": "db", "cpus": 2.0, "memory": 4 * 1024**3, "disk": None
    }  # fmt: skip
    web = data["services"]["web"]
    assert (web["memory"], web["disk"], web["cpus"]) == (512 * 1024**2, 1024**3, 0.5)
    assert web["stop_grace_period"] == 90.0 and web["healthcheck"]["interval"] == 10.0
    assert web["ports"][0] == {"target": 80, "published": 8080, "published_end": None,
                               "protocol": "tcp", "host_ip": None, "name": None}
    assert web["restart"] == "restart" and web["instances"] == "all"
    assert data["settings"]["budget_period"] == 120.0 and data["settings"]["placement"] == "binpack"


def test_validate_warnings_go_to_stderr(spec_file) -> None:
    path = spec_file(COMPOSE, "docker-compose.yml")
    result = runner.invoke(app, ["validate", "--json", path])
    assert result.exit_code == 0
    json.loads(result.stdout)  # stdout stays pure JSON
    assert result.stderr.splitlines() == [w.replace("docker-compose.yml", path, 1) for w in COMPOSE_WARNINGS]


def test_validate_strict(spec_file) -> None:
    path = spec_file(COMPOSE, "docker-compose.yml")
    result = runner.invoke(app, ["validate", "--strict", path])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == len(COMPOSE_WARNINGS)
    assert "not supported: veo runs prebuilt images" in result.stderr


def test_no_args_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "validate" in result.output
