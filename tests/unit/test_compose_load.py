"""Compose files through the loader: interpolation, .env and --env-file, environment and
env_file, compose defaults, deploy:, and the syntax compose accepts. Each problem is checked with
its exact text and position."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from veo.cli.app import app
from veo.core.config import LoadResult, load_spec, parse_spec
from veo.core.errors import SpecError


def load(text: str, env: dict | None = None, **kw) -> LoadResult:
    return parse_spec(textwrap.dedent(text), "compose.yml", env=env or {}, **kw)


def problems(text: str, env: dict | None = None, **kw) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(text, env, **kw)
    return [str(p) for p in info.value.problems]


# --------------------------------------------------------------------------------------------------
# interpolation
# --------------------------------------------------------------------------------------------------


def test_interpolation_happens_before_type_checks() -> None:
    spec = load("""\
        services:
          web:
            image: $IMAGE:${TAG:-latest}
            ports: ["${PORT:-8080}:80"]
            scale: ${N}
            healthcheck:
              test: wget -q -O- localhost:$$(cat /port)
              disable: ${NOCHECK:-false}
            environment:
              PW: ${POSTGRES_PW}
        """, {"IMAGE": "veo/httpd", "N": "3", "POSTGRES_PW": "pw"}).spec
    web = spec.services["web"]
    assert web.image == "veo/httpd:latest"
    assert (web.ports[0].published, web.ports[0].target) == (8080, 80)
    assert web.instances == 3
    assert web.healthcheck.test == ["CMD-SHELL", "wget -q -O- localhost:$(cat /port)"]
    assert web.environment == {"PW": "pw"}


def test_a_quoted_interpolated_value_stays_a_string() -> None:
    web = load('services: {web: {image: x, command: ["${N}"], labels: {n: "${N}"}}}',
               {"N": "3"}).spec.services["web"]
    assert web.command == ["3"] and web.labels == {"n": "3"}


def test_required_variable_error_keeps_its_position() -> None:
    assert problems("""\
        services:
          db:
            image: postgres
            environment:
              POSTGRES_PASSWORD: ${POSTGRES_PW:?set it in .env}
        """) == ["compose.yml:5:26: services.db.environment.POSTGRES_PASSWORD: required variable "
                 "POSTGRES_PW is not set: set it in .env"]


def test_a_type_error_after_interpolation_points_at_the_original_scalar() -> None:
    assert problems("services:\n  web:\n    image: x\n    scale: ${N:-many}\n") == [
        "compose.yml:4:12: services.web.scale: expected a number of instances >= 0 or 'all', "
        "got 'many'"]


def test_unset_variable_is_a_warning_and_empty() -> None:
    result = load("services:\n  web:\n    image: x\n    environment: [\"A=${NOPE}\"]\n")
    assert result.spec.services["web"].environment == {"A": ""}
    assert [str(w) for w in result.warnings] == [
        "compose.yml:4:19: warning: services.web.environment.0: variable NOPE is not set; it "
        "reads as an empty string"]


def test_keys_are_not_interpolated_and_dollar_dollar_unescapes() -> None:
    web = load("services: {web: {image: x, labels: {$$K: $$V}}}").spec.services["web"]
    assert web.labels == {"$$K": "$V"}


def test_bad_template_syntax() -> None:
    assert problems("services: {web: {image: '${A/x/y}'}}") == [
        "compose.yml:1:25: services.web.image: invalid interpolation format for '${A/x/y}': "
        "'${A/x/y}' is not one of ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, "
        "${VAR?error}, ${VAR:+alt}, ${VAR+alt}"]


def test_cluster_yml_is_interpolated_too() -> None:
    spec = load("""\
        name: ${CLUSTER:-demo}
        nodes: ["${NODE}@localhost"]
        settings: {budget_restarts: $BUDGET}
        services: {web: {image: x, cpus: "${CPUS}"}}
        """, {"NODE": "n1", "BUDGET": "4", "CPUS": "0.5"}).spec
    assert (spec.name, spec.nodes[0].name, spec.settings.budget_restarts) == ("demo", "n1", 4)
    assert spec.services["web"].cpus == 0.5


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


def test_dot_env_beside_the_file_and_the_environment_wins(tmp_path: Path) -> None:
    _write(tmp_path, ".env", "TAG=from-dotenv\nPORT=9000\n")
    file = _write(tmp_path, "compose.yml", 'services: {web: {image: "x:$TAG", ports: ["$PORT:80"]}}')
    web = load_spec(file, environ={"TAG": "from-env"}).spec.services["web"]
    assert web.image == "x:from-env" and web.ports[0].published == 9000


def test_env_file_option_replaces_dot_env(tmp_path: Path) -> None:
    _write(tmp_path, ".env", "TAG=from-dotenv\n")
    one = _write(tmp_path, "one.env", "TAG=one\nA=a\n")
    two = _write(tmp_path, "two.env", "TAG=two-$A\n")
    file = _write(tmp_path, "compose.yml", 'services: {web: {image: "x:$TAG"}}')
    assert load_spec(file, env_files=[one, two], environ={}).spec.services["web"].image == "x:two-a"


def test_bad_env_file_names_its_line(tmp_path: Path) -> None:
    _write(tmp_path, ".env", "OK=1\nthis is not\n")
    file = _write(tmp_path, "compose.yml", "services: {web: {image: x}}")
    with pytest.raises(SpecError) as info:
        load_spec(file, environ={})
    assert str(info.value) == f"{tmp_path}/.env:2:1: expected KEY=VALUE, got 'this is not'"
    with pytest.raises(SpecError, match="missing.env: no such file"):
        load_spec(file, env_files=[tmp_path / "missing.env"], environ={})


def test_validate_env_file_option(tmp_path: Path) -> None:
    env = _write(tmp_path, "prod.env", "TAG=9\n")
    file = _write(tmp_path, "compose.yml", 'services: {web: {image: "x:$TAG"}}')
    result = CliRunner().invoke(app, ["validate", str(file), "--env-file", str(env), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["services"]["web"]["image"] == "x:9"


@pytest.mark.parametrize(("tag", "expected"), [("!reset null", None), ("!reset []", None),
                                               ("!override [\"9090:80\"]", 9090)])
def test_reset_and_override_tags(tag: str, expected) -> None:
    web = load(f"services:\n  web:\n    image: x\n    ports: {tag}\n").spec.services["web"]
    assert (web.ports[0].published if web.ports else None) == expected


# --------------------------------------------------------------------------------------------------
# environment and env_file
# --------------------------------------------------------------------------------------------------


def test_bare_environment_keys_come_from_the_command_or_stay_unset() -> None:
    spec = load("""\
        services:
          a: {image: x, environment: [FROM_ENV, NOT_SET, "EMPTY=", "PLAIN=1"]}
          b: {image: x, environment: {FROM_ENV: null, NOT_SET: , PLAIN: 1}}
        """, {"FROM_ENV": "yes"}).spec
    assert spec.services["a"].environment == {"FROM_ENV": "yes", "EMPTY": "", "PLAIN": "1"}
    assert spec.services["b"].environment == {"FROM_ENV": "yes", "PLAIN": "1"}


def test_env_file_forms_and_precedence(tmp_path: Path) -> None:
    _write(tmp_path, "base.env", "A=base\nB=base\nC=base\nHOME_COPY=${HOME_DIR}\n")
    _write(tmp_path, "conf/over.env", "B=over\n") if (tmp_path / "conf").mkdir() is None else None
    file = _write(tmp_path, "compose.yml", """\
        services:
          one:
            image: x
            env_file: base.env
          many:
            image: x
            env_file: [base.env, conf/over.env]
            environment: {C: own}
          long:
            image: x
            env_file:
              - path: base.env
              - path: missing.env
                required: false
        """)
    spec = load_spec(file, environ={"HOME_DIR": "/home/u"}).spec
    assert spec.services["one"].environment == {"A": "base", "B": "base", "C": "base",
                                                "HOME_COPY": "/home/u"}
    assert spec.services["many"].environment == {"A": "base", "B": "over", "C": "own",
                                                 "HOME_COPY": "/home/u"}
    assert spec.services["long"].environment["A"] == "base"


def test_env_file_problems(tmp_path: Path) -> None:
    _write(tmp_path, "bad.env", "OK=1\n=nokey\n")
    file = _write(tmp_path, "compose.yml", """\
        services:
          a: {image: x, env_file: nope.env}
          b: {image: x, env_file: [bad.env]}
          c: {image: x, env_file: [{required: true}]}
        """)
    with pytest.raises(SpecError) as info:
        load_spec(file, environ={})
    assert [str(p).replace(str(tmp_path), "T") for p in info.value.problems] == [
        "T/compose.yml:2:27: services.a.env_file: T/nope.env: no such file (write required: "
        "false to make it optional)",
        "T/compose.yml:3:28: services.b.env_file.0: T/bad.env:2: expected KEY=VALUE, got '=nokey'",
        "T/compose.yml:4:28: services.c.env_file.0: expected a path, or a mapping with path: and "
        "required: true|false",
    ]


def test_env_file_without_a_file_on_disk_is_refused() -> None:
    assert problems("services: {a: {image: x, env_file: a.env}}") == [
        "compose.yml:1:36: services.a.env_file: env_file needs the compose file on disk (a path "
        "is relative to it); put the variables in environment:"]


# --------------------------------------------------------------------------------------------------
# defaults
# --------------------------------------------------------------------------------------------------


def test_a_plain_compose_file_gets_compose_defaults() -> None:
    svc = load("services: {job: {image: x, healthcheck: {test: 'true'}}}").spec.services["job"]
    assert svc.restart.value == "never"
    assert (svc.healthcheck.interval, svc.healthcheck.timeout, svc.healthcheck.retries) == (30, 30, 3)
    assert svc.on_unhealthy.value == "leave"  # Docker only reports it


@pytest.mark.parametrize("marker", ["nodes: [n1]", "settings: {}", "policy: {}",
                                    "x-veo: {defaults: veo}"])
def test_a_cluster_yml_keeps_veo_defaults(marker: str) -> None:
    svc = load(f"{marker}\nservices: {{job: {{image: x, healthcheck: {{test: 'true'}}}}}}\n"
               ).spec.services["job"]
    assert svc.restart.value == "restart"
    assert (svc.healthcheck.interval, svc.healthcheck.timeout) == (5, 3)


def test_a_veo_only_service_key_makes_it_a_cluster_yml() -> None:
    assert load("services: {a: {image: x, group: g}}").spec.services["a"].restart.value == "restart"


def test_compose_defaults_can_be_asked_for_and_overridden() -> None:
    spec = load("x-veo: {defaults: compose, settings: {budget_restarts: 3}}\n"
                "services: {a: {image: x, restart: always}, b: {image: x}}\n").spec
    assert spec.services["a"].restart.value == "restart" and spec.services["b"].restart.value == "never"
    assert spec.settings.budget_restarts == 3


def test_validate_json_shows_the_effective_defaults(tmp_path: Path) -> None:
    file = _write(tmp_path, "compose.yml", "services: {a: {image: x, healthcheck: {test: 'true'}}}")
    result = CliRunner().invoke(app, ["validate", str(file), "--json"])
    a = json.loads(result.stdout)["services"]["a"]
    assert (a["restart"], a["healthcheck"]["interval"], a["healthcheck"]["timeout"]) == (
        "never", 30.0, 30.0)


# --------------------------------------------------------------------------------------------------
# deploy:
# --------------------------------------------------------------------------------------------------


def test_deploy_maps_onto_veo_fields() -> None:
    svc = load("""\
        services:
          web:
            image: x
            deploy:
              replicas: 3
              resources:
                limits: {cpus: "0.50", memory: 256M, pids: 100}
                reservations: {cpus: "0.25", memory: 128M}
              placement:
                constraints: ["node.role == web", "node.hostname==n2"]
              restart_policy: {condition: on-failure, max_attempts: 4}
              update_config: {parallelism: 2, delay: 10s, order: start-first}
              rollback_config: {parallelism: 1}
        """).spec.services["web"]
    assert svc.instances == 3 and svc.cpus == 0.5 and svc.memory == 256 * 2**20
    assert svc.pids_limit == 100 and svc.reserve_cpus == 0.25 and svc.reserve_memory == 128 * 2**20
    assert svc.roles == ["web"] and svc.hosts == ["n2"]
    assert svc.restart.value == "restart" and not svc.restart_on_success and svc.restart_count == 4
    # update_config is veo's update: (compose's own defaults: pause on failure, no monitor)
    assert svc.update.parallel == 2 and svc.update.delay == 10
    assert svc.update.order.value == "start-first" and svc.update.on_failure.value == "pause"
    assert svc.update.min_healthy == 0
    assert (svc.placement_cpus, svc.placement_memory) == (0.5, 256 * 2**20)


def test_deploy_global_and_restart_any() -> None:
    svc = load("services: {a: {image: x, deploy: {mode: global, restart_policy: {}}}}"
               ).spec.services["a"]
    assert svc.instances == "all" and svc.restart.value == "restart" and svc.restart_on_success


def test_reservation_alone_is_a_placement_reservation_without_a_limit() -> None:
    svc = load("services: {a: {image: x, deploy: {resources: {reservations: {cpus: 2}}}}}"
               ).spec.services["a"]
    assert svc.cpus is None and svc.placement_cpus == 2


def test_deploy_errors_point_at_what_the_user_wrote() -> None:
    got = problems("""\
        services:
          a:
            image: x
            deploy:
              replicas: many
              mode: replicated-job
              placement:
                constraints: ["node.labels.zone == eu", "node.role != db", "zone=eu"]
              restart_policy: {condition: sometimes, delay: 5s}
              resources: {limits: {devices: []}}
              endpoint_mode: vip
              colour: red
        """)
    assert got == [
        "compose.yml:5:17: services.a.deploy.replicas: expected a number of instances >= 0 or "
        "'all', got 'many'",
        "compose.yml:6:13: services.a.deploy.mode: replicated-job: veo runs jobs as services with "
        "restart: on-failure (or restart: no); write that instead",
        "compose.yml:8:23: services.a.deploy.placement.constraints.0: node.labels.zone: veo nodes "
        "have a name (node.hostname) and a role (node.role), no labels or ids; constrain on those",
        "compose.yml:8:49: services.a.deploy.placement.constraints.1: node.role != …: veo lists "
        "the nodes a service may use; write node.role == … for each allowed one",
        "compose.yml:8:68: services.a.deploy.placement.constraints.2: expected 'node.hostname == "
        "NAME' or 'node.role == ROLE', got 'zone=eu'",
        "compose.yml:9:35: services.a.deploy.restart_policy.condition: expected none, on-failure "
        "or any, got 'sometimes'",
        "compose.yml:9:46: warning: services.a.deploy.restart_policy.delay: ignored: veo's restart "
        "back-off and budget are cluster-wide: settings.backoff_initial and settings.budget_period",
        "compose.yml:10:28: services.a.deploy.resources.limits.devices: not supported: devices "
        "(veo reads cpus, memory, pids)",
        "compose.yml:11:7: warning: services.a.deploy.endpoint_mode: ignored: Swarm's "
        "load-balancing mode; veo publishes ports per container",
        "compose.yml:12:7: services.a.deploy.colour: unknown key; expected one of endpoint_mode, "
        "labels, mode, placement, replicas, resources, restart_policy, rollback_config, "
        "update_config",
    ]


def test_deploy_and_the_same_key_on_the_service() -> None:
    assert problems("services: {a: {image: x, cpus: 1, deploy: {resources: {limits: {cpus: 2}}}}}"
                    ) == ["compose.yml:1:65: services.a.deploy.resources.limits.cpus: give either "
                          "cpus: or deploy.resources.limits.cpus, not both"]
    assert load("services: {a: {image: x, scale: 2, deploy: {replicas: 2}}}"
                ).spec.services["a"].instances == 2


def test_scale_zero_is_declared_not_run() -> None:
    assert load("services: {a: {image: x, scale: 0}}").spec.services["a"].instances == 0
    assert load("services: {a: {image: x, deploy: {replicas: 0}}}").spec.services["a"].instances == 0


# --------------------------------------------------------------------------------------------------
# syntax compose accepts
# --------------------------------------------------------------------------------------------------

PORTS = [
    ("6005-6015:80", [(None, 6005, 6015, 80)]),
    ("3000-3002", [(None, None, None, 3000), (None, None, None, 3001), (None, None, None, 3002)]),
    ("127.0.0.1:5000-5001:5000-5001", [("127.0.0.1", 5000, None, 5000),
                                       ("127.0.0.1", 5001, None, 5001)]),
    ("9090-9091:8080-8081", [(None, 9090, None, 8080), (None, 9091, None, 8081)]),
    ("::1:6000:6000", [("::1", 6000, None, 6000)]),
    ("[::1]:6001:6001", [("::1", 6001, None, 6001)]),
    ("127.0.0.1::5000", [("127.0.0.1", None, None, 5000)]),
    ({"target": 80, "published": "8083-9000"}, [(None, 8083, 9000, 80)]),
    ({"target": 80, "published": "8080", "host_ip": "[::1]"}, [("::1", 8080, None, 80)]),
]


@pytest.mark.parametrize(("given", "expected"), PORTS)
def test_port_syntax(given, expected) -> None:
    spec = load(json.dumps({"services": {"a": {"image": "x", "ports": [given]}}}))
    got = [(p.host_ip, p.published, p.published_end, p.target)
           for p in spec.spec.services["a"].ports]
    assert got == expected


VOLUMES = [
    ("/src:/dst:ro,z", {"type": "bind", "read_only": True, "selinux": "z"}),
    ("/src:/dst:Z", {"type": "bind", "selinux": "Z"}),
    ("data:/dst:nocopy", {"type": "volume", "nocopy": True}),
    ("/src:/dst:cached", {"type": "bind", "read_only": False}),
    ("/src:/dst:delegated,ro", {"type": "bind", "read_only": True}),
    ("/src:/dst:rshared", {"type": "bind", "propagation": "rshared"}),
    ({"type": "volume", "source": "data", "target": "/d", "volume": {"subpath": "sub",
                                                                      "nocopy": True}},
     {"subpath": "sub", "nocopy": True}),
    ({"type": "tmpfs", "target": "/t", "tmpfs": {"size": "64m", "mode": "1777"}},
     {"type": "tmpfs", "tmpfs_size": 64 * 2**20, "tmpfs_mode": 0o1777}),
    ({"type": "image", "source": "veo/busybox", "target": "/img", "image": {"subpath": "bin"}},
     {"type": "image", "subpath": "bin"}),
    ({"type": "bind", "source": "/s", "target": "/d", "bind": {"propagation": "slave",
                                                               "selinux": "z",
                                                               "create_host_path": True}},
     {"propagation": "slave", "selinux": "z", "create_host_path": True}),
]


@pytest.mark.parametrize(("given", "expected"), VOLUMES)
def test_volume_syntax(given, expected) -> None:
    text = json.dumps({"x-veo": {"policy": {"allow_host_mounts": True}},
                       "services": {"a": {"image": "x", "volumes": [given]}}})
    vol = load(text).spec.services["a"].volumes[0]
    assert {k: getattr(vol, k) for k in expected} == expected


def test_volume_long_form_unknown_nested_key() -> None:
    assert problems("services: {a: {image: x, volumes: [{type: volume, source: d, target: /d, "
                    "volume: {size: 1}}]}}") == [
        "compose.yml:1:36: services.a.volumes.0: volume.size: unknown key; expected one of "
        "nocopy, subpath"]


def test_project_names_with_underscores_run_with_dashes() -> None:
    result = load("name: my_app\nservices: {a: {image: x}}\n")
    assert result.spec.name == "my-app"
    assert [str(w) for w in result.warnings] == [
        "compose.yml:1:7: warning: name: veo separates the parts of container names with '_'; "
        "the project 'my_app' runs as cluster 'my-app'"]


# every service key of the compose specification (compose-spec schema): each must be read, or
# a warning -- never 'unknown key'
COMPOSE_SERVICE_KEYS = """annotations attach build blkio_config cpu_count cpu_percent cpu_shares
cpu_quota cpu_period cpu_rt_period cpu_rt_runtime cpus cpuset credential_spec depends_on deploy
develop device_cgroup_rules devices dns dns_opt dns_search domainname entrypoint env_file
label_file environment expose extends external_links extra_hosts gpus group_add healthcheck
hostname image init ipc isolation labels links logging mac_address mem_limit mem_reservation
mem_swappiness memswap_limit network_mode models networks oom_kill_disable oom_score_adj pid
pids_limit platform ports post_start pre_start pre_stop privileged profiles provider pull_policy
pull_refresh_after read_only restart runtime scale secrets security_opt shm_size stdin_open
stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits use_api_socket user
userns_mode uts volumes volumes_from working_dir configs container_name cgroup cgroup_parent
""".split()


@pytest.mark.parametrize("key", COMPOSE_SERVICE_KEYS)
def test_no_compose_service_key_is_unknown(key: str, tmp_path: Path) -> None:
    (tmp_path / "e.env").write_text("")
    values = {"env_file": "e.env", "deploy": {}, "image": "x", "scale": 1, "pid": "host",
              "network_mode": "bridge", "healthcheck": {"test": "true"}}
    body = {"image": "x", key: values.get(key)} if key in values else {"image": "x", key: None}
    text = json.dumps({"x-veo": {"policy": dict.fromkeys(
        ["allow_host_pid", "allow_security_opt"], True)}, "services": {"a": body}})
    try:
        result = parse_spec(text, "compose.yml", env={}, base_dir=tmp_path)
        messages = [str(w) for w in result.warnings]
    except SpecError as e:
        messages = [str(p) for p in e.problems]
    assert not [m for m in messages if "unknown key" in m], messages


@pytest.mark.parametrize("key", ["version", "name", "services", "networks", "volumes", "secrets",
                                 "configs", "include", "models", "x-anything"])
def test_no_compose_top_level_key_is_unknown(key: str) -> None:
    data = {"services": {"a": {"image": "x"}}}
    data.setdefault(key, {} if key not in ("version", "name") else "proj")
    try:
        messages = [str(w) for w in load(json.dumps(data)).warnings]
    except SpecError as e:
        messages = [str(p) for p in e.problems]
    assert not [m for m in messages if "unknown key" in m], messages


def test_strict_accepts_declared_volumes() -> None:
    spec = load("""\
        services: {db: {image: x, volumes: ["data:/var/lib/db"]}}
        volumes:
          data:
          tuned: {driver: local, driver_opts: {type: tmpfs, device: tmpfs}, labels: [a=b]}
          old: {external: true, name: legacy}
        """, strict=True).spec
    assert spec.volumes["data"].driver is None
    assert spec.volumes["tuned"].driver_opts == {"type": "tmpfs", "device": "tmpfs"}
    assert spec.volumes["tuned"].labels == {"a": "b"}
    assert spec.volumes["old"].external and spec.volumes["old"].name == "legacy"


# --------------------------------------------------------------------------------------------------
# paths, namespaces, x-veo, policy
# --------------------------------------------------------------------------------------------------


def test_relative_bind_mounts_resolve_against_the_file(tmp_path: Path) -> None:
    file = _write(tmp_path, "compose.yml", """\
        x-veo: {policy: {allow_host_mounts: true}}
        services:
          a: {image: x, volumes: ["./data:/data", "../up:/up:ro"]}
        """)
    result = load_spec(file, environ={})
    vols = result.spec.services["a"].volumes
    assert [v.source for v in vols] == [str(tmp_path / "data"), str(tmp_path.parent / "up")]
    assert [str(w).replace(str(tmp_path), "T") for w in result.warnings] == [
        f"T/compose.yml:3:27: warning: services.a.volumes.0: bind mount ./data is T/data: that "
        "path must exist on the node that runs the container",
        f"T/compose.yml:3:43: warning: services.a.volumes.1: bind mount ../up is "
        f"{str(tmp_path.parent / 'up').replace(str(tmp_path), 'T')}: that path must exist on the "
        "node that runs the container",
    ]


def test_home_bind_mounts_expand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    vol = load("x-veo: {policy: {allow_host_mounts: true}}\n"
               "services: {a: {image: x, volumes: ['~/x:/x']}}\n").spec.services["a"].volumes[0]
    assert vol.source == "/home/someone/x"


def test_relative_bind_without_a_file_is_refused() -> None:
    assert problems("x-veo: {policy: {allow_host_mounts: true}}\n"
                    "services: {a: {image: x, volumes: ['./x:/x']}}\n") == [
        "compose.yml:2:36: services.a.volumes.0: a bind mount needs an absolute path on the node, "
        "got './x' (a relative path needs the compose file on disk)"]


def test_network_mode_service_within_a_group() -> None:
    spec = load("""\
        services:
          db: {image: x, group: g}
          probe: {image: x, group: g, network_mode: "service:db"}
        """).spec
    assert spec.services["probe"].network_mode == "service:db"


@pytest.mark.parametrize(("services", "message"), [
    ("db: {image: x}\n  probe: {image: x, network_mode: 'service:db'}",
     "compose.yml:3:35: services.probe.network_mode: service:db shares db's network namespace, "
     "which works only on the node that runs db: put both in one group (group: NAME on each), so "
     "veo places them together"),
    ("probe: {image: x, network_mode: 'service:nope'}",
     "compose.yml:2:35: services.probe.network_mode: no service 'nope' in this file"),
])
def test_network_mode_service_elsewhere_is_refused(services: str, message: str) -> None:
    assert problems(f"services:\n  {services}\n") == [message]


def test_x_veo_carries_veo_top_level_keys() -> None:
    spec = load("""\
        name: shop
        x-veo:
          name: shop
          nodes: ["n1@localhost"]
          settings: {placement: binpack}
          policy: {allow_host_mounts: true}
        services: {a: {image: x, volumes: ["/srv:/srv"]}}
        """).spec
    assert spec.nodes[0].name == "n1" and spec.settings.placement.value == "binpack"
    assert spec.policy.allow_host_mounts


def test_x_veo_problems() -> None:
    assert problems("""\
        policy: {}
        x-veo: {policy: {allow_host_pid: true}, colour: red, settings: {budget: 1}}
        services: {a: {image: x}}
        """) == [
        "compose.yml:2:9: x-veo.policy: given both here and at the top level; keep one",
        "compose.yml:2:41: x-veo.colour: unknown key; expected one of name, nodes, settings, "
        "policy, defaults",
        "compose.yml:2:65: x-veo.settings.budget: unknown key, did you mean 'budget_period'?",
    ]


def test_security_opt_beyond_no_new_privileges_needs_the_policy() -> None:
    assert load("services: {a: {image: x, security_opt: [no-new-privileges:true]}}").spec
    assert problems("services: {a: {image: x, security_opt: [seccomp=unconfined]}}") == [
        "compose.yml:1:40: services.a.security_opt: security options (seccomp=unconfined): "
        "refused by the cluster policy (set policy.allow_security_opt: true to allow it)"]


def test_errors_after_a_port_range_point_at_the_users_item() -> None:
    assert problems('services: {a: {image: x, ports: ["3000-3002", "70000"]}}') == [
        "compose.yml:1:47: services.a.ports.1: expected a number <= 65535, got 70000"]


def test_what_the_loader_fills_in_survives_the_state_store() -> None:
    from veo.adapters.store import dump_service, load_service

    spec = load("name: p\nservices: {db: {image: x, volumes: ['data:/d']}}\n"
                "volumes: {data: {driver_opts: {o: x}}}\n").spec
    again = load_service(dump_service(spec.services["db"]))
    assert again.volumes[0].source == "p_data"
    assert again.volume_defs == {"p_data": spec.volumes["data"]}
    assert again.networks["default"].network.name == "p_default"


def test_a_failed_interpolation_is_the_only_problem_of_its_value() -> None:
    assert problems('services: {web: {image: "${ID:?set ID}"}}') == [
        "compose.yml:1:25: services.web.image: required variable ID is not set: set ID"]


@pytest.mark.parametrize(("key", "message"), [
    ("build: ./app", "veo runs prebuilt images: build this one (docker build -t NAME …), load it "
                     "on the nodes, and give image: NAME"),
    ("extends: {file: base.yml, service: web}", "veo reads one file and does not support extends: "
                                                "copy the base service's keys into this one"),
    ("provider: {type: model}", "provider services are not supported by veo"),
])
def test_a_service_without_an_image_says_why(key: str, message: str) -> None:
    assert problems(f"services:\n  web:\n    {key}\n") == [
        f"compose.yml:3:5: services.web.{key.split(':')[0]}: {message}"]


def test_network_ipam_is_the_engines() -> None:
    result = load("services: {a: {image: x}}\nnetworks:\n  default:\n    ipam: {config: []}\n")
    assert [str(w) for w in result.warnings] == [
        "compose.yml:4:5: warning: networks.default.ipam: ignored: the engine chooses the subnet "
        "and addresses"]


def test_services_that_may_be_split_across_nodes_get_a_warning() -> None:
    text = """\
        x-veo: {nodes: [n1, n2]}
        services:
          web: {image: x}
          db: {image: x}
          a: {image: x, networks: [pinned], deploy: {placement: {constraints: [node.hostname == n1]}}}
          b: {image: x, networks: [pinned], deploy: {placement: {constraints: [node.hostname == n1]}}}
        networks: {pinned: {}}
        """
    assert [str(w) for w in load(text).warnings] == [
        "compose.yml:3:3: warning: services.web.networks: web, db share network 'default' but may "
        "run on different nodes, where their names do not resolve (veo has no cross-node "
        "discovery yet): put them in one group, or give them the same hosts:"]
    assert not load(text.replace("[n1, n2]", "[n1]")).warnings


def test_network_mode_service_needs_the_peer_first_in_the_group() -> None:
    assert problems("""\
        services:
          probe: {image: x, group: g, network_mode: "service:db"}
          db: {image: x, group: g}
        """) == [
        "compose.yml:2:45: services.probe.network_mode: service:db needs db's container first, "
        "and the group starts probe, db in that order: make db the master, or declare it before "
        "probe"]
