"""Vietnamese text as the recognisers compare it: accentless lower-case word tokens.

Portals are written with and without diacritics, in UTF-8 or windows-1258 (whose tone marks are
combining characters), so both sides of every comparison go through :func:`tokens`: NFD, drop
combining marks, ``đ`` -> ``d``, lower case, split on anything that is not a letter or digit. A
phrase matches when its tokens appear contiguously, so the switch word "en" matches the link
"EN" and never the inside of "tiền".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_NON_WORD = re.compile(r"[^0-9a-z]+")
MAX_TEXT = 2_000_000


def tokens(text: str | None) -> tuple[str, ...]:
    """The accentless lower-case words of ``text`` (bounded to :data:`MAX_TEXT` characters)."""
    if not text:
        return ()
    decomposed = unicodedata.normalize("NFD", str(text)[:MAX_TEXT])
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = plain.replace("đ", "d").replace("Đ", "d").lower()
    return tuple(t for t in _NON_WORD.split(plain) if t)


class Phrases:
    """A set of phrases, pre-tokenised, matched as contiguous token runs."""

    def __init__(self, phrases: Iterable[str]) -> None:
        self.raw = tuple(str(p) for p in phrases if str(p).strip())
        self._runs = tuple(t for t in (tokens(p) for p in self.raw) if t)

    def __bool__(self) -> bool:
        return bool(self._runs)

    def find(self, text: str | tuple[str, ...] | None) -> str | None:
        """The first phrase (as written in the policy) found in ``text``, or None."""
        words = text if isinstance(text, tuple) else tokens(text)
        if not words:
            return None
        for raw, run in zip(self.raw_runs(), self._runs, strict=True):
            n = len(run)
            first = run[0]
            for i, word in enumerate(words):
                if word == first and words[i:i + n] == run:
                    return raw
        return None

    def raw_runs(self) -> tuple[str, ...]:
        return tuple(p for p in self.raw if tokens(p))
