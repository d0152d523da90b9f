"""Compose-spec interpolation and the .env format, table-driven from the spec's own examples
(docs.docker.com/reference/compose-file/interpolation and the environment-variable guide)."""

from __future__ import annotations

import pytest

from veo.core.interpolate import DotenvError, InterpolationError, interpolate, parse_dotenv

ENV = {"SET": "value", "EMPTY": "", "FOO": "foo", "BAR": "bar", "TAG": "1.2"}

CASES = [
    # direct substitution
    ("$SET", "value"),
    ("${SET}", "value"),
    ("pre-${SET}-post", "pre-value-post"),
    ("$SET$FOO", "valuefoo"),
    ("image:$TAG", "image:1.2"),
    ("${UNSET}", ""),
    ("$UNSET", ""),
    # default value: ':-' when unset or empty, '-' only when unset
    ("${UNSET:-default}", "default"),
    ("${EMPTY:-default}", "default"),
    ("${SET:-default}", "value"),
    ("${UNSET-default}", "default"),
    ("${EMPTY-default}", ""),
    ("${SET-default}", "value"),
    ("${PORT:-8080}:80", "8080:80"),
    ("${UNSET:-}", ""),
    ("${UNSET:-a b c}", "a b c"),
    ("${UNSET:-a:b-c}", "a:b-c"),
    # alternative value: ':+' when set and non-empty, '+' when set
    ("${SET:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${UNSET:+alt}", ""),
    ("${SET+alt}", "alt"),
    ("${EMPTY+alt}", "alt"),
    ("${UNSET+alt}", ""),
    # required, when present
    ("${SET:?must be set}", "value"),
    ("${EMPTY?must be set}", ""),
    # nesting, as the spec lists it
    ("${UNSET:-${FOO}}", "foo"),
    ("${SET?$FOO}", "value"),
    ("${UNSET:-${ALSO_UNSET:-default}}", "default"),
    ("${UNSET:-${FOO:-default}}", "foo"),
    ("${SET:+${FOO}-${BAR}}", "foo-bar"),
    ("${UNSET:-x}${UNSET2:-{y}", "x{y"),
    # '$$' is a literal dollar, and stops interpolation
    ("$$VAR_NOT_INTERPOLATED_BY_COMPOSE", "$VAR_NOT_INTERPOLATED_BY_COMPOSE"),
    ("$$(cat /run/secrets/x)", "$(cat /run/secrets/x)"),
    ("$${SET}", "${SET}"),
    ("$$$SET", "$value"),
    ("${UNSET:-$$}", "$"),
    # a '$' that starts no variable is kept
    ("cost: 5$", "cost: 5$"),
    ("$1 and $-", "$1 and $-"),
    ("a $ b", "a $ b"),
    ("no variables at all", "no variables at all"),
]


@pytest.mark.parametrize(("template", "expected"), CASES)
def test_interpolation(template: str, expected: str) -> None:
    assert interpolate(template, ENV).text == expected


def test_unset_variables_are_reported_for_a_warning() -> None:
    assert interpolate("${A}-$B-${C:-x}-${SET}", ENV).unset == ["A", "B"]


@pytest.mark.parametrize(("template", "message"), [
    ("${UNSET:?err}", "required variable UNSET is not set: err"),
    ("${EMPTY:?err}", "required variable EMPTY is empty: err"),
    ("${UNSET?err}", "required variable UNSET is not set: err"),
    ("${UNSET:?}", "required variable UNSET is not set"),
    ("${UNSET:?need $FOO}", "required variable UNSET is not set: need foo"),
    ("${UNSET:-${INNER:?inner missing}}", "required variable INNER is not set: inner missing"),
])
def test_required_variables(template: str, message: str) -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate(template, ENV)
    assert str(info.value) == message
    assert info.value.variable in message


@pytest.mark.parametrize("template", ["${}", "${SET/foo/bar}", "${SET", "${1X}", "${SET:=x}",
                                      "${ SET }"])
def test_syntax_the_spec_does_not_have_is_an_error(template: str) -> None:
    with pytest.raises(InterpolationError, match="invalid interpolation format"):
        interpolate(template, ENV)


def test_a_callable_lookup() -> None:
    assert interpolate("${X:-d}", lambda name: "x" if name == "X" else None).text == "x"


# --------------------------------------------------------------------------------------------------
# .env
# --------------------------------------------------------------------------------------------------


def test_dotenv_format() -> None:
    text = """\
# a comment
PLAIN=value
export EXPORTED=yes
SPACED = trimmed   
INLINE=value # comment
HASH=a#b
EMPTY=
SINGLE='literal $PLAIN \\n'
DOUBLE="line1\\nline2 $PLAIN \\$NOT"
MULTI="first
second"
REF=${PLAIN}-${OUTER:-none}
NEST=${MISSING:-${PLAIN}}
BARE
"""
    got = parse_dotenv(text, {"BARE": "from-env"}.get)
    assert got == {
        "PLAIN": "value", "EXPORTED": "yes", "SPACED": "trimmed", "INLINE": "value",
        "HASH": "a#b", "EMPTY": "", "SINGLE": "literal $PLAIN \\n",
        "DOUBLE": "line1\nline2 value $NOT", "MULTI": "first\nsecond", "REF": "value-none",
        "NEST": "value", "BARE": "from-env",
    }


def test_dotenv_bare_key_unset_everywhere_is_none() -> None:
    assert parse_dotenv("ONLY_NAME\n") == {"ONLY_NAME": None}


@pytest.mark.parametrize(("text", "line", "message"), [
    ("A=1\nnot a line\n", 2, "expected KEY=VALUE, got 'not a line'"),
    ('A="open\nB=2\n', 1, "the value has no closing \""),
    ("A='x' y\n", 1, "unexpected text after the closing '"),
    ("A=${B:?B is needed}\n", 1, "required variable B is not set: B is needed"),
])
def test_dotenv_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(DotenvError) as info:
        parse_dotenv(text)
    assert info.value.line == line
    assert str(info.value).startswith(message)
