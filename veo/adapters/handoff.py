"""What the node process and the machine's NodeAgent tell each other, through files in the node
directory (``VEO_NODE_DIR``, which the node process puts in its Ray node's environment).

Files, because the two must not depend on each other being up: the node process fences while the
raylet and its actors are gone, and the agent learns of it only after the machine rejoins.

* ``settings.json`` — the agent writes ``settings.disconnect.stop_after`` on every converge; the
  node process reads it (cached on disk, so it holds across restarts of either);
* ``fenced.json`` — the node process appends the containers it stopped while cut off; the agent
  reports them once back (events, and a restart of those that are still the current generation)
  and then drops them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

NODE_DIR_ENV = "VEO_NODE_DIR"
DEFAULT_STOP_AFTER = 30.0
_NEVER = "never"


def node_dir(env: dict[str, str] | None = None) -> Path | None:
    value = (env if env is not None else os.environ).get(NODE_DIR_ENV)
    return Path(value) if value else None


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)  # atomic: a reader never sees half a file


def _read(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def save_stop_after(directory: Path, stop_after: float | None) -> None:
    """Cache the cluster's ``disconnect.stop_after`` (None = never) for the node process."""
    value = _NEVER if stop_after is None else float(stop_after)
    if _read(directory / "settings.json", {}).get("stop_after") != value:
        _write(directory / "settings.json", {"stop_after": value, "time": time.time()})


def load_stop_after(directory: Path) -> float | None:
    """The cached value; the default until an agent of this machine has converged once."""
    value = _read(directory / "settings.json", {}).get("stop_after", DEFAULT_STOP_AFTER)
    if value == _NEVER:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return DEFAULT_STOP_AFTER


def mark_fencing(directory: Path, on: bool) -> None:
    """The node process is fencing this machine (cut off for ``stop_after``): until its Ray node
    starts again, an agent still alive on it must not restart what the fence stops."""
    path = directory / "fencing"
    if on:
        _write(path, {"time": time.time()})
    else:
        path.unlink(missing_ok=True)


def fencing(directory: Path) -> bool:
    return (directory / "fencing").exists()


def record_fenced(directory: Path, entries: list[dict]) -> None:
    """Append what the node process stopped (dicts: id, name, labels, reason, time)."""
    if entries:
        _write(directory / "fenced.json", _read(directory / "fenced.json", []) + entries)


def peek_fenced(directory: Path) -> list[dict]:
    """What the node process stopped and nobody has reported yet."""
    entries = _read(directory / "fenced.json", [])
    return entries if isinstance(entries, list) else []


def drop_fenced(directory: Path, count: int) -> None:
    """Forget the first ``count`` entries (reported); later ones (a new fence meanwhile) stay."""
    rest = peek_fenced(directory)[count:]
    if rest:
        _write(directory / "fenced.json", rest)
    else:
        (directory / "fenced.json").unlink(missing_ok=True)
