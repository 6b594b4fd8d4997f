"""The dns check's own TCP/TLS exchanges end on time whatever the server does: a server on
127.0.9.6 that accepts and then drips one byte every 0.2 s for ever (a TLS handshake that
never completes, a policy body that never ends)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from auditor.check import CheckContext
from auditor.targets import Resolver, Target
from checks.dns.collect import _probe, certificate_issuer

ADDR = "127.0.9.6"


@pytest.fixture(scope="module")
def dripper() -> Iterator[int]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ADDR, 0))
    srv.listen(16)
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            while not stop.is_set():
                conn.sendall(b"\x16")
                time.sleep(0.2)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield srv.getsockname()[1]
    stop.set()
    srv.close()


def test_ipv6_probe_and_issuer_fetch_are_bounded(dripper: int) -> None:
    ctx = CheckContext(timeout=1.0, resolver=Resolver([], allow_dns=False))
    t0 = time.monotonic()
    why = _probe("www.drip.lab.test", ADDR, dripper, ctx)
    assert time.monotonic() - t0 < 3.5 and why != "ok"
    target = Target(url=f"https://www.drip.lab.test:{dripper}/", host="www.drip.lab.test", port=dripper,
                    address=ADDR)
    t0 = time.monotonic()
    issuer = certificate_issuer(target, ctx)
    assert time.monotonic() - t0 < 3.5 and "error" in issuer
