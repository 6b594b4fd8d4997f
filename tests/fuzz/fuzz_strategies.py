"""Input generators shared by the fuzz tests, and the "one terminal line" assertion.

Pure random text rarely reaches the interesting branches of a parser, so every strategy mixes
arbitrary text with text built from the grammar's own pieces (directive names, separators,
quotes, URL parts, tags) and the characters hostile input favours (controls, NUL, CR/LF,
bidi overrides, non-ASCII digits and dots, surrogate-free astral characters).
"""

from __future__ import annotations

import unicodedata

from hypothesis import strategies as st

NASTY_CHARS = "\x00\r\n\t\x0b\x0c\x1b\x7f\x85\u2028\u202e\u00a0\ufeff\u3002\uff0e\u0661\u00b2[]%@:/\\#?;,=\"' "

nasty_text = st.text(alphabet=st.sampled_from(NASTY_CHARS), max_size=20)
any_text = st.text(max_size=200)


def mixed(*pieces: str, max_size: int = 30) -> st.SearchStrategy[str]:
    """Strings joined from ``pieces``, nasty characters and short random text."""
    piece = st.one_of(st.sampled_from(pieces), st.sampled_from(NASTY_CHARS), st.text(max_size=6))
    return st.one_of(any_text, st.lists(piece, max_size=max_size).map("".join))


HOST_PIECES = (
    "example", ".", "com", "vn", "gov.vn", "xn--", "--", "-", "a" * 63, "127.0.0.1", "::1", "[", "]",
    "localhost", "*.", "bücher", "Ⅻ", "ß", "０", "%2e", ":", "443", "65536", "0", "@", "user:pw@",
)
hosts = mixed(*HOST_PIECES, max_size=12)

URL_PIECES = (
    "https://", "http://", "ftp://", "javascript:", "data:", "//", "/", "?", "#", "&", "=", ":", "@",
    "%", "%zz", "%00", "[", "]", "::1", "127.0.0.1", "example.com", ":80", ":443", ":99999", ":-1",
    "..", "./", "\\", " ", "\t", "\n", "a", "ü", "xn--", "mailto:", "blob:",
)
urls = mixed(*URL_PIECES)
base_urls = st.one_of(
    st.sampled_from(["https://example.com/", "http://127.0.0.1:8080/a/b?c", "https://[::1]:8443/x/"]),
    urls,
)


def one_line(text: str) -> bool:
    """No line break or other control character (category Cc) that a terminal would act on."""
    return not any(unicodedata.category(ch) == "Cc" for ch in text)


def assert_one_line(text: str) -> None:
    assert one_line(text), f"not one terminal line: {text!r}"
