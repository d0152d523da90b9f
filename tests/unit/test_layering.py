"""The folders are the architecture: imports only point down (see README, architecture).

    veo/core      models and the pure core: no ray, no docker, no adapters, actors or front doors
    veo/adapters  outside systems (Docker, dockerd, images, state store, local Ray): no actors or
                  front doors
    veo/client.py the Python API: looks actors up by name, never imports them
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONT_DOORS = ("veo.api", "veo.cli", "veo.client", "veo.deploy", "veo.ui")


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def _hits(imported: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imported for f in forbidden if m == f or m.startswith(f + "."))


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _files("veo/core"), ids=lambda p: p.name)
def test_pure_core_imports_no_outside_system(path: Path) -> None:
    forbidden = ("ray", "docker", "requests", "sqlite3", "redis", "veo.adapters", "actors",
                 *FRONT_DOORS)
    assert _hits(imports_of(path), forbidden) == []


@pytest.mark.parametrize("path", _files("veo/adapters"), ids=lambda p: p.name)
def test_adapters_import_no_actor_or_front_door(path: Path) -> None:
    assert _hits(imports_of(path), ("actors", *FRONT_DOORS)) == []


def test_client_does_not_import_actors() -> None:
    assert _hits(imports_of(ROOT / "veo" / "client.py"), ("actors",)) == []


@pytest.mark.parametrize("path", _files("veo/api") + _files("veo/cli"), ids=lambda p: p.name)
def test_front_doors_do_not_import_actors(path: Path) -> None:
    """Front doors reach the Scheduler through the one client; only veo.deploy creates it."""
    assert _hits(imports_of(path), ("actors",)) == []


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import ray\n    from veo.adapters.store import open_store\n")
    assert _hits(imports_of(bad), ("ray", "veo.adapters")) == ["ray", "veo.adapters.store",
                                                                 "veo.adapters.store.open_store"]
