"""The lab's latency proxy really delays traffic, and an audit through it finds the same things.

The good site starts behind a 100 ms one-way proxy (servers on 127.0.12.x, proxies on
127.0.13.x) for the timing tests; a flawed site behind a 25 ms proxy (the benchmark's 50 ms
round trip; an audit at 100 ms takes about 20 s) is audited both straight (``origin_address``)
and through its proxy (``address``).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from auditor.lab.latency import LatencyProxy, Route
from auditor.lab.sites import GOOD_SITE, LAB_SITES, Lab, RunningSite

DELAY_MS = 100
FLAWED = "no-tls1-3"


@pytest.fixture(scope="module")
def slow_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("slowlab"), [GOOD_SITE], first_address="127.0.12.10",
              latency_ms=DELAY_MS, proxy_first_address="127.0.13.10")
    with lab:
        yield lab


@pytest.fixture(scope="module")
def audit_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    specs = [next(s for s in LAB_SITES if s.name == FLAWED)]
    lab = Lab(tmp_path_factory.mktemp("auditlab"), specs, first_address="127.0.12.20",
              latency_ms=25, jitter_ms=2, proxy_first_address="127.0.13.20")
    with lab:
        yield lab


def _get(lab: Lab, site: RunningSite, address: str) -> tuple[int, float]:
    """One HTTPS GET of the home page on a fresh connection; (status, seconds)."""
    ctx = ssl.create_default_context(cafile=str(lab.ca_file))
    started = time.perf_counter()
    raw = socket.create_connection((address, site.https_port), timeout=5)
    conn = http.client.HTTPSConnection(site.host, site.https_port, context=ctx, timeout=5)
    conn.sock = ctx.wrap_socket(raw, server_hostname=site.host)
    conn.request("GET", "/")
    status = conn.getresponse().status
    conn.close()
    return status, time.perf_counter() - started


def test_site_addresses_point_at_the_proxy(slow_lab: Lab) -> None:
    site = slow_lab.site("good")
    assert site.address == "127.0.13.10" and site.origin_address == "127.0.12.10"
    assert site.resolve == [f"{site.host}:{site.https_port}:127.0.13.10", f"{site.host}:{site.http_port}:127.0.13.10"]


def test_plain_round_trip_takes_two_delays(slow_lab: Lab) -> None:
    """Plain HTTP request and response on an open connection: exactly one added round trip."""
    site = slow_lab.site("good")
    with socket.create_connection((site.address, site.http_port), timeout=5) as sock:
        started = time.perf_counter()
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {site.host}\r\nConnection: close\r\n\r\n".encode())
        first = sock.recv(100)
        elapsed = time.perf_counter() - started
    assert first.startswith(b"HTTP/1.")
    assert 0.2 <= elapsed < 0.4, elapsed


def test_https_get_is_slower_through_the_proxy(slow_lab: Lab) -> None:
    """TLS 1.3 handshake (one round trip) plus the GET (one more): at least 2 x 200 ms."""
    site = slow_lab.site("good")
    status, direct = _get(slow_lab, site, site.origin_address)
    assert status == 200 and direct < 0.2, direct
    status, proxied = _get(slow_lab, site, site.address)
    assert status == 200
    assert 0.4 <= proxied < 0.8, proxied


def test_jitter_stays_within_its_bounds() -> None:
    proxy = LatencyProxy([], delay_ms=10, jitter_ms=5, seed=7)
    delays = [proxy._sample_delay() for _ in range(2000)]
    assert 0.005 <= min(delays) < 0.006 and 0.014 < max(delays) <= 0.015
    clamped = LatencyProxy([], delay_ms=2, jitter_ms=5, seed=7)
    assert min(clamped._sample_delay() for _ in range(200)) == 0.0  # never negative


def test_closed_port_stays_closed_behind_the_proxy(tmp_path_factory: pytest.TempPathFactory) -> None:
    closed = next(s for s in LAB_SITES if s.http_mode == "closed")
    with Lab(tmp_path_factory.mktemp("closedlab"), [closed], first_address="127.0.12.30",
             latency_ms=10, proxy_first_address="127.0.13.30") as lab:
        site = lab.sites[0]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((site.address, site.http_port), timeout=2).close()


def test_proxy_caps_connections() -> None:
    """Beyond max_connections a client is dropped at once; the others keep working."""
    backend = socket.create_server(("127.0.12.50", 0))
    port = backend.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: [accepted.append(backend.accept()[0]) for _ in range(2)], daemon=True).start()
    with LatencyProxy([Route("127.0.13.50", "127.0.12.50", port)], delay_ms=1, max_connections=1) as proxy:
        first = socket.create_connection(("127.0.13.50", port), timeout=2)
        deadline = time.monotonic() + 2
        while proxy.active < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        second = socket.create_connection(("127.0.13.50", port), timeout=2)
        assert second.recv(10) == b""  # closed by the proxy
        first.sendall(b"ping")
        deadline = time.monotonic() + 2
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert accepted[0].recv(10) == b"ping"
        assert proxy.refused == 1
        first.close()
        second.close()
    backend.close()
    assert proxy.active == 0


def _scan(cli: Any, lab: Lab, site: RunningSite, address: str) -> dict[str, Any]:
    args = ["scan", site.url, "--checks", "tls,http", "--format", "json", "--ca-file", str(lab.ca_file),
            "--timeout", "10", "--resolve", f"{site.host}:*:{address}"]
    res = cli(*args)
    assert res.code in (0, 1), res
    return json.loads(res.out)["results"][0]


def test_audit_through_the_proxy_finds_the_same(audit_lab: Lab, cli: Any) -> None:  # type: ignore[no-untyped-def]
    site = audit_lab.site(FLAWED)
    started = time.perf_counter()
    direct = _scan(cli, audit_lab, site, site.origin_address)
    direct_s = time.perf_counter() - started
    started = time.perf_counter()
    proxied = _scan(cli, audit_lab, site, site.address)
    elapsed = time.perf_counter() - started
    assert proxied["address"] == site.address and direct["address"] == site.origin_address
    assert {c: s["status"] for c, s in proxied["checks"].items()} == {"tls": "ok", "http": "ok"}
    ids = sorted(f["id"] for f in direct["findings"])
    assert "tls.protocol.no_tls1_3" in ids
    assert sorted(f["id"] for f in proxied["findings"]) == ids
    assert (proxied["grade"], proxied["score"]) == (direct["grade"], direct["score"])
    assert elapsed > direct_s + 1.0, (direct_s, elapsed)  # the audit really went through the delay
