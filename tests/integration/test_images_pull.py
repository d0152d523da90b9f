"""Images on a node: veo's local images built, others pulled from a real registry (Debian's
docker-registry on loopback) per pull_policy, by an engine other than the one that pushed."""

from __future__ import annotations

import docker
import pytest
from registry import Registry

from veo.adapters.docker_api import DockerRuntime
from veo.adapters.images import PullBackoff, ensure_image
from veo.core.errors import EngineUnavailable, ImageNotFound, RegistryUnavailable

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def pusher(engine):
    client = docker.DockerClient(base_url=engine.docker_host)
    yield client
    client.close()


@pytest.fixture(scope="module")
def puller(engine_pool):
    rt = DockerRuntime(engine_pool.get("puller").docker_host)
    yield rt
    rt.close()


def image_id(rt: DockerRuntime, ref: str) -> str | None:
    try:
        return rt._docker().api.inspect_image(ref)["Id"]
    except docker.errors.NotFound:
        return None


def test_engines_trust_loopback_registries(puller):
    # what lets the test registry go without TLS, as a documented default of dockerd
    cidrs = puller._docker().info()["RegistryConfig"]["InsecureRegistryCIDRs"]
    assert "127.0.0.0/8" in cidrs


def test_missing_image_is_pulled_and_then_left_alone(registry, pusher, puller):
    ref = registry.push(pusher, "veo/busybox:latest", "demo/app", "1")
    assert image_id(puller, ref) is None
    ensure_image(puller, ref, "missing")
    assert image_id(puller, ref) == pusher.api.inspect_image("veo/busybox:latest")["Id"]
    # present: no registry needed any more
    registry.stop()
    try:
        ensure_image(puller, ref, "missing")
    finally:
        registry.start()


def test_never_with_a_missing_image_fails_clearly(registry, pusher, puller):
    ref = registry.push(pusher, "veo/busybox:latest", "demo/never", "1")
    with pytest.raises(ImageNotFound) as e:
        ensure_image(puller, ref, "never")
    assert f"image '{ref}' is not on engine {puller.host}" in str(e.value)
    assert "pull_policy is never" in str(e.value)
    assert image_id(puller, ref) is None


def test_always_pulls_again(registry, pusher, puller):
    ref = registry.push(pusher, "veo/busybox:latest", "demo/moving", "1")
    ensure_image(puller, ref, "always")
    first = image_id(puller, ref)
    registry.push(pusher, "veo/httpd:latest", "demo/moving", "1")  # the tag moves
    ensure_image(puller, ref, "missing")
    assert image_id(puller, ref) == first  # missing: present, so not pulled
    ensure_image(puller, ref, "always")
    assert image_id(puller, ref) == pusher.api.inspect_image("veo/httpd:latest")["Id"] != first


@pytest.mark.parametrize("name", ["demo/app:no-such-tag", "nobody/nothing:1"])
def test_no_such_image_fails_naming_image_and_registry(registry, puller, name):
    ref = f"{registry.host}/{name}"
    with pytest.raises(ImageNotFound) as e:
        ensure_image(puller, ref, "missing")
    assert not isinstance(e.value, EngineUnavailable)  # permanent
    assert f"image '{ref}' does not exist in registry {registry.host}" in str(e.value)


def test_unreachable_registry_is_temporary_with_back_off(registry, pusher, puller):
    ref = registry.push(pusher, "veo/busybox:latest", "demo/later", "1")
    clock = Clock()
    backoff = PullBackoff(clock)
    registry.stop()
    try:
        with pytest.raises(RegistryUnavailable) as e:
            ensure_image(puller, ref, "missing", backoff=backoff)
        assert isinstance(e.value, EngineUnavailable)  # the agent's temporary kind
        assert f"registry {registry.host} did not answer the pull of '{ref}'" in str(e.value)
        assert "connection refused" in str(e.value) and "retrying in 1s" in str(e.value)
        with pytest.raises(RegistryUnavailable, match="next try in 1s"):  # not asked again yet
            ensure_image(puller, ref, "missing", backoff=backoff)
        clock.now += 1.5
        with pytest.raises(RegistryUnavailable, match="retrying in 2s"):  # asked, still down
            ensure_image(puller, ref, "missing", backoff=backoff)
    finally:
        registry.start()
    with pytest.raises(RegistryUnavailable):  # still backing off although it is back
        ensure_image(puller, ref, "missing", backoff=backoff)
    clock.now += 2.5
    ensure_image(puller, ref, "missing", backoff=backoff)
    assert image_id(puller, ref) is not None


def test_local_images_are_built_not_pulled(puller):
    puller._docker().api.remove_image("veo/httpd:latest", force=True)
    ensure_image(puller, "veo/httpd", "always")  # no registry has it: always cannot mean pull
    assert image_id(puller, "veo/httpd:latest") is not None


def test_denied_pull_fails_and_the_nodes_credentials_let_it_through(
        pusher, puller, engine_pool, tmp_path, monkeypatch):
    private = Registry(auth=True)
    try:
        ref = private.push(pusher, "veo/busybox:latest", "secret/app", "1")
        with pytest.raises(ImageNotFound) as e:
            ensure_image(puller, ref, "missing")
        assert f"pull of image '{ref}' from registry {private.host} was denied" in str(e.value)
        assert f"docker login {private.host}" in str(e.value)
        # the node's Docker credentials: the config `docker login` writes, read by docker-py
        monkeypatch.setenv("DOCKER_CONFIG", str(private.docker_config(tmp_path / "docker")))
        logged_in = DockerRuntime(puller.base_url)
        try:
            ensure_image(logged_in, ref, "missing")
            assert image_id(logged_in, ref) is not None
        finally:
            logged_in.close()
    finally:
        private.close()
