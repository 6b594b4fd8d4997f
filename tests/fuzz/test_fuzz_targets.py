"""Fuzz what a user types as a target, a host name or a ``--resolve`` value (``auditor.targets``).

Property: a parse returns its declared tuple or raises :class:`TargetError` /
:class:`AuditorError` with a one-line message; a parsed target is an ``https://`` URL whose
ports are in range, and parsing it again gives the same result.
"""

from __future__ import annotations

import ipaddress

import pytest
from fuzz_strategies import HOST_PIECES, assert_one_line, hosts, mixed, urls
from hypothesis import example, given

from auditor.errors import AuditorError, TargetError
from auditor.targets import Resolver, normalize_host, parse_resolve, parse_target

resolve_specs = mixed(*HOST_PIECES, ":", "*", "[::1]", "::1", "127.0.0.1", "80", "443", "0", "65536", "-1",
                      "١٢", " 443", "1_0", max_size=10)


@given(resolve_specs)
@example("example.com:١٢:127.0.0.1")  # Unicode digits are digits to int()
@example("example.com: 443 :127.0.0.1")
@example("[::1]:443:::1")
@example("a" * 300 + ":443:127.0.0.1")
@example("example.com:443:fe80::1%eth0")
def test_parse_resolve(spec: str) -> None:
    try:
        host, port, addr = parse_resolve(spec)
    except AuditorError as exc:
        assert_one_line(str(exc))
        return
    assert isinstance(host, str) and host
    assert port is None or 0 < port < 65536
    ipaddress.ip_address(addr)
    resolver = Resolver([spec], allow_dns=False)
    assert resolver.overrides


@given(hosts)
@example("xn--")
@example("a" * 64)
@example("ex\u3002ample")
@example("example\u3002")  # a dot only after IDNA: still no trailing dot
def test_normalize_host(host: str) -> None:
    try:
        value = normalize_host(host)
    except TargetError as exc:
        assert_one_line(str(exc))
        return
    assert value and value == value.strip()


@given(urls | hosts)
@example("https://[::1")
@example("https://example.com:99999/")
@example("https://example.com:0/")
@example("https://xn--/")
@example("http://user@example.com/")
@example("https://example.com/\x7f\x9b[2J")  # DEL and C1 (CSI) are refused like C0 controls
@example("example\u3002")  # parsing the parsed URL gives the same host
def test_parse_target(text: str) -> None:
    try:
        url, host, port, path, http_port = parse_target(text)
    except TargetError as exc:
        assert_one_line(str(exc))
        return
    assert url.startswith("https://") and path.startswith("/")
    assert 0 < port < 65536 and 0 < http_port < 65536
    assert_one_line(url)
    assert parse_target(url)[:4] == (url, host, port, path)


@given(resolve_specs)
def test_resolver_never_asks_dns_when_told_not_to(spec: str) -> None:
    try:
        resolver = Resolver([spec], allow_dns=False)
    except AuditorError:
        return
    with pytest.raises(TargetError):
        resolver.resolve("not-overridden.invalid", 443)
