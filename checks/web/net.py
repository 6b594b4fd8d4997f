"""A small, bounded HTTP client shared by the checks that talk HTTP (``http``, ``privacy``...).

Every remote byte is hostile, so this module is where the bounds live:

- **Pinned addresses.** A session never asks DNS on its own. Each (host, port) it connects to
  is pinned when its connection pool is created: the target's host goes to
  ``Target.address``; any other host goes through ``ctx.resolver`` (``--resolve`` overrides
  and the address policy). The TCP connect goes to that address while SNI, the ``Host``
  header and, when enabled, certificate host-name checks keep using the real name.
- **No surprises from the environment.** ``trust_env`` is off (no proxies, netrc or CA bundle
  from environment variables) and the adapter never uses a proxy.
- **Bounded time and size.** Every request has (connect, read) timeouts cut to the site
  deadline, a wall-clock watchdog for the whole exchange (a server that drips one byte at a
  time cannot hold a worker), a cap on the response headers (256 KiB, as browsers) and on
  the decoded body, and no automatic redirects; :func:`follow` follows redirects by hand,
  with a hop limit, loop detection, a host allow-list and one time budget for the whole
  chain (``CHAIN_BUDGET_FACTOR`` x the timeout), so slow hops cannot add up.
- **Readable failures.** Network problems surface as :class:`FetchError` with a one-line
  message, never a traceback.

TLS is deliberately permissive by default (no verification, ``@SECLEVEL=0``, TLS 1.0 and up):
the ``http`` check judges headers, the ``tls`` check judges certificates and protocols, and a
site with a bad certificate still has headers worth reading.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.poolmanager import PoolManager
from urllib3.util.connection import create_connection

from auditor.errors import AuditorError, TargetError
from auditor.targets import normalize_host
from auditor.version import __version__

if TYPE_CHECKING:
    from auditor.check import CheckContext
    from auditor.targets import Target

__all__ = [
    "REDIRECT_STATUSES",
    "BoundedSession",
    "FetchError",
    "FetchResult",
    "PinnedAdapter",
    "StopReason",
    "chain_evidence",
    "decode_body",
    "default_user_agent",
    "fetch",
    "follow",
    "guess_encoding",
    "make_session",
    "one_line",
    "permissive_ssl_context",
]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_POOLS = 10
_READ_CHUNK = 65_536
_MAX_MESSAGE = 300
_SNIFF_BYTES = 4096
# A fetch may take at most this many per-operation timeouts from first byte sent to last byte
# read, unless the caller gives max_seconds.
_FETCH_BUDGET_FACTOR = 3.0
# A whole redirect chain (every hop, bodies included) may take at most this many per-operation
# timeouts, unless the caller gives max_seconds: slow hops cannot add up to hop-limit times T.
CHAIN_BUDGET_FACTOR = 2.0
# Response headers larger than this are refused, as browsers do (Chromium: 256 KiB); http.client
# alone would accept 100 lines of 64 KiB, and every copy of them downstream costs memory.
MAX_HEADER_BYTES = 262_144

# WHATWG Encoding: these labels all mean windows-1252 in browsers.
_WINDOWS_1252_LABELS = frozenset(
    {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "iso_8859-1", "cp819"}
)
# Python's names for the encodings of the WHATWG Encoding standard, the ones a browser decodes
# pages with. Other codecs are not document encodings, and some ("punycode" takes minutes on
# 2 MB) would let a hostile Content-Type hold a worker far beyond the fetch's time budget.
_WEB_CODECS = frozenset(
    {"utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "cp866", "koi8-r", "koi8-u"}
    | {f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)}
    | {f"cp{n}" for n in (874, 1250, 1251, 1252, 1253, 1254, 1255, 1256, 1257, 1258)}
    | {"mac-roman", "mac-cyrillic", "gbk", "gb2312", "gb18030", "big5", "big5hkscs"}
    | {"euc_jp", "iso2022_jp", "shift_jis", "euc_kr"}
)
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)


def default_user_agent() -> str:
    return f"auditor/{__version__} (+security audit)"


def one_line(text: str, limit: int = _MAX_MESSAGE) -> str:
    """Collapse white space and control characters and cap the length (for hostile text)."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# Errors and results


class FetchError(Exception):
    """A request that produced no usable response, with a one-line reason.

    ``kind`` is one of ``refused``, ``closed``, ``timeout``, ``tls``, ``resolve``, ``protocol``,
    ``invalid``, ``deadline`` or ``error``. ``chain`` holds the responses already received when the failure
    happened in the middle of :func:`follow`.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "error",
        url: str | None = None,
        chain: list[FetchResult] | None = None,
    ) -> None:
        super().__init__(one_line(message))
        self.kind = kind
        self.url = url
        self.chain: list[FetchResult] = chain or []

    @property
    def message(self) -> str:
        return str(self.args[0])


class StopReason(str):
    """Why :func:`follow` stopped before reaching a non-redirect response.

    It is a plain string for display. For a redirect that was not followed because of its host
    (``kind == "offsite"``) or its scheme (``kind == "scheme"``) the string *is* the absolute
    Location URL; for ``too_many``, ``loop`` and ``bad_location`` it is a one-line message.
    ``location`` is the absolute target of the last redirect (None when it could not be parsed).
    """

    kind: str
    location: str | None

    def __new__(cls, text: str, kind: str, location: str | None = None) -> StopReason:
        obj = super().__new__(cls, text)
        obj.kind = kind
        obj.location = location
        return obj


@dataclass
class FetchResult:
    """One HTTP response, body bounded.

    ``headers`` joins repeated headers with ", " (requests' case-insensitive dict);
    ``raw_headers`` keeps every header line in order, and ``set_cookies`` every Set-Cookie.
    ``truncated`` is True when the body was cut (size cap, time budget or deadline, or the
    connection failed mid-body); ``body_error`` then says why when it was not the size cap.
    """

    url: str
    status: int
    headers: CaseInsensitiveDict[str]
    raw_headers: list[tuple[str, str]]
    set_cookies: list[str]
    body: bytes
    truncated: bool
    encoding: str | None
    elapsed: float
    body_error: str | None = None
    method: str = "GET"

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name``, one per header line, in order."""
        lname = name.lower()
        return [v for k, v in self.raw_headers if k.lower() == lname]

    @property
    def is_redirect(self) -> bool:
        return self.status in REDIRECT_STATUSES and bool(self.headers.get("Location"))

    @property
    def location(self) -> str | None:
        """The Location header resolved against this response's URL (None when absent/invalid)."""
        raw = self.headers.get("Location")
        if not raw:
            return None
        return _resolve_location(self.url, raw)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    @property
    def text(self) -> str:
        """The body decoded with the guessed charset; never raises on odd bytes or labels."""
        return decode_body(self.body, self.encoding)


def guess_encoding(headers: CaseInsensitiveDict[str], body: bytes) -> str | None:
    """Charset from Content-Type, else a BOM, else a <meta charset> in the first 4 KiB."""
    ctype = headers.get("Content-Type", "")
    for part in ctype.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip("\"'"):
            return value.strip().strip("\"'").lower()
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    match = _META_CHARSET_RE.search(body[:_SNIFF_BYTES])
    if match:
        return match.group(1).decode("ascii", "replace").lower()
    return None


def decode_body(body: bytes, encoding: str | None) -> str:
    """Decode with ``encoding`` when it names a web encoding, else UTF-8; replace bad bytes."""
    name = (encoding or "utf-8").strip().lower()
    if name in _WINDOWS_1252_LABELS:
        name = "cp1252"
    try:
        codec = codecs.lookup(name).name
    except (LookupError, TypeError, ValueError):
        codec = "utf-8"
    # An unknown label, a non-text codec such as "hex", or a text codec no page is written in.
    return body.decode(codec if codec in _WEB_CODECS else "utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# Watchdog: a wall-clock bound on one fetch


class _Watch:
    """Shuts down the sockets a fetch uses once its time budget is spent.

    Socket timeouts bound each read, not a whole exchange: a server may send one byte every
    few seconds forever. The sockets a fetch touches register here (through a context
    variable, so only the current thread's fetch sees them) and a timer shuts them down,
    which makes the blocked read return at once. Sockets, not connections, are kept: for a
    ``Connection: close`` response http.client detaches the socket from its connection and
    only the response still reads from it.
    """

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self.fired = False
        self.done = False

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.done or any(s is sock for s in self._socks):
                return
            self._socks.append(sock)
            if self.fired:  # connected after the budget was spent: no read may start
                _shutdown(sock)

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            for sock in self._socks:
                _shutdown(sock)

    def finish(self) -> None:
        with self._lock:
            self.done = True


def _shutdown(sock: socket.socket) -> None:
    # The base-class method acts on the descriptor and leaves the SSL object in place for
    # the reading thread to fail on cleanly.
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_CURRENT_WATCH: contextvars.ContextVar[_Watch | None] = contextvars.ContextVar(
    "auditor_net_watch", default=None
)


def _register(conn: HTTPConnection) -> None:
    watch = _CURRENT_WATCH.get()
    if watch is not None:
        watch.add(getattr(conn, "sock", None))


# --------------------------------------------------------------------------------------------
# Pinned connections, pools and adapter


class _PinnedConnectionMixin:
    """Connects the TCP socket to ``pinned_address``; everything else keeps the host name."""

    pinned_address: str | None = None

    def _new_conn(self) -> socket.socket:
        conn: Any = self
        if conn.pinned_address is None:
            raise NewConnectionError(conn, f"no pinned address for {conn.host}; refusing to resolve it")
        # An IP literal never reaches the resolver; refuse anything else outright.
        address = str(ipaddress.ip_address(conn.pinned_address))
        try:
            return create_connection(
                (address, conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                conn, f"connection to {conn.host} ({address}) timed out (connect timeout={conn.timeout})"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(conn, f"failed to connect to {conn.host} ({address}): {exc}") from exc

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _register(self)  # type: ignore[arg-type]  # the socket exists (TLS-wrapped) only now

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]


class PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


class _PinnedPoolMixin:
    """Hands the pool's pinned address to each new connection; bounds the wait for a free one."""

    pinned_address: str | None = None
    pool_wait: float | None = None

    def _new_conn(self) -> HTTPConnection:
        conn = super()._new_conn()  # type: ignore[misc]
        conn.pinned_address = self.pinned_address
        return conn  # type: ignore[no-any-return]

    def _get_conn(self, timeout: float | None = None) -> HTTPConnection:
        # With pool_block=True urllib3 would otherwise wait for a free connection forever.
        return super()._get_conn(timeout=self.pool_wait if timeout is None else timeout)  # type: ignore[misc,no-any-return]


class PinnedHTTPConnectionPool(_PinnedPoolMixin, HTTPConnectionPool):
    ConnectionCls = PinnedHTTPConnection


class PinnedHTTPSConnectionPool(_PinnedPoolMixin, HTTPSConnectionPool):
    ConnectionCls = PinnedHTTPSConnection

    def _validate_conn(self, conn: Any) -> None:
        # Same as urllib3's, minus the InsecureRequestWarning: not verifying is this client's
        # documented choice (the tls check judges certificates), so the warning would be noise.
        # Scoped to these pools; the process-wide warning filters are left alone.
        HTTPConnectionPool._validate_conn(self, conn)
        if conn.is_closed:
            conn.connect()


class _PinnedPoolManager(PoolManager):
    def __init__(self, pin: Callable[[str, int], str], pool_wait: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pin = pin
        self._pool_wait = pool_wait
        self.pool_classes_by_scheme = {  # type: ignore[assignment]
            "http": PinnedHTTPConnectionPool,
            "https": PinnedHTTPSConnectionPool,
        }

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> HTTPConnectionPool:
        address = self._pin(host, port)  # may raise TargetError: no pool, no connection
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.pinned_address = address  # type: ignore[attr-defined]
        pool.pool_wait = self._pool_wait  # type: ignore[attr-defined]
        return pool


class PinnedAdapter(HTTPAdapter):
    """A requests adapter whose connections go to pinned addresses, never through a proxy."""

    def __init__(
        self,
        pin: Callable[[str, int], str],
        *,
        pool_size: int = 2,
        pool_wait: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        # Set before super().__init__, which calls init_poolmanager.
        self._pin = pin
        self._pool_wait = pool_wait
        self._ssl_context = ssl_context
        super().__init__(pool_connections=_MAX_POOLS, pool_maxsize=pool_size, max_retries=0, pool_block=True)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = True, **pool_kwargs: Any
    ) -> None:
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        if self._ssl_context is not None:
            pool_kwargs["ssl_context"] = self._ssl_context
        self.poolmanager = _PinnedPoolManager(
            self._pin, self._pool_wait, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        # A proxy would make the pinned address meaningless; ignore any that sneak in
        # (session.proxies, per-request proxies=...).
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=None)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise AuditorError("the pinned HTTP client does not use proxies")


def permissive_ssl_context() -> ssl.SSLContext:
    """No verification, TLS 1.0 and up, every authenticated cipher OpenSSL has: read what is there."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # MINIMUM_SUPPORTED rather than TLSv1: same effect here (SSL 3 stays off through
    # OP_NO_SSLv3) without Python's DeprecationWarning for naming TLSv1.
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):  # not OpenSSL
        context.set_ciphers("ALL:!aNULL:!eNULL:!PSK:!SRP:@SECLEVEL=0")
    # Servers without RFC 5746 secure renegotiation are refused by OpenSSL 3 unless told.
    context.options |= getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)
    return context


def _pinner(ctx: CheckContext, target: Target) -> Callable[[str, int], str]:
    def pin(host: str, port: int) -> str:
        name = normalize_host(host)
        if name == target.host:
            return target.address
        if ctx.resolver is None:
            raise TargetError(f"cannot resolve {name}: no resolver available")
        return ctx.resolver.resolve(name, port)

    return pin


class BoundedSession(requests.Session):
    """A session that never follows redirects by itself.

    requests consumes the *whole* body of a redirect response to prepare ``Response.next``,
    even with ``allow_redirects=False``: an unbounded read of hostile bytes. Reporting no
    redirect target switches that machinery off; :func:`follow` does redirects instead.
    """

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def make_session(
    ctx: CheckContext, target: Target, *, pool_size: int = 2, verify: bool = False
) -> requests.Session:
    """A requests session that only connects to pinned addresses (see the module docstring).

    Send requests through :func:`fetch` / :func:`follow`; the session itself never follows
    redirects (see :class:`BoundedSession`).

    At most ``pool_size`` connections per (host, port); a further request waits up to
    ``ctx.timeout`` for one to free up. With ``verify=True`` certificates are checked (against
    ``ctx.ca_file`` when set) with the real host name; the default does not check them.
    Use it as a context manager, or close it, to release its connections.
    """
    session = BoundedSession()
    session.trust_env = False
    session.proxies = {}
    session.headers["User-Agent"] = ctx.user_agent or default_user_agent()
    adapter = PinnedAdapter(
        _pinner(ctx, target),
        pool_size=max(1, pool_size),
        pool_wait=max(1.0, ctx.timeout),
        ssl_context=None if verify else permissive_ssl_context(),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = (ctx.ca_file or True) if verify else False
    return session


# --------------------------------------------------------------------------------------------
# fetch and follow


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (requests and urllib3 nest them deeply)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 50:
        cur = todo.pop(0)
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        for nxt in (getattr(cur, "reason", None), cur.__cause__, cur.__context__, *cur.args):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _classify(exc: BaseException, url: str, timeout: float, watch: _Watch | None) -> FetchError:
    host = urlsplit(url).hostname or url
    if watch is not None and watch.fired:
        return FetchError(
            f"no complete response from {host} within {watch.budget:g} s (the fetch time bound)",
            kind="timeout",
            url=url,
        )
    chain = list(_causes(exc))
    for cause in chain:
        if isinstance(cause, TargetError):
            return FetchError(str(cause), kind="resolve", url=url)
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return FetchError(f"connection to {host} refused", kind="refused", url=url)
    for cause in chain:
        # urllib3's NewConnectionError subclasses ConnectTimeoutError; it is not a timeout.
        if isinstance(cause, ConnectTimeoutError) and not isinstance(cause, NewConnectionError):
            return FetchError(f"connection to {host} timed out after {timeout:g}s", kind="timeout", url=url)
        if isinstance(cause, urllib3.exceptions.ReadTimeoutError | requests.ReadTimeout | TimeoutError):
            return FetchError(f"{host} sent no response within {timeout:g}s", kind="timeout", url=url)
    for cause in chain:
        if isinstance(cause, ssl.SSLError):
            detail = cause.reason or cause.strerror or str(cause)
            return FetchError(f"TLS failure with {host}: {detail}", kind="tls", url=url)
    for cause in chain:
        if isinstance(cause, urllib3.exceptions.SSLError | requests.exceptions.SSLError):
            return FetchError(f"TLS failure with {host}: {cause}", kind="tls", url=url)
    for cause in chain:
        if isinstance(
            cause,
            http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError | ConnectionAbortedError,
        ):
            return FetchError(f"{host} closed the connection without a response", kind="closed", url=url)
    for cause in chain:
        if isinstance(cause, http.client.HTTPException):
            return FetchError(
                f"invalid HTTP response from {host}: {type(cause).__name__}: {cause}",
                kind="protocol",
                url=url,
            )
    for cause in chain:
        if isinstance(cause, OSError) and cause.errno is not None:
            return FetchError(f"cannot connect to {host}: {cause.strerror or cause}", kind="error", url=url)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema | ValueError):
        return FetchError(f"invalid URL {url}: {exc}", kind="invalid", url=url)
    return FetchError(f"request to {host} failed: {type(exc).__name__}: {exc}", kind="error", url=url)


def fetch(
    session: requests.Session,
    url: str,
    *,
    ctx: CheckContext,
    max_bytes: int,
    method: str = "GET",
    max_seconds: float | None = None,
) -> FetchResult:
    """One request, no redirects followed, body read (decoded) up to ``max_bytes``.

    Raises :class:`FetchError` when no response arrives. Once the status line and headers are
    in, problems while reading the body (cap, budget, deadline, broken connection, bad
    compression) give a result with ``truncated=True`` instead. The whole exchange is bounded
    by ``max_seconds`` (default: three times the per-operation timeout) and the site deadline.
    """
    if ctx.remaining() <= 0:
        raise FetchError(f"site time budget exhausted before fetching {url}", kind="deadline", url=url)
    timeout = ctx.bounded_timeout()
    budget = min(ctx.remaining(), max_seconds if max_seconds is not None else _FETCH_BUDGET_FACTOR * timeout)
    watch = _Watch(round(max(0.1, budget), 1))
    timer = threading.Timer(max(0.1, budget), watch.fire)
    timer.daemon = True
    token = _CURRENT_WATCH.set(watch)
    started = time.monotonic()
    timer.start()
    resp: requests.Response | None = None
    try:
        try:
            resp = session.request(
                method, url, allow_redirects=False, stream=True, timeout=(timeout, timeout)
            )
        except (
            requests.RequestException,
            urllib3.exceptions.HTTPError,
            OSError,
            ValueError,
            http.client.HTTPException,
            AuditorError,
        ) as exc:
            raise _classify(exc, url, timeout, watch) from None
        if watch.fired:
            # The watchdog's shutdown reads as the end of the header section to http.client:
            # what arrived is a cut-off head, not a response.
            raise FetchError(
                f"no complete response head from {urlsplit(url).hostname or url} within {watch.budget:g} s "
                "(the fetch time bound)",
                kind="timeout",
                url=url,
            )
        raw_headers = [(str(k), str(v)) for k, v in resp.raw.headers.items()]
        header_bytes = sum(len(k) + len(v) + 4 for k, v in raw_headers)
        if header_bytes > MAX_HEADER_BYTES:
            host = urlsplit(url).hostname or url
            raise FetchError(
                f"response headers from {host} are {header_bytes:,} bytes, over the "
                f"{MAX_HEADER_BYTES // 1024} KiB that browsers accept",
                kind="protocol",
                url=url,
            )
        body, truncated, body_error = _read_body(resp, max_bytes, ctx, watch)
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(resp.headers)
        return FetchResult(
            url=url,
            status=resp.status_code,
            headers=headers,
            raw_headers=raw_headers,
            set_cookies=list(resp.raw.headers.getlist("Set-Cookie")),
            body=body,
            truncated=truncated,
            encoding=guess_encoding(headers, body),
            elapsed=time.monotonic() - started,
            body_error=body_error,
            method=method.upper(),
        )
    finally:
        watch.finish()
        timer.cancel()
        _CURRENT_WATCH.reset(token)
        if resp is not None:
            # Closing a half-dead connection must not mask the result.
            with contextlib.suppress(Exception):
                resp.close()


def _read_body(
    resp: requests.Response, max_bytes: int, ctx: CheckContext, watch: _Watch
) -> tuple[bytes, bool, str | None]:
    """Read at most ``max_bytes`` decoded bytes; never read past the cap, deadline or budget."""
    parts: list[bytes] = []
    size = 0
    raw = resp.raw
    while True:
        if size >= max_bytes:
            # Reading one more byte to learn whether the body went on would break the cap.
            return b"".join(parts)[:max_bytes], not _at_eof(raw), None
        if time.monotonic() >= ctx.deadline:
            return b"".join(parts), True, "time budget (fetch bound or site deadline) spent while reading the body"
        try:
            # read1 returns what one socket read yields, so the deadline check above runs often.
            chunk = raw.read1(min(_READ_CHUNK, max_bytes - size), decode_content=True)
        except Exception as exc:
            if watch.fired:
                return b"".join(parts), True, f"time budget of {watch.budget:g} s spent while reading the body"
            return b"".join(parts), True, one_line(f"body read failed: {type(exc).__name__}: {exc}")
        if not chunk:
            if watch.fired:
                return b"".join(parts), True, f"time budget of {watch.budget:g} s spent while reading the body"
            return b"".join(parts), False, None
        parts.append(chunk)
        size += len(chunk)


def _at_eof(raw: Any) -> bool:
    """True when the body is known to be complete without reading another byte.

    Only an uncompressed Content-Length body can tell; otherwise assume there was more.
    """
    try:
        return raw.length_remaining == 0 and not raw.headers.get("Content-Encoding")
    except Exception:
        return False


def _resolve_location(base: str, location: str) -> str | None:
    """Absolute URL for a Location value (relative ones resolved, fragment dropped)."""
    value = location.strip()
    # http.client decodes header bytes as latin-1; most servers meant UTF-8.
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("latin-1").decode("utf-8")
    if not value or any(ch in value for ch in "\r\n\x00"):
        return None
    try:
        absolute = urljoin(base, value)
        parts = urlsplit(absolute)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path or "/", parts.query, ""))


def _cookie_state(session: requests.Session) -> tuple[tuple[str, str, str, str], ...]:
    return tuple(sorted((c.domain, c.path, c.name, c.value or "") for c in session.cookies))


def follow(
    session: requests.Session,
    url: str,
    *,
    ctx: CheckContext,
    max_bytes: int,
    max_redirects: int = 10,
    same_site_only: bool = True,
    allowed_hosts: set[str],
    schemes: frozenset[str] = frozenset({"http", "https"}),
    max_seconds: float | None = None,
) -> tuple[list[FetchResult], StopReason | None]:
    """Fetch ``url`` and follow its redirects by hand, all within one time budget.

    The budget (``max_seconds``, default :data:`CHAIN_BUDGET_FACTOR` times the per-operation
    timeout, never past the site deadline) is a deadline for the whole chain: every hop's
    fetch is cut to what is left of it, so neither a slow server nor a long chain of slow
    redirects can stretch it. A chain that runs out of it raises :class:`FetchError`
    (``kind="timeout"``) unless its last response is already in (a body cut short by the
    budget gives ``truncated=True`` with a ``body_error``).

    Returns the chain of responses and why it stopped: None when the last response is not a
    redirect, else a :class:`StopReason` — ``offsite`` (host not in ``allowed_hosts`` while
    ``same_site_only``) or ``scheme`` (not in ``schemes``): the reason string is the absolute
    Location, which is NOT fetched; ``too_many`` (more than ``max_redirects`` hops), ``loop``
    (the same URL again with the same cookies, so nothing can change) or ``bad_location``.

    Raises :class:`FetchError` on a network failure; its ``chain`` holds the responses
    received before it.
    """
    allowed = {normalize_host(h) for h in allowed_hosts}
    budget = max_seconds if max_seconds is not None else CHAIN_BUDGET_FACTOR * ctx.bounded_timeout()
    chain_ctx = ctx.with_deadline(time.monotonic() + budget)
    chain: list[FetchResult] = []
    seen: set[tuple[str, tuple[tuple[str, str, str, str], ...]]] = set()
    current = url
    while True:
        seen.add((current, _cookie_state(session)))
        try:
            result = _chain_fetch(session, current, chain_ctx, ctx, max_bytes, budget, len(chain))
        except FetchError as exc:
            exc.chain = chain
            raise
        chain.append(result)
        if not result.is_redirect:
            return chain, None
        raw_location = result.headers.get("Location", "")
        nxt = result.location
        if nxt is None:
            return chain, StopReason(
                f"invalid Location header {one_line(raw_location, 200)!r}", "bad_location"
            )
        parts = urlsplit(nxt)
        if parts.scheme not in schemes:
            return chain, StopReason(nxt, "scheme", nxt)
        try:
            host = normalize_host(parts.hostname or "")
        except TargetError:
            return chain, StopReason(f"invalid host in Location {one_line(nxt, 200)!r}", "bad_location", nxt)
        if same_site_only and host not in allowed:
            return chain, StopReason(nxt, "offsite", nxt)
        if len(chain) > max_redirects:
            return chain, StopReason(f"too many redirects (more than {max_redirects})", "too_many", nxt)
        if (nxt, _cookie_state(session)) in seen:
            return chain, StopReason(f"redirect loop: {one_line(nxt, 200)} visited again", "loop", nxt)
        current = nxt


def _chain_fetch(
    session: requests.Session,
    url: str,
    chain_ctx: CheckContext,
    ctx: CheckContext,
    max_bytes: int,
    budget: float,
    hops: int,
) -> FetchResult:
    """One hop of :func:`follow`, within what is left of the chain's budget; a hop cut short
    by that budget says so (the budget of the chain, not what was left of it for the hop)."""

    def chain_bound() -> FetchError:
        host = urlsplit(url).hostname or url
        after = f" after {hops} redirect{'s' if hops != 1 else ''}" if hops else ""
        return FetchError(
            f"no final response from {host} within {round(budget, 1):g} s{after} (the fetch time bound)",
            kind="timeout",
            url=url,
        )

    if ctx.remaining() > 0 and chain_ctx.remaining() <= 0:
        raise chain_bound()
    try:
        return fetch(session, url, ctx=chain_ctx, max_bytes=max_bytes)
    except FetchError as exc:
        if hops and exc.kind in ("timeout", "deadline") and chain_ctx.remaining() <= 0 < ctx.remaining():
            raise chain_bound() from None
        raise


def chain_evidence(chain: list[FetchResult], limit: int = 1024) -> list[dict[str, Any]]:
    """``[{"url", "status", "location"}, ...]`` with long values cut to ``limit`` characters."""
    out: list[dict[str, Any]] = []
    for r in chain:
        loc = r.headers.get("Location")
        out.append(
            {"url": r.url[:limit], "status": r.status, "location": one_line(loc, limit) if loc else None}
        )
    return out
