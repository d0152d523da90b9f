"""Docker's JSON -> ContainerState and stats, the create-argument bridge, streams and error
messages; no engine needed (samples are trimmed from a real Docker 20.10)."""

from __future__ import annotations

import threading

import pytest

from veo.core.errors import EngineError
from veo.core.models import Service
from veo.adapters.docker_api import (
    DockerRuntime,
    EngineStream,
    _explain,
    _split_ref,
    api_create_args,
    compute_stats,
    parse_inspect,
    parse_list_entry,
    parse_state,
)
from veo.core.translate import create_kwargs

RUNNING_HEALTHY = {
    "Id": "a2f2fb3bae0d",
    "Name": "/c1_web_1_g1",
    "RestartCount": 0,
    "Image": "sha256:2b628bfff195",
    "State": {
        "Status": "running",
        "Running": True,
        "OOMKilled": False,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": "2026-11-24T16:20:30.1Z",
        "FinishedAt": "0001-01-01T00:00:00Z",
        "Health": {"Status": "healthy", "FailingStreak": 0, "Log": []},
    },
    "Config": {"Image": "veo/busybox:latest", "Labels": {"veo.service": "web"}},
}

EXITED_OOM = {
    "Id": "b1",
    "Name": "/c1_db_1_g2",
    "RestartCount": 2,
    "State": {
        "Status": "exited",
        "Running": False,
        "OOMKilled": True,
        "ExitCode": 137,
        "Error": "",
        "StartedAt": "2026-11-24T16:20:30Z",
        "FinishedAt": "2026-11-24T16:20:31Z",
    },
    "Config": {"Image": "veo/busybox:latest", "Labels": None},
}

START_REFUSED = {
    "Id": "c1",
    "Name": "/c1_priv_1_g1",
    "State": {
        "Status": "created",
        "Running": False,
        "OOMKilled": False,
        "ExitCode": 128,
        "Error": "failed to create shim task: unable to apply caps: operation not permitted",
        "StartedAt": "0001-01-01T00:00:00Z",
        "FinishedAt": "0001-01-01T00:00:00Z",
    },
    "Config": {"Image": "veo/busybox:latest", "Labels": {}},
}


def test_inspect_running_and_healthy() -> None:
    s = parse_inspect(RUNNING_HEALTHY)
    assert (s.id, s.name, s.status, s.running, s.health) == (
        "a2f2fb3bae0d", "c1_web_1_g1", "running", True, "healthy"
    )  # fmt: skip
    assert s.exit_code is None and s.finished_at is None
    assert s.started_at == "2026-11-24T16:20:30.1Z"
    assert s.labels == {"veo.service": "web"}
    assert s.image == "veo/busybox:latest"


def test_inspect_exited_oom_killed() -> None:
    s = parse_inspect(EXITED_OOM)
    assert (s.status, s.running, s.exit_code, s.oom_killed, s.restart_count) == (
        "exited", False, 137, True, 2
    )  # fmt: skip
    assert s.labels == {} and s.health == "none"
    assert s.finished_at == "2026-11-24T16:20:31Z"


def test_inspect_start_refused_keeps_the_error_and_no_exit_code() -> None:
    s = parse_inspect(START_REFUSED)
    assert s.status == "created" and s.exit_code is None and s.started_at is None
    assert "unable to apply caps" in s.error


@pytest.mark.parametrize(
    ("state", "status", "running", "exit_code", "health"),
    [
        ("running", "Up 3 seconds (healthy)", True, None, "healthy"),
        ("running", "Up 2 minutes (health: starting)", True, None, "starting"),
        ("running", "Up 1 second (unhealthy)", True, None, "unhealthy"),
        ("running", "Up 5 seconds", True, None, "none"),
        ("exited", "Exited (3) 5 seconds ago", False, 3, "none"),
        ("exited", "Exited (137) About a minute ago", False, 137, "none"),
        ("created", "Created", False, None, "none"),
        ("restarting", "Restarting (1) 2 seconds ago", False, None, "none"),
        ("dead", "Dead", False, None, "none"),
    ],
)
def test_list_entry(state: str, status: str, running: bool, exit_code, health: str) -> None:
    entry = {
        "Id": "abc",
        "Names": ["/c1_web_1_g1"],
        "Image": "veo/busybox:latest",
        "Labels": {"veo.cluster": "c1"},
        "State": state,
        "Status": status,
    }
    s = parse_list_entry(entry)
    assert (s.status, s.running, s.exit_code, s.health) == (state, running, exit_code, health)
    assert s.name == "c1_web_1_g1" and s.labels == {"veo.cluster": "c1"}
    assert parse_state(entry) == s


def test_parse_state_tells_the_shapes_apart() -> None:
    assert parse_state(EXITED_OOM) == parse_inspect(EXITED_OOM)


def test_states_are_frozen_and_comparable() -> None:
    s = parse_inspect(EXITED_OOM)
    with pytest.raises(AttributeError):
        s.status = "running"  # type: ignore[misc]
    assert s == parse_inspect(EXITED_OOM)


# --------------------------------------------------------------------------------------------------
# Stats
# --------------------------------------------------------------------------------------------------

STATS_V1 = {
    "cpu_stats": {
        "cpu_usage": {"total_usage": 158287538, "percpu_usage": [102458292, 55829246]},
        "system_cpu_usage": 1162030000000,
        "online_cpus": 2,
    },
    "precpu_stats": {
        "cpu_usage": {"total_usage": 65015865},
        "system_cpu_usage": 1160110000000,
        "online_cpus": 2,
    },
    "memory_stats": {
        "usage": 2187264,
        "stats": {"cache": 1503232, "inactive_file": 94208, "total_inactive_file": 94208},
        "limit": 67108864,
    },
    "pids_stats": {"current": 1},
}


def test_stats_formula() -> None:
    # (158287538 - 65015865) / (1162030000000 - 1160110000000) * 2 CPUs * 100
    assert compute_stats(STATS_V1) == {
        "cpu_percent": 9.72,
        "memory_usage": 2187264 - 94208,
        "memory_limit": 67108864,
        "memory_percent": 3.12,
        "pids": 1,
    }


def test_stats_of_a_stopped_container_are_zero() -> None:
    out = compute_stats({"cpu_stats": {"cpu_usage": {}}, "precpu_stats": {}, "memory_stats": {}})
    assert out == {
        "cpu_percent": 0.0, "memory_usage": 0, "memory_limit": 0, "memory_percent": 0.0, "pids": 0
    }  # fmt: skip


def test_stats_cgroup_v2_without_online_cpus() -> None:
    sample = {
        "cpu_stats": {"cpu_usage": {"total_usage": 200, "percpu_usage": [1, 1, 1, 1]},
                      "system_cpu_usage": 1000},
        "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 0},
        "memory_stats": {"usage": 1000, "stats": {"inactive_file": 200}, "limit": 4000},
    }  # fmt: skip
    out = compute_stats(sample)
    assert out["cpu_percent"] == 40.0 and out["memory_usage"] == 800
    assert out["memory_percent"] == 20.0


# --------------------------------------------------------------------------------------------------
# The bridge to docker-py's low-level create
# --------------------------------------------------------------------------------------------------


def test_api_create_args_carries_every_translated_field() -> None:
    svc = Service.model_validate(
        {
            "name": "web", "image": "veo/httpd:latest", "command": ["httpd", "-f"],
            "entrypoint": ["/bin/sh"], "environment": {"A": "1"}, "ports": ["8080:80"],
            "volumes": ["/srv:/srv:ro"], "ulimits": {"nofile": 100}, "dns": ["1.1.1.1"],
            "cap_add": ["NET_ADMIN"], "cap_drop": ["MKNOD"], "devices": ["/dev/null"],
            "pid_mode": "host", "user": "nobody", "working_dir": "/tmp", "cpus": 0.5,
            "memory": "64m", "healthcheck": {"test": "true", "interval": "1s"},
            "stop_grace_period": "2s", "privileged": True,
        }
    )  # fmt: skip
    kw = create_kwargs(svc, cluster="c1", instance=1, generation=1, node="n1")
    args = api_create_args(kw, "1.41")
    assert args["stop_timeout"] == 2 and args["name"] == "c1_web_1_g1"
    assert args["healthcheck"]["interval"] == 1_000_000_000
    hc = args["host_config"]
    assert hc["NanoCpus"] == 500_000_000 and hc["Memory"] == 64 * 1024 * 1024
    assert hc["Ulimits"] == [{"Name": "nofile", "Soft": 100, "Hard": 100}]
    assert hc["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert hc["Mounts"][0]["Source"] == "/srv" and hc["Mounts"][0]["ReadOnly"] is True
    assert (hc["PidMode"], hc["Privileged"], hc["Dns"]) == ("host", True, ["1.1.1.1"])


@pytest.mark.parametrize(
    ("ref", "split"),
    [
        ("veo/busybox:latest", ("veo/busybox", "latest")),
        ("veo/busybox", ("veo/busybox", "latest")),
        ("localhost:5000/x", ("localhost:5000/x", "latest")),
        ("localhost:5000/x:1", ("localhost:5000/x", "1")),
    ],
)
def test_split_ref(ref: str, split: tuple[str, str]) -> None:
    assert _split_ref(ref) == split


# --------------------------------------------------------------------------------------------------
# Streams and errors
# --------------------------------------------------------------------------------------------------


class _BlockingInner:
    """Stands in for docker-py's stream: blocks until closed, then fails like a shut socket."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __next__(self):
        self.closed.wait(5)
        raise OSError("socket shut down")

    def close(self) -> None:
        self.closed.set()


def test_stream_closed_from_another_thread_ends_quietly() -> None:
    stream = EngineStream(_BlockingInner(), lambda e: e, "events")
    seen: list = []
    t = threading.Thread(target=lambda: seen.extend(stream))
    t.start()
    stream.close()
    t.join(5)
    assert not t.is_alive() and seen == []


def test_stream_that_breaks_by_itself_raises_engine_error() -> None:
    def broken():
        yield {"Action": "start"}
        raise OSError("connection reset")

    stream = EngineStream(broken(), lambda e: e, "event stream of engine X")
    assert next(stream) == {"Action": "start"}
    with pytest.raises(EngineError, match="event stream of engine X broke: connection reset"):
        next(stream)


def test_explain_adds_a_hint_for_kernel_refusals() -> None:
    err = Exception("runc: unable to apply caps: operation not permitted")
    assert "the kernel refused the container's privileges" in _explain(err)
    assert _explain(Exception("plain")) == "plain"


def test_unreachable_engine_is_an_engine_error_naming_it() -> None:
    rt = DockerRuntime("unix:///nonexistent/veo-test.sock", timeout=2)
    assert rt.ping() is False
    with pytest.raises(EngineError, match="engine unix:///nonexistent/veo-test.sock"):
        rt.inspect("c1_web_1_g1")
