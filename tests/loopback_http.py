"""A scriptable loopback HTTP(S) server for the tests of ``checks.web.net`` and the ``http`` check.

Unlike the lab's page server (:mod:`auditor.lab.server`), each path maps to a function of the
request, and a response may be streamed (an iterable body, sent piece by piece) or be raw
bytes that are not HTTP at all (status 0).
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Body = bytes | Iterable[bytes]
Route = Callable[["Handler"], tuple[int, list[tuple[str, str]], Body]]


class Handler(BaseHTTPRequestHandler):
    """Answers with the route of the path (a route ending in "/" also serves what is below it)."""

    protocol_version = "HTTP/1.1"
    timeout = 5
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: Server

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(5)
            self.request.do_handshake()
        super().setup()

    def version_string(self) -> str:  # no "Server: BaseHTTP/0.6 Python/3.x"
        return "test"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.seen.append(
            {
                "path": path,
                "host": self.headers.get("Host"),
                "local": self.connection.getsockname()[0],
                "ua": self.headers.get("User-Agent"),
                "cookie": self.headers.get("Cookie"),
            }
        )
        route = self.server.routes.get(path)
        if route is None:
            prefixes = [p for p in self.server.routes if p.endswith("/") and path.startswith(p)]
            route = self.server.routes[max(prefixes, key=len)] if prefixes else None
        if route is None:
            status, headers, body = 404, [("Content-Type", "text/plain")], b"not found"
        else:
            status, headers, body = route(self)
        if status == 0:  # raw bytes, written verbatim, then hang up
            assert isinstance(body, bytes)
            self.wfile.write(body)
            self.close_connection = True
            return
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        if isinstance(body, bytes):
            if not any(n.lower() == "content-length" for n, _ in headers):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in headers):
            self.close_connection = True  # body delimited by closing the connection
        self.end_headers()
        try:
            for part in body:
                self.wfile.write(part)
                self.wfile.flush()
        except OSError:
            self.close_connection = True


class Server(ThreadingHTTPServer):
    """Serves ``routes`` on ``address`` (an ephemeral port) from a daemon thread, over TLS
    when ``tls`` is given. ``seen`` lists the requests, ``snis`` the TLS server names."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: str, routes: dict[str, Route], tls: ssl.SSLContext | None = None) -> None:
        self.routes = routes
        self.tls = tls
        self.seen: list[dict[str, Any]] = []
        self.snis: list[str | None] = []
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.snis.append(name)  # type: ignore[assignment,misc]
        super().__init__((address, 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up early is part of the tests

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def self_signed_cert(directory: Path, names: list[str]) -> tuple[str, str]:
    """A self-signed EC certificate for ``names`` (SANs), valid from yesterday for 30 days:
    the paths of its PEM certificate and key files in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


def tls_server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
