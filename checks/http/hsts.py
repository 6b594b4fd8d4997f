"""Strict-Transport-Security parsed as RFC 6797 section 6.1 says a browser must parse it.

The grammar is ``[directive] *(";" [directive])`` with ``directive = name ["=" (token /
quoted-string)]``. A UA ignores the whole header when the syntax is broken, a directive
repeats, or ``max-age`` is missing or not a number. A comma is not a token character, so
``max-age=1; includeSubDomains, max-age=1`` (two policies pasted into one line, as some
proxies do) is invalid as a whole: the browser keeps no policy. :func:`parse_sts` returns
what it parsed or, when it rejects a value, why, in words a site owner can act on.

Preload readiness follows the hstspreload.org submission rules: ``max-age`` of at least one
year, ``includeSubDomains`` and ``preload``, served on the registrable domain itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from checks.http.hit import clip

PRELOAD_MIN_MAX_AGE = 31_536_000
# RFC 9110 5.6.2 tchar; anything else ends a token.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OWS = " \t"
_VALUELESS = ("includesubdomains", "preload")


@dataclass(frozen=True)
class STSPolicy:
    """A valid STS header: its max-age, the two known flags and every directive name seen."""

    max_age: int
    include_subdomains: bool
    preload: bool
    directives: tuple[str, ...]

    def describe(self) -> str:
        flags = [n for n, on in (("includeSubDomains", self.include_subdomains), ("preload", self.preload)) if on]
        return "; ".join([f"max-age={self.max_age}", *flags])

    def preload_problems(self) -> list[str]:
        """What keeps this header from the hstspreload.org requirements (empty: it meets them)."""
        problems = []
        if self.max_age < PRELOAD_MIN_MAX_AGE:
            problems.append(f"max-age {self.max_age} is below one year ({PRELOAD_MIN_MAX_AGE})")
        if not self.include_subdomains:
            problems.append("no includeSubDomains")
        if not self.preload:
            problems.append("no preload directive")
        return problems


def _quoted(value: str, start: int) -> tuple[str, int] | None:
    """The quoted-string opening at ``value[start]``, unescaped, and the index after it."""
    out = []
    i = start + 1
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        if (ord(ch) < 0x20 and ch != "\t") or ch == "\x7f":
            return None
        out.append(ch)
        i += 1
    return None


def _skip_ows(value: str, i: int) -> int:
    while i < len(value) and value[i] in _OWS:
        i += 1
    return i


def _directives(value: str) -> tuple[list[tuple[str, str | None]], str | None]:
    """``[(name, value or None)]`` in order, or the first syntax error."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(value)
    while True:
        i = _skip_ows(value, i)
        if i >= n:
            return out, None
        if value[i] == ";":  # empty directives are allowed: "max-age=1;;"
            i += 1
            continue
        name_match = _TOKEN_RE.match(value, i)
        if name_match is None:
            return out, f"{value[i]!r} where a directive name should start (character {i + 1})"
        name = name_match.group()
        i = _skip_ows(value, name_match.end())
        raw: str | None = None
        if i < n and value[i] == "=":
            i = _skip_ows(value, i + 1)
            if i < n and value[i] == '"':
                quoted = _quoted(value, i)
                if quoted is None:
                    return out, f"unterminated quoted value for {clip(name, 60)}"
                raw, i = quoted
            else:
                token = _TOKEN_RE.match(value, i)
                if token is None:
                    return out, f"no valid value after {clip(name, 60)}="
                raw, i = token.group(), token.end()
        i = _skip_ows(value, i)
        out.append((name, raw))
        if i < n and value[i] != ";":
            what = "a comma (two policies in one header?)" if value[i] == "," else repr(value[i])
            return out, f"{what} after the {clip(name, 60)} directive, where only ';' may follow"
        i += 1


def parse_sts(value: str) -> tuple[STSPolicy | None, str | None]:
    """``(policy, None)`` for a valid header value, ``(None, why browsers ignore it)`` otherwise."""
    directives, error = _directives(value)
    if error is not None:
        return None, f"invalid syntax: {error}"
    seen: dict[str, str | None] = {}
    for name, raw in directives:
        key = name.lower()
        if key in seen:
            return None, f"directive {clip(key, 60)} appears twice (RFC 6797 6.1 rule 2)"
        seen[key] = raw
    if "max-age" not in seen:
        return None, "no max-age directive (it is required)"
    raw_age = seen["max-age"]
    if raw_age is None or not re.fullmatch(r"[0-9]+", raw_age):
        shown = "no value" if raw_age is None else repr(clip(raw_age, 40))
        return None, f"max-age has {shown}, not a number of seconds"
    for flag in _VALUELESS:
        if seen.get(flag) is not None:
            return None, f"{flag} carries a value; it takes none"
    return (
        STSPolicy(
            # delta-seconds: a huge value saturates (RFC 9111 1.2.2), it does not invalidate
            max_age=int(raw_age) if len(raw_age) <= 18 else 10**18,
            include_subdomains="includesubdomains" in seen,
            preload="preload" in seen,
            directives=tuple(seen),
        ),
        None,
    )


def first_sts(values: list[str]) -> tuple[str | None, STSPolicy | None, str | None]:
    """``(raw, policy, problem)`` of the first STS header line (RFC 6797 8.1: only it counts)."""
    if not values:
        return None, None, "no Strict-Transport-Security header"
    policy, problem = parse_sts(values[0])
    if policy is not None and policy.max_age == 0:
        return values[0], policy, "max-age=0, which deletes the HSTS policy"
    return values[0], policy, problem
