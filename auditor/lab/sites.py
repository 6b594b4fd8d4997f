"""The lab's sites: one well-configured site and one site per planted flaw, on loopback.

Every flawed site is the good site with exactly one thing changed, so the findings it yields
are those of the good site (none) plus the ids in its ``expect``. Tests, ``auditor demo`` and
the benchmark all run against these; a later feature adds its own sites by deriving specs
with :func:`variant` and passing ``LAB_SITES + (its specs...)`` to :class:`Lab`.

Each site gets its own loopback address (127.0.0.10, .11, ...), HTTPS on 443 and plain HTTP
on 80 when those can be bound, else on ephemeral ports; clients reach a site by its host name
``<name>.lab.auditor.test`` through curl-style ``--resolve HOST:PORT:ADDR`` overrides, never
through DNS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from auditor.lab.latency import LatencyProxy, Route
from auditor.lab.pki import LabPKI
from auditor.lab.server import (
    NOT_FOUND,
    STRONG_CIPHERS,
    LabHTTPServer,
    Page,
    TLSConfig,
    build_tls_context,
    reserve_closed_port,
)
from auditor.targets import origin_of

_T = TypeVar("_T")

LAB_DOMAIN = "lab.auditor.test"
HTTPS_MODES = ("tls", "plain", "closed")
HTTP_MODES = ("redirect", "content", "closed")

# --- pages -------------------------------------------------------------------------------

GOOD_CSP = "default-src 'self'; script-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'self'"
GOOD_HEADERS: tuple[tuple[str, str], ...] = (
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("Content-Security-Policy", GOOD_CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Server", "lab"),
)
GOOD_COOKIE = "sessionid=4f1c2a9e7b3d8056e1a2c4b6d8f0a1b3; Secure; HttpOnly; SameSite=Lax; Path=/"

# Only same-origin resources, all by relative URL. ``{extra_head}`` / ``{extra_body}`` are
# where a flawed variant adds its one offending element.
GOOD_HTML_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Auditor lab</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js"></script>
{extra_head}</head>
<body>
<h1>Auditor lab</h1>
<img src="/static/logo.svg" alt="Lab logo" width="64" height="64">
<p>A test site on loopback. Nothing here is real.</p>
<p><a href="/about">About</a></p>
{extra_body}</body>
</html>
"""
GOOD_HTML = GOOD_HTML_TEMPLATE.format(extra_head="", extra_body="")
_ABOUT_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>About</title></head>
<body><h1>About</h1><p>Part of the auditor's loopback lab.</p><p><a href="/">Home</a></p></body></html>
"""
_STATIC: dict[str, tuple[str, str]] = {
    "/static/style.css": ("text/css; charset=utf-8", "body { font-family: sans-serif; }\n"),
    "/static/app.js": ("text/javascript; charset=utf-8", "document.documentElement.dataset.lab = '1';\n"),
    "/static/logo.svg": (
        "image/svg+xml",
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        '<rect width="64" height="64" fill="#246"/></svg>\n',
    ),
}


def _apply_headers(
    base: Iterable[tuple[str, str]], changes: Mapping[str, str | None]
) -> list[tuple[str, str]]:
    """``base`` with each header named in ``changes`` replaced in place, dropped (None) or
    appended (when new). Names compare case-insensitively."""
    wanted = {name.lower(): (name, value) for name, value in changes.items()}
    out: list[tuple[str, str]] = []
    for name, value in base:
        if name.lower() in wanted:
            new_name, new_value = wanted.pop(name.lower())
            if new_value is not None:
                out.append((new_name, new_value))
        else:
            out.append((name, value))
    out.extend((name, value) for name, value in wanted.values() if value is not None)
    return out


def good_pages(
    *,
    headers: Mapping[str, str | None] | None = None,
    cookies: Sequence[str] = (GOOD_COOKIE,),
    html: str = GOOD_HTML,
) -> dict[str, Page]:
    """The good site's pages, optionally with one thing changed.

    ``headers`` maps a header name to a new value, or to None to drop it; it applies to
    every response of the site, as a server-wide setting would. ``cookies`` are the
    Set-Cookie values of the home page. ``html`` replaces the home page body.
    """
    common = _apply_headers(GOOD_HEADERS, headers or {})
    pages = {
        "/": Page(headers=common + [("Set-Cookie", c) for c in cookies], body=html),
        "/about": Page(headers=list(common), body=_ABOUT_HTML),
    }
    for path, (content_type, body) in _STATIC.items():
        pages[path] = Page(headers=list(common), body=body, content_type=content_type)
    pages["/.well-known/security.txt"] = Page(headers=list(common), body=security_txt_body(),
                                              content_type="text/plain; charset=utf-8")
    return pages


def security_txt_body(expires: datetime | None = None) -> str:
    """An RFC 9116 security.txt, expiring ``expires`` (default: 180 days from now)."""
    when = expires or datetime.now(UTC) + timedelta(days=180)
    return ("# Security contact of the lab site (RFC 9116)\n"
            "Contact: mailto:security@lab.test\n"
            f"Expires: {when.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
            "Preferred-Languages: vi, en\n")


GOOD_PAGES: dict[str, Page] = good_pages()
"""The good page set (shared: call :func:`good_pages` for a copy to modify)."""


def _not_found_for(pages: Mapping[str, Page]) -> Page:
    """A 404 with the site's headers (minus cookies), as a real server would send it."""
    home = pages.get("/")
    if home is None:
        return NOT_FOUND
    headers = [(n, v) for n, v in home.headers if n.lower() not in ("set-cookie", "content-type")]
    return Page(status=404, headers=headers, body=NOT_FOUND.body)


# --- site specs --------------------------------------------------------------------------


@dataclass(frozen=True)
class LabSiteSpec:
    """What one lab site plants.

    ``expect`` holds the finding ids the site yields beyond the good site's (which are
    none). Certificate options mirror :meth:`LabPKI.issue`; validity is in days relative
    to lab start-up. ``cert_hostnames`` overrides the names in the certificate (the
    wrong-host case); by default it is the site's own host name.
    ``https_mode``: "tls", "plain" (the HTTPS port speaks plain HTTP) or "closed".
    ``http_mode``: "redirect" (301 to the HTTPS URL), "content" (serves the pages over
    plain HTTP) or "closed".
    """

    name: str
    expect: frozenset[str] = frozenset()
    description: str = ""
    key: str = "rsa2048"
    hash_name: str = "sha256"
    not_before_days: float = -1
    not_after_days: float = 365
    self_signed: bool = False
    untrusted: bool = False
    include_intermediate: bool = True
    cert_hostnames: tuple[str, ...] | None = None
    tls: TLSConfig = field(default_factory=TLSConfig, hash=False)
    https_mode: str = "tls"
    http_mode: str = "redirect"
    pages: dict[str, Page] = field(default_factory=good_pages, hash=False, repr=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", self.name):
            raise ValueError(f"site name {self.name!r} must be one lower-case DNS label")
        if self.https_mode not in HTTPS_MODES:
            raise ValueError(f"{self.name}: https_mode {self.https_mode!r} not in {HTTPS_MODES}")
        if self.http_mode not in HTTP_MODES:
            raise ValueError(f"{self.name}: http_mode {self.http_mode!r} not in {HTTP_MODES}")
        if isinstance(self.expect, str):
            raise TypeError(f"{self.name}: expect must be a set of ids, not a string")

    @property
    def host(self) -> str:
        return f"{self.name}.{LAB_DOMAIN}"


GOOD_SITE = LabSiteSpec(
    name="good",
    description="Well configured: TLS 1.2/1.3 with ECDHE AEAD suites, renegotiation off, "
    "RSA-2048 SHA-256 leaf with full chain, HTTP redirects to HTTPS, all security headers.",
)


def variant(name: str, expect: str | Iterable[str], description: str, **changes: object) -> LabSiteSpec:
    """A site that is the good site with ``changes`` applied (fields of :class:`LabSiteSpec`)."""
    ids = frozenset([expect]) if isinstance(expect, str) else frozenset(expect)
    return dataclasses.replace(GOOD_SITE, name=name, expect=ids, description=description, **changes)


# CBC suites with ECDHE, needed to speak TLS 1.0/1.1 at all (AEAD suites are TLS 1.2 only).
_LEGACY_CIPHERS = STRONG_CIPHERS + ":ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
_DAYS_EXPIRING = 10


def _html_with(*, head: str = "", body: str = "") -> str:
    return GOOD_HTML_TEMPLATE.format(extra_head=head, extra_body=body)


LAB_SITES: tuple[LabSiteSpec, ...] = (
    GOOD_SITE,
    variant(
        "good-no-http",
        (),
        "The good site with port 80 closed: a closed plain-HTTP port is not a finding.",
        http_mode="closed",
    ),
    # --- certificates
    variant(
        "cert-expired",
        "tls.cert.expired",
        "Leaf expired 10 days ago.",
        not_before_days=-400,
        not_after_days=-10,
    ),
    variant(
        "cert-not-yet-valid",
        "tls.cert.not_yet_valid",
        "Leaf becomes valid in 10 days.",
        not_before_days=10,
        not_after_days=375,
    ),
    variant(
        "cert-expiring-soon",
        "tls.cert.expiring_soon",
        f"Leaf expires in {_DAYS_EXPIRING} days.",
        not_before_days=-355,
        not_after_days=_DAYS_EXPIRING,
    ),
    variant("cert-self-signed", "tls.cert.self_signed", "Self-signed leaf.", self_signed=True),
    variant(
        "cert-untrusted",
        "tls.cert.untrusted",
        "Leaf issued by a separate root CA that is not in lab-ca.pem; the server sends "
        "leaf + that root, so the chain is complete but untrusted.",
        untrusted=True,
    ),
    variant(
        "cert-wrong-host",
        "tls.cert.hostname_mismatch",
        "Valid chain, but the leaf names another host only.",
        cert_hostnames=(f"elsewhere.{LAB_DOMAIN}",),
    ),
    variant(
        "cert-incomplete-chain",
        "tls.cert.incomplete_chain",
        "Server sends the leaf without the intermediate CA.",
        include_intermediate=False,
    ),
    variant(
        "cert-weak-key",
        "tls.cert.weak_key",
        "RSA-1024 leaf key (served at OpenSSL security level 0).",
        key="rsa1024",
        tls=TLSConfig(security_level=0),
    ),
    variant(
        "cert-sha1",
        "tls.cert.weak_signature",
        "Leaf signed with SHA-1 by the lab intermediate (served at security level 0).",
        hash_name="sha1",
        tls=TLSConfig(security_level=0),
    ),
    # --- protocols
    variant(
        "tls1-0",
        "tls.protocol.tls1_0",
        "Accepts TLS 1.0 (and 1.2, 1.3) with ECDHE CBC suites; TLS 1.1 is switched off so "
        "that only the TLS 1.0 finding is planted.",
        tls=TLSConfig(
            min_version="TLSv1",
            ciphers=_LEGACY_CIPHERS,
            security_level=0,
            disabled_versions=("TLSv1.1",),
        ),
    ),
    variant(
        "tls1-1",
        "tls.protocol.tls1_1",
        "Accepts TLS 1.1 (and 1.2, 1.3) with ECDHE CBC suites.",
        tls=TLSConfig(min_version="TLSv1.1", ciphers=_LEGACY_CIPHERS, security_level=0),
    ),
    variant(
        "no-tls1-3",
        "tls.protocol.no_tls1_3",
        "TLS 1.2 only.",
        tls=TLSConfig(max_version="TLSv1.2"),
    ),
    # --- cipher suites
    variant(
        "cipher-insecure",
        "tls.cipher.insecure",
        "Also accepts ECDHE-RSA-NULL-SHA (no encryption) and AECDH-AES128-SHA (anonymous) "
        "on TLS 1.2; both keep forward secrecy so only this finding is planted.",
        tls=TLSConfig(ciphers=STRONG_CIPHERS + ":ECDHE-RSA-NULL-SHA:AECDH-AES128-SHA", security_level=0),
    ),
    variant(
        "cipher-no-fs",
        "tls.cipher.no_forward_secrecy",
        "Also accepts AES128-GCM-SHA256 (static RSA key exchange) on TLS 1.2.",
        tls=TLSConfig(ciphers=STRONG_CIPHERS + ":AES128-GCM-SHA256"),
    ),
    variant(
        "cipher-weak-dh",
        "tls.cipher.weak_dh",
        "Also accepts DHE-RSA-AES128-GCM-SHA256 with a 1024-bit DH group.",
        tls=TLSConfig(ciphers=STRONG_CIPHERS + ":DHE-RSA-AES128-GCM-SHA256", dh_bits=1024, security_level=0),
    ),
    # --- vulnerabilities that Debian's OpenSSL can really serve
    variant(
        "renegotiation",
        "tls.vuln.insecure_renegotiation",
        "Honours client-initiated renegotiation on TLS 1.2.",
        tls=TLSConfig(allow_renegotiation=True),
    ),
    variant(
        "no-tls",
        "tls.not_offered",
        "The HTTPS port answers in plain HTTP: no TLS handshake completes.",
        https_mode="plain",
    ),
    # --- HTTP
    variant(
        "http-content",
        "http.https_not_enforced",
        "Plain HTTP serves the site (200) instead of redirecting to HTTPS.",
        http_mode="content",
    ),
    variant(
        "hsts-missing",
        "http.hsts.missing",
        "No Strict-Transport-Security header.",
        pages=good_pages(headers={"Strict-Transport-Security": None}),
    ),
    variant(
        "hsts-short",
        "http.hsts.short_max_age",
        "HSTS max-age of one day.",
        pages=good_pages(headers={"Strict-Transport-Security": "max-age=86400; includeSubDomains"}),
    ),
    variant(
        "csp-missing",
        "http.csp.missing",
        "No Content-Security-Policy (X-Frame-Options still prevents framing).",
        pages=good_pages(headers={"Content-Security-Policy": None}),
    ),
    variant(
        "csp-unsafe",
        "http.csp.unsafe",
        "script-src allows 'unsafe-inline'.",
        pages=good_pages(
            headers={
                "Content-Security-Policy": GOOD_CSP.replace(
                    "script-src 'self'", "script-src 'self' 'unsafe-inline'"
                )
            }
        ),
    ),
    variant(
        "clickjacking",
        "http.clickjacking",
        "Neither X-Frame-Options nor CSP frame-ancestors.",
        pages=good_pages(
            headers={
                "X-Frame-Options": None,
                "Content-Security-Policy": GOOD_CSP.replace(" frame-ancestors 'none';", ""),
            }
        ),
    ),
    variant(
        "xcto-missing",
        "http.xcto.missing",
        "No X-Content-Type-Options.",
        pages=good_pages(headers={"X-Content-Type-Options": None}),
    ),
    variant(
        "referrer-weak",
        "http.referrer_policy.weak",
        "Referrer-Policy: unsafe-url.",
        pages=good_pages(headers={"Referrer-Policy": "unsafe-url"}),
    ),
    variant(
        "version-disclosure",
        "http.version_disclosure",
        "Server: nginx/1.18.0.",
        pages=good_pages(headers={"Server": "nginx/1.18.0"}),
    ),
    variant(
        "cookie-no-secure",
        "http.cookie.no_secure",
        "Session cookie without Secure.",
        pages=good_pages(cookies=[GOOD_COOKIE.replace(" Secure;", "")]),
    ),
    variant(
        "cookie-no-httponly",
        "http.cookie.no_httponly",
        "Session cookie without HttpOnly.",
        pages=good_pages(cookies=[GOOD_COOKIE.replace(" HttpOnly;", "")]),
    ),
    variant(
        "cookie-no-samesite",
        "http.cookie.no_samesite",
        "Session cookie without SameSite.",
        pages=good_pages(cookies=[GOOD_COOKIE.replace(" SameSite=Lax;", "")]),
    ),
    variant(
        "mixed-content",
        "http.mixed_content",
        "The HTTPS home page loads an image over http:// (a closed loopback port; never fetched).",
        pages=good_pages(
            html=_html_with(body='<img src="http://127.0.0.1:9/x.png" alt="" width="1" height="1">\n')
        ),
    ),
    variant(
        "sri-missing",
        "http.sri.missing",
        "Loads a script from another origin (allowed by CSP script-src) without integrity=.",
        pages=good_pages(
            html=_html_with(head=f'<script src="https://cdn.{LAB_DOMAIN}/lib.js"></script>\n'),
            headers={
                "Content-Security-Policy": GOOD_CSP.replace(
                    "script-src 'self'", f"script-src 'self' https://cdn.{LAB_DOMAIN}"
                )
            },
        ),
    ),
)


# --- running lab -------------------------------------------------------------------------


@dataclass
class RunningSite:
    """A started site and where to reach it (``resolve`` holds curl-style overrides).

    ``address`` is where clients connect: the site's own servers, or its latency proxy when
    the lab adds latency; ``origin_address`` is always where the site's servers listen.
    """

    spec: LabSiteSpec
    host: str
    address: str
    https_port: int
    http_port: int
    url: str
    http_url: str
    resolve: list[str]
    origin_address: str = ""

    @property
    def name(self) -> str:
        return self.spec.name


class Lab:
    """Starts every site of ``specs`` on its own loopback address.

    Addresses count up from ``first_address``. With ``standard_ports`` each site tries
    443 and 80 and falls back to an ephemeral port when one cannot be bound (not root,
    or another lab already holds it); otherwise all ports are ephemeral. A "closed" port
    is a bound, never-listening socket, so it stays closed and nothing else can take it.

    With ``latency_ms`` each site is put behind a :class:`LatencyProxy` (that one-way delay
    and ``jitter_ms`` in each direction) listening on the same ports of its own loopback
    address (``proxy_first_address`` upwards, by default the addresses after the sites'),
    and ``address``/``resolve`` of every site point at the proxy; a closed port stays closed
    there too. Without ``latency_ms`` nothing of this exists.
    """

    def __init__(
        self,
        directory: Path,
        specs: Iterable[LabSiteSpec] = LAB_SITES,
        *,
        first_address: str = "127.0.0.10",
        standard_ports: bool = True,
        latency_ms: float | None = None,
        jitter_ms: float = 0.0,
        proxy_first_address: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.specs = tuple(specs)
        names = [s.name for s in self.specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate lab site names: {', '.join(duplicates)}")
        first = ipaddress.ip_address(first_address)
        self.addresses = [str(first + i) for i in range(len(self.specs))]
        outside = [a for a in self.addresses if not ipaddress.ip_address(a).is_loopback]
        if outside:
            raise ValueError(f"lab addresses must be loopback; {outside[0]} is not")
        self.standard_ports = standard_ports
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.proxy_addresses: list[str] = []
        if latency_ms is not None:
            proxy_first = ipaddress.ip_address(proxy_first_address) if proxy_first_address else first + len(self.specs)
            self.proxy_addresses = [str(proxy_first + i) for i in range(len(self.specs))]
            clash = set(self.proxy_addresses) & set(self.addresses)
            outside = [a for a in self.proxy_addresses if not ipaddress.ip_address(a).is_loopback]
            if clash or outside:
                raise ValueError(f"latency proxy addresses must be loopback and apart from the sites' "
                                 f"({sorted(clash)[0] if clash else outside[0]})")
        self.proxy: LatencyProxy | None = None
        self.sites: list[RunningSite] = []
        self.pki: LabPKI | None = None
        self._servers: list[LabHTTPServer] = []
        self._reserved: list[socket.socket] = []

    @property
    def ca_file(self) -> Path:
        """The lab root CA (PEM): the trust store for clients of the lab."""
        return self.directory / "lab-ca.pem"

    @property
    def resolve_args(self) -> list[str]:
        """``HOST:PORT:ADDR`` overrides for every port of every site."""
        return [entry for site in self.sites for entry in site.resolve]

    def site(self, name: str) -> RunningSite:
        for site in self.sites:
            if site.spec.name == name:
                return site
        raise KeyError(f"no lab site named {name!r}")

    def start(self) -> Lab:
        if self.pki is not None:
            raise RuntimeError("lab already started")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pki = LabPKI(self.directory)
        now = datetime.now(UTC)
        try:
            for spec, address in zip(self.specs, self.addresses, strict=True):
                self.sites.append(self._start_site(self.pki, spec, address, now))
            if self.latency_ms is not None:
                self._start_proxy(self.latency_ms)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every server (in parallel: each waits up to one poll interval) and free ports."""
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        servers, self._servers = self._servers, []
        if servers:
            with ThreadPoolExecutor(max_workers=min(64, len(servers))) as pool:
                list(pool.map(LabHTTPServer.stop, servers))
        for sock in self._reserved:
            with contextlib.suppress(OSError):
                sock.close()
        self._reserved = []
        self.sites = []
        self.pki = None

    def __enter__(self) -> Lab:
        return self if self.pki is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_site(self, pki: LabPKI, spec: LabSiteSpec, address: str, now: datetime) -> RunningSite:
        host = spec.host
        if spec.https_mode == "closed":
            https_port = self._reserve(address, 443)
        else:
            tls = None
            if spec.https_mode == "tls":
                files = pki.issue(
                    spec.name,
                    list(spec.cert_hostnames or (host,)),
                    key=spec.key,
                    not_before=now + timedelta(days=spec.not_before_days),
                    not_after=now + timedelta(days=spec.not_after_days),
                    hash_name=spec.hash_name,
                    self_signed=spec.self_signed,
                    include_intermediate=spec.include_intermediate,
                    untrusted=spec.untrusted,
                )
                tls = build_tls_context(spec.tls, files.cert, files.key, dh_cache=self.directory)
            not_found = _not_found_for(spec.pages)
            https_port = self._serve(
                443, lambda port: LabHTTPServer(address, port, pages=spec.pages, not_found=not_found, tls=tls)
            )
        https_origin = origin_of(host, https_port)
        if spec.http_mode == "closed":
            http_port = self._reserve(address, 80)
        elif spec.http_mode == "content":
            not_found = _not_found_for(spec.pages)
            http_port = self._serve(
                80, lambda port: LabHTTPServer(address, port, pages=spec.pages, not_found=not_found)
            )
        else:
            http_port = self._serve(80, lambda port: LabHTTPServer(address, port, redirect_to=https_origin))
        addr = f"[{address}]" if ":" in address else address
        return RunningSite(
            spec=spec,
            host=host,
            address=address,
            https_port=https_port,
            http_port=http_port,
            url=https_origin + "/",
            http_url=origin_of(host, http_port, "http") + "/",
            resolve=[f"{host}:{https_port}:{addr}", f"{host}:{http_port}:{addr}"],
            origin_address=address,
        )

    def _start_proxy(self, latency_ms: float) -> None:
        """Put every started site behind the latency proxy and point its address there."""
        routes: list[Route] = []
        for i, (site, proxy_address) in enumerate(zip(self.sites, self.proxy_addresses, strict=True)):
            modes = ((site.https_port, site.spec.https_mode), (site.http_port, site.spec.http_mode))
            for port, mode in modes:
                if mode == "closed":
                    self._reserved.append(reserve_closed_port(proxy_address, port))
                else:
                    routes.append(Route(proxy_address, site.origin_address, port))
            addr = f"[{proxy_address}]" if ":" in proxy_address else proxy_address
            self.sites[i] = dataclasses.replace(
                site,
                address=proxy_address,
                resolve=[f"{site.host}:{site.https_port}:{addr}", f"{site.host}:{site.http_port}:{addr}"],
            )
        self.proxy = LatencyProxy(routes, delay_ms=latency_ms, jitter_ms=self.jitter_ms).start()

    def _bind(self, standard_port: int, bind: Callable[[int], _T]) -> _T:
        """``bind(standard_port)``, falling back to ``bind(0)`` (an ephemeral port)."""
        error: OSError | None = None
        for port in (standard_port, 0) if self.standard_ports else (0,):
            try:
                return bind(port)
            except OSError as exc:
                error = exc
        raise OSError(f"cannot bind a port for the lab: {error}") from error

    def _serve(self, standard_port: int, make: Callable[[int], LabHTTPServer]) -> int:
        server = self._bind(standard_port, make)
        self._servers.append(server.start())
        return server.port

    def _reserve(self, address: str, standard_port: int) -> int:
        sock = self._bind(standard_port, lambda port: reserve_closed_port(address, port))
        self._reserved.append(sock)
        return int(sock.getsockname()[1])
