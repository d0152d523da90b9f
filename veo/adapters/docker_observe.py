"""Reading containers: inspect, list, the event stream, logs, stats and exec.

``ObserveOps`` is a part of ``DockerRuntime`` (``veo.adapters.docker_api``); ``EngineStream``
wraps the engine's blocking streams (events, followed logs) so another thread can end them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import docker.errors

from veo.adapters.docker_conn import EngineConnection
from veo.adapters.docker_parse import (
    ContainerState,
    _stamp,
    _text,
    compute_stats,
    parse_inspect,
    parse_list_entry,
)
from veo.core.errors import EngineError


class EngineStream:
    """A blocking iterator over an engine stream (events, followed logs).

    ``close()`` may be called from any thread: it shuts the socket, and the iterating thread's
    loop then ends quietly. Also usable as a context manager.
    """

    def __init__(self, inner: Any, convert: Callable[[Any], Any], what: str):
        self._inner = inner
        self._convert = convert
        self._what = what
        self._closed = False

    def __iter__(self) -> EngineStream:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._inner)
        except StopIteration:
            raise
        except Exception as e:  # the socket was shut under us, or the engine went away
            if self._closed:
                raise StopIteration from None
            raise EngineError(f"{self._what} broke: {e}") from None
        return self._convert(item)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._inner.close()

    def __enter__(self) -> EngineStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ObserveOps(EngineConnection):
    """What the engine reports about containers; none of these change one."""

    def inspect(self, id: str) -> ContainerState | None:
        """None when the container does not exist (any more)."""
        with self._errors("inspect container", id):
            try:
                return parse_inspect(self._docker().api.inspect_container(id))
            except docker.errors.NotFound:
                return None

    def list(
        self, labels: dict[str, str] | None = None, all: bool = True, detailed: bool = False
    ) -> list[ContainerState]:
        """Containers carrying all ``labels``. ``detailed`` inspects each one (start/finish
        times, OOM, errors), which costs a call per container."""
        filters = {"label": [f"{k}={v}" for k, v in (labels or {}).items()]} if labels else None
        with self._errors("list containers"):
            entries = self._docker().api.containers(all=all, filters=filters)
        if not detailed:
            return [parse_list_entry(e) for e in entries]
        states = (self.inspect(e["Id"]) for e in entries)
        return [s for s in states if s is not None]

    def events(
        self, since: float | None = None, until: float | None = None, filters: dict | None = None
    ) -> EngineStream:
        """Container events (dicts as Docker sends them: ``Action``, ``id``,
        ``Actor.Attributes`` with labels and ``exitCode`` on die, ``time``, ``timeNano``).

        Blocks while waiting; ends by itself at ``until``. Call ``close()`` from another thread to
        end it early.
        """
        flt = {"type": "container", **(filters or {})}
        with self._errors("events"):
            inner = self._docker().api.events(
                since=_stamp(since), until=_stamp(until), filters=flt, decode=True
            )
        return EngineStream(inner, lambda e: e, f"event stream of engine {self.host}")

    def exec(self, id: str, cmd: list[str] | str) -> tuple[int, str]:
        """Run ``cmd`` in a running container; ``(exit code, stdout+stderr)``."""
        api = self._docker().api
        with self._errors("exec in container", id):
            exec_id = api.exec_create(id, cmd, stdout=True, stderr=True)["Id"]
            output = api.exec_start(exec_id)
            code = api.exec_inspect(exec_id).get("ExitCode")
        return (-1 if code is None else int(code)), _text(output)

    def logs(
        self, id: str, tail: int | None = 100, follow: bool = False, since: float | None = None
    ) -> str | EngineStream:
        """stdout+stderr. ``follow=False``: the text. ``follow=True``: an ``EngineStream`` of text
        chunks that ends when the container stops (or on ``close()``)."""
        kw: dict[str, Any] = {"tail": "all" if tail is None else tail}
        if since is not None:
            kw["since"] = float(since)
        with self._errors("logs of container", id):
            out = self._docker().api.logs(id, stream=follow, follow=follow, **kw)
        if not follow:
            return _text(out)
        return EngineStream(out, _text, f"log stream of {id!r} on engine {self.host}")

    def stats(self, id: str) -> dict[str, float | int]:
        """One sample, see ``compute_stats``. Takes about a second (the engine samples twice)."""
        with self._errors("stats of container", id):
            return compute_stats(self._docker().api.stats(id, stream=False))
