"""A corpus of hostile servers on loopback: one small real server per misbehaviour.

The lab's own sites (:mod:`auditor.lab.sites`) all behave. The real web does not: some
servers accept a connection and never answer, drip their headers a byte at a time, send a
body that never ends, redirect forever or answer with a decompression bomb. Each server here
does exactly one of those things, so a test can show that every check still ends within its
documented time bound (a small multiple of ``--timeout``) and reports an error instead of a
pass.

Two layers of misbehaviour:

- ``tcp`` servers misbehave below TLS (silent after the TCP accept, silent after reading the
  ClientHello, a reset in the middle of the handshake). They listen on one port, used both
  as the HTTPS and the plain-HTTP port of their target.
- ``http`` servers complete TLS properly and then misbehave in HTTP. Each listens twice on
  its address: once over TLS (the target's HTTPS port) and once in plain text (its
  plain-HTTP port), so both of the http check's fetch chains meet the same behaviour.

Every server binds its own 127.0.12.x address with an ephemeral port and runs in daemon
threads; :meth:`HostileLab.stop` (or leaving the ``with`` block) ends them all. Only
loopback addresses are ever used.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import socket
import ssl
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from auditor.lab.pki import LabPKI
from auditor.targets import Target

__all__ = ["BEHAVIOURS", "Behaviour", "HostileLab", "HostileServer"]

Handler = Callable[[socket.socket, "Pace"], None]

_FIRST_ADDRESS = "127.0.12.1"
_HANDSHAKE_TIMEOUT_S = 5.0
_REQUEST_HEAD_LIMIT = 65_536
_BOMB_MIB = 64  # decompressed size of the gzip/deflate bombs (≈64 KiB on the wire)
_BROTLI_BOMB_MIB = 256  # brotli shrinks zeros far more: 256 MiB is ≈60 bytes
_BOMB_ENCODING = {"gzip_bomb": "gzip", "deflate_bomb": "deflate", "brotli_bomb": "br"}


@dataclass(frozen=True)
class Pace:
    """How slow the slow servers are, the event that tells every handler to stop, and what
    the ``answers_then_silent`` server needs (the lab's TLS context, a connection counter)."""

    stop: threading.Event
    trickle_interval: float = 1.0  # seconds between bytes of the trickled headers
    redirect_delay: float = 1.5  # seconds before each slow redirect is answered
    tls: ssl.SSLContext | None = None
    answered: Iterator[int] = field(default_factory=itertools.count)

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; False when the lab is stopping."""
        return not self.stop.wait(seconds)


@dataclass(frozen=True)
class Behaviour:
    """One misbehaviour: its name, layer (``tcp`` or ``http``) and what it does to a client."""

    name: str
    layer: str
    description: str
    handler: Handler


@dataclass(frozen=True)
class HostileServer:
    """A running hostile server: ``port`` is its HTTPS (or raw) port, ``http_port`` its
    plain-HTTP port (the same port for ``tcp`` servers)."""

    behaviour: Behaviour
    address: str
    port: int
    http_port: int

    @property
    def name(self) -> str:
        return self.behaviour.name

    def target(self) -> Target:
        """The audit target that points every check at this server."""
        return Target(
            url=f"https://{self.address}:{self.port}/",
            host=self.address,
            port=self.port,
            address=self.address,
            http_port=self.http_port,
        )


# --------------------------------------------------------------------------- raw helpers


def _hold(conn: socket.socket, pace: Pace) -> None:
    """Keep the connection open, saying nothing, until the lab stops."""
    pace.stop.wait()


def _read_some(conn: socket.socket, limit: int = 65_536) -> bytes:
    with contextlib.suppress(OSError):
        conn.settimeout(_HANDSHAKE_TIMEOUT_S)
        return conn.recv(limit)
    return b""


def _read_request_head(conn: socket.socket) -> bytes:
    """The request line and headers (up to a limit); empty when the client sent nothing."""
    data = b""
    conn.settimeout(_HANDSHAKE_TIMEOUT_S)
    while b"\r\n\r\n" not in data and len(data) < _REQUEST_HEAD_LIMIT:
        try:
            chunk = conn.recv(4096)
        except OSError:
            return b""
        if not chunk:
            break
        data += chunk
    return data


def _request_path(head: bytes) -> str:
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    return parts[1].decode("latin-1") if len(parts) >= 2 else "/"


def _reset(conn: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout)."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _send(conn: socket.socket, data: bytes) -> bool:
    try:
        conn.sendall(data)
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- tcp layer


def silent_after_accept(conn: socket.socket, pace: Pace) -> None:
    """Accept the TCP connection, never read, never write."""
    _hold(conn, pace)


def silent_after_hello(conn: socket.socket, pace: Pace) -> None:
    """Read the ClientHello, then say nothing (no ServerHello, no alert, no close)."""
    _read_some(conn)
    _hold(conn, pace)


def reset_mid_handshake(conn: socket.socket, pace: Pace) -> None:
    """Read the ClientHello, send the first bytes of a ServerHello record, then reset."""
    if _read_some(conn):
        # A handshake record header announcing 122 bytes, a ServerHello header, half a random.
        _send(conn, b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03" + bytes(16))
    _reset(conn)


_ANSWERED_CONNECTIONS = 6


def answers_then_silent(conn: socket.socket, pace: Pace) -> None:
    """Complete the TLS handshake of the first three connections (the probe and sslyze's
    connectivity test pass), then read every later ClientHello and never answer it."""
    if next(pace.answered) >= _ANSWERED_CONNECTIONS or pace.tls is None:
        silent_after_hello(conn, pace)
        return
    conn.settimeout(_HANDSHAKE_TIMEOUT_S)
    tls = pace.tls.wrap_socket(conn, server_side=True)
    if _read_request_head(tls):
        _send(tls, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    tls.close()


# --------------------------------------------------------------------------- http layer


def header_trickle(conn: socket.socket, pace: Pace) -> None:
    """Answer with response headers one byte per ``trickle_interval``, never ending them."""
    if not _read_request_head(conn):
        return
    prefix = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Trickle: "
    for byte in itertools.chain(prefix, itertools.repeat(ord("a"))):
        if not _send(conn, bytes([byte])) or not pace.sleep(pace.trickle_interval):
            return


def _endless_body(conn: socket.socket, pace: Pace, piece: Callable[[int], bytes], interval: float) -> None:
    if not _read_request_head(conn):
        return
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html><body><p>"
    if not _send(conn, head):
        return
    for n in itertools.count():
        if not _send(conn, piece(n)) or pace.stop.is_set() or (interval > 0 and not pace.sleep(interval)):
            return


def endless_body_slow(conn: socket.socket, pace: Pace) -> None:
    """A page whose body never ends: a link to a new page of the same kind every 0.2 s (never
    idle long enough for a read to time out, and a crawler always has another page to visit)."""
    _endless_body(conn, pace, lambda n: b'<a href="/page/%d">page %d</a>\n' % (n, n), 0.2)


def endless_body_fast(conn: socket.socket, pace: Pace) -> None:
    """A page whose body never ends, sent as fast as the client reads."""
    block = b"x" * 65_536
    _endless_body(conn, pace, lambda _n: block, 0)


def _redirect(conn: socket.socket, pace: Pace, delay: float) -> None:
    head = _read_request_head(conn)
    if not head or (delay and not pace.sleep(delay)):
        return
    path = _request_path(head)
    number = int(path.rsplit("/", 1)[-1]) + 1 if path.rsplit("/", 1)[-1].isdigit() else 1
    _send(
        conn,
        f"HTTP/1.1 302 Found\r\nLocation: /hop/{number}\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n".encode(),
    )


def endless_redirects(conn: socket.socket, pace: Pace) -> None:
    """Redirect every request to a new URL on the same host (/hop/1, /hop/2 ...): no loop."""
    _redirect(conn, pace, 0)


def slow_redirects(conn: socket.socket, pace: Pace) -> None:
    """Endless redirects, each answered after ``redirect_delay`` (under the read timeout)."""
    _redirect(conn, pace, pace.redirect_delay)


@cache
def _zeros_compressed(encoding: str) -> bytes:
    """Many MiB of zeros, compressed (built once per process, streamed from one zero MiB)."""
    zero = bytes(1 << 20)
    if encoding == "br":
        import brotli  # type: ignore[import-untyped,unused-ignore]

        comp = brotli.Compressor(quality=5)
        out = [comp.process(zero) for _ in range(_BROTLI_BOMB_MIB)]
        return b"".join(out) + comp.finish()
    wbits = 31 if encoding == "gzip" else 15  # gzip container, or zlib ("deflate" in HTTP)
    zcomp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return b"".join(zcomp.compress(zero) for _ in range(_BOMB_MIB)) + zcomp.flush()


def _bomb(conn: socket.socket, encoding: str) -> None:
    if not _read_request_head(conn):
        return
    blob = _zeros_compressed(encoding)
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: {encoding}\r\n"
        f"Content-Length: {len(blob)}\r\nConnection: close\r\n\r\n"
    )
    _send(conn, head.encode() + blob)


def gzip_bomb(conn: socket.socket, pace: Pace) -> None:
    """A page of 64 MiB of zeros, gzip-encoded (about 64 KiB sent)."""
    _bomb(conn, "gzip")


def deflate_bomb(conn: socket.socket, pace: Pace) -> None:
    """A page of 64 MiB of zeros, deflate-encoded (zlib format, as HTTP means it)."""
    _bomb(conn, "deflate")


def brotli_bomb(conn: socket.socket, pace: Pace) -> None:
    """A page of 256 MiB of zeros, brotli-encoded (a few dozen bytes sent)."""
    _bomb(conn, "br")


def huge_headers(conn: socket.socket, pace: Pace) -> None:
    """90 header lines of 60 KB each (5.4 MB of headers, under http.client's line and count
    limits, so the response is accepted), among them policy headers with absurd values."""
    if not _read_request_head(conn):
        return
    names = ["Content-Security-Policy", "Strict-Transport-Security", "Referrer-Policy"]
    names += [f"X-Filler-{n}" for n in range(87)]
    value = ("default-src 'self' " + "a" * 60_000).encode()
    lines = b"".join(name.encode() + b": " + value + b"\r\n" for name in names)
    _send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n" + lines + b"\r\nok")


def cookie_flood(conn: socket.socket, pace: Pace) -> None:
    """5,000 Set-Cookie headers on one response."""
    if not _read_request_head(conn):
        return
    cookies = b"".join(b"Set-Cookie: c%d=%d; Path=/\r\n" % (n, n) for n in range(5000))
    _send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n" + cookies + b"\r\nok")


def _behaviours() -> dict[str, Behaviour]:
    table: list[tuple[str, str, Handler]] = [
        ("silent_after_accept", "tcp", silent_after_accept),
        ("silent_after_hello", "tcp", silent_after_hello),
        ("reset_mid_handshake", "tcp", reset_mid_handshake),
        ("answers_then_silent", "tcp", answers_then_silent),
        ("header_trickle", "http", header_trickle),
        ("endless_body_slow", "http", endless_body_slow),
        ("endless_body_fast", "http", endless_body_fast),
        ("endless_redirects", "http", endless_redirects),
        ("slow_redirects", "http", slow_redirects),
        ("gzip_bomb", "http", gzip_bomb),
        ("deflate_bomb", "http", deflate_bomb),
        ("huge_headers", "http", huge_headers),
        ("cookie_flood", "http", cookie_flood),
    ]
    if _brotli_available():
        table.append(("brotli_bomb", "http", brotli_bomb))
    return {name: Behaviour(name, layer, (fn.__doc__ or "").split("\n")[0], fn) for name, layer, fn in table}


def _brotli_available() -> bool:
    try:
        import brotli  # type: ignore[import-untyped,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


BEHAVIOURS: dict[str, Behaviour] = _behaviours()


# --------------------------------------------------------------------------- listeners


@dataclass
class _Listener:
    """One listening socket and its accept thread; each connection gets a daemon thread."""

    address: str
    handler: Handler
    pace: Pace
    tls: ssl.SSLContext | None = None
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.create_server((self.address, 0))
        self.sock.settimeout(0.2)
        threading.Thread(target=self._accept_loop, name=f"hostile-{self.address}", daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _accept_loop(self) -> None:
        while not self.pace.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        with contextlib.suppress(OSError):
            self.sock.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn.settimeout(_HANDSHAKE_TIMEOUT_S)
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(conn, self.pace)
        except (OSError, ValueError):
            pass  # clients giving up is the point of this lab
        finally:
            with contextlib.suppress(OSError):
                conn.close()


class HostileLab:
    """Starts the hostile servers (all of :data:`BEHAVIOURS`, or the ``names`` given).

    ``trickle_interval`` and ``redirect_delay`` set the pace of the slow servers (defaults:
    one byte per second, 1.5 s per redirect). Use as a context manager, or call :meth:`stop`.
    """

    def __init__(
        self,
        names: list[str] | None = None,
        *,
        first_address: str = _FIRST_ADDRESS,
        trickle_interval: float = 1.0,
        redirect_delay: float = 1.5,
    ) -> None:
        chosen = [BEHAVIOURS[n] for n in names] if names is not None else list(BEHAVIOURS.values())
        addresses = _loopback_addresses(first_address, len(chosen))
        self._tmp = tempfile.TemporaryDirectory(prefix="auditor-hostile-")
        self._tls = _server_context(Path(self._tmp.name), addresses)
        self.pace = Pace(threading.Event(), trickle_interval, redirect_delay, self._tls)
        self._listeners: list[_Listener] = []
        self.servers: dict[str, HostileServer] = {}
        for behaviour in chosen:  # built now, so the first request is answered at once
            if behaviour.name in _BOMB_ENCODING:
                _zeros_compressed(_BOMB_ENCODING[behaviour.name])
        for behaviour, address in zip(chosen, addresses, strict=True):
            self.servers[behaviour.name] = self._start(behaviour, address)

    def _start(self, behaviour: Behaviour, address: str) -> HostileServer:
        if behaviour.layer == "tcp":
            raw = _Listener(address, behaviour.handler, self.pace)
            self._listeners.append(raw)
            return HostileServer(behaviour, address, raw.port, raw.port)
        secure = _Listener(address, behaviour.handler, self.pace, self._tls)
        plain = _Listener(address, behaviour.handler, self.pace)
        self._listeners += [secure, plain]
        return HostileServer(behaviour, address, secure.port, plain.port)

    def __iter__(self) -> Iterator[HostileServer]:
        return iter(self.servers.values())

    def __getitem__(self, name: str) -> HostileServer:
        return self.servers[name]

    def stop(self) -> None:
        """Stop accepting, end every handler and remove the certificate files."""
        self.pace.stop.set()
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.sock.close()
        self._tmp.cleanup()

    def __enter__(self) -> HostileLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _loopback_addresses(first: str, count: int) -> list[str]:
    start = ipaddress.IPv4Address(first)
    addresses = [str(start + n) for n in range(count)]
    if not all(ipaddress.IPv4Address(a) in ipaddress.IPv4Network("127.0.0.0/8") for a in addresses):
        raise ValueError(f"hostile servers live on 127.0.0.0/8 only, not from {first}")
    return addresses


def _server_context(directory: Path, addresses: list[str]) -> ssl.SSLContext:
    """A TLS server context with one lab certificate naming every hostile address."""
    leaf = LabPKI(directory).issue("hostile", addresses)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(leaf.cert), str(leaf.key))
    return context
