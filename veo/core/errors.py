"""Errors a user can act on. Every front door shows ``str(error)`` as is.

The CLI maps them to exit codes (``exit_code``), the REST API to HTTP statuses (``http_status``),
so that the same mistake reads the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


class VeoError(Exception):
    """Base class. ``exit_code`` for the CLI, ``http_status`` for the REST API."""

    exit_code = 1
    http_status = 500


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec: where (file, line, column, dotted path) and what."""

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None
    warning: bool = False

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line or 0}:{self.column or 0}: "
        kind = "warning: " if self.warning else ""
        path = f"{self.path}: " if self.path else ""
        return f"{where}{kind}{path}{self.message}"


class SpecError(VeoError):
    """A cluster.yml or service spec is invalid. Carries every problem found, not just the first."""

    exit_code = 2
    http_status = 422

    def __init__(self, problems: list[SpecProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def __reduce__(self):  # so the error crosses Ray's process boundary intact
        return (type(self), (self.problems,))


class NotFound(VeoError):
    exit_code = 1
    http_status = 404


class Conflict(VeoError):
    exit_code = 1
    http_status = 409


class PolicyError(VeoError):
    """A spec asks for something the cluster policy forbids (privileged, host mounts, ...)."""

    exit_code = 2
    http_status = 403


class EngineError(VeoError):
    """A Docker engine refused or failed a request; the message is the engine's, with context."""

    exit_code = 1
    http_status = 502


class EngineUnavailable(EngineError):
    """The engine did not answer (down, restarting, frozen): temporary, worth retrying."""

    http_status = 503


class ImageNotFound(EngineError):
    """An image is not on the engine and cannot be had: no such image in its registry, the pull
    was denied, or pull_policy never. Permanent: the instance fails with this reason."""

    http_status = 422


class RegistryUnavailable(EngineUnavailable):
    """A registry did not answer a pull (unreachable, refusing connections, overloaded):
    temporary, retried with back-off."""


class NotConnected(VeoError):
    """No veo scheduler is reachable (no Ray cluster, or veo was never started on it)."""

    exit_code = 1
    http_status = 503
