"""A scriptable loopback HTTP(S) server for the tests of ``checks.web.net`` and the ``http`` check.

Unlike the lab's page server (:mod:`auditor.lab.server`), each path maps to a function of the
request, and a response may be streamed (an iterable body, sent piece by piece) or be raw
bytes that are not HTTP at all (status 0). Server certificates come from one private CA per
test session, the lab's own PKI, so the tests and the lab share a single certificate builder.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from auditor.lab.pki import LabPKI

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


@dataclass(frozen=True)
class LoopbackCert:
    """A loopback server certificate from the session's private CA: ``cert`` is the chain to
    serve (leaf, then the lab intermediate), ``key`` its key, ``ca_file`` the root to trust."""

    cert: str
    key: str
    ca_file: str


_session_pki: LabPKI | None = None


def loopback_pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    """The test session's one private CA (the lab's :class:`~auditor.lab.pki.LabPKI`),
    created on first use: root and intermediate keys are generated once per session."""
    global _session_pki
    if _session_pki is None:
        _session_pki = LabPKI(tmp_path_factory.mktemp("loopback-pki"))
    return _session_pki


def server_cert(tmp_path_factory: pytest.TempPathFactory, name: str, hostnames: list[str]) -> LoopbackCert:
    """An EC P-256 server certificate for ``hostnames`` (SANs) issued by the session CA.

    ``name`` names its files in the CA's directory, so each caller picks its own.
    """
    pki = loopback_pki(tmp_path_factory)
    files = pki.issue(name, hostnames, key="ec256")
    return LoopbackCert(str(files.cert), str(files.key), str(pki.ca_file))


def tls_server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server-side TLS context serving the chain in ``cert`` with ``key``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
