"""The models on their own: every spelling a field accepts, what it normalises to, the defaults,
and the rules (``service_rule_errors``, ``check_cluster_rules``)."""

from __future__ import annotations

import re
from typing import Any

import pydantic
import pytest

from veo.core.models import (
    group_policy_of,
    ClusterSpec,
    GroupPolicy,
    GroupRole,
    HealthCheck,
    Node,
    OnUnhealthy,
    PlacementStrategy,
    Port,
    PullPolicy,
    RestartPolicy,
    Service,
    Settings,
    Ulimit,
    Volume,
    check_cluster_rules,
    service_rule_errors,
)

DEFER = {"defer_rules": True}


def svc(**fields: Any) -> Service:
    return Service.model_validate({"name": "web", "image": "veo/httpd", **fields}, context=DEFER)


def cluster(services: dict[str, dict], **top: Any) -> ClusterSpec:
    body = {k: {"image": "veo/busybox", **v} for k, v in services.items()}
    return ClusterSpec.model_validate({"services": body, **top}, context=DEFER)


# --------------------------------------------------------------------------------------------------
# Spellings and normalisation
# --------------------------------------------------------------------------------------------------

SPELLINGS = [
    # sizes: binary multiples, as Docker and compose
    ("memory", "512m", "memory", 512 * 1024**2),
    ("memory", "1g", "memory", 1024**3),
    ("memory", "1.5G", "memory", int(1.5 * 1024**3)),
    ("memory", "64MiB", "memory", 64 * 1024**2),
    ("memory", 1000, "memory", 1000),
    ("memory", "2048", "memory", 2048),
    ("disk", "10gb", "disk", 10 * 1024**3),
    ("disk", "1t", "disk", 1024**4),
    # durations in seconds
    ("stop_grace_period", "1m30s", "stop_grace_period", 90.0),
    ("stop_grace_period", "500ms", "stop_grace_period", 0.5),
    ("stop_grace_period", 3, "stop_grace_period", 3.0),
    ("stop_grace_period", "2", "stop_grace_period", 2.0),
    ("stop_grace_period", "1h", "stop_grace_period", 3600.0),
    # cpus
    ("cpus", 0.5, "cpus", 0.5),
    ("cpus", "1.5", "cpus", 1.5),
    ("cpus", 2, "cpus", 2.0),
    # command and entrypoint: a string splits like a shell would
    ("command", "sleep 10", "command", ["sleep", "10"]),
    ("command", "sh -c 'echo hi there'", "command", ["sh", "-c", "echo hi there"]),
    ("command", ["sleep", 10], "command", ["sleep", "10"]),
    ("entrypoint", "/bin/sh -c", "entrypoint", ["/bin/sh", "-c"]),
    # environment and labels: list of KEY=VALUE or a mapping; values become text
    ("environment", ["A=1", "B=x=y", "C="], "environment", {"A": "1", "B": "x=y", "C": ""}),
    ("environment", {"A": 1, "B": True, "C": None}, "environment", {"A": "1", "B": "true", "C": ""}),
    ("environment", None, "environment", {}),
    ("labels", ["tier=web"], "labels", {"tier": "web"}),
    ("labels", {"tier": "web"}, "labels", {"tier": "web"}),
    # one or many
    ("dns", "8.8.8.8", "dns", ["8.8.8.8"]),
    ("roles", "web", "roles", ["web"]),
    ("roles", ["web", "db"], "roles", ["web", "db"]),
    ("hosts", "uno", "hosts", ["uno"]),
    ("cap_add", "NET_ADMIN", "cap_add", ["NET_ADMIN"]),
    ("devices", None, "devices", []),
    # numbers where text is expected, as YAML reads them
    ("user", 1000, "user", "1000"),
    ("user", "1000:1000", "user", "1000:1000"),
    # instances
    ("instances", 3, "instances", 3),
    ("instances", "all", "instances", "all"),
    # restart: veo's words and compose's
    ("restart", "never", "restart", RestartPolicy.never),
    ("restart", "no", "restart", RestartPolicy.never),
    ("restart", False, "restart", RestartPolicy.never),
    ("restart", "restart", "restart", RestartPolicy.restart),
    ("restart", "always", "restart", RestartPolicy.restart),
    ("restart", "unless-stopped", "restart", RestartPolicy.restart),
    ("restart", "on-failure", "restart_on_success", False),
    ("restart", "on-failure:3", "restart_count", 3),
    ("restart", "Always", "restart", RestartPolicy.restart),
    ("restart", RestartPolicy.never, "restart", RestartPolicy.never),
    # groups
    ("group_role", "slave", "group_role", GroupRole.slave),
    ("group_policy", "one_kills_all", "group_policy", GroupPolicy.one_kills_all),
    ("on_unhealthy", "kill", "on_unhealthy", OnUnhealthy.kill),
    ("privileged", True, "privileged", True),
    ("privileged", "yes", "privileged", True),
    # pull_policy: compose's words
    ("pull_policy", "always", "pull_policy", PullPolicy.always),
    ("pull_policy", "never", "pull_policy", PullPolicy.never),
    ("pull_policy", "missing", "pull_policy", PullPolicy.missing),
    ("pull_policy", "if_not_present", "pull_policy", PullPolicy.missing),
    ("pull_policy", "Always", "pull_policy", PullPolicy.always),
]


@pytest.mark.parametrize(("key", "given", "attr", "expected"), SPELLINGS)
def test_service_spellings(key: str, given: Any, attr: str, expected: Any) -> None:
    extra = {"healthcheck": "true"} if key == "on_unhealthy" else {}
    extra |= {"group": "g"} if key.startswith("group_") else {}
    assert getattr(svc(**{key: given}, **extra), attr) == expected


def test_restart_on_failure_keeps_restart_policy_and_explicit_count() -> None:
    s = svc(restart="on-failure:3", restart_count=5)
    assert (s.restart, s.restart_on_success, s.restart_count) == (RestartPolicy.restart, False, 5)
    assert svc(restart="always").restart_on_success is True


def test_service_defaults() -> None:
    s = svc()
    assert s.command is None and s.entrypoint is None
    assert (s.environment, s.labels, s.ports, s.volumes, s.ulimits) == ({}, {}, [], [], {})
    assert s.restart is RestartPolicy.restart and s.restart_on_success is True
    assert s.restart_count is None and s.instances == 1
    assert (s.cpus, s.memory, s.disk) == (None, None, None)
    assert s.stop_grace_period == 10.0
    assert s.group is None and group_policy_of([s]) is GroupPolicy.one_for_one
    assert s.healthcheck is None and s.on_unhealthy is OnUnhealthy.restart
    assert s.privileged is False and s.auto_remove is False
    assert s.pull_policy is PullPolicy.missing


def test_pull_policy_does_not_change_the_spec_hash() -> None:
    # it says when to fetch the image, not what the container is: no replacement on a change
    assert svc(pull_policy="always").spec_hash() == svc().spec_hash()


PORTS = [
    ("80", Port(target=80)),
    (80, Port(target=80)),
    ("8080:80", Port(target=80, published=8080)),
    ("8080:80/udp", Port(target=80, published=8080, protocol="udp")),
    ("127.0.0.1:8080:80", Port(target=80, published=8080, host_ip="127.0.0.1")),
    ({"target": 80, "published": "8080", "protocol": "tcp"}, Port(target=80, published=8080)),
    ({"target": 53, "protocol": "udp", "name": "dns"}, Port(target=53, protocol="udp", name="dns")),
]


@pytest.mark.parametrize(("given", "expected"), PORTS)
def test_ports(given: Any, expected: Port) -> None:
    assert svc(ports=[given]).ports == [expected]


@pytest.mark.parametrize("given", ["a:b", "1:2:x", ":80", "70000", "80-70", "8000-8001:80-82",
                                   "[::1:80:80"])
def test_bad_ports(given: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        svc(ports=[given])


VOLUMES = [
    ("/data", Volume(type="volume", target="/data")),
    ("/data:ro", Volume(type="volume", target="/data", read_only=True)),
    ("cache:/data", Volume(type="volume", source="cache", target="/data")),
    ("/srv:/data", Volume(type="bind", source="/srv", target="/data")),
    ("./srv:/data:ro", Volume(type="bind", source="./srv", target="/data", read_only=True)),
    ("~/x:/data:rw", Volume(type="bind", source="~/x", target="/data")),
    ({"source": "/srv", "target": "/data"}, Volume(type="bind", source="/srv", target="/data")),
    ({"source": "cache", "target": "/d"}, Volume(type="volume", source="cache", target="/d")),
    ({"type": "bind", "source": "/s", "target": "/d", "read_only": True},
     Volume(type="bind", source="/s", target="/d", read_only=True)),
]  # fmt: skip


@pytest.mark.parametrize(("given", "expected"), VOLUMES)
def test_volumes(given: Any, expected: Volume) -> None:
    assert svc(volumes=[given]).volumes == [expected]


@pytest.mark.parametrize("given", ["rel", "a:rel", "/a:/b:rx", "/a:/b:ro:x", {"type": "tmpfs", "target": "/t", "source": "x"}, "/a:/b:ro,q",
                                   {"type": "bind", "source": "/a", "target": "/b", "subpath": "x"}])
def test_bad_volumes(given: Any) -> None:
    with pytest.raises(pydantic.ValidationError):
        svc(volumes=[given])


def test_ulimits_number_or_soft_hard() -> None:
    s = svc(ulimits={"nofile": 1024, "nproc": {"soft": 10, "hard": 20}, "core": {"soft": -1, "hard": -1}})
    assert s.ulimits == {
        "nofile": Ulimit(soft=1024, hard=1024),
        "nproc": Ulimit(soft=10, hard=20),
        "core": Ulimit(soft=-1, hard=-1),
    }
    with pytest.raises(pydantic.ValidationError, match="soft limit 30 is above hard limit 20"):
        svc(ulimits={"nproc": {"soft": 30, "hard": 20}})


HEALTHCHECKS = [
    ("curl -f localhost", ["CMD-SHELL", "curl -f localhost"], True),
    (["curl", "-f", "localhost"], ["CMD", "curl", "-f", "localhost"], False),
    (["CMD", "true"], ["CMD", "true"], False),
    (["CMD-SHELL", "exit 0"], ["CMD-SHELL", "exit 0"], False),
    ({"test": "exit 0"}, ["CMD-SHELL", "exit 0"], True),
    ({"cmd": ["nc", "-z", "localhost", 80]}, ["CMD", "nc", "-z", "localhost", "80"], False),
    ({"cmd": ["echo", "a b"], "shell": True}, ["CMD-SHELL", "echo 'a b'"], True),
    ({"test": ["NONE"]}, ["NONE"], False),
]


@pytest.mark.parametrize(("given", "test", "shell"), HEALTHCHECKS)
def test_healthcheck_forms(given: Any, test: list[str], shell: bool) -> None:
    hc = svc(healthcheck=given).healthcheck
    assert hc is not None and (hc.test, hc.shell) == (test, shell)


def test_healthcheck_durations_and_defaults() -> None:
    hc = HealthCheck.model_validate({"test": "true", "interval": "1m", "timeout": "500ms", "start_period": 2})
    assert (hc.interval, hc.timeout, hc.start_period, hc.retries) == (60.0, 0.5, 2.0, 3)
    assert HealthCheck.model_validate("true").interval == 5.0


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"test": []}, "the health check needs a command"),
        (["CMD"], "the health check needs a command"),
        ({"test": "x", "cmd": "y"}, "give either 'test' or 'cmd', not both"),
        ({"test": "x", "interval": 0}, "must be above 0, got 0.0"),
        ({"test": "x", "timeout": "soon"}, "expected a duration like 5s or 500ms, got 'soon'"),
    ],
)
def test_bad_healthchecks(given: Any, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        svc(healthcheck=given)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"memory": "lots"}, "expected a size like 512m, got 'lots'"),
        ({"memory": "-1g"}, "expected a size like 512m, got '-1g'"),
        ({"stop_grace_period": "soon"}, "expected a duration like 5s or 500ms, got 'soon'"),
        ({"cpus": "many"}, "expected a number of CPUs like 0.5, got 'many'"),
        ({"instances": -1}, "expected a number of instances >= 0 or 'all', got -1"),
        ({"instances": "some"}, "expected a number of instances >= 0 or 'all', got 'some'"),
        ({"restart": "sometimes"}, "expected never or restart"),
        ({"environment": ["A"]}, "expected 'KEY=VALUE' items, got 'A'"),
        ({"labels": {"veo.service": "x"}}, "labels starting with 'veo.' are reserved"),
        ({"command": "echo 'oops"}, "cannot split"),
        ({"image": "bad image"}, "expected an image reference"),
        ({"name": "-bad"}, "is not a valid name"),
        ({"group": "a b"}, "is not a valid name"),
        ({"memroy": "1g"}, "Extra inputs are not permitted"),
        ({"pull_policy": "build"}, "veo does not build images"),
        ({"pull_policy": "daily"}, "expected missing, always or never"),
    ],
)
def test_bad_service_values(fields: dict, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        svc(**fields)


# --------------------------------------------------------------------------------------------------
# Nodes, settings
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "name", "host"),
    [
        ("uno@10.0.0.1", "uno", "10.0.0.1"),
        ("uno", "uno", "localhost"),
        ({"node": "uno@h"}, "uno", "h"),
        ({"node": "uno"}, "uno", "localhost"),
        ({"name": "dos", "host": "h2"}, "dos", "h2"),
        ({"node": "uno@h", "host": "other"}, "uno", "other"),
    ],
)
def test_node_forms(given: Any, name: str, host: str) -> None:
    node = Node.model_validate(given)
    assert (node.name, node.host) == (name, host)


def test_node_capacity_sizes() -> None:
    node = Node.model_validate({"name": "dos", "cpus": 2, "memory": "4g", "disk": "100g"})
    assert (node.cpus, node.memory, node.disk) == (2.0, 4 * 1024**3, 100 * 1024**3)
    with pytest.raises(pydantic.ValidationError, match="not both"):
        Node.model_validate({"node": "a@h", "name": "b"})


def test_settings_defaults_and_durations() -> None:
    assert Settings() == Settings.model_validate({})
    s = Settings.model_validate({"placement": "binpack", "budget_period": "2m", "backoff_initial": "250ms"})
    assert (s.placement, s.budget_period, s.backoff_initial) == (PlacementStrategy.binpack, 120.0, 0.25)
    assert (Settings().budget_restarts, Settings().budget_period) == (10, 60.0)


def test_cluster_defaults_and_service_names() -> None:
    spec = ClusterSpec.model_validate({"services": {"web": {"image": "x"}}})
    assert spec.name == "veo" and spec.nodes == [] and spec.settings == Settings()
    assert spec.services["web"].name == "web"


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------

SERVICE_RULES = [
    ({"group_role": "master"}, ("group_role", "needs a group")),
    ({"group_policy": "one_kills_all"}, ("group_policy", "needs a group")),
    ({"restart": "never", "restart_count": 3}, ("restart_count", "needs restart: restart (this service has restart: never)")),
    ({"on_unhealthy": "kill"}, ("on_unhealthy", "needs a healthcheck")),
    ({"auto_remove": True, "restart": "always"}, ("auto_remove", "cannot be combined with restart: restart; use restart: never")),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "error"), SERVICE_RULES)
def test_service_rules(fields: dict, error: tuple[str, str]) -> None:
    assert service_rule_errors(svc(**fields)) == [error]
    with pytest.raises(pydantic.ValidationError, match=re.escape(error[1])):
        Service.model_validate({"name": "web", "image": "x", **fields})


@pytest.mark.parametrize(
    "fields",
    [{}, {"restart": "never"}, {"auto_remove": True}, {"auto_remove": True, "restart": "never"},
     {"group": "g", "group_role": "master"}, {"healthcheck": "true", "on_unhealthy": "leave"}],
)  # fmt: skip
def test_service_rules_pass(fields: dict) -> None:
    assert service_rule_errors(svc(**fields)) == []


CLUSTER_RULES = [
    (
        {"a": {"group": "g", "group_role": "master"}, "b": {"group": "g", "group_role": "master"}},
        (("services", "b", "group_role"), "group 'g' has more than one master: ['a', 'b']"),
    ),
    (
        {"a": {"group": "g", "group_policy": "master_kills_all"}, "b": {"group": "g"}},
        (("services", "a", "group_policy"),
         "group 'g' uses master_kills_all but no member has group_role: master"),
    ),
    (
        {"a": {"group": "g", "group_policy": "one_kills_all"}, "b": {"group": "g", "group_policy": "one_for_one"}},
        (("services", "a", "group_policy"), "members of group 'g' disagree on group_policy: one_for_one, one_kills_all"),
    ),
    (
        {"a": {"group": "g", "instances": 2}, "b": {"group": "g"}},
        (("services", "a", "instances"),
         "members of group 'g' disagree on instances (a=2, b=1); a group runs as a unit, "
         "so every member needs the same count"),
    ),
    (
        {"a": {"name": "b"}},
        (("services", "a", "name"), "name 'b' differs from its key 'a'"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("services", "error"), CLUSTER_RULES)
def test_cluster_rules(services: dict, error: tuple) -> None:
    assert check_cluster_rules(cluster(services)) == [error]
    with pytest.raises(pydantic.ValidationError):
        ClusterSpec.model_validate({"services": {k: {"image": "x", **v} for k, v in services.items()}})


def test_node_listed_twice() -> None:
    spec = cluster({}, nodes=["uno@a", "uno@b"])
    assert check_cluster_rules(spec) == [(("nodes", 1, "name"), "node 'uno' is listed twice")]


def test_good_group_passes_rules() -> None:
    spec = cluster(
        {
            "db": {"group": "g", "group_role": "master", "group_policy": "master_kills_all", "instances": 2},
            "app": {"group": "g", "group_role": "slave", "instances": 2},
        }
    )
    assert check_cluster_rules(spec) == []
    assert [s.name for s in spec.groups()["g"]] == ["db", "app"]
