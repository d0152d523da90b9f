"""The cluster policy: each host-level power refused by default, named with its field and switch,
reported by the loader at the field's line, and raised by ``enforce`` as a PolicyError (403)."""

from __future__ import annotations

import pickle
import textwrap

import pytest

from veo.core.config import parse_spec
from veo.core.errors import PolicyError, SpecError
from veo.core.models import ClusterSpec, Service
from veo.core.policy import Policy, check, enforce, exposes_docker_socket


def svc(**kw) -> Service:
    return Service(name="x", image="veo/busybox", **kw)


POWERS = [
    ({"privileged": True}, "privileged", "allow_privileged"),
    ({"pid_mode": "host"}, "pid_mode", "allow_host_pid"),
    ({"network_mode": "host"}, "network_mode", "allow_host_network"),
    ({"cap_add": ["NET_ADMIN"]}, "cap_add", "allow_cap_add"),
    ({"devices": ["/dev/fuse"]}, "devices", "allow_devices"),
    ({"volumes": ["/srv:/data"]}, "volumes.0", "allow_host_mounts"),
    ({"volumes": ["/var/run/docker.sock:/run/docker.sock"]}, "volumes.0", "allow_docker_socket"),
]


@pytest.mark.parametrize("fields, path, switch", POWERS)
def test_each_power_is_refused_by_default_and_allowed_by_its_switch(fields, path, switch):
    problems = check(svc(**fields), Policy())
    assert [p.path for p in problems] == [f"services.x.{path}"]
    assert problems[0].message.endswith(
        f"refused by the cluster policy (set policy.{switch}: true to allow it)")
    assert check(svc(**fields), Policy(**{switch: True})) == []


def test_ordinary_services_need_nothing():
    assert check(svc(network_mode="none", volumes=["data:/data", "/tmp"], pid_mode="container:y",
                     cap_drop=["ALL"]), Policy()) == []


@pytest.mark.parametrize("source, socket", [
    ("/var/run/docker.sock", True), ("/run/docker.sock", True), ("/var/run", True), ("/", True),
    ("/var/run/../run/docker.sock", True), ("/home/me/docker.sock", True),
    ("/run/containerd/containerd.sock", True), ("/srv/www", False), ("./data", False),
])
def test_docker_socket_detection(source, socket):
    assert exposes_docker_socket(source) is socket


def test_host_mounts_do_not_open_the_socket():
    problems = check(svc(volumes=["/:/host"]), Policy(allow_host_mounts=True))
    assert [p.message.split(":")[0] for p in problems] == [
        "bind mount of / exposes the Docker socket (root on the host)"]


def test_enforce_lists_every_violation_and_crosses_processes():
    with pytest.raises(PolicyError) as info:
        enforce({"x": svc(privileged=True, network_mode="host")}, Policy())
    assert str(info.value).splitlines() == [
        "services.x.privileged: refused by the cluster policy (set policy.allow_privileged: true "
        "to allow it)",
        "services.x.network_mode: the host's network: refused by the cluster policy (set "
        "policy.allow_host_network: true to allow it)"]
    assert info.value.http_status == 403
    again = pickle.loads(pickle.dumps(info.value))  # as Ray carries it from the Scheduler
    assert str(again) == str(info.value) and len(again.problems) == 2
    enforce([svc()], Policy())


def test_the_loader_reports_violations_at_their_line():
    text = textwrap.dedent("""\
        services:
          x:
            image: veo/busybox
            privileged: true
            volumes:
              - /var/run/docker.sock:/s
        """)
    with pytest.raises(SpecError) as info:
        parse_spec(text, "cluster.yml")
    assert [str(p) for p in info.value.problems] == [
        "cluster.yml:4:17: services.x.privileged: refused by the cluster policy (set "
        "policy.allow_privileged: true to allow it)",
        "cluster.yml:6:9: services.x.volumes.0: bind mount of /var/run/docker.sock exposes the "
        "Docker socket (root on the host): refused by the cluster policy (set "
        "policy.allow_docker_socket: true to allow it)"]
    allowed = parse_spec("policy:\n  allow_privileged: true\n  allow_docker_socket: true\n" + text,
                         "cluster.yml")
    assert allowed.spec.policy.allow_privileged is True


def test_policy_keys_are_checked_like_any_other():
    with pytest.raises(SpecError) as info:
        parse_spec("policy:\n  allow_privilege: true\nservices: {}\n", "cluster.yml")
    assert str(info.value) == ("cluster.yml:2:3: policy.allow_privilege: unknown key, did you "
                               "mean 'allow_privileged'?")


def test_a_spec_built_in_code_carries_a_refusing_policy():
    assert ClusterSpec().policy == Policy()
    assert not any(Policy().model_dump().values())
