"""The typed evidence of the http check: what :class:`~auditor.check.CheckOutcome` stores.

``HTTPEvidence.to_dict()`` is the JSON stored with every scan and printed by the JSON
output, key for key and in the same order as before these types existed; ``from_dict()``
reads it back, tolerating keys that older scans did not store. The evidence is *bounded*
(header values, URLs and lists are cut as stored), so ``from_dict(e.to_dict()) == e``
always holds; the unbounded material a live run judges is in
:class:`checks.http.analysis.Observed`.

Shape (``SCHEMA_VERSION`` 1; the version is not itself stored, to keep the stored shape)::

    plain_http  {url, chain: [{url, status, location}], stop, error, verdict[, error_kind]}
    https       {url, chain, stop, stop_kind, error} | {url, chain, stop, error, error_kind}
    final       {url, status, headers: [[name, value]], content_type, encoding,
                 body_bytes, truncated, body_error, elapsed_s}          (landing page reached)
    cookies, cookies_total                                     (an HTTPS response was read)
    html {parsed, error, meta_csp, meta_referrer}, [untested], referrer_policy {effective,
    source}, mixed_content, mixed_content_total, upgrade_insecure_requests, sri_missing,
    sri_missing_total                                           (the page itself was judged)
    admin_paths[, admin_untested]                               (the admin probe ran)
    https_hops [{url, status, sts}]       (each HTTPS response of the chain and its STS lines)
    cors [{origin, url, status, allow_origin, allow_credentials, error}]   (the CORS probes)

The last two were added after version 1 was first stored; older scans lack them and are
judged from ``final`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from checks.http.content import Load, PageScan
from checks.http.cookies import MAX_COOKIES, CookieInfo
from checks.http.cross_origin import CORSProbe
from checks.http.headers import (
    HasHeaders,
    effective_referrer_policy,
    enforced_policies,
    untested_policies,
    upgrades_insecure_requests,
)
from checks.http.hit import MAX_LISTED, clip
from checks.http.hops import HopHeaders
from checks.web.net import FetchResult, StopReason, chain_evidence

SCHEMA_VERSION = 1

HEADER_VALUE_CHARS = 1024
HEADER_NAME_CHARS = 256


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Hop:
    """One response of a redirect chain: its URL, status and Location (if any)."""

    url: str
    status: int
    location: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "status": self.status, "location": self.location}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hop:
        return cls(str(data.get("url", "")), int(data.get("status", 0)), _opt_str(data.get("location")))

    @classmethod
    def chain_of(cls, chain: list[FetchResult]) -> list[Hop]:
        return [cls.from_dict(d) for d in chain_evidence(chain)]


def _chain_from(data: dict[str, Any]) -> list[Hop]:
    return [Hop.from_dict(d) for d in data.get("chain") or []]


@dataclass(frozen=True)
class PlainHTTPEvidence:
    """The plain-HTTP probe; ``verdict`` is one of redirects_to_https, serves_content,
    redirects_to_http, no_https_redirect, not_served. ``error_kind`` is stored with an error."""

    url: str
    chain: list[Hop] = field(default_factory=list)
    stop: str | None = None
    error: str | None = None
    verdict: str | None = None
    error_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "url": self.url,
            "chain": [h.to_dict() for h in self.chain],
            "stop": self.stop,
            "error": self.error,
            "verdict": self.verdict,
        }
        if self.error is not None:
            out["error_kind"] = self.error_kind
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlainHTTPEvidence:
        return cls(
            url=str(data.get("url", "")),
            chain=_chain_from(data),
            stop=_opt_str(data.get("stop")),
            error=_opt_str(data.get("error")),
            verdict=_opt_str(data.get("verdict")),
            error_kind=_opt_str(data.get("error_kind")),
        )


@dataclass(frozen=True)
class HTTPSEvidence:
    """The HTTPS landing fetch: the chain, why it stopped short (if it did) or its error."""

    url: str
    chain: list[Hop] = field(default_factory=list)
    stop: str | None = None
    stop_kind: str | None = None
    error: str | None = None
    error_kind: str | None = None

    @classmethod
    def reached(cls, url: str, chain: list[FetchResult], stop: StopReason | None) -> HTTPSEvidence:
        return cls(url, Hop.chain_of(chain), _opt_str(stop), stop.kind if stop is not None else None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url, "chain": [h.to_dict() for h in self.chain], "stop": self.stop}
        if self.error is None:
            out["stop_kind"] = self.stop_kind
            out["error"] = None
        else:
            out["error"] = self.error
            out["error_kind"] = self.error_kind
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HTTPSEvidence:
        return cls(
            url=str(data.get("url", "")),
            chain=_chain_from(data),
            stop=_opt_str(data.get("stop")),
            stop_kind=_opt_str(data.get("stop_kind")),
            error=_opt_str(data.get("error")),
            error_kind=_opt_str(data.get("error_kind")),
        )


@dataclass(frozen=True)
class FinalResponse:
    """The last HTTPS response, headers cut to what is stored. It has the header access of a
    :class:`~checks.web.net.FetchResult`, so the header verdicts can judge it again."""

    url: str
    status: int
    headers: list[tuple[str, str]]
    content_type: str
    encoding: str | None
    body_bytes: int
    truncated: bool
    body_error: str | None
    elapsed_s: float

    @classmethod
    def of(cls, result: FetchResult) -> FinalResponse:
        return cls(
            url=result.url[:HEADER_VALUE_CHARS],
            status=result.status,
            headers=[(n[:HEADER_NAME_CHARS], v[:HEADER_VALUE_CHARS]) for n, v in result.raw_headers],
            content_type=result.content_type[:200],
            encoding=(result.encoding or "")[:40] or None,
            body_bytes=len(result.body),
            truncated=result.truncated,
            body_error=result.body_error,
            elapsed_s=round(result.elapsed, 3),
        )

    def header_values(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "status": self.status,
            "headers": [[n, v] for n, v in self.headers],
            "content_type": self.content_type,
            "encoding": self.encoding,
            "body_bytes": self.body_bytes,
            "truncated": self.truncated,
            "body_error": self.body_error,
            "elapsed_s": self.elapsed_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinalResponse:
        return cls(
            url=str(data.get("url", "")),
            status=int(data.get("status", 0)),
            headers=[(str(n), str(v)) for n, v in data.get("headers") or []],
            content_type=str(data.get("content_type", "")),
            encoding=_opt_str(data.get("encoding")),
            body_bytes=int(data.get("body_bytes", 0)),
            truncated=bool(data.get("truncated")),
            body_error=_opt_str(data.get("body_error")),
            elapsed_s=float(data.get("elapsed_s", 0.0)),
        )


@dataclass(frozen=True)
class PageEvidence:
    """What the landing page's HTML and page-level headers showed.

    ``untested`` is None when the body was complete, else the policies it may have lost
    (possibly none). The lists are cut to the first 20 (meta tags: 5); the totals count all.
    """

    parsed: bool
    html_error: str | None
    meta_csp: list[str]
    meta_referrer: list[str]
    untested: list[str] | None
    referrer_effective: str | None
    referrer_source: str
    mixed: list[Load]
    mixed_total: int
    upgrade_insecure_requests: bool
    sri_missing: list[str]
    sri_missing_total: int

    @classmethod
    def of(cls, final: HasHeaders, body_error: str | None, page: PageScan) -> PageEvidence:
        policies = [p for group in enforced_policies(final, page.meta_csp) for p in group]
        effective, source = effective_referrer_policy(final.header_values("Referrer-Policy"), page.meta_referrer)
        incomplete = body_error is not None
        return cls(
            parsed=page.parsed,
            html_error=page.error,
            meta_csp=[clip(v, HEADER_VALUE_CHARS) for v in page.meta_csp[:5]],
            meta_referrer=[clip(v, 100) for v in page.meta_referrer[:5]],
            untested=untested_policies(final, page.meta_csp, page.meta_referrer) if incomplete else None,
            referrer_effective=effective,
            referrer_source=source,
            mixed=page.mixed[:MAX_LISTED],
            mixed_total=page.mixed_total,
            upgrade_insecure_requests=upgrades_insecure_requests(policies),
            sri_missing=page.sri_missing[:MAX_LISTED],
            sri_missing_total=page.sri_total,
        )

    def scan(self) -> PageScan:
        """The HTML scan as far as the stored evidence keeps it (for judging it again)."""
        return PageScan(
            meta_csp=list(self.meta_csp),
            meta_referrer=list(self.meta_referrer),
            mixed=list(self.mixed),
            sri_missing=list(self.sri_missing),
            parsed=self.parsed,
            error=self.html_error,
            mixed_total=self.mixed_total,
            sri_total=self.sri_missing_total,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "html": {
                "parsed": self.parsed,
                "error": self.html_error,
                "meta_csp": list(self.meta_csp),
                "meta_referrer": list(self.meta_referrer),
            }
        }
        if self.untested is not None:
            out["untested"] = list(self.untested)
        out["referrer_policy"] = {"effective": self.referrer_effective, "source": self.referrer_source}
        out["mixed_content"] = [m.to_dict() for m in self.mixed]
        out["mixed_content_total"] = self.mixed_total
        out["upgrade_insecure_requests"] = self.upgrade_insecure_requests
        out["sri_missing"] = list(self.sri_missing)
        out["sri_missing_total"] = self.sri_missing_total
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageEvidence:
        html = data.get("html") or {}
        referrer = data.get("referrer_policy") or {}
        mixed = [Load.from_dict(m) for m in data.get("mixed_content") or []]
        sri = [str(s) for s in data.get("sri_missing") or []]
        untested = data.get("untested")
        return cls(
            parsed=bool(html.get("parsed")),
            html_error=_opt_str(html.get("error")),
            meta_csp=[str(v) for v in html.get("meta_csp") or []],
            meta_referrer=[str(v) for v in html.get("meta_referrer") or []],
            untested=None if untested is None else [str(u) for u in untested],
            referrer_effective=_opt_str(referrer.get("effective")),
            referrer_source=str(referrer.get("source", "none")),
            mixed=mixed,
            mixed_total=int(data.get("mixed_content_total", len(mixed))),
            upgrade_insecure_requests=bool(data.get("upgrade_insecure_requests")),
            sri_missing=sri,
            sri_missing_total=int(data.get("sri_missing_total", len(sri))),
        )


@dataclass(frozen=True)
class AdminEvidence:
    """The admin-path probe: every exposed path (path, final_url, status, reason) and the
    paths it could not judge (stored only when there are some)."""

    paths: list[dict[str, Any]] = field(default_factory=list)
    untested: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"admin_paths": [dict(p) for p in self.paths]}
        if self.untested:
            out["admin_untested"] = list(self.untested)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdminEvidence:
        return cls(
            paths=[dict(p) for p in data.get("admin_paths") or []],
            untested=[str(p) for p in data.get("admin_untested") or []],
        )


@dataclass(frozen=True)
class HTTPEvidence:
    """Everything the http check stores about one target; a part is None when that step did
    not happen (the HTTPS fetch failed, the landing page redirected away, ...)."""

    plain_http: PlainHTTPEvidence | None = None
    https: HTTPSEvidence | None = None
    final: FinalResponse | None = None
    cookies: list[CookieInfo] | None = None
    cookies_total: int = 0
    page: PageEvidence | None = None
    admin: AdminEvidence | None = None
    security_txt: dict[str, Any] | None = None  # checks/http/security_txt.py's fetch, as stored
    https_hops: list[HopHeaders] | None = None
    cors: list[CORSProbe] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.plain_http is not None:
            out["plain_http"] = self.plain_http.to_dict()
        if self.https is not None:
            out["https"] = self.https.to_dict()
        if self.final is not None:
            out["final"] = self.final.to_dict()
        if self.cookies is not None:
            out["cookies"] = [c.to_dict() for c in self.cookies[:MAX_COOKIES]]
            out["cookies_total"] = self.cookies_total
        if self.page is not None:
            out.update(self.page.to_dict())
        if self.admin is not None:
            out.update(self.admin.to_dict())
        if self.security_txt is not None:
            out["security_txt"] = dict(self.security_txt)
        if self.https_hops is not None:
            out["https_hops"] = [h.to_dict() for h in self.https_hops]
        if self.cors is not None:
            out["cors"] = [c.to_dict() for c in self.cors]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HTTPEvidence:
        cookies = data.get("cookies")
        parsed_cookies = None if cookies is None else [CookieInfo.from_dict(c) for c in cookies]
        return cls(
            plain_http=PlainHTTPEvidence.from_dict(data["plain_http"]) if "plain_http" in data else None,
            https=HTTPSEvidence.from_dict(data["https"]) if "https" in data else None,
            final=FinalResponse.from_dict(data["final"]) if "final" in data else None,
            cookies=parsed_cookies,
            cookies_total=int(data.get("cookies_total", len(parsed_cookies or []))),
            page=PageEvidence.from_dict(data) if "html" in data else None,
            admin=AdminEvidence.from_dict(data) if "admin_paths" in data else None,
            security_txt=dict(data["security_txt"]) if isinstance(data.get("security_txt"), dict) else None,
            https_hops=None if data.get("https_hops") is None else [HopHeaders.from_dict(h) for h in data["https_hops"]],
            cors=None if data.get("cors") is None else [CORSProbe.from_dict(c) for c in data["cors"]],
        )
