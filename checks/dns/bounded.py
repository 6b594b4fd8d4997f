"""A wall-clock bound on one TCP/TLS exchange of the dns check (IPv6 probe, certificate
issuer, MTA-STS policy).

Socket timeouts bound each read, not the exchange: a server that sends one byte just before
every timeout keeps a TLS handshake or a body read going for ever. :func:`guard` shuts the
socket down when the exchange's time is up, which wakes whatever read is blocked on it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def guard(sock: socket.socket, seconds: float) -> Iterator[threading.Event]:
    """Within the block, ``sock`` is shut down after ``seconds``; the event says it fired."""
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(0.0, seconds), fire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()
