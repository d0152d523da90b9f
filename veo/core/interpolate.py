"""The compose specification's variable interpolation, and the ``.env`` file format. Pure.

``$VAR`` and ``${VAR}`` take a variable's value; in braces, ``:-`` / ``-`` give a default (when
unset or empty / when unset), ``:?`` / ``?`` make the variable required, ``:+`` / ``+`` give an
alternative when it is set; defaults, messages and alternatives are themselves interpolated, so they
nest (``${A:-${B:-x}}``). ``$$`` is a literal ``$``. A ``$`` that starts no valid name is kept as
written (``$1``, ``$-``), as compose does; anything else in braces (``${A/x/y}``, ``${}``) is an
error rather than a guess. An unset variable with neither default nor ``?`` becomes "" and is
reported, so the loader can warn as compose does.

The loader applies this to every scalar value of the YAML tree (never to keys), before any type
check, so ``"${PORT:-8080}:80"`` is a port and an error still points at the scalar it came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
# inside braces: a name, then nothing or one operator (longest first: ':-' before '-')
_BRACED = re.compile(r"([_a-zA-Z][_a-zA-Z0-9]*)(?:(:-|-|:\?|\?|:\+|\+)(.*))?", re.DOTALL)

Lookup = Callable[[str], "str | None"]


class InterpolationError(ValueError):
    """A template that cannot be resolved: a required variable is missing, or the syntax is not
    the compose spec's. ``variable`` names the variable when there is one."""

    def __init__(self, message: str, variable: str | None = None):
        super().__init__(message)
        self.variable = variable


@dataclass
class Interpolated:
    text: str
    unset: list[str] = field(default_factory=list)  # variables that were unset and had no default


def interpolate(text: str, env: Mapping[str, str] | Lookup) -> Interpolated:
    """``text`` with every variable replaced; raises ``InterpolationError``."""
    lookup = env if callable(env) else env.get
    result = Interpolated("")
    result.text = _expand(text, lookup, result.unset)
    return result


def _expand(text: str, lookup: Lookup, unset: list[str]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        nxt = text[j + 1] if j + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i = j + 2
        elif nxt == "{":
            end = _closing_brace(text, j + 2)
            if end < 0:
                raise InterpolationError(f"invalid interpolation format for {text!r}: "
                                         "'${' without a closing '}'")
            out.append(_braced(text[j + 2:end], text, lookup, unset))
            i = end + 1
        else:
            m = _NAME.match(text, j + 1)
            if m is None:
                out.append("$")  # not a variable: kept as written
                i = j + 1
            else:
                out.append(_value(m.group(0), lookup, unset))
                i = m.end()
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    """The index of the '}' closing a '${' whose body starts at ``start`` (nested '${...}' and
    '$$' skipped), or -1."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "$" and text.startswith("$$", i):
            i += 2
            continue
        if c == "$" and text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if c == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def _braced(body: str, whole: str, lookup: Lookup, unset: list[str]) -> str:
    m = _BRACED.fullmatch(body)
    if m is None:
        raise InterpolationError(
            f"invalid interpolation format for {whole!r}: '${{{body}}}' is not one of "
            "${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, "
            "${VAR:+alt}, ${VAR+alt}")
    name, op, arg = m.group(1), m.group(2), m.group(3) or ""
    value = lookup(name)
    if op is None:
        return _value(name, lookup, unset)
    present = value is not None and (value != "" or not op.startswith(":"))
    if op in (":-", "-"):
        return value if present else _expand(arg, lookup, unset)  # type: ignore[return-value]
    if op in (":+", "+"):
        return _expand(arg, lookup, unset) if present else ""
    # ':?' / '?': required
    if present:
        return value  # type: ignore[return-value]
    why = _expand(arg, lookup, unset)
    state = "is not set" if value is None else "is empty"
    raise InterpolationError(
        f"required variable {name} {state}" + (f": {why}" if why else ""), name)


def _value(name: str, lookup: Lookup, unset: list[str]) -> str:
    value = lookup(name)
    if value is None:
        unset.append(name)
        return ""
    return value


# --------------------------------------------------------------------------------------------------
# .env files (and env_file:)
# --------------------------------------------------------------------------------------------------


class DotenvError(ValueError):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


_KEY = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*(=)?")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "\\$"}


def parse_dotenv(text: str, lookup: Lookup | None = None) -> dict[str, str | None]:
    """``KEY=VALUE`` lines in compose's ``.env`` format, in order.

    ``# comments``, blank lines and ``export`` are allowed; a value in single quotes is literal,
    in double quotes it takes ``\\n``-style escapes, may span lines and is interpolated, unquoted it
    is trimmed, loses a `` #comment`` and is interpolated. Interpolation sees the file's earlier
    variables first, then ``lookup`` (the command's environment). A bare ``KEY`` line maps to
    ``lookup(KEY)``: None when that is unset too.
    """
    outer = lookup or (lambda _name: None)
    out: dict[str, str | None] = {}

    def see(name: str) -> str | None:
        return out[name] if out.get(name) is not None else outer(name)

    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _KEY.match(line)
        if m is None:
            raise DotenvError(f"expected KEY=VALUE, got {line.strip()!r}", number)
        key, rest = m.group(1), line[m.end():]
        if m.group(2) is None:
            if rest.strip() and not rest.strip().startswith("#"):
                raise DotenvError(f"expected KEY=VALUE, got {line.strip()!r}", number)
            out[key] = outer(key)
            continue
        value, i = _dotenv_value(rest, lines, i, number, see)
        out[key] = value
    return out


def _dotenv_value(rest: str, lines: list[str], i: int, number: int,
                  see: Lookup) -> tuple[str, int]:
    rest = rest.lstrip()
    if rest[:1] in ("'", '"'):
        quote = rest[0]
        body = rest[1:]
        while _closing_quote(body, quote) < 0:
            if i >= len(lines):
                raise DotenvError(f"the value has no closing {quote}", number)
            body += "\n" + lines[i]
            i += 1
        end = _closing_quote(body, quote)
        trailing = body[end + 1:].strip()
        if trailing and not trailing.startswith("#"):
            raise DotenvError(f"unexpected text after the closing {quote}: {trailing!r}", number)
        raw = body[:end]
        if quote == "'":
            return raw, i
        unescaped = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), raw)
        return _interp_dotenv(unescaped, see, number), i
    value = re.split(r"\s#", rest, maxsplit=1)[0].strip()
    return _interp_dotenv(value, see, number), i


def _closing_quote(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if body[i] == "\\" and quote == '"':
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


def _interp_dotenv(value: str, see: Lookup, number: int) -> str:
    try:
        # '\$' (an escaped dollar in double quotes) survives as a literal '$'
        return interpolate(value.replace("\\$", "$$"), see).text
    except InterpolationError as e:
        raise DotenvError(str(e), number) from None
