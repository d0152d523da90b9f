"""Parsing of the human units cluster.yml accepts: sizes (``512m``) and durations (``1m30s``).

Pure functions; they raise ``ValueError`` with a message meant to be shown to a user as is
(the loader prefixes it with ``FILE:LINE:COL: path:``).
"""

from __future__ import annotations

import re

# Compose and Docker both use binary multiples for b/k/m/g; we follow them so that a
# value copied from a docker-compose.yml means the same thing here.
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")

_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")


def parse_size(value: object) -> int:
    """``512m`` -> 536870912. Plain numbers are bytes. Raises ValueError on anything else."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 512m, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected a size like 512m, got {value!r} (negative)")
        return value
    if isinstance(value, float):
        if value < 0:
            raise ValueError(f"expected a size like 512m, got {value!r} (negative)")
        return int(value)
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ValueError(f"expected a size like 512m, got {value!r}")


def parse_duration(value: object) -> float:
    """``1m30s`` -> 90.0, ``500ms`` -> 0.5. Plain numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 5s or 500ms, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected a duration like 5s or 500ms, got {value!r} (negative)")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_duration(float(text))
        except ValueError:
            pass
        pos, total = 0, 0.0
        for m in _DURATION_PART.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        if text and pos == len(text):
            return total
    raise ValueError(f"expected a duration like 5s or 500ms, got {value!r}")


def format_size(n: int | None) -> str:
    """536870912 -> '512M' (for tables; never parsed back)."""
    if n is None:
        return "-"
    for unit, mult in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= mult:
            v = n / mult
            return f"{v:.0f}{unit}" if v >= 10 or v == int(v) else f"{v:.1f}{unit}"
    return f"{n}B"
