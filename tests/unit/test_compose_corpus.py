"""The compose corpus (``tests/compose/*/compose.yml``): each file loads to the effective spec in
its ``expected.json`` (every value that differs from the model's default, plus the warnings), or
is refused with exactly the problems listed there.

The files are written for veo, one per feature of docker-compose that veo reads, maps or refuses
(see each file's comments). ``python tests/unit/test_compose_corpus.py`` rewrites the expected
files after a deliberate change; review the diff before committing it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from veo.core.config import load_spec
from veo.core.errors import SpecError

CORPUS = Path(__file__).resolve().parent.parent / "compose"
CASES = sorted(p.parent.name for p in CORPUS.glob("*/compose.yml"))
# the command's environment for every case: fixed, so the expected files do not depend on the
# machine (HOME for '~' in bind mounts)
ENVIRON = {"HOME": "/home/tester", "FROM_SHELL": "from shell"}


def _text(value: str, case_dir: Path) -> str:
    return value.replace(str(case_dir), "<dir>").replace(str(CORPUS), "<corpus>")


def outcome(case: str) -> dict:
    case_dir = CORPUS / case
    try:
        result = load_spec(case_dir / "compose.yml", environ=ENVIRON)
    except SpecError as e:
        return {"errors": [_text(str(p), case_dir) for p in e.problems if not p.warning],
                "warnings": [_text(str(p), case_dir) for p in e.problems if p.warning]}
    spec = result.spec
    top = spec.model_dump(mode="json", exclude_defaults=True, exclude={"services"})
    services = {name: svc.model_dump(mode="json", exclude_defaults=True, exclude={"name"})
                for name, svc in spec.services.items()}
    data = json.loads(_text(json.dumps({"top": top, "services": services}), case_dir))
    return {**data, "warnings": [_text(str(w), case_dir) for w in result.warnings]}


@pytest.mark.parametrize("case", CASES)
def test_compose_corpus(case: str) -> None:
    expected = json.loads((CORPUS / case / "expected.json").read_text())
    assert outcome(case) == expected


def test_the_corpus_covers_both_outcomes() -> None:
    kinds = {("errors" in json.loads((CORPUS / c / "expected.json").read_text())) for c in CASES}
    assert kinds == {True, False} and len(CASES) >= 15


if __name__ == "__main__":  # regenerate the expected files
    for case in CASES if len(sys.argv) < 2 else sys.argv[1:]:
        out = CORPUS / case / "expected.json"
        out.write_text(json.dumps(outcome(case), indent=2, ensure_ascii=False) + "\n")
        print("wrote", out)
