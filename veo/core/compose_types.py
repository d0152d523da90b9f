"""Value types that compose files bring to a service or a cluster: logging, rolling-update
settings, declared named volumes, extra hosts. Pydantic, no I/O; ``veo.core.models`` uses them.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from veo.core.units import parse_duration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, coerce_numbers_to_str=True)


class Logging(_Strict):
    """``logging:``: Docker's log driver and its options."""

    driver: str | None = None
    options: dict[str, str] = Field(default_factory=dict)

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, v: Any) -> Any:
        return {} if v is None else ({str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else v)


class VolumeDef(_Strict):
    """A top-level ``volumes:`` entry: a named volume the project declares."""

    name: str | None = None  # the engine's name for it (default: the key)
    driver: str | None = None
    driver_opts: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    external: bool = False

    @field_validator("driver_opts", "labels", mode="before")
    @classmethod
    def _mapping(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, list):  # labels may be a list of KEY=VALUE, as on a service
            return dict(str(item).partition("=")[::2] for item in v)
        return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else v


def extra_hosts(v: Any) -> Any:
    """compose's ``extra_hosts`` (a list of ``host:ip`` / ``host=ip``, or a mapping of host to an
    address or a list of them) as Docker's ``host:ip`` list."""
    if v is None:
        return []
    if isinstance(v, dict):
        out = []
        for host, ips in v.items():
            for ip in ips if isinstance(ips, list) else [ips]:
                out.append(f"{host}:{ip}")
        return out
    if isinstance(v, list):
        out = []
        for item in v:
            text = str(item)
            host, sep, ip = text.partition("=") if "=" in text else text.partition(":")
            if not sep or not host or not ip:
                raise ValueError(f"expected 'host:ip' or 'host=ip' items, got {item!r}")
            out.append(f"{host}:{ip.strip('[]')}")
        return out
    return v


class NetworkDef(_Strict):
    """A top-level ``networks:`` entry. ``name`` is the engine's name for it: the loader fills
    in compose's ``<project>_<key>`` (or the key itself for an external network)."""

    name: str | None = None
    driver: str | None = None
    driver_opts: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    external: bool = False
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False

    _mapping = field_validator("driver_opts", "labels", mode="before")(VolumeDef._mapping.__func__)


class ServiceNetwork(_Strict):
    """One network a service joins: its aliases there, and the network itself (so that the
    node that runs the service can create it without the rest of the file)."""

    aliases: list[str] = Field(default_factory=list)
    network: NetworkDef = Field(default_factory=NetworkDef)


class Dependency(_Strict):
    """One ``depends_on`` entry: what the dependency must have done before this service starts."""

    condition: Literal["service_started", "service_healthy",
                       "service_completed_successfully"] = "service_started"
    required: bool = True  # false: a dependency that is absent (or scaled to 0) is no reason to wait
    restart: bool = False  # compose restarts dependents with their dependency; veo warns, see README


def depends_on(v: Any) -> Any:
    """compose's list form (``[db, cache]``) as the mapping form."""
    if v is None:
        return {}
    if isinstance(v, list):
        return {str(name): {} for name in v}
    if isinstance(v, dict):
        return {str(k): ({} if x is None else x) for k, x in v.items()}
    return v


_MASK = "**********"


class SecretFile(_Strict):
    """A secret or config as the container sees it: a read-only file at ``target`` with its
    content, which travels with the spec to the node that runs the container (see
    ``veo.adapters.prepare``). The content never shows: not in ``repr``, and ``model_dump``
    masks it unless asked with ``context={"secrets": "plain"}`` (the state store does)."""

    kind: Literal["secret", "config"] = "secret"
    source: str
    target: str
    uid: str | None = None
    gid: str | None = None
    mode: int | None = Field(default=None, ge=0, le=0o7777)
    content: str = Field(default="", repr=False)
    digest: str = ""  # sha256 of the content: a changed secret is a changed container

    @field_validator("target")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"the target must be an absolute path, got {v!r}")
        return v

    @field_validator("mode", mode="before")
    @classmethod
    def _octal(cls, v: Any) -> Any:
        # 0440 is YAML's octal number already; a string "0440" or "440" is read as octal
        if isinstance(v, str):
            try:
                return int(v, 8)
            except ValueError:
                raise ValueError(f"expected an octal file mode like 0440, got {v!r}") from None
        return v

    @field_serializer("content")
    def _masked(self, v: str, info: Any) -> str:
        return v if (info.context or {}).get("secrets") == "plain" else _MASK

    def model_post_init(self, _context: Any) -> None:
        if self.content and not self.digest:
            self.digest = hashlib.sha256(self.content.encode()).hexdigest()
