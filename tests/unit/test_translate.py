"""Service -> Docker create arguments, names and labels (pure; no engine)."""

from __future__ import annotations

from typing import Any

import pytest
from docker.types import Mount, Ulimit

from veo.core.errors import SpecError
from veo.core.models import Service
from veo.core.names import (
    LABEL_CLUSTER,
    LABEL_GENERATION,
    LABEL_GROUP,
    LABEL_GROUP_ROLE,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_NODE,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    container_name,
    parse_container_name,
)
from veo.core.translate import (
    MAPPED_FIELDS,
    NOT_DOCKER_FIELDS,
    container_labels,
    create_kwargs,
)

MiB = 1024 * 1024


def svc(**fields: Any) -> Service:
    return Service.model_validate({"name": "web", "image": "veo/busybox:latest", **fields})


def kwargs(**fields: Any) -> dict:
    return create_kwargs(svc(**fields), cluster="c1", instance=2, generation=3, node="n1")


def base() -> dict:
    return kwargs()


def refusal(**fields: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        kwargs(**fields)
    return info.value


# --------------------------------------------------------------------------------------------------
# Every field -> the exact create kwargs
# --------------------------------------------------------------------------------------------------

CASES: list[tuple[str, dict, dict]] = [
    ("command", {"command": "sh -c 'echo hi'"}, {"command": ["sh", "-c", "echo hi"]}),
    ("entrypoint", {"entrypoint": ["/bin/sh", "-c"]}, {"entrypoint": ["/bin/sh", "-c"]}),
    ("environment", {"environment": ["A=1", "B="]}, {"environment": {"A": "1", "B": ""}}),
    ("working_dir", {"working_dir": "/tmp"}, {"working_dir": "/tmp"}),
    ("user", {"user": "nobody"}, {"user": "nobody"}),
    ("auto_remove", {"auto_remove": True, "restart": "never"}, {"auto_remove": True}),
    ("privileged", {"privileged": True}, {"privileged": True}),
    ("cap_add", {"cap_add": "NET_ADMIN"}, {"cap_add": ["NET_ADMIN"]}),
    ("cap_drop", {"cap_drop": ["MKNOD", "CHOWN"]}, {"cap_drop": ["MKNOD", "CHOWN"]}),
    ("devices", {"devices": ["/dev/fuse:/dev/fuse:rwm"]}, {"devices": ["/dev/fuse:/dev/fuse:rwm"]}),
    ("network none", {"network_mode": "none"}, {"network_mode": "none"}),
    ("network host", {"network_mode": "host"}, {"network_mode": "host"}),
    # declared for discovery (the node's ports); Docker is given none
    ("ports on host", {"ports": ["80", "53:53/udp"], "network_mode": "host"}, {"network_mode": "host"}),
    ("network container", {"network_mode": "container:db"}, {"network_mode": "container:db"}),
    ("pid host", {"pid_mode": "host"}, {"pid_mode": "host"}),
    ("pid container", {"pid_mode": "container:x"}, {"pid_mode": "container:x"}),
    ("dns", {"dns": "1.1.1.1"}, {"dns": ["1.1.1.1"]}),
    ("cpus", {"cpus": 0.5}, {"nano_cpus": 500_000_000}),
    ("cpus string", {"cpus": "1.25"}, {"nano_cpus": 1_250_000_000}),
    ("memory", {"memory": "64m"}, {"mem_limit": 64 * MiB}),
    ("disk is placement only", {"disk": "1g"}, {}),
    (
        "ulimits",
        {"ulimits": {"nofile": {"soft": 1024, "hard": 2048}, "core": -1}},
        {
            "ulimits": [
                Ulimit(name="nofile", soft=1024, hard=2048),
                Ulimit(name="core", soft=-1, hard=-1),
            ]
        },
    ),
    ("port short", {"ports": ["8080:80"]}, {"ports": {"80/tcp": 8080}}),
    ("port random", {"ports": [80]}, {"ports": {"80/tcp": None}}),
    (
        "port with ip and udp",
        {"ports": ["127.0.0.1:5353:53/udp"]},
        {"ports": {"53/udp": ("127.0.0.1", 5353)}},
    ),
    (
        "two bindings of one port",
        {"ports": ["8080:80", "8081:80"], "network_mode": "bridge"},
        {"ports": {"80/tcp": [8080, 8081]}, "network_mode": "bridge"},
    ),
    (
        "mounts",
        {"volumes": ["/srv/data:/data:ro", "cache:/cache", "/scratch"]},
        {
            "mounts": [
                Mount("/data", "/srv/data", type="bind", read_only=True),
                Mount("/cache", "cache", type="volume"),
                Mount("/scratch", None, type="volume"),
            ]
        },
    ),
    (
        "healthcheck in nanoseconds",
        {"healthcheck": {"test": "wget -q -O- localhost", "interval": "500ms", "timeout": "2s",
                         "retries": 4, "start_period": "1m"}},
        {
            "healthcheck": {
                "test": ["CMD-SHELL", "wget -q -O- localhost"],
                "interval": 500_000_000,
                "timeout": 2_000_000_000,
                "retries": 4,
                "start_period": 60_000_000_000,
            }
        },
    ),  # fmt: skip
    ("healthcheck NONE", {"healthcheck": ["NONE"]}, {"healthcheck": {"test": ["NONE"]}}),
    ("stop grace rounds up", {"stop_grace_period": "1500ms"}, {"stop_timeout": 2}),
    ("stop grace zero", {"stop_grace_period": 0}, {"stop_timeout": 0}),
    ("restart is veo's", {"restart": "on-failure:3"}, {}),
    ("instances are placement", {"instances": 3, "roles": ["gpu"], "hosts": ["n1"]}, {}),
]


@pytest.mark.parametrize(("fields", "delta"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_field_maps_to_exact_kwargs(fields: dict, delta: dict) -> None:
    got = kwargs(**fields)
    want = {**base(), **delta}
    want["labels"] = got["labels"]  # the spec hash moves with every field; labels are tested below
    assert got == want


def test_defaults_leave_docker_defaults_alone() -> None:
    assert base() == {
        "image": "veo/busybox:latest",
        "name": "c1_web_2_g3",
        "labels": container_labels("c1", svc(), 2, 3, "n1"),
        "detach": True,
        "stop_timeout": 10,
    }


def test_user_labels_are_kept_next_to_veo_labels() -> None:
    s = svc(labels={"team": "a"}, group="g", group_role="master")
    assert container_labels("c1", s, 2, 3, "n1") == {
        "team": "a",
        LABEL_MANAGED: "true",
        LABEL_CLUSTER: "c1",
        LABEL_SERVICE: "web",
        LABEL_INSTANCE: "2",
        LABEL_GROUP: "g",
        LABEL_GROUP_ROLE: "master",
        LABEL_NODE: "n1",
        LABEL_SPEC_HASH: s.spec_hash(),
        LABEL_GENERATION: "3",
    }


def test_labels_without_group_are_empty_strings() -> None:
    labels = container_labels("c1", svc(), 1, 1, "n1")
    assert labels[LABEL_GROUP] == "" and labels[LABEL_GROUP_ROLE] == ""


# --------------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------------

REFUSALS: list[tuple[str, dict, str, str]] = [
    ("remapped port with host", {"ports": ["8080:80"], "network_mode": "host"}, "ports",
     "on the host network the container's port is the node's: 8080:80 cannot be remapped"),
    ("ports with none", {"ports": ["80"], "network_mode": "none"}, "ports",
     "network_mode 'none' has none"),
    ("ports with container", {"ports": ["80"], "network_mode": "container:db"}, "ports",
     "publish them on that container"),
    ("custom network", {"network_mode": "mynet"}, "network_mode",
     "expected none, host, bridge or container:<name>, got 'mynet'"),
    ("service network", {"network_mode": "service:db"}, "network_mode", "service:<name>"),
    ("empty container ref", {"network_mode": "container:"}, "network_mode", "got 'container:'"),
    ("pid mode", {"pid_mode": "private"}, "pid_mode",
     "expected host or container:<name>, got 'private'"),
    ("tiny memory", {"memory": "1m"}, "memory", "Docker needs at least 6m"),
    ("unknown ulimit", {"ulimits": {"bogus": 1}}, "ulimits.bogus", "unknown ulimit 'bogus'"),
    ("relative bind", {"volumes": ["./data:/data"]}, "volumes.0.source",
     "a bind mount needs an absolute path on the node, got './data'"),
    ("home bind", {"volumes": ["~/x:/x"]}, "volumes.0.source", "absolute path"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "path", "text"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_name_the_field(fields: dict, path: str, text: str) -> None:
    err = refusal(**fields)
    assert [p.path for p in err.problems] == [path]
    assert text in err.problems[0].message
    assert str(err).startswith(f"{path}: ")


def test_every_problem_is_reported_not_just_the_first() -> None:
    err = refusal(network_mode="mynet", memory=1024, ulimits={"x": 1})
    assert sorted(p.path for p in err.problems) == ["memory", "network_mode", "ulimits.x"]


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cluster", "service", "instance", "generation"),
    [("c1", "web", 1, 1), ("prod.eu-1", "my_svc_2", 10, 7), ("x", "a_1_g2", 3, 12)],
)
def test_container_name_round_trips(cluster: str, service: str, instance: int, generation: int):
    name = container_name(cluster, service, instance, generation)
    assert name == f"{cluster}_{service}_{instance}_g{generation}"
    assert parse_container_name(name) == (cluster, service, instance, generation)
    assert parse_container_name("/" + name) == (cluster, service, instance, generation)


@pytest.mark.parametrize("name", ["web", "c1_web_1", "c1_web_x_g1", "c1_web_1_gx", "_web_1_g1", ""])
def test_parse_rejects_foreign_names(name: str) -> None:
    assert parse_container_name(name) is None


@pytest.mark.parametrize("cluster", ["a_b", "", "-x", "a b"])
def test_cluster_names_that_would_make_names_ambiguous_are_refused(cluster: str) -> None:
    with pytest.raises(SpecError, match="cluster name"):
        container_name(cluster, "web", 1, 1)


# --------------------------------------------------------------------------------------------------
# No leftovers
# --------------------------------------------------------------------------------------------------


def test_every_service_field_is_mapped_or_declared_not_docker() -> None:
    fields = set(Service.model_fields)
    assert not MAPPED_FIELDS & NOT_DOCKER_FIELDS.keys(), "a field cannot be both"
    unknown = fields - MAPPED_FIELDS - NOT_DOCKER_FIELDS.keys()
    assert not unknown, (
        f"new Service field(s) {sorted(unknown)}: map them in veo/translate.py or list them in "
        "NOT_DOCKER_FIELDS with the reason"
    )
    assert not (MAPPED_FIELDS | NOT_DOCKER_FIELDS.keys()) - fields, "stale names in translate.py"
    assert all(reason.strip() for reason in NOT_DOCKER_FIELDS.values())


# A non-default value for every mapped field: if translate claims a field, changing it must
# change what reaches Docker.
SAMPLES: dict[str, dict] = {
    "name": {"name": "api"},
    "image": {"image": "veo/httpd:latest"},
    "command": {"command": ["true"]},
    "entrypoint": {"entrypoint": ["sh"]},
    "environment": {"environment": {"A": "1"}},
    "labels": {"labels": {"a": "b"}},
    "ports": {"ports": ["80"]},
    "volumes": {"volumes": ["v:/v"]},
    "ulimits": {"ulimits": {"nofile": 10}},
    "dns": {"dns": ["1.1.1.1"]},
    "privileged": {"privileged": True},
    "cap_add": {"cap_add": ["NET_ADMIN"]},
    "cap_drop": {"cap_drop": ["MKNOD"]},
    "devices": {"devices": ["/dev/null"]},
    "network_mode": {"network_mode": "host"},
    "pid_mode": {"pid_mode": "host"},
    "user": {"user": "1000"},
    "working_dir": {"working_dir": "/w"},
    "auto_remove": {"auto_remove": True, "restart": "never"},
    "stop_grace_period": {"stop_grace_period": 3},
    "cpus": {"cpus": 1},
    "memory": {"memory": "1g"},
    "group": {"group": "g"},
    "group_role": {"group": "g", "group_role": "slave"},
    "healthcheck": {"healthcheck": "true"},
    "reserve_memory": {"reserve_memory": "64m"},
    "memswap_limit": {"memswap_limit": -1},
    "cpu_shares": {"cpu_shares": 512},
    "pids_limit": {"pids_limit": 100},
    "shm_size": {"shm_size": "64m"},
    "init": {"init": True},
    "tmpfs": {"tmpfs": "/run"},
    "read_only": {"read_only": True},
    "stop_signal": {"stop_signal": "SIGINT"},
    "sysctls": {"sysctls": {"net.core.somaxconn": 1024}},
    "extra_hosts": {"extra_hosts": ["db:10.0.0.2"]},
    "hostname": {"hostname": "h"},
    "domainname": {"domainname": "example.org"},
    "security_opt": {"security_opt": ["no-new-privileges"]},
    "group_add": {"group_add": ["audio"]},
    "logging": {"logging": {"driver": "none"}},
}


def _without_hash(kw: dict) -> dict:
    return {**kw, "labels": {k: v for k, v in kw["labels"].items() if k != LABEL_SPEC_HASH}}


@pytest.mark.parametrize("field", sorted(MAPPED_FIELDS))
def test_mapped_field_reaches_docker(field: str) -> None:
    assert field in SAMPLES, f"add a sample value for {field!r}"
    assert _without_hash(kwargs(**SAMPLES[field])) != _without_hash(base())


@pytest.mark.parametrize("field", sorted(NOT_DOCKER_FIELDS))
def test_not_docker_field_does_not_reach_docker(field: str) -> None:
    samples = {
        "restart": {"restart": "never"},
        "restart_on_success": {"restart_on_success": False},
        "restart_count": {"restart_count": 2},
        "instances": {"instances": 4},
        "disk": {"disk": "10g"},
        "roles": {"roles": ["db"]},
        "hosts": {"hosts": ["n2"]},
        "group_policy": {"group": "g", "group_policy": "one_for_one"},
        "on_unhealthy": {"healthcheck": "true", "on_unhealthy": "kill"},
        "update": {"update": {"parallel": 2, "order": "start-first"}},
        "reserve_cpus": {"reserve_cpus": 2},
        "expose": {"expose": ["80"]},
        "networks": {"networks": {"back": {"aliases": ["db"]}}},
        "volume_defs": {"volume_defs": {"p_data": {"driver": "local"}}},
        "depends_on": {"depends_on": ["db"]},
        "secrets": {"secrets": [{"source": "s", "target": "/run/secrets/s", "content": "x"}]},
        "configs": {"configs": [{"kind": "config", "source": "c", "target": "/c", "content": "y"}]},
        "pull_policy": {"pull_policy": "always"},
        "schedule": {"schedule": "@daily"},
        "time_zone": {"schedule": "@daily", "time_zone": "Europe/Paris"},
        "overlap": {"schedule": "@daily", "overlap": "replace"},
        "starting_deadline": {"schedule": "@daily", "starting_deadline": "5m"},
        "history": {"schedule": "@daily", "history": {"succeeded": 0}},
        "timeout": {"schedule": "@daily", "timeout": "1h"},
        "discovery": {"discovery": True},
    }
    reference = {"group": "g"} if field == "group_policy" else {}
    if field == "on_unhealthy":
        reference = {"healthcheck": "true"}
    if field == "schedule":
        reference = {"restart": "never"}  # a task's restart default
    if field in ("time_zone", "overlap", "starting_deadline", "history", "timeout"):
        reference = {"schedule": "@daily"}
    assert _without_hash(kwargs(**samples[field])) == _without_hash(kwargs(**reference))
