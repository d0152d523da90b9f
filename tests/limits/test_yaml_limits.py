"""Bad input at the loader: YAML bombs and deep nesting are refused at their line, before any
Python object is built; a large honest file (5 MB, 5,000 services) loads."""

from __future__ import annotations

import resource
import time

import pytest

from bench.big_spec import big_spec
from veo.core.config import parse_spec
from veo.core.errors import SpecError


def laughs(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "x-bomb:\n" + "".join(f"  {line}\n" for line in lines) + \
        f"services:\n  web:\n    image: a\n    command: *a{levels}\n"


def refused(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "bad.yml")
    return str(info.value)


def test_billion_laughs_is_refused_at_the_alias_that_crosses_the_limit():
    t0 = time.perf_counter()
    message = refused(laughs())  # 9^9 = 387 million strings once expanded
    assert time.perf_counter() - t0 < 5  # "quickly": generous, a bomb expanded would never end
    assert message.startswith("bad.yml:7:")  # the a5 line: 9^5 nodes pass 100,000
    assert "expands to more than 100000 nodes through aliases (a YAML bomb?)" in message


def test_a_merge_key_bomb_is_refused():
    lines = ["a0: &a0 {k0: v}"]
    lines += [f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 9)}], k{i}: v}}" for i in range(1, 10)]
    assert "YAML bomb" in refused("x:\n" + "".join(f"  {x}\n" for x in lines) + "services: {}\n")


def test_a_small_honest_use_of_aliases_still_loads():
    text = "x-cmd: &cmd [sh, -c, sleep 1]\nservices:\n" + "".join(
        f"  s{i}: {{image: a, command: *cmd}}\n" for i in range(2000))
    spec = parse_spec(text, "ok.yml").spec
    assert spec.services["s1999"].command == ["sh", "-c", "sleep 1"]


@pytest.mark.parametrize("shape", ["flow", "block-seq", "block-map"])
def test_deep_nesting_is_refused_at_the_level_that_crosses_the_limit(shape):
    depth = 200_000
    text = {"flow": "services:\n  web:\n    image: a\n    labels: " + "[" * depth + "]" * depth,
            "block-seq": "- " * depth + "x\n",  # one line, 200,000 sequences deep
            "block-map": "".join(f"{' ' * i}k:\n" for i in range(300)) + " " * 300 + "x\n"}[shape]
    t0 = time.perf_counter()
    message = refused(text)
    assert time.perf_counter() - t0 < 5
    assert "the document nests deeper than 100 levels" in message
    assert message.startswith("bad.yml:")


def test_an_alias_inside_its_own_anchor_is_refused():
    message = refused("x: &a [1, *a]\nservices: {}\n")
    assert "bad.yml:1:11: invalid YAML: alias *a is inside its own anchor" in message


def test_syntax_errors_keep_pyyaml_wording_and_position():
    message = refused("services:\n  web:\n    image: [a\n")
    assert message == ("bad.yml:4:1: invalid YAML: expected ',' or ']', but got '<stream end>' "
                       "(while parsing a flow sequence at line 3)")


def test_a_5mb_file_with_5000_services_loads():
    text = big_spec(5000)
    assert len(text.encode()) > 5_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    spec = parse_spec(text, "big.yml").spec
    assert len(spec.services) == 5000
    assert spec.services["svc-04999"].environment["VAR_3"].startswith("value-4999-3-")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 2000  # not a timing: a loader that copied the tree per alias would blow this
