"""The local images veo's examples and tests run: built from the host's static busybox.

No registry has them, so ``ensure_images`` builds the images on an engine from a root filesystem
assembled in memory and handed to ``docker import``:

* ``veo/busybox:latest`` - busybox with every applet linked in /bin; CMD ``/bin/sh``.
* ``veo/httpd:latest`` - the same plus ``/www/index.html`` ("veo ok"); CMD ``httpd -f -v -p 8080
  -h /www``. With network_mode host it serves on 127.0.0.1:8080; another port is just another
  command, e.g. ``command: [httpd, -f, -v, -p, "9090", -h, /www]``.

The tar is deterministic (fixed order, owners and times), and each image carries the hash of its
tar and settings as a label, so an engine that already has the same image is left alone and one
with an outdated image (say, after a busybox upgrade) gets it rebuilt.

``ensure_image`` is what a node's agent calls before each create: veo's local images are built
when missing, any other image is pulled from its registry per the service's ``pull_policy``.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from veo.core.errors import ImageNotFound, RegistryUnavailable, VeoError
from veo.core.models import PullPolicy
from veo.adapters.docker_api import DockerRuntime

BUSYBOX_IMAGE = "veo/busybox:latest"
HTTPD_IMAGE = "veo/httpd:latest"
HTTPD_PORT = 8080
BUSYBOX_PATH = "/bin/busybox"
from veo.core.names import LABEL_IMAGE_BUILD as LABEL_BUILD
_PATH_ENV = "PATH=/bin:/sbin:/usr/bin"
_PT_INTERP = 3

_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"
_HOSTS = b"127.0.0.1 localhost\n::1 localhost\n"


class ImageBuildError(VeoError):
    """The local images cannot be built on this machine (busybox missing or not static)."""


@dataclass(frozen=True)
class ImageSpec:
    ref: str
    cmd: list[str]
    files: dict[str, bytes] = field(default_factory=dict)


IMAGES = (
    ImageSpec(BUSYBOX_IMAGE, ["/bin/sh"]),
    ImageSpec(
        HTTPD_IMAGE,
        ["httpd", "-f", "-v", "-p", str(HTTPD_PORT), "-h", "/www"],
        {"www/index.html": b"veo ok\n"},
    ),
)


# --------------------------------------------------------------------------------------------------
# The busybox binary
# --------------------------------------------------------------------------------------------------


def has_interpreter(elf: bytes) -> bool:
    """Whether an ELF file asks for a dynamic loader (a PT_INTERP program header): such a binary
    cannot run in a root filesystem that holds nothing but itself."""
    if elf[:4] != b"\x7fELF" or elf[4] not in (1, 2) or elf[5] not in (1, 2):
        raise ValueError("not an ELF file")
    order = "<" if elf[5] == 1 else ">"
    if elf[4] == 2:  # 64-bit header
        (phoff,) = struct.unpack_from(order + "Q", elf, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", elf, 54)
    else:
        (phoff,) = struct.unpack_from(order + "I", elf, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", elf, 42)
    for i in range(phnum):
        (p_type,) = struct.unpack_from(order + "I", elf, phoff + i * phentsize)
        if p_type == _PT_INTERP:
            return True
    return False


def read_busybox(path: str = BUSYBOX_PATH) -> tuple[bytes, list[str]]:
    """The binary and its applet names (without ``busybox`` itself: a link by that name would
    replace the binary)."""
    hint = "install the Debian package busybox-static (`make install` does)"
    try:
        data = open(path, "rb").read()
    except OSError as e:
        raise ImageBuildError(
            f"cannot build veo's local images: {path}: {e.strerror}; {hint}"
        ) from None
    try:
        dynamic = has_interpreter(data)
    except (ValueError, struct.error):
        raise ImageBuildError(f"{path} is not an ELF executable; {hint}") from None
    if dynamic:
        raise ImageBuildError(
            f"{path} is dynamically linked and cannot run alone in an image; {hint} "
            "(it replaces the dynamic busybox package)"
        )
    out = subprocess.run([path, "--list"], capture_output=True, check=True, timeout=10)
    applets = sorted({a for a in out.stdout.decode().split() if a and a != "busybox"})
    return data, applets


# --------------------------------------------------------------------------------------------------
# Root filesystems
# --------------------------------------------------------------------------------------------------


def rootfs_tar(busybox: bytes, applets: list[str], files: dict[str, bytes] | None = None) -> bytes:
    """A root filesystem as an uncompressed tar, byte for byte the same for the same input."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs = ["bin", "dev", "etc", "proc", "root", "sys", "tmp", "usr", "var", "var/www"]
        dirs += sorted({p.rsplit("/", 1)[0] for p in (files or {}) if "/" in p} - set(dirs))
        for d in dirs:
            _add(tar, d, tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
        _add(tar, "bin/busybox", data=busybox, mode=0o755)
        for applet in applets:
            _add(tar, f"bin/{applet}", tarfile.SYMTYPE, link="busybox")
        # scripts written for /usr/bin/env or /sbin find the same applets there
        for link, target in (("sbin", "bin"), ("usr/bin", "../bin"), ("usr/sbin", "../bin")):
            _add(tar, link, tarfile.SYMTYPE, link=target)
        base = {"etc/passwd": _PASSWD, "etc/group": _GROUP, "etc/hosts": _HOSTS}
        for path, data in sorted({**base, **(files or {})}.items()):
            _add(tar, path, data=data)
    return buf.getvalue()


def _add(
    tar: tarfile.TarFile,
    name: str,
    kind: bytes = tarfile.REGTYPE,
    *,
    data: bytes = b"",
    mode: int = 0o644,
    link: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode if kind != tarfile.SYMTYPE else 0o777, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def image_changes(spec: ImageSpec, build: str) -> list[str]:
    """Dockerfile instructions ``docker import`` applies on top of the rootfs."""
    return [
        f"ENV {_PATH_ENV}",
        f"CMD {json.dumps(spec.cmd)}",
        f"LABEL {LABEL_BUILD}={build}",
    ]


def build_hash(tar: bytes, spec: ImageSpec) -> str:
    h = hashlib.sha256(tar)
    h.update(repr((spec.ref, spec.cmd, _PATH_ENV)).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Engine side
# --------------------------------------------------------------------------------------------------


def ensure_images(
    runtime_or_client: Any, *, force: bool = False, busybox_path: str = BUSYBOX_PATH
) -> list[str]:
    """Build veo's local images on one engine where missing or outdated (all with ``force``).
    Accepts a ``DockerRuntime`` or a docker-py ``DockerClient``. Returns the refs it built."""
    runtime = runtime_or_client
    if not isinstance(runtime, DockerRuntime):
        runtime = DockerRuntime(client=runtime_or_client)
    busybox, applets = read_busybox(busybox_path)
    built = []
    for spec in IMAGES:
        tar = rootfs_tar(busybox, applets, spec.files)
        build = build_hash(tar, spec)
        labels = None if force else runtime.image_labels(spec.ref)
        if labels is not None and labels.get(LABEL_BUILD) == build:
            continue
        runtime.import_image(tar, spec.ref, image_changes(spec, build))
        built.append(spec.ref)
    return built


# --------------------------------------------------------------------------------------------------
# Any image, per pull_policy (what a node's agent calls before it creates a container)
# --------------------------------------------------------------------------------------------------

LOCAL_REFS = frozenset(spec.ref for spec in IMAGES)
DEFAULT_REGISTRY = "docker.io"
BACKOFF_INITIAL, BACKOFF_MAX = 1.0, 30.0


def normalise_ref(image: str) -> str:
    """``veo/busybox`` -> ``veo/busybox:latest``; a tag or digest given is kept."""
    last = image.rsplit("/", 1)[-1]
    return image if ("@" in image or ":" in last) else f"{image}:latest"


def registry_of(image: str) -> str:
    """The registry an image reference names, as Docker reads it: the first component when it
    looks like a host (a '.' or ':' in it, or ``localhost``), else Docker Hub."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DEFAULT_REGISTRY


class PullBackoff:
    """Per engine and image: when an unreachable registry may be asked again. The agent retries
    a create at every converge (about a second); this keeps the registry from being asked more
    often than 1 s, 2 s, 4 s ... 30 s apart, and the reason says when the next try is."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._next: dict[tuple[str, str], tuple[float, float, str]] = {}  # at, delay, reason
        self._lock = threading.Lock()

    def check(self, key: tuple[str, str]) -> None:
        with self._lock:
            entry = self._next.get(key)
        if entry and self.clock() < entry[0]:
            raise RegistryUnavailable(f"{entry[2]}; next try in {entry[0] - self.clock():.0f}s")

    def failed(self, key: tuple[str, str], error: RegistryUnavailable) -> RegistryUnavailable:
        with self._lock:
            old = self._next.get(key)
            delay = min(BACKOFF_MAX, old[1] * 2) if old else BACKOFF_INITIAL
            self._next[key] = (self.clock() + delay, delay, str(error))
        return RegistryUnavailable(f"{error}; retrying in {delay:g}s")

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._next.pop(key, None)


_BACKOFF = PullBackoff()


def ensure_image(runtime: DockerRuntime, image: str, pull_policy: PullPolicy | str = "missing",
                 backoff: PullBackoff = _BACKOFF) -> None:
    """Make ``image`` present on ``runtime``'s engine before a create. veo's own local images
    are built when missing (never pulled: no registry has them); any other image is pulled per
    ``pull_policy``. Raises ImageNotFound (permanent: no such image, denied, ``never`` and
    absent) or RegistryUnavailable (temporary: retry later)."""
    ref, policy = normalise_ref(image), PullPolicy(pull_policy)
    if ref in LOCAL_REFS:
        if not runtime.image_exists(ref):
            ensure_images(runtime)
        return
    if policy is not PullPolicy.always and runtime.image_exists(ref):
        return
    registry = registry_of(ref)
    if policy is PullPolicy.never:
        raise ImageNotFound(f"image {ref!r} is not on engine {runtime.host} and its pull_policy "
                            f"is never (load it there, or use pull_policy: missing to pull it "
                            f"from {registry})")
    key = (runtime.host, ref)
    backoff.check(key)
    try:
        runtime.pull(ref, registry)
    except RegistryUnavailable as e:
        raise backoff.failed(key, e) from None
    backoff.succeeded(key)
