"""Fuzz charset sniffing and body decoding (``checks.web.net``) and Location resolution.

Property: ``guess_encoding`` returns a short label or None, ``decode_body`` always returns text
(an unknown or non-text codec label falls back to UTF-8), both quickly even for labels such as
``punycode`` that some codecs take minutes over.
"""

from __future__ import annotations

import codecs

from fuzz_strategies import base_urls, mixed, urls
from hypothesis import example, given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from checks.web.net import FetchResult, decode_body, guess_encoding

labels = mixed("utf-8", "UTF-16", "latin1", "iso-8859-1", "punycode", "hex", "rot13", "base64", "zlib",
               "idna", "utf-7", "cp1252", "shift_jis", "x-user-defined", "\"", "'", " ", ";", "=", "charset",
               "mbcs", "unicode_escape", "raw_unicode_escape", "uu", "bz2", "\x00")
content_types = st.builds(lambda t, rest: t + rest, st.sampled_from(["text/html", "", "application/xhtml+xml"]),
                          mixed(";", " charset=", "charset", "=", "\"", "'", "utf-8", "punycode", "hex", ","))
bodies = st.one_of(
    st.binary(max_size=600),
    st.builds(lambda bom, meta, rest: bom + meta + rest,
              st.sampled_from([b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE]),
              st.sampled_from([b"", b"<meta charset=utf-8>", b"<meta charset='punycode'>",
                               b"<meta http-equiv=content-type content='text/html; charset=hex'>",
                               b"<meta charset=" + b"a" * 60 + b">", b"<META CHARSET=\"utf-16\">"]),
              st.binary(max_size=200)),
)


@given(content_types, bodies)
@example("text/html; charset=\"\"", b"")
@example("text/html; charset=punycode", "é".encode() * 1000)
def test_guess_encoding(ctype: str, body: bytes) -> None:
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict({"Content-Type": ctype})
    label = guess_encoding(headers, body)
    assert label is None or (isinstance(label, str) and label)
    assert isinstance(decode_body(body, label), str)


@given(bodies, labels | st.none())
@example(b"\xff" * 100, "punycode")
@example(b"00zz", "hex")
@example(b"abc", "utf-8\x00")
def test_decode_body(body: bytes, label: str | None) -> None:
    assert isinstance(decode_body(body, label), str)


@given(base_urls, urls)
@example("https://example.com/", "http://[::1")
@example("https://example.com/", "\xc3\xa9/x")
def test_location(url: str, location: str) -> None:
    result = FetchResult(url=url, status=302, headers=CaseInsensitiveDict({"Location": location}),
                         raw_headers=[("Location", location)], set_cookies=[], body=b"", truncated=False,
                         encoding=None, elapsed=0.0)
    resolved = result.location
    assert resolved is None or ("\n" not in resolved and "\r" not in resolved)
    assert isinstance(result.is_redirect, bool)
