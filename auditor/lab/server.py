"""Threaded HTTP(S) servers for the loopback lab.

One :class:`LabHTTPServer` listens on one address and port and either serves a fixed set of
:class:`Page` objects by path, or answers every request with a redirect. With a TLS context
the handshake happens in the per-connection thread, under a timeout, so a scanner that
aborts handshakes by the hundred (sslyze does), or a client that sends garbage, only ever
costs its own thread.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dh

# Strong, forward-secret AEAD suites only (TLS <= 1.2; TLS 1.3 suites are OpenSSL's defaults).
STRONG_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)

_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_NO_VERSION_OPTIONS = {
    "TLSv1": "OP_NO_TLSv1",
    "TLSv1.1": "OP_NO_TLSv1_1",
    "TLSv1.2": "OP_NO_TLSv1_2",
    "TLSv1.3": "OP_NO_TLSv1_3",
}
# OpenSSL 3 refuses client-initiated renegotiation unless this option is set; Python's
# ssl module has no name for it (SSL_OP_ALLOW_CLIENT_RENEGOTIATION, bit 8).
_OP_ALLOW_CLIENT_RENEGOTIATION = 1 << 8

HANDSHAKE_TIMEOUT = 10.0
CONNECTION_TIMEOUT = 30.0


@dataclass
class TLSConfig:
    """How a lab server speaks TLS.

    ``ciphers`` is an OpenSSL cipher string for TLS <= 1.2. ``security_level`` appends
    ``@SECLEVEL=n``: OpenSSL 3 needs level 0 for TLS 1.0/1.1, SHA-1 signed or 1024-bit
    certificates and 1024-bit DH. ``disabled_versions`` switches single versions off inside
    ``min_version..max_version`` (e.g. TLS 1.0 on but TLS 1.1 off), since OpenSSL's server
    checks each version on its own. ``dh_bits`` loads finite-field DH parameters of that
    size, which DHE suites need.
    """

    min_version: str = "TLSv1.2"
    max_version: str = "TLSv1.3"
    ciphers: str = STRONG_CIPHERS
    allow_renegotiation: bool = False
    dh_bits: int | None = None
    security_level: int | None = None
    disabled_versions: tuple[str, ...] = ()

    def cipher_string(self) -> str:
        if self.security_level is None or "@SECLEVEL=" in self.ciphers:
            return self.ciphers
        return f"{self.ciphers}:@SECLEVEL={self.security_level}"


def build_tls_context(
    config: TLSConfig, cert_file: Path, key_file: Path, *, dh_cache: Path | None = None
) -> ssl.SSLContext:
    """A server-side SSLContext for ``config`` serving the chain in ``cert_file``.

    ``dh_cache`` is the directory where DH parameters are generated once and kept; it is
    required when ``config.dh_bits`` is set.
    """
    for version in (config.min_version, config.max_version, *config.disabled_versions):
        if version not in _VERSIONS:
            raise ValueError(f"unknown TLS version {version!r} (one of {', '.join(_VERSIONS)})")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # The security level must be lowered before the chain is loaded: loading a SHA-1 or
    # 1024-bit certificate fails at the default level.
    ctx.set_ciphers(config.cipher_string())
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1 and the OP_NO_* options; planting them is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = _VERSIONS[config.min_version]
        ctx.maximum_version = _VERSIONS[config.max_version]
        for version in config.disabled_versions:
            ctx.options |= getattr(ssl, _NO_VERSION_OPTIONS[version])
    if config.allow_renegotiation:
        ctx.options &= ~ssl.OP_NO_RENEGOTIATION
        ctx.options |= _OP_ALLOW_CLIENT_RENEGOTIATION
    else:
        ctx.options |= ssl.OP_NO_RENEGOTIATION
    if config.dh_bits:
        if dh_cache is None:
            raise ValueError("dh_bits needs a dh_cache directory")
        ctx.load_dh_params(str(dh_params_file(dh_cache, config.dh_bits)))
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


_dh_lock = threading.Lock()


def dh_params_file(directory: Path, bits: int) -> Path:
    """PEM DH parameters of ``bits`` bits, generated on first use and cached in ``directory``.

    Generating a safe prime takes from 0.05 to 2 s at 1024 bits, so it is done once per
    directory, never per site.
    """
    path = Path(directory) / f"dhparams-{bits}.pem"
    with _dh_lock:
        if not path.exists():
            params = dh.generate_parameters(generator=2, key_size=bits)
            pem = params.parameter_bytes(serialization.Encoding.PEM, serialization.ParameterFormat.PKCS3)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pem)
            tmp.replace(path)
    return path


@dataclass
class Page:
    """A canned HTTP response. ``headers`` may repeat a name (several Set-Cookie)."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | str = b""
    content_type: str = "text/html; charset=utf-8"

    def body_bytes(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


NOT_FOUND = Page(status=404, body="<!doctype html><title>Not found</title><p>Not found</p>\n")


class _Handler(BaseHTTPRequestHandler):
    server: LabHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "lab"
    sys_version = ""
    timeout = CONNECTION_TIMEOUT

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def do_POST(self) -> None:
        # Drain the form so the connection stays usable, then answer like a GET.
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(min(length, 1 << 20))
        self._respond(send_body=True)

    def _respond(self, *, send_body: bool) -> None:
        srv = self.server
        if srv.redirect_to is not None:
            page = Page(status=301, headers=[("Location", srv.redirect_to + self.path)], body=b"")
        else:
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            page = srv.pages.get(path, srv.not_found)
        body = page.body_bytes()
        # send_response_only: no automatic Server/Date headers, the page decides.
        self.send_response_only(page.status)
        names = {name.lower() for name, _ in page.headers}
        if "server" not in names:
            self.send_header("Server", self.server_version)
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        if "content-type" not in names and (body or page.status == 200):
            self.send_header("Content-Type", page.content_type)
        for name, value in page.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body and body:
            self.wfile.write(body)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LabHTTPServer(ThreadingHTTPServer):
    """Serves ``pages`` (or redirects everything to ``redirect_to`` + path), over TLS when
    ``tls`` is given, else plain HTTP.

    Call :meth:`start` to serve from a daemon thread and :meth:`stop` to shut down; open
    client connections are cut on stop so no handler thread outlives the server for long.
    """

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self,
        address: str,
        port: int,
        *,
        pages: dict[str, Page] | None = None,
        not_found: Page = NOT_FOUND,
        redirect_to: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.pages = dict(pages or {})
        self.not_found = not_found
        self.redirect_to = redirect_to
        self.tls = tls
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__((address, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn(), a DNS lookup: skip it.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    @property
    def port(self) -> int:
        return self.server_port

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        if self.tls is not None:
            conn.settimeout(HANDSHAKE_TIMEOUT)
            try:
                conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                conn.do_handshake()
            except (OSError, ValueError):
                # Failed handshake, garbage, or a scanner probing suites: drop it quietly.
                with contextlib.suppress(OSError):
                    conn.close()
                return
        with self._conn_lock:
            self._connections.add(conn)
        try:
            super().finish_request(conn, client_address)
        finally:
            with self._conn_lock:
                self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients of a lab are scanners that reset connections at will; that is not an error.
        pass

    def start(self) -> LabHTTPServer:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"lab-{self.server_name}:{self.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
        with self._conn_lock:
            open_conns = list(self._connections)
        for conn in open_conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def reserve_closed_port(address: str, port: int = 0) -> socket.socket:
    """Bind (but never listen on) ``address:port``, so the port stays closed and unused.

    A connection attempt gets a reset, exactly as with nothing listening, and no other
    process can take the port while the socket is held. Close the socket to release it.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock
