"""Compose files through the loader: interpolation, .env and --env-file, environment and
env_file, compose defaults, deploy:, and the syntax compose accepts. Each problem is checked with
its exact text and position."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from veo.cli.app import app
from veo.core.config import LoadResult, load_spec, parse_spec
from veo.core.errors import SpecError


def load(text: str, env: dict | None = None, **kw) -> LoadResult:
    return parse_spec(textwrap.dedent(text), "compose.yml", env=env or {}, **kw)


def problems(text: str, env: dict | None = None, **kw) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(text, env, **kw)
    return [str(p) for p in info.value.problems]


# --------------------------------------------------------------------------------------------------
# interpolation
# --------------------------------------------------------------------------------------------------


def test_interpolation_happens_before_type_checks() -> None:
    spec = load("""\
        services:
          web:
            image: $IMAGE:${TAG:-latest}
            ports: ["${PORT:-8080}:80"]
            scale: ${N}
            healthcheck:
              test: wget -q -O- localhost:$$(cat /port)
              disable: ${NOCHECK:-false}
            environment:
              PW: ${POSTGRES_PW}
        """, {"IMAGE": "veo/httpd", "N": "3", "POSTGRES_PW": "pw"}).spec
    web = spec.services["web"]
    assert web.image == "veo/httpd:latest"
    assert (web.ports[0].published, web.ports[0].target) == (8080, 80)
    assert web.instances == 3
    assert web.healthcheck.test == ["CMD-SHELL", "wget -q -O- localhost:$(cat /port)"]
    assert web.environment == {"PW": "pw"}


def test_a_quoted_interpolated_value_stays_a_string() -> None:
    web = load('services: {web: {image: x, command: ["${N}"], labels: {n: "${N}"}}}',
               {"N": "3"}).spec.services["web"]
    assert web.command == ["3"] and web.labels == {"n": "3"}


def test_required_variable_error_keeps_its_position() -> None:
    assert problems("""\
        services:
          db:
            image: postgres
            environment:
              POSTGRES_PASSWORD: ${POSTGRES_PW:?set it in .env}
        """) == ["compose.yml:5:26: services.db.environment.POSTGRES_PASSWORD: required variable "
                 "POSTGRES_PW is not set: set it in .env"]


def test_a_type_error_after_interpolation_points_at_the_original_scalar() -> None:
    assert problems("services:\n  web:\n    image: x\n    scale: ${N:-many}\n") == [
        "compose.yml:4:12: services.web.scale: expected a number of instances >= 0 or 'all', "
        "got 'many'"]


def test_unset_variable_is_a_warning_and_empty() -> None:
    result = load("services:\n  web:\n    image: x\n    environment: [\"A=${NOPE}\"]\n")
    assert result.spec.services["web"].environment == {"A": ""}
    assert [str(w) for w in result.warnings] == [
        "compose.yml:4:19: warning: services.web.environment.0: variable NOPE is not set; it "
        "reads as an empty string"]


def test_keys_are_not_interpolated_and_dollar_dollar_unescapes() -> None:
    web = load("services: {web: {image: x, labels: {$$K: $$V}}}").spec.services["web"]
    assert web.labels == {"$$K": "$V"}


def test_bad_template_syntax() -> None:
    assert problems("services: {web: {image: '${A/x/y}'}}") == [
        "compose.yml:1:25: services.web.image: invalid interpolation format for '${A/x/y}': "
        "'${A/x/y}' is not one of ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, "
        "${VAR?error}, ${VAR:+alt}, ${VAR+alt}"]


def test_cluster_yml_is_interpolated_too() -> None:
    spec = load("""\
        name: ${CLUSTER:-demo}
        nodes: ["${NODE}@localhost"]
        settings: {budget_restarts: $BUDGET}
        services: {web: {image: x, cpus: "${CPUS}"}}
        """, {"NODE": "n1", "BUDGET": "4", "CPUS": "0.5"}).spec
    assert (spec.name, spec.nodes[0].name, spec.settings.budget_restarts) == ("demo", "n1", 4)
    assert spec.services["web"].cpus == 0.5


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


def test_dot_env_beside_the_file_and_the_environment_wins(tmp_path: Path) -> None:
    _write(tmp_path, ".env", "TAG=from-dotenv\nPORT=9000\n")
    file = _write(tmp_path, "compose.yml", 'services: {web: {image: "x:$TAG", ports: ["$PORT:80"]}}')
    web = load_spec(file, environ={"TAG": "from-env"}).spec.services["web"]
    assert web.image == "x:from-env" and web.ports[0].published == 9000


def test_env_file_option_replaces_dot_env(tmp_path: Path) -> None:
    _write(tmp_path, ".env", "TAG=from-dotenv\n")
    one = _write(tmp_path, "one.env", "TAG=one\nA=a\n")
    two = _write(tmp_path, "two.env", "TAG=two-$A\n")
    file = _write(tmp_path, "compose.yml", 'services: {web: {image: "x:$TAG"}}')
    assert load_spec(file, env_files=[one, two], environ={}).spec.services["web"].image == "x:two-a"


def test_bad_env_file_names_its_line(tmp_path: Path) -> None:
    _write(tmp_path, ".env", "OK=1\nthis is not\n")
    file = _write(tmp_path, "compose.yml", "services: {web: {image: x}}")
    with pytest.raises(SpecError) as info:
        load_spec(file, environ={})
    assert str(info.value) == f"{tmp_path}/.env:2:1: expected KEY=VALUE, got 'this is not'"
    with pytest.raises(SpecError, match="missing.env: no such file"):
        load_spec(file, env_files=[tmp_path / "missing.env"], environ={})


def test_validate_env_file_option(tmp_path: Path) -> None:
    env = _write(tmp_path, "prod.env", "TAG=9\n")
    file = _write(tmp_path, "compose.yml", 'services: {web: {image: "x:$TAG"}}')
    result = CliRunner().invoke(app, ["validate", str(file), "--env-file", str(env), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["services"]["web"]["image"] == "x:9"


@pytest.mark.parametrize(("tag", "expected"), [("!reset null", None), ("!reset []", None),
                                               ("!override [\"9090:80\"]", 9090)])
def test_reset_and_override_tags(tag: str, expected) -> None:
    web = load(f"services:\n  web:\n    image: x\n    ports: {tag}\n").spec.services["web"]
    assert (web.ports[0].published if web.ports else None) == expected
