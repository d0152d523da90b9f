"""The small value types of a service: ports, mounts, ulimits, health checks. Pydantic, no I/O.

Each accepts the short forms of docker-compose and normalises them (``"8080:80/udp"`` to a
structured port, ``"/src:/dst:ro,z"`` to a mount, ``"1m30s"`` to seconds), so that everything
downstream sees one shape. Re-exported by ``veo.core.models``.
"""

from __future__ import annotations

import enum
import shlex
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from veo.core.units import parse_duration, parse_size

class Strict(BaseModel):
    """Base for user-written models: unknown keys are errors (the loader adds 'did you mean')."""

    # YAML reads `user: 1000` or `test: [CMD, nc, -z, localhost, 80]` as numbers; compose takes them
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, validate_assignment=False, coerce_numbers_to_str=True
    )


# --------------------------------------------------------------------------------------------------
# Small value types
# --------------------------------------------------------------------------------------------------


class Port(Strict):
    """A published port. Short forms: ``"80"``, ``"8080:80"``, ``"127.0.0.1:8080:80/udp"``,
    ``"[::1]:8080:80"``; ``published`` may be a host range (``"6005-6015:80"``: Docker picks a
    free one), kept as ``published``..``published_end``. A range of container ports
    (``"3000-3005"``) is several ports: ``expand_ports`` splits it before validation."""

    target: int = Field(ge=1, le=65535)
    published: int | None = Field(default=None, ge=1, le=65535)
    published_end: int | None = Field(default=None, ge=1, le=65535)
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    host_ip: str | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return {"target": v}
        if isinstance(v, str):
            ports = _parse_port(v)
            if len(ports) != 1:
                raise ValueError(f"expected one port, got the range {v!r}")
            return ports[0]
        if isinstance(v, dict) and isinstance(v.get("published"), str) and "-" in v["published"]:
            low, high = _port_range(v["published"], v["published"])
            v = {**v, "published": low, "published_end": high if high != low else None}
        if isinstance(v, dict) and v.get("host_ip"):
            v = {**v, "host_ip": str(v["host_ip"]).strip("[]")}
        return v

    @model_validator(mode="after")
    def _range(self) -> Port:
        if self.published_end is not None and (
                self.published is None or self.published_end < self.published):
            raise ValueError(f"the host port range {self.published}-{self.published_end} is empty")
        return self


def _port_error(v: str) -> ValueError:
    return ValueError(f"expected a port like '8080:80/udp', '80' or '3000-3005', got {v!r}")


def _port_range(text: str, whole: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        a, b = int(low), int(high) if sep else int(low)
    except ValueError:
        raise _port_error(whole) from None
    if b < a:
        raise ValueError(f"the port range {text!r} in {whole!r} is empty")
    return a, b


def _parse_port(v: str) -> list[dict[str, Any]]:
    """compose's short port syntax -> one dict per container port."""
    text, proto = v.rsplit("/", 1) if "/" in v else (v, "tcp")
    host_ip = None
    if text.startswith("["):  # [::1]:8080:80
        host_ip, sep, text = text[1:].partition("]:")
        if not sep:
            raise _port_error(v)
        parts = [host_ip, *text.split(":")]
        host_ip = None
    elif text.count(":") >= 3:  # ::1:6000:6000, an IPv6 host without brackets
        parts = text.rsplit(":", 2)
    else:
        parts = text.split(":")
    if len(parts) > 3 or not parts[-1] or (len(parts) == 2 and not parts[0]):
        raise _port_error(v)
    if len(parts) == 3:
        host_ip = parts[0] or None
    first, last = _port_range(parts[-1], v)
    targets = range(first, last + 1)
    out: dict[str, Any] = {"protocol": proto, **({"host_ip": host_ip} if host_ip else {})}
    if len(parts) == 1 or not parts[-2]:
        return [{**out, "target": t} for t in targets]
    low, high = _port_range(parts[-2], v)
    if len(targets) > 1:
        if high - low != last - first:
            raise ValueError(f"the host and container port ranges of {v!r} differ in length")
        return [{**out, "target": t, "published": low + i} for i, t in enumerate(targets)]
    return [{**out, "target": first, "published": low, **({"published_end": high} if high != low else {})}]


def expand_ports(v: Any) -> Any:
    """A ``ports:`` list with each container-port range split into one port per number."""
    if not isinstance(v, list):
        return v
    out: list[Any] = []
    for item in v:
        try:
            ranged = isinstance(item, str) and "-" in item.rsplit(":", 1)[-1]
            out.extend(_parse_port(item) if ranged else [item])
        except ValueError:
            out.append(item)  # Port reports it again, at its own index
    return out


# the short syntax's options after the target, comma-separated (compose and docker run)
_PROPAGATION = ("shared", "rshared", "slave", "rslave", "private", "rprivate")
_MODES = frozenset({"ro", "rw", "z", "Z", "nocopy", "cached", "delegated", "consistent",
                    *_PROPAGATION})
# compose's long syntax nests the per-type options: bind.selinux -> selinux
_NESTED = {"bind": {"propagation": "propagation", "create_host_path": "create_host_path",
                    "selinux": "selinux"},
           "volume": {"nocopy": "nocopy", "subpath": "subpath"},
           "tmpfs": {"size": "tmpfs_size", "mode": "tmpfs_mode"},
           "image": {"subpath": "subpath"}}


class Volume(Strict):
    """A mount. Short form, compose order: ``src:dst[:opts]`` where opts is a comma list of
    ``ro``/``rw``, ``z``/``Z`` (SELinux relabel), ``nocopy``, a propagation, or ``cached`` /
    ``delegated`` / ``consistent`` (macOS only: no effect on Linux, accepted).

    ``src`` starting with ``/``, ``.`` or ``~`` is a bind mount; a bare name is a named volume;
    a lone ``dst`` is an anonymous volume. The long form also has ``tmpfs`` and ``image``.
    """

    type: Literal["bind", "volume", "tmpfs", "image"] = "volume"
    source: str | None = None
    target: str
    read_only: bool = False
    selinux: Literal["z", "Z"] | None = None
    nocopy: bool = False
    propagation: Literal[_PROPAGATION] | None = None  # type: ignore[valid-type]
    create_host_path: bool | None = None
    subpath: str | None = None
    tmpfs_size: int | None = Field(default=None, ge=0)
    tmpfs_mode: int | None = Field(default=None, ge=0)
    consistency: str | None = None  # macOS only; kept so a round trip keeps it

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return _volume_long_form(v)
        if not isinstance(v, str):
            return v
        parts = v.split(":")
        opts: list[str] = []
        if len(parts) == 3 or (len(parts) == 2 and not parts[1].startswith("/")
                               and set(parts[1].split(",")) <= _MODES):
            opts = parts.pop().split(",")
        bad = [o for o in opts if o not in _MODES]
        if bad or not all(parts) or len(parts) > 2:
            raise ValueError(f"expected a volume like '/src:/dst:ro' or 'name:/dst', got {v!r}")
        out: dict[str, Any] = {"read_only": "ro" in opts, "nocopy": "nocopy" in opts}
        out.update({"selinux": o for o in opts if o in ("z", "Z")})
        out.update({"propagation": o for o in opts if o in _PROPAGATION})
        if len(parts) == 1:
            return {**out, "type": "volume", "target": parts[0]}
        src, dst = parts
        return {**out, "type": "bind" if _is_path(src) else "volume", "source": src, "target": dst}

    @field_validator("target")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"the mount target must be an absolute path, got {v!r}")
        return v

    @field_validator("tmpfs_size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return None if v is None else parse_size(v)

    @field_validator("tmpfs_mode", mode="before")
    @classmethod
    def _mode(cls, v: Any) -> Any:
        # 01777 is YAML's octal number already; a string "1777" is read as octal
        if isinstance(v, str):
            try:
                return int(v, 8)
            except ValueError:
                raise ValueError(f"expected an octal file mode like 1777, got {v!r}") from None
        return v

    @model_validator(mode="after")
    def _fits_type(self) -> Volume:
        if self.type in ("bind", "image") and not self.source:
            raise ValueError(f"{'an' if self.type == 'image' else 'a'} {self.type} mount needs a source")
        if self.type == "tmpfs" and self.source:
            raise ValueError("a tmpfs mount has no source")
        if self.subpath and self.type not in ("volume", "image"):
            raise ValueError("subpath is for volume and image mounts")
        return self


def _volume_long_form(v: dict) -> dict:
    v = dict(v)
    for kind, keys in _NESTED.items():
        nested = v.pop(kind, None)
        if nested is None:
            continue
        if not isinstance(nested, dict):
            raise ValueError(f"{kind}: expected a mapping, got {nested!r}")
        for key, value in nested.items():
            if key not in keys:
                raise ValueError(f"{kind}.{key}: unknown key; expected one of {', '.join(keys)}")
            v[keys[key]] = value
    if "type" not in v and isinstance(v.get("source"), str):
        v["type"] = "bind" if _is_path(v["source"]) else "volume"
    return v


def _is_path(src: str) -> bool:
    return src.startswith(("/", ".", "~"))


class Ulimit(Strict):
    soft: int = Field(ge=-1)
    hard: int = Field(ge=-1)

    @model_validator(mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return {"soft": v, "hard": v}
        return v

    @model_validator(mode="after")
    def _order(self) -> Ulimit:
        if self.hard != -1 and (self.soft == -1 or self.soft > self.hard):
            raise ValueError(f"soft limit {self.soft} is above hard limit {self.hard}")
        return self


class HealthCheck(Strict):
    """Docker's HEALTHCHECK, normalised: ``test`` is Docker's list form (CMD / CMD-SHELL / NONE)."""

    test: list[str] = Field(alias="test")
    interval: float = 5.0  # VEO's default poll period; Docker's own default is 30 s
    timeout: float = 3.0
    retries: int = Field(default=3, ge=1)
    start_period: float = 0.0
    shell: bool = False

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, v: Any) -> Any:
        if isinstance(v, (str, list)):
            v = {"test": v}
        if not isinstance(v, dict):
            return v
        v = dict(v)
        if "cmd" in v:
            if "test" in v:
                raise ValueError("give either 'test' or 'cmd', not both")
            v["test"] = v.pop("cmd")
        test, shell = v.get("test"), bool(v.get("shell", False))
        if isinstance(test, str):
            v["test"], v["shell"] = ["CMD-SHELL", test], True
        elif isinstance(test, list) and test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            words = [str(w) for w in test]
            v["test"] = ["CMD-SHELL", shlex.join(words)] if shell else ["CMD", *words]
        return v

    @field_validator("interval", "timeout", "start_period", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        # a field validator (not the model one above) so that an error points at the field
        return parse_duration(v)

    @field_validator("test")
    @classmethod
    def _not_empty(cls, v: list[str]) -> list[str]:
        if not v or (v[0] in ("CMD", "CMD-SHELL") and len(v) < 2):
            raise ValueError("the health check needs a command")
        return v

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"must be above 0, got {v}")
        return v


# ---- the words of a service's supervision and placement ----------------------------------------


class RestartPolicy(str, enum.Enum):
    never = "never"
    restart = "restart"


class GroupRole(str, enum.Enum):
    master = "master"
    slave = "slave"


class GroupPolicy(str, enum.Enum):
    master_kills_all = "master_kills_all"
    one_kills_all = "one_kills_all"
    one_for_one = "one_for_one"


class PullPolicy(str, enum.Enum):
    """When a node pulls a service's image (compose's ``pull_policy``)."""

    missing = "missing"  # only when the node's engine does not have it
    always = "always"  # before every container is created
    never = "never"  # the image must be on the node already


class OnUnhealthy(str, enum.Enum):
    restart = "restart"
    kill = "kill"
    leave = "leave"
