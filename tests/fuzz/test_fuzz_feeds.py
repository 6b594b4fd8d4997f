"""Fuzz the reputation feed line parser and its normalisers (``checks.reputation.feeds``).

Feed files come from third parties and users in a dozen formats (hosts files, adblock rules,
CSV exports, bare lists). Property: each line gives a list of ``(kind, value)`` items with a
known kind and a one-line value, or nothing; never an exception.
"""

from __future__ import annotations

import ipaddress

from fuzz_strategies import HOST_PIECES, URL_PIECES, assert_one_line, hosts, mixed, urls
from hypothesis import example, given

from checks.reputation.feeds import normalize_domain, normalize_url, parse_line, parse_token

KINDS = ("domain", "ip", "cidr", "url")
lines = mixed(*HOST_PIECES, *URL_PIECES, "||", "^", "@@", "0.0.0.0 ", "127.0.0.1 ", "#", " #", ";", ",",
              "\"", "10.0.0.0/8", "::/0", "1.2.3.4-1.2.3.9", "0.0.0.0-255.255.255.255", "::-ffff::",
              "\ufeff", "/", "-", " ", "\t", max_size=25)


@given(lines)
@example("0.0.0.0-255.255.255.255")
@example("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
@example('"a","b",")')
@example("||xn--.com^")
def test_parse_line(line: str) -> None:
    items = parse_line(line)
    assert isinstance(items, list) and len(items) <= 1024
    for kind, value in items:
        assert kind in KINDS
        assert isinstance(value, str) and value
        assert_one_line(value)
        if kind == "ip":
            ipaddress.ip_address(value)
        elif kind == "cidr":
            ipaddress.ip_network(value)


@given(lines)
def test_parse_token(token: str) -> None:
    for kind, _value in parse_token(token):
        assert kind in KINDS


@given(hosts)
@example("xn--")
@example("a" * 64 + ".com")
@example("ex\u3002ample\uff0ecom")
def test_normalize_domain(text: str) -> None:
    value = normalize_domain(text)
    if value is not None:
        assert value == value.lower() and "." in value
        assert value.isascii()
        assert normalize_domain(value) == value


@given(urls)
@example("http://[::1")
@example("http://example.com:99999/")
@example("http://xn--/")
@example("http://example.com/\x1b[31m\x9b")  # controls are percent-encoded, as browsers do
def test_normalize_url(text: str) -> None:
    value = normalize_url(text)
    if value is not None:
        assert "#" not in value
        assert_one_line(value)
