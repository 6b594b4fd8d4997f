"""The ``http`` check: HTTPS enforcement, security headers, cookies, mixed content and SRI.

What is fetched, all through the pinned, bounded client of :mod:`checks.web.net`:

1. The plain-HTTP URL (``Target.http_url``), following same-host plain-HTTP redirects only,
   to see whether it hands the visitor to HTTPS or serves the site in clear text.
2. The HTTPS landing URL (``Target.url``), following same-host HTTPS redirects. Headers and
   the HTML of the last response are judged; cookies come from every HTTPS response on the
   way. Certificates are not judged here (that is the ``tls`` check), so the client reads
   sites with bad certificates or old protocols too.

When the landing page redirects somewhere the check does not follow (another host, plain
HTTP, a loop), the transport-level findings (HSTS, cookies, version disclosure) are still
raised from the responses received, but page-level properties (CSP, framing, nosniff,
referrer policy, mixed content, SRI) were not tested, so the check reports an error rather
than passing them.
"""

from __future__ import annotations

import http.cookiejar
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from bs4 import BeautifulSoup
from bs4.element import Tag

from auditor.catalogue import catalogue_of
from auditor.check import Check, CheckContext, CheckOutcome, Finding
from auditor.targets import Target
from checks.http.admin_paths import probe_admin
from checks.web.net import (
    FetchError,
    FetchResult,
    StopReason,
    chain_evidence,
    follow,
    make_session,
    one_line,
)

__all__ = ["HTTPCheck"]

# ---------------------------------------------------------------------------------------------
# Catalogue

CATALOGUE = catalogue_of("checks.http")  # findings.yaml beside this file (http.admin.exposed too)

# ---------------------------------------------------------------------------------------------
# Constants

_EVIDENCE_CHARS = 300
_HEADER_VALUE_CHARS = 1024
_HEADER_NAME_CHARS = 256
_MAX_LISTED = 20
_MAX_COOKIES = 50
_PLAIN_MAX_BYTES = 65_536

_SESSION_COOKIE_RE = re.compile(
    r"sess|sid|token|auth|login|jsessionid|phpsessid|asp\.net_sessionid|connect\.sid|laravel_session|remember",
    re.IGNORECASE,
)
# "nginx/1.18.0", "PHP/8.1.2-1ubuntu", "Apache/2", "Jetty(9.4.z)", "4.0.30319"; not "sec/97A6".
_VERSION_RE = re.compile(r"/\s*v?\d+(?:\.\d+)*(?!\w)|(?<![\w.])v?\d+\.\d+")
_VERSION_HEADERS = ("Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version")
# These two carry nothing but a version.
_BARE_VERSION_HEADERS = frozenset({"x-aspnet-version", "x-aspnetmvc-version"})

_REFERRER_TOKENS = frozenset(
    {
        "no-referrer",
        "no-referrer-when-downgrade",
        "same-origin",
        "origin",
        "strict-origin",
        "origin-when-cross-origin",
        "strict-origin-when-cross-origin",
        "unsafe-url",
    }
)
_WEAK_REFERRER = frozenset({"unsafe-url", "no-referrer-when-downgrade"})
# HTML: legacy <meta name=referrer> values.
_LEGACY_META_REFERRER = {
    "never": "no-referrer",
    "default": "strict-origin-when-cross-origin",
    "always": "unsafe-url",
    "origin-when-crossorigin": "origin-when-cross-origin",
}

_UNSAFE_SCRIPT_SOURCES = ("*", "http:", "data:")
_NONCE_OR_HASH = ("'nonce-", "'sha256-", "'sha384-", "'sha512-")
_PERMISSIVE_ANCESTORS = frozenset({"*", "http:", "https:", "http://*", "https://*"})

# Elements whose attributes make the browser load something (forms and links are not loads).
_LOAD_ATTRS: dict[str, tuple[str, ...]] = {
    "script": ("src",),
    "iframe": ("src",),
    "frame": ("src",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "object": ("data",),
    "embed": ("src",),
}
_LOADING_LINK_RELS = frozenset({"stylesheet", "preload", "modulepreload"})
_URL_STRIP_RE = re.compile(r"[\t\n\r]")


def _clip(text: str, limit: int = _EVIDENCE_CHARS) -> str:
    return one_line(text, limit)


def _names(items: list[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


# ---------------------------------------------------------------------------------------------
# Header parsing


def parse_hsts(value: str) -> tuple[int | None, str | None]:
    """RFC 6797 section 6.1: ``(max_age, None)`` for a valid header, ``(None, problem)`` else."""
    seen: dict[str, str] = {}
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, raw = part.partition("=")
        name = name.strip().lower()
        if name in seen:
            return None, f"directive {name} repeated"
        seen[name] = raw.strip()
    if "max-age" not in seen:
        return None, "no max-age directive"
    raw = seen["max-age"]
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    if not re.fullmatch(r"[0-9]{1,15}", raw):
        return None, f"invalid max-age {raw!r}"
    return int(raw), None


def parse_csp(value: str) -> list[dict[str, list[str]]]:
    """Policies in one CSP header value (comma-separated), each ``{directive: [sources]}``.

    Directive names are lower-cased, the first occurrence of a directive wins and policies
    without any directive are dropped, as the CSP3 parser does.
    """
    policies: list[dict[str, list[str]]] = []
    for serialized in value.split(","):
        directives: dict[str, list[str]] = {}
        for chunk in serialized.split(";"):
            tokens = chunk.split()
            if not tokens:
                continue
            name = tokens[0].lower()
            if name not in directives:
                directives[name] = [t.lower() for t in tokens[1:]]
        if directives:
            policies.append(directives)
    return policies


def script_issues(policy: dict[str, list[str]]) -> set[str] | None:
    """What a policy lets scripts do that it should not; None when it does not restrict scripts."""
    sources = policy.get("script-src")
    if sources is None:
        sources = policy.get("default-src")
    if sources is None:
        return None
    nonce_or_hash = any(s.startswith(_NONCE_OR_HASH) for s in sources)
    # With 'strict-dynamic' and a nonce/hash, CSP3 browsers ignore host and scheme sources.
    strict_dynamic = nonce_or_hash and "'strict-dynamic'" in sources
    issues: set[str] = set()
    if "'unsafe-inline'" in sources and not nonce_or_hash:
        issues.add("'unsafe-inline'")
    if "'unsafe-eval'" in sources:
        issues.add("'unsafe-eval'")
    if not strict_dynamic:
        issues.update(s for s in _UNSAFE_SCRIPT_SOURCES if s in sources)
    return issues


def combined_script_issues(policies: list[dict[str, list[str]]]) -> set[str] | None:
    """Issues allowed by *every* enforced policy (all policies apply, so the strictest wins).

    None when no policy restricts scripts at all.
    """
    combined: set[str] | None = None
    for policy in policies:
        issues = script_issues(policy)
        if issues is None:
            continue
        combined = set(issues) if combined is None else combined & issues
    return combined


def _split_header(values: list[str]) -> list[str]:
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


def effective_referrer_policy(header_values: list[str], meta_values: list[str]) -> tuple[str | None, str]:
    """``(policy, source)``: the last recognised header token, overridden by a valid meta tag."""
    policy: str | None = None
    source = "none"
    for token in _split_header(header_values):
        if token in _REFERRER_TOKENS:
            policy, source = token, "header"
    for raw in meta_values:
        value = raw.strip().lower()
        value = _LEGACY_META_REFERRER.get(value, value)
        if value in _REFERRER_TOKENS:
            policy, source = value, "meta"
    return policy, source


def discloses_version(name: str, value: str) -> bool:
    if name.lower() in _BARE_VERSION_HEADERS:
        return any(ch.isdigit() for ch in value)
    return bool(_VERSION_RE.search(value))


# ---------------------------------------------------------------------------------------------
# Cookies


@dataclass
class CookieInfo:
    name: str
    url: str
    secure: bool
    httponly: bool
    samesite: str | None
    deleted: bool
    attributes: str

    @property
    def session_like(self) -> bool:
        return bool(_SESSION_COOKIE_RE.search(self.name))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url[:_HEADER_VALUE_CHARS],
            "secure": self.secure,
            "httponly": self.httponly,
            "samesite": self.samesite,
            "session_like": self.session_like,
            "deleted": self.deleted,
            "set_cookie": self.attributes,
        }


def parse_set_cookie(header: str, url: str, now: float | None = None) -> CookieInfo | None:
    """One Set-Cookie line, attributes only (the value is redacted: it may be a live session)."""
    parts = header.split(";")
    name, eq, _value = parts[0].partition("=")
    name = name.strip() if eq else ""
    if not parts[0].strip():
        return None
    attrs: dict[str, str] = {}
    shown: list[str] = []
    for part in parts[1:]:
        key, _, val = part.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        attrs[key] = val.strip()  # RFC 6265 5.3: the last occurrence of an attribute wins
        shown.append(part.strip())
    samesite = attrs.get("samesite")
    samesite = samesite.lower() if samesite and samesite.lower() in ("strict", "lax", "none") else None
    deleted = False
    now = time.time() if now is None else now
    if "max-age" in attrs:
        try:
            deleted = int(attrs["max-age"]) <= 0
        except ValueError:
            deleted = False
    elif attrs.get("expires"):
        expires = http.cookiejar.http2time(attrs["expires"])
        deleted = expires is not None and expires < now
    display = _clip(name or "(unnamed)", 100)
    return CookieInfo(
        name=display,
        url=url,
        secure="secure" in attrs,
        httponly="httponly" in attrs,
        samesite=samesite,
        deleted=deleted,
        attributes=_clip("; ".join([f"{display}=<redacted>", *shown])),
    )


# ---------------------------------------------------------------------------------------------
# HTML


@dataclass
class PageScan:
    """What the HTML of the landing page says (bounded body, html.parser)."""

    meta_csp: list[str] = field(default_factory=list)
    meta_referrer: list[str] = field(default_factory=list)
    mixed: list[dict[str, str]] = field(default_factory=list)
    sri_missing: list[str] = field(default_factory=list)
    parsed: bool = False
    error: str | None = None


def _attr(tag: Tag, name: str) -> str | None:
    value = tag.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _absolute(base: str, value: str) -> str | None:
    value = _URL_STRIP_RE.sub("", value).strip()
    if not value:
        return None
    try:
        absolute = urljoin(base, value)
        urlsplit(absolute).port  # noqa: B018 - validates the port
    except ValueError:
        return None
    return absolute


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _srcset_urls(value: str) -> list[str]:
    urls = []
    for candidate in value.split(","):
        tokens = candidate.split()
        if tokens:
            urls.append(tokens[0])
    return urls


def looks_like_html(result: FetchResult) -> bool:
    ctype = result.content_type
    if ctype in ("text/html", "application/xhtml+xml"):
        return True
    return not ctype and result.body.lstrip()[:1] == b"<"


def scan_html(result: FetchResult) -> PageScan:
    """Meta CSP/referrer tags, http:// loads and external scripts without integrity=."""
    scan = PageScan()
    if not looks_like_html(result):
        return scan
    try:
        soup = BeautifulSoup(result.text, "html.parser")
    except Exception as exc:  # html.parser is lenient, but the bytes are hostile
        scan.error = _clip(f"HTML parse failed: {type(exc).__name__}: {exc}")
        return scan
    scan.parsed = True
    page_url = result.url
    base = page_url
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        candidate = _absolute(page_url, _attr(base_tag, "href") or "")
        if candidate and urlsplit(candidate).scheme.lower() in ("http", "https"):
            base = candidate
    page_origin = _origin(page_url)
    seen_mixed: set[str] = set()
    seen_sri: set[str] = set()

    def add_mixed(tag_name: str, url: str) -> None:
        if url not in seen_mixed:
            seen_mixed.add(url)
            scan.mixed.append({"tag": tag_name, "url": url[:_HEADER_VALUE_CHARS]})

    wanted = [*_LOAD_ATTRS, "link", "input", "meta"]
    for tag in soup.find_all(wanted):
        if not isinstance(tag, Tag):
            continue
        name = tag.name.lower()
        if name == "meta":
            equiv = (_attr(tag, "http-equiv") or "").strip().lower()
            meta_name = (_attr(tag, "name") or "").strip().lower()
            content = _attr(tag, "content")
            if content is None:
                continue
            if equiv == "content-security-policy":
                scan.meta_csp.append(content)
            elif meta_name == "referrer":
                scan.meta_referrer.append(content)
            continue
        values: list[str] = []
        if name == "link":
            rels = set((_attr(tag, "rel") or "").lower().split())
            if rels & _LOADING_LINK_RELS and _attr(tag, "href"):
                values.append(_attr(tag, "href") or "")
        elif name == "input":
            if (_attr(tag, "type") or "").strip().lower() == "image" and _attr(tag, "src"):
                values.append(_attr(tag, "src") or "")
        else:
            for attr_name in _LOAD_ATTRS[name]:
                raw = _attr(tag, attr_name)
                if not raw:
                    continue
                values.extend(_srcset_urls(raw) if attr_name == "srcset" else [raw])
        for raw in values:
            url = _absolute(base, raw)
            if url is None:
                continue
            scheme = urlsplit(url).scheme.lower()
            if scheme == "http":
                add_mixed(name, url)
            if (
                name == "script"
                and scheme in ("http", "https")
                and _origin(url) != page_origin
                and not (_attr(tag, "integrity") or "").strip()
                and url not in seen_sri
            ):
                seen_sri.add(url)
                scan.sri_missing.append(url[:_HEADER_VALUE_CHARS])
    return scan


# ---------------------------------------------------------------------------------------------
# The check


@dataclass
class _Params:
    hsts_min_max_age: int
    max_redirects: int
    max_body_bytes: int


class HTTPCheck(Check):
    """HTTP-level security of the landing page: redirects, headers, cookies, HTML loads."""

    id = "http"
    title = "HTTP security: HTTPS enforcement, security headers, cookies, mixed content"
    description = (
        "Fetches the plain-HTTP and HTTPS landing URLs (same-host redirects only, bounded time "
        "and size) and checks HTTPS enforcement, HSTS, Content Security Policy, framing "
        "protection, nosniff, referrer policy, version disclosure, cookie attributes, mixed "
        "content and Subresource Integrity of external scripts."
    )
    catalogue = CATALOGUE
    parameters = {
        "http.hsts_min_max_age": 15768000,
        "http.max_redirects": 10,
        "http.max_body_bytes": 2_097_152,
    }

    def _params(self, ctx: CheckContext) -> _Params:
        def get(name: str) -> int:
            return int(ctx.param(name, self.parameters[name]))

        return _Params(
            hsts_min_max_age=get("http.hsts_min_max_age"),
            max_redirects=max(0, get("http.max_redirects")),
            max_body_bytes=max(1024, get("http.max_body_bytes")),
        )

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        params = self._params(ctx)
        findings: list[Finding] = []
        evidence: dict[str, Any] = {}

        # Separate sessions: cookies the plain-HTTP answer sets must not reach the HTTPS
        # requests, or a server that only sets a session cookie once would hide it from us.
        with make_session(ctx, target) as session:
            plain_finding, evidence["plain_http"] = self._probe_plain_http(session, target, ctx, params)
        if plain_finding is not None:
            findings.append(plain_finding)

        with make_session(ctx, target) as session:
            try:
                chain, stop = follow(
                    session,
                    target.url,
                    ctx=ctx,
                    max_bytes=params.max_body_bytes,
                    max_redirects=params.max_redirects,
                    allowed_hosts={target.host},
                    schemes=frozenset({"https"}),
                )
            except FetchError as exc:
                evidence["https"] = {
                    "url": target.url,
                    "chain": chain_evidence(exc.chain),
                    "stop": None,
                    "error": exc.message,
                    "error_kind": exc.kind,
                }
                if exc.chain:
                    findings += self._transport_findings(exc.chain, params, evidence)
                return CheckOutcome(
                    findings=findings, evidence=evidence, error=f"cannot fetch {target.url}: {exc.message}"
                )

        evidence["https"] = {
            "url": target.url,
            "chain": chain_evidence(chain),
            "stop": str(stop) if stop is not None else None,
            "stop_kind": stop.kind if stop is not None else None,
            "error": None,
        }
        final = chain[-1]
        evidence["final"] = self._final_evidence(final)
        findings += self._transport_findings(chain, params, evidence)
        if stop is not None:
            return CheckOutcome(findings=findings, evidence=evidence, error=self._stop_message(target, stop))
        findings += self._page_findings(final, evidence)
        with make_session(ctx, target) as session:
            admin = probe_admin(session, target, ctx)
        evidence["admin_paths"] = [p for hit in admin.hits for p in hit.details["paths"]]
        findings += [self.finding(hit.id, hit.evidence, url=hit.url, **hit.details) for hit in admin.hits]
        problems = []
        if evidence.get("untested"):
            problems.append(f"page body incomplete ({final.body_error}): not tested: " + ", ".join(evidence["untested"]))
        if admin.untested:
            evidence["admin_untested"] = admin.untested
            shown = ", ".join(admin.untested[:5]) + (f" and {len(admin.untested) - 5} more" if len(admin.untested) > 5 else "")
            problems.append(f"admin paths not tested: {shown} ({admin.reason})")
        error = one_line("; ".join(problems), 400) if problems else None
        return CheckOutcome(findings=findings, evidence=evidence, error=error)

    # -- plain HTTP ------------------------------------------------------------------------

    def _probe_plain_http(
        self, session: requests.Session, target: Target, ctx: CheckContext, params: _Params
    ) -> tuple[Finding | None, dict[str, Any]]:
        url = target.http_url
        ev: dict[str, Any] = {"url": url, "chain": [], "stop": None, "error": None, "verdict": None}
        try:
            chain, stop = follow(
                session,
                url,
                ctx=ctx,
                max_bytes=_PLAIN_MAX_BYTES,
                max_redirects=params.max_redirects,
                allowed_hosts={target.host},
                schemes=frozenset({"http"}),
            )
        except FetchError as exc:
            # Refused, closed, filtered: nothing is served over plain HTTP. That is fine.
            ev.update(
                chain=chain_evidence(exc.chain), error=exc.message, error_kind=exc.kind, verdict="not_served"
            )
            return None, ev
        ev["chain"] = chain_evidence(chain)
        ev["stop"] = str(stop) if stop is not None else None
        if (
            stop is not None
            and stop.kind in ("scheme", "offsite")
            and (stop.location or "").startswith("https://")
        ):
            ev["verdict"] = "redirects_to_https"
            return None, ev
        last = chain[-1]
        if stop is None:
            ev["verdict"] = "serves_content"
            text = f"{url} answers {last.status} over plain HTTP"
            if len(chain) > 1:
                text += f" (after {len(chain) - 1} plain-HTTP redirect(s), at {last.url})"
            text += " instead of redirecting to HTTPS"
        elif stop.kind == "offsite":
            ev["verdict"] = "redirects_to_http"
            text = f"{url} redirects to another plain-HTTP URL {stop} instead of to HTTPS"
        else:
            ev["verdict"] = "no_https_redirect"
            text = f"{url}: {stop}, without reaching HTTPS"
        return (
            self.finding(
                "http.https_not_enforced",
                _clip(text),
                url=url,
                chain=ev["chain"],
                final_status=last.status,
                stop=ev["stop"],
            ),
            ev,
        )

    # -- HTTPS: transport-level ------------------------------------------------------------

    def _transport_findings(
        self, chain: list[FetchResult], params: _Params, evidence: dict[str, Any]
    ) -> list[Finding]:
        findings: list[Finding] = []
        https = [r for r in chain if r.url.lower().startswith("https://")]
        if not https:
            return findings
        final = https[-1]

        # HSTS: RFC 6797 8.1, only the first header counts.
        sts = final.header_values("Strict-Transport-Security")
        if not sts:
            findings.append(
                self.finding(
                    "http.hsts.missing",
                    _clip(f"no Strict-Transport-Security header on {final.url}"),
                    url=final.url,
                )
            )
        else:
            max_age, problem = parse_hsts(sts[0])
            header = _clip(sts[0], 200)
            if max_age is None:
                findings.append(
                    self.finding(
                        "http.hsts.missing",
                        _clip(f"invalid Strict-Transport-Security '{header}': {problem}"),
                        url=final.url,
                        header=header,
                        problem=problem,
                    )
                )
            elif max_age == 0:
                findings.append(
                    self.finding(
                        "http.hsts.missing",
                        _clip(f"Strict-Transport-Security '{header}' has max-age=0, which switches HSTS off"),
                        url=final.url,
                        header=header,
                        max_age=0,
                    )
                )
            elif max_age < params.hsts_min_max_age:
                findings.append(
                    self.finding(
                        "http.hsts.short_max_age",
                        _clip(f"HSTS max-age={max_age} s, below {params.hsts_min_max_age} s"),
                        url=final.url,
                        header=header,
                        max_age=max_age,
                        minimum=params.hsts_min_max_age,
                    )
                )

        # Version disclosure, on any HTTPS response of the chain.
        disclosed: list[str] = []
        disclosed_url: str | None = None
        for result in https:
            for name in _VERSION_HEADERS:
                for value in result.header_values(name):
                    if discloses_version(name, value):
                        item = _clip(f"{name}: {value}", 120)
                        if item not in disclosed:
                            disclosed.append(item)
                            disclosed_url = disclosed_url or result.url
        if disclosed:
            findings.append(
                self.finding(
                    "http.version_disclosure",
                    _clip("; ".join(disclosed)),
                    url=disclosed_url,
                    headers=disclosed[:_MAX_LISTED],
                )
            )

        # Cookies from every HTTPS response.
        cookies: list[CookieInfo] = []
        for result in https:
            for line in result.set_cookies:
                cookie = parse_set_cookie(line, result.url)
                if cookie is not None:
                    cookies.append(cookie)
        evidence["cookies"] = [c.as_dict() for c in cookies[:_MAX_COOKIES]]
        evidence["cookies_total"] = len(cookies)
        live = [c for c in cookies if not c.deleted]
        for finding_id, bad, what in (
            ("http.cookie.no_secure", [c for c in live if not c.secure], "without Secure"),
            (
                "http.cookie.no_httponly",
                [c for c in live if c.session_like and not c.httponly],
                "(session-like) without HttpOnly",
            ),
            ("http.cookie.no_samesite", [c for c in live if c.samesite is None], "without SameSite"),
        ):
            if not bad:
                continue
            names = list(dict.fromkeys(c.name for c in bad))
            findings.append(
                self.finding(
                    finding_id,
                    _clip(f"cookie(s) {what}: {_names(names)}"),
                    url=bad[0].url,
                    cookies=names[:_MAX_COOKIES],
                    set_cookie=[c.attributes for c in bad[:_MAX_LISTED]],
                )
            )
        return findings

    # -- HTTPS: page-level -----------------------------------------------------------------

    def _page_findings(self, final: FetchResult, evidence: dict[str, Any]) -> list[Finding]:
        findings: list[Finding] = []
        url = final.url
        page = scan_html(final)
        evidence["html"] = {
            "parsed": page.parsed,
            "error": page.error,
            "meta_csp": [_clip(v, _HEADER_VALUE_CHARS) for v in page.meta_csp[:5]],
            "meta_referrer": [_clip(v, 100) for v in page.meta_referrer[:5]],
        }

        # CSP: enforced header policies plus <meta> policies (frame-ancestors only in headers).
        header_csp = final.header_values("Content-Security-Policy")
        header_policies = [p for v in header_csp for p in parse_csp(v)]
        meta_policies = [p for v in page.meta_csp for p in parse_csp(v)]
        policies = header_policies + meta_policies
        # A body cut short by an error or the deadline (not by the size cap) may have lost the
        # <meta> policies: their absence is then untested, not a finding.
        incomplete = final.body_error is not None
        if incomplete:
            evidence["untested"] = []
        if not policies and incomplete:
            evidence["untested"].append("Content-Security-Policy")
        elif not policies:
            report_only = final.header_values("Content-Security-Policy-Report-Only")
            text = f"no Content-Security-Policy header or <meta> on {url}"
            if report_only:
                text += " (only Content-Security-Policy-Report-Only, which is not enforced)"
            findings.append(
                self.finding("http.csp.missing", _clip(text), url=url, report_only=bool(report_only))
            )
        else:
            issues = combined_script_issues(policies)
            raw_policies = [_clip(v, 200) for v in header_csp + page.meta_csp]
            if issues is None:
                findings.append(
                    self.finding(
                        "http.csp.unsafe",
                        _clip(
                            f"CSP has no script-src or default-src, so scripts are unrestricted: {raw_policies[0]}"
                        ),
                        url=url,
                        issues=["no script-src/default-src"],
                        policies=raw_policies[:5],
                    )
                )
            elif issues:
                ordered = sorted(issues)
                findings.append(
                    self.finding(
                        "http.csp.unsafe",
                        _clip(f"CSP script sources allow {', '.join(ordered)}: {raw_policies[0]}"),
                        url=url,
                        issues=ordered,
                        policies=raw_policies[:5],
                    )
                )

        # Framing.
        xfo_values = _split_header(final.header_values("X-Frame-Options"))
        xfo_ok = bool(xfo_values) and all(v in ("deny", "sameorigin") for v in xfo_values)
        ancestors_ok = any(
            "frame-ancestors" in p and not (set(p["frame-ancestors"]) & _PERMISSIVE_ANCESTORS)
            for p in header_policies
        )
        if not (xfo_ok or ancestors_ok):
            xfo = ", ".join(final.header_values("X-Frame-Options"))
            text = "no X-Frame-Options DENY/SAMEORIGIN and no CSP frame-ancestors"
            if xfo:
                text += f" (X-Frame-Options: {xfo})"
            findings.append(
                self.finding("http.clickjacking", _clip(text), url=url, x_frame_options=_clip(xfo, 200))
            )

        # nosniff: the first value of the (combined) header must be nosniff.
        xcto = _split_header(final.header_values("X-Content-Type-Options"))
        if not xcto or xcto[0] != "nosniff":
            shown = ", ".join(final.header_values("X-Content-Type-Options"))
            text = "no X-Content-Type-Options: nosniff" + (f" (got '{shown}')" if shown else "")
            findings.append(self.finding("http.xcto.missing", _clip(text), url=url, value=_clip(shown, 200)))

        # Referrer policy.
        rp_header = final.header_values("Referrer-Policy")
        policy, source = effective_referrer_policy(rp_header, page.meta_referrer)
        evidence["referrer_policy"] = {"effective": policy, "source": source}
        if policy is None and incomplete:
            evidence["untested"].append("Referrer-Policy")
        elif policy is None or policy in _WEAK_REFERRER:
            if policy is None:
                text = "no Referrer-Policy header or <meta name=referrer>"
                if rp_header:
                    text = f"Referrer-Policy '{', '.join(rp_header)}' has no recognised policy"
            else:
                text = f"effective referrer policy is {policy} (from {source})"
            findings.append(
                self.finding(
                    "http.referrer_policy.weak",
                    _clip(text),
                    url=url,
                    effective=policy,
                    source=source,
                    header=_clip(", ".join(rp_header), 200),
                )
            )

        # Mixed content; moot when an enforced policy upgrades insecure requests.
        upgrade = any("upgrade-insecure-requests" in p for p in policies)
        evidence["mixed_content"] = page.mixed[:_MAX_LISTED]
        evidence["mixed_content_total"] = len(page.mixed)
        evidence["upgrade_insecure_requests"] = upgrade
        if page.mixed and not upgrade and urlsplit(url).scheme.lower() == "https":
            urls = [m["url"] for m in page.mixed]
            findings.append(
                self.finding(
                    "http.mixed_content",
                    _clip(f"{len(urls)} resource(s) loaded over http://: {_names(urls, 5)}"),
                    url=url,
                    resources=page.mixed[:_MAX_LISTED],
                    total=len(urls),
                )
            )

        # SRI on scripts from other origins.
        evidence["sri_missing"] = page.sri_missing[:_MAX_LISTED]
        evidence["sri_missing_total"] = len(page.sri_missing)
        if page.sri_missing:
            findings.append(
                self.finding(
                    "http.sri.missing",
                    _clip(
                        f"{len(page.sri_missing)} external script(s) without integrity=: "
                        f"{_names(page.sri_missing, 5)}"
                    ),
                    url=url,
                    scripts=page.sri_missing[:_MAX_LISTED],
                    total=len(page.sri_missing),
                )
            )
        return findings

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _final_evidence(final: FetchResult) -> dict[str, Any]:
        return {
            "url": final.url[:_HEADER_VALUE_CHARS],
            "status": final.status,
            "headers": [
                [name[:_HEADER_NAME_CHARS], value[:_HEADER_VALUE_CHARS]] for name, value in final.raw_headers
            ],
            "content_type": final.content_type[:200],
            "encoding": (final.encoding or "")[:40] or None,
            "body_bytes": len(final.body),
            "truncated": final.truncated,
            "body_error": final.body_error,
            "elapsed_s": round(final.elapsed, 3),
        }

    @staticmethod
    def _stop_message(target: Target, stop: StopReason) -> str:
        untested = (
            "page-level headers (CSP, framing, nosniff, referrer policy, mixed content, SRI) not tested"
        )
        where = _clip(str(stop), 200)
        if stop.kind == "offsite":
            return f"{target.url} redirects off-site to {where}; {untested}: audit that URL instead"
        if stop.kind == "scheme":
            return f"{target.url} redirects to {where}, which is not HTTPS; {untested}"
        return f"cannot fetch {target.url}: {where}"
