"""The Docker layer against a real private dockerd: translate -> runtime -> engine -> inspect.

One engine ("t1") is shared by the module; each test labels its containers with its own cluster
name (the ``veo_cluster`` fixture removes them afterwards). Stop timeouts are kept short.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from typer.testing import CliRunner

from veo.cli.engine import engine_app
from veo.adapters.dockerd import EngineHandle, engine_paths, engine_status, ensure_engine, stop_engine
from veo.core.errors import EngineError, ImageNotFound
from veo.adapters.images import (
    BUSYBOX_IMAGE,
    HTTPD_IMAGE,
    ImageBuildError,
    ensure_images,
    has_interpreter,
    read_busybox,
    rootfs_tar,
)
from veo.core.models import Service
from veo.adapters.docker_api import DockerRuntime
from veo.core.names import LABEL_CLUSTER, LABEL_SERVICE, LABEL_SPEC_HASH
from veo.core.translate import create_kwargs

pytestmark = [pytest.mark.docker, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def raw(engine: EngineHandle) -> Iterator[docker.DockerClient]:
    """docker-py itself, to check what reached the engine independently of DockerRuntime."""
    client = docker.DockerClient(base_url=engine.docker_host)
    yield client
    client.close()


def service(**fields: Any) -> Service:
    return Service.model_validate({"name": "web", "image": BUSYBOX_IMAGE, **fields})


def create(runtime: DockerRuntime, cluster: str, svc: Service, instance: int = 1) -> str:
    kw = create_kwargs(svc, cluster=cluster, instance=instance, generation=1, node="n1")
    return runtime.create(kw)


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# Every field the engine honours here
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full(
    runtime: DockerRuntime, raw: docker.DockerClient, engine_pool: Any, tmp_path_factory: Any
) -> Iterator[tuple[Service, str, Path, str]]:
    """One container using every field this engine honours: (service, id, bind dir, volume)."""
    cluster = f"t{uuid.uuid4().hex[:10]}"
    bind = tmp_path_factory.mktemp("bind")
    bind.chmod(0o755)  # the container runs as nobody
    (bind / "hello").write_text("hello from the host\n")
    volume = f"{cluster}-data"
    svc = service(
        entrypoint=["/bin/sh", "-c"],
        command=["echo started; exec sleep 300"],
        environment={"GREETING": "hi"},
        labels={"team": "a"},
        working_dir="/tmp",
        user="nobody",
        cpus=0.5,
        memory="64m",
        ulimits={"nofile": {"soft": 1024, "hard": 2048}},
        dns=["1.1.1.1"],
        pid_mode="host",
        network_mode="none",
        cap_add=["NET_ADMIN"],
        cap_drop=["MKNOD"],
        devices=["/dev/null:/dev/xnull:rw"],
        volumes=[f"{bind}:/data:ro", f"{volume}:/vol"],
        healthcheck={"test": "test -f /data/hello", "interval": "200ms", "timeout": "2s"},
        stop_grace_period="1500ms",
    )
    try:
        yield svc, create(runtime, cluster, svc), bind, volume
    finally:
        engine_pool.remove_cluster(cluster)
        with contextlib.suppress(docker.errors.NotFound):
            raw.volumes.get(volume).remove(force=True)


def test_every_field_reaches_docker(raw: docker.DockerClient, full: tuple) -> None:
    svc, cid, bind, volume = full
    a = raw.api.inspect_container(cid)
    config, host = a["Config"], a["HostConfig"]
    assert "GREETING=hi" in config["Env"]
    assert config["Labels"]["team"] == "a" and config["Labels"][LABEL_SERVICE] == "web"
    assert config["Labels"][LABEL_SPEC_HASH] == svc.spec_hash()
    assert config["Cmd"] == ["echo started; exec sleep 300"]
    assert config["Entrypoint"] == ["/bin/sh", "-c"]
    assert (config["WorkingDir"], config["User"]) == ("/tmp", "nobody")
    assert config["StopTimeout"] == 2
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /data/hello"],
        "Interval": 200_000_000,
        "Timeout": 2_000_000_000,
        "Retries": 3,
    }  # Docker leaves out a zero StartPeriod
    assert (host["NanoCpus"], host["Memory"]) == (500_000_000, 64 * 1024 * 1024)
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert host["Dns"] == ["1.1.1.1"]
    assert (host["PidMode"], host["NetworkMode"]) == ("host", "none")
    assert (host["CapAdd"], host["CapDrop"]) == (["NET_ADMIN"], ["MKNOD"])
    assert host["AutoRemove"] is False and host["Privileged"] is False
    assert host["Devices"] == [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull", "CgroupPermissions": "rw"}
    ]
    assert host["Mounts"] == [
        {"Type": "bind", "Source": str(bind), "Target": "/data", "ReadOnly": True},
        {"Type": "volume", "Source": volume, "Target": "/vol"},
    ]


def test_the_full_container_runs_and_turns_healthy(runtime: DockerRuntime, full: tuple) -> None:
    svc, cid, _, _ = full
    runtime.start(cid)
    state = wait_for(
        lambda: (s := runtime.inspect(cid)) and s.health == "healthy" and s, what="healthy"
    )
    assert state.running and state.started_at and state.name.endswith("_web_1_g1")
    assert runtime.exec(cid, ["cat", "/data/hello"]) == (0, "hello from the host\n")
    code, _ = runtime.exec(cid, ["touch", "/data/new"])
    assert code != 0, "a read-only bind mount accepted a write"
    assert "GREETING=hi" in runtime.exec(cid, ["env"])[1]
    assert runtime.exec(cid, ["test", "-c", "/dev/xnull"])[0] == 0
    assert runtime.exec(cid, ["id", "-un"])[1].strip() == "nobody"
    assert "started" in runtime.logs(cid)


def test_auto_remove_container_is_gone_after_it_exits(
    runtime: DockerRuntime, raw: docker.DockerClient, veo_cluster: str
) -> None:
    cid = create(runtime, veo_cluster, service(command=["true"], auto_remove=True, restart="never"))
    assert raw.api.inspect_container(cid)["HostConfig"]["AutoRemove"] is True
    runtime.start(cid)
    wait_for(lambda: runtime.inspect(cid) is None, what="auto removal")


def test_no_network_mode_on_a_bridgeless_engine_means_none(
    runtime: DockerRuntime, raw: docker.DockerClient, veo_cluster: str
) -> None:
    assert runtime.has_bridge() is False
    cid = create(runtime, veo_cluster, service(command=["true"]))
    assert raw.api.inspect_container(cid)["HostConfig"]["NetworkMode"] == "none"
    with pytest.raises(EngineError, match="no bridge network .* use network_mode: host"):
        create(runtime, veo_cluster, service(name="pub", ports=["8080:80"]))


def test_httpd_on_the_host_network_answers(
    runtime: DockerRuntime, raw: docker.DockerClient, veo_cluster: str
) -> None:
    cmd = raw.images.get(HTTPD_IMAGE).attrs["Config"]["Cmd"]
    assert cmd == ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
    port = free_port()  # the image's 8080 may be taken by another test's httpd
    svc = service(image=HTTPD_IMAGE, network_mode="host", command=[*cmd[:4], str(port), *cmd[5:]])
    cid = create(runtime, veo_cluster, svc)
    runtime.start(cid)

    def fetch() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                return r.read().decode()
        except OSError:
            return None

    assert wait_for(fetch, what=f"httpd on 127.0.0.1:{port}") == "veo ok\n"


# --------------------------------------------------------------------------------------------------
# create: idempotence and refusals
# --------------------------------------------------------------------------------------------------


def test_create_is_idempotent(runtime: DockerRuntime, veo_cluster: str) -> None:
    svc = service(command=["sleep", "300"])
    first, second = create(runtime, veo_cluster, svc), create(runtime, veo_cluster, svc)
    assert first == second
    assert [c.id for c in runtime.list(labels={LABEL_CLUSTER: veo_cluster})] == [first]


def test_name_clash_with_another_identity_is_refused(
    runtime: DockerRuntime, veo_cluster: str
) -> None:
    create(runtime, veo_cluster, service(command=["sleep", "300"]))
    with pytest.raises(EngineError, match="already exists and is not this veo instance"):
        create(runtime, veo_cluster, service(command=["sleep", "301"]))  # same name, other spec


def test_missing_image_is_image_not_found(runtime: DockerRuntime, veo_cluster: str) -> None:
    with pytest.raises(ImageNotFound) as info:
        create(runtime, veo_cluster, service(image="veo/nope:1"))
    text = str(info.value)
    assert "image 'veo/nope:1' not found on engine unix://" in text
    assert "build or load it on every node" in text
    assert runtime.image_exists(BUSYBOX_IMAGE) and not runtime.image_exists("veo/nope:1")


def test_missing_bind_source_is_an_engine_error(runtime: DockerRuntime, veo_cluster: str) -> None:
    svc = service(volumes=["/nonexistent/veo-test:/x"])
    with pytest.raises(EngineError, match="bind source path does not exist"):
        create(runtime, veo_cluster, svc)


def test_privileged_reaches_docker_and_a_refused_start_is_explained(
    runtime: DockerRuntime, raw: docker.DockerClient, veo_cluster: str
) -> None:
    svc = service(name="priv", command=["sleep", "300"], privileged=True)
    cid = create(runtime, veo_cluster, svc)
    assert raw.api.inspect_container(cid)["HostConfig"]["Privileged"] is True
    try:
        runtime.start(cid)
    except EngineError as e:  # this VM's kernel refuses the capabilities
        text = str(e)
        assert f"cannot start container '{veo_cluster}_priv_1_g1' of service 'priv'" in text
        assert "engine unix://" in text and "operation not permitted" in text
        assert "Traceback" not in text
    else:  # a kernel that allows privileged containers
        assert runtime.inspect(cid).running


# --------------------------------------------------------------------------------------------------
# Observing containers
# --------------------------------------------------------------------------------------------------


def test_events_see_start_and_die_with_exit_code(runtime: DockerRuntime, veo_cluster: str) -> None:
    since = time.time()
    cid = create(runtime, veo_cluster, service(command=["sh", "-c", "exit 7"], restart="never"))
    runtime.start(cid)
    wait_for(lambda: runtime.inspect(cid).status == "exited", what="exit")
    assert runtime.inspect(cid).exit_code == 7
    with runtime.events(since=since, until=time.time() + 0.5) as stream:
        mine = [e for e in stream if e.get("id") == cid]
    actions = [e["Action"] for e in mine]
    assert actions[:3] == ["create", "start", "die"], actions
    die = mine[2]["Actor"]["Attributes"]
    assert die["exitCode"] == "7" and die[LABEL_CLUSTER] == veo_cluster


def test_event_stream_closes_from_another_thread(runtime: DockerRuntime) -> None:
    stream = runtime.events()
    done = threading.Event()
    threading.Thread(target=lambda: (list(stream), done.set()), daemon=True).start()
    time.sleep(0.2)
    stream.close()
    assert done.wait(5), "the blocked reader did not end after close()"


def test_list_filters_by_label_and_removed_containers_are_gone(
    runtime: DockerRuntime, veo_cluster: str
) -> None:
    svc_a = service(name="a", command=["sleep", "300"], stop_grace_period=1)
    a = create(runtime, veo_cluster, svc_a)
    b = create(runtime, veo_cluster, service(name="b", command=["true"]))
    runtime.start(a)
    only_a = runtime.list(labels={LABEL_CLUSTER: veo_cluster, LABEL_SERVICE: "a"})
    assert [(c.id, c.running) for c in only_a] == [(a, True)]
    assert {c.id for c in runtime.list(labels={LABEL_CLUSTER: veo_cluster})} == {a, b}
    assert {c.id for c in runtime.list(labels={LABEL_CLUSTER: veo_cluster}, all=False)} == {a}
    detailed = runtime.list(labels={LABEL_CLUSTER: veo_cluster, LABEL_SERVICE: "a"}, detailed=True)
    assert detailed[0].started_at is not None

    t0 = time.monotonic()
    runtime.stop(a, timeout=1)
    assert time.monotonic() - t0 < 5
    assert runtime.inspect(a).exit_code == 137  # sleep as PID 1 ignores SIGTERM
    runtime.kill(a)  # not running any more: fine
    runtime.remove(a)
    assert runtime.inspect(a) is None
    runtime.remove(a)  # gone already: fine
    runtime.stop(a)
    runtime.kill(a)
    with pytest.raises(EngineError, match="start container"):
        runtime.start(a)


def test_exec_logs_and_stats(runtime: DockerRuntime, veo_cluster: str) -> None:
    svc = service(command=["sh", "-c", "echo hello-log; exec sleep 300"])
    cid = create(runtime, veo_cluster, svc)
    runtime.start(cid)
    wait_for(lambda: "hello-log" in runtime.logs(cid, tail=10), what="log line")
    code, output = runtime.exec(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert code == 3 and "out" in output and "err" in output
    with runtime.logs(cid, follow=True) as stream:
        assert "hello-log" in next(iter(stream))
    stats = runtime.stats(cid)
    assert stats["memory_usage"] > 0 and stats["cpu_percent"] >= 0.0
    with pytest.raises(EngineError, match="exec in container 'no-such-container'"):
        runtime.exec("no-such-container", ["true"])


def test_engine_info(runtime: DockerRuntime, engine: EngineHandle) -> None:
    info = runtime.info()
    assert info.cpus >= 1 and info.memory > 0 and info.disk > 0
    assert info.docker_root_dir.startswith(str(engine.state_dir)) and info.server_version


# --------------------------------------------------------------------------------------------------
# Engines and images
# --------------------------------------------------------------------------------------------------


def test_ensure_engine_is_idempotent_and_listed(engine_pool: Any, engine: EngineHandle) -> None:
    again = ensure_engine("t1", state_dir=engine_pool.state_dir, use_existing=False)
    assert again == engine and engine.private and engine.pid
    status = {s.name: s for s in engine_status(engine_pool.state_dir)}
    assert status["t1"].alive and status["t1"].answering and status["t1"].pid == engine.pid


def test_stop_engine_stops_exactly_its_pid(engine_pool: Any, engine: EngineHandle) -> None:
    other = ensure_engine("tstop", state_dir=engine_pool.state_dir, use_existing=False)
    try:
        assert other.pid != engine.pid and DockerRuntime(other.docker_host).ping()
    finally:
        assert stop_engine("tstop", state_dir=engine_pool.state_dir) is True
    assert not os.path.exists(f"/proc/{other.pid}")
    assert stop_engine("tstop", state_dir=engine_pool.state_dir) is False
    assert DockerRuntime(engine.docker_host).ping(), "stopping one engine touched another"
    status = {s.name: s for s in engine_status(engine_pool.state_dir)}
    assert not status["tstop"].alive and status["t1"].alive


def test_images_are_deterministic_and_built_once(runtime: DockerRuntime) -> None:
    busybox, applets = read_busybox()
    assert rootfs_tar(busybox, applets) == rootfs_tar(busybox, applets)
    assert ensure_images(runtime) == []  # the pool built them already
    t0 = time.monotonic()
    assert ensure_images(runtime, force=True) == [BUSYBOX_IMAGE, HTTPD_IMAGE]
    assert time.monotonic() - t0 < 4.0


def test_long_state_dirs_get_short_socket_paths(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 40)
    paths = engine_paths("t1", deep)
    assert paths.data_root == deep / "engines" / "t1" / "data"
    assert str(paths.socket).startswith("/tmp/veo-")
    assert len(str(paths.exec_root / "containerd" / "containerd.sock.ttrpc")) <= 100
    assert engine_paths("t1", deep) == paths  # found again by the next call


def test_a_dockerd_that_cannot_start_is_reported_with_its_log(engine_pool: Any) -> None:
    paths = engine_paths("tbad", engine_pool.state_dir)
    paths.socket.mkdir(parents=True)  # dockerd cannot listen on a directory
    with pytest.raises(EngineError) as info:
        ensure_engine("tbad", state_dir=engine_pool.state_dir, use_existing=False, timeout=20)
    text = str(info.value)
    assert "engine 'tbad': dockerd" in text and "last lines of" in text
    assert "docker.sock" in text.split("last lines of", 1)[1]  # quotes dockerd's own words
    assert not next(e for e in engine_status(engine_pool.state_dir) if e.name == "tbad").alive


def test_cli_status_and_errors(engine_pool: Any, engine: EngineHandle) -> None:
    runner = CliRunner()
    result = runner.invoke(engine_app, ["status", "--state-dir", str(engine_pool.state_dir)])
    assert result.exit_code == 0 and "t1" in result.output and str(engine.pid) in result.output
    result = runner.invoke(engine_app, ["down", "bad/name", "--state-dir", "/tmp"])
    assert result.exit_code == 1 and "engine name 'bad/name'" in result.output
    assert "Traceback" not in result.output


def test_busybox_must_be_static_and_present() -> None:
    assert has_interpreter(Path("/bin/busybox").read_bytes()) is False
    assert has_interpreter(Path(os.path.realpath("/bin/sh")).read_bytes()) is True  # dash: dynamic
    with pytest.raises(ImageBuildError, match="install the Debian package busybox-static"):
        read_busybox("/nonexistent/busybox")
    with pytest.raises(ImageBuildError, match="dynamically linked"):
        read_busybox(os.path.realpath("/bin/sh"))
