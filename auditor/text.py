"""Terminal-safe text: what a site or a user sent, made one harmless line before it is printed."""

from __future__ import annotations

import re
import reprlib
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(text: Any, limit: int = 300) -> str:
    """One terminal-safe line: control characters (ANSI escapes, bidi overrides) escaped."""
    s = "" if text is None else str(text)
    s = s.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
    return s if len(s) <= limit else s[: limit - 1] + "…"


_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxtuple, _BRIEF.maxdict, _BRIEF.maxset = 3, 6, 6, 6, 6
_BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 100, 100, 60


def brief(value: Any) -> str:
    """``repr(value)`` bounded in depth and length, for error messages about hand-written data.

    YAML aliases can make a small file stand for a list of billions of strings, whose full
    repr (or str) would never finish; short values read exactly as ``repr`` shows them.
    """
    return _BRIEF.repr(value)
