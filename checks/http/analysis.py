"""From what was observed to the findings of the http check, as pure functions.

:class:`Observed` is the material the verdicts read. A live run builds it from the fetched
responses (:meth:`checks.http.collect.Collection.observed`, unbounded); a stored scan builds
it from its :class:`~checks.http.evidence.HTTPEvidence` (:meth:`Observed.from_evidence`).
The two judge the same unless the stored evidence had to cut something: header values over
1024 characters, more than 50 cookies, 5 <meta> policies or 20 listed resources, or banners
and cookies on HTTPS redirects before a fetch failed (only the final response's headers are
stored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from checks.http.admin_paths import exposed_hit
from checks.http.content import PageScan, mixed_content_hit, sri_hit
from checks.http.cookies import CookieInfo, cookie_hits, strict_cookie_hits
from checks.http.cross_origin import CORSProbe, cors_hits, isolation_hits
from checks.http.evidence import HTTPEvidence, PlainHTTPEvidence
from checks.http.headers import (
    HasHeaders,
    clickjacking_hit,
    csp_hits,
    effective_referrer_policy,
    enforced_policies,
    hsts_hit,
    nosniff_hit,
    referrer_hit,
    upgrades_insecure_requests,
    version_hit,
)
from checks.http.hit import Hit, hit
from checks.http.hops import HopHeaders, hop_hits


@dataclass(frozen=True)
class Observed:
    """What the analysis judges: the plain-HTTP probe, the HTTPS responses in order, the
    cookies they set, the landing page and its HTML when the page was reached, and the
    admin-path hits."""

    plain: PlainHTTPEvidence | None
    responses: Sequence[HasHeaders] = field(default_factory=list)
    cookies: Sequence[CookieInfo] = field(default_factory=list)
    landing: HasHeaders | None = None
    page: PageScan | None = None
    body_incomplete: bool = False
    admin: Sequence[Hit] = field(default_factory=list)
    hops: Sequence[HasHeaders] = field(default_factory=list)
    cors: Sequence[CORSProbe] | None = None

    @classmethod
    def from_evidence(cls, evidence: HTTPEvidence) -> Observed:
        """The observation as far as stored evidence keeps it (only the final response's headers)."""
        final = evidence.final
        page = evidence.page
        admin: list[Hit] = []
        if evidence.admin is not None and evidence.admin.paths and evidence.https is not None:
            parts = urlsplit(evidence.https.url)
            admin.append(exposed_hit(evidence.admin.paths, f"{parts.scheme}://{parts.netloc}"))
        return cls(
            plain=evidence.plain_http,
            responses=[final] if final is not None else [],
            cookies=list(evidence.cookies or []),
            landing=final if page is not None else None,
            page=page.scan() if page is not None else None,
            body_incomplete=final is not None and final.body_error is not None,
            admin=admin,
            hops=_stored_hops(evidence),
            cors=evidence.cors,
        )


def _stored_hops(evidence: HTTPEvidence) -> list[HasHeaders]:
    """The HTTPS responses as stored (older scans: the final response alone)."""
    if evidence.https_hops:
        return list(evidence.https_hops)
    if evidence.final is not None:
        return [HopHeaders(evidence.final.url, evidence.final.status,
                           evidence.final.header_values("Strict-Transport-Security"))]
    return []


def analyse(observed: Observed, hsts_min_max_age: int) -> list[Hit]:
    """Every finding, in the stored order: plain HTTP, transport, page, admin paths."""
    hits: list[Hit | None] = []
    if observed.plain is not None:
        hits.append(plain_http_hit(observed.plain))
    if observed.responses:
        hits.append(hsts_hit(observed.responses[-1], hsts_min_max_age))
        plain_chain = [(h.url, h.location) for h in observed.plain.chain] if observed.plain is not None else None
        hits.extend(hop_hits(observed.hops or observed.responses, plain_chain))
        hits.append(version_hit(observed.responses))
    hits.extend(cookie_hits(observed.cookies))
    hits.extend(strict_cookie_hits(observed.cookies))
    if observed.landing is not None and observed.page is not None:
        hits.extend(page_hits(observed.landing, observed.page, observed.body_incomplete))
        hits.extend(cors_hits(observed.cors or []))
    hits.extend(observed.admin)
    return [h for h in hits if h is not None]


def plain_http_hit(plain: PlainHTTPEvidence) -> Hit | None:
    """http.https_not_enforced unless plain HTTP redirects to HTTPS or is not served at all."""
    if plain.verdict in (None, "redirects_to_https", "not_served") or not plain.chain:
        return None
    url, last = plain.url, plain.chain[-1]
    if plain.verdict == "serves_content":
        text = f"{url} answers {last.status} over plain HTTP"
        if len(plain.chain) > 1:
            text += f" (after {len(plain.chain) - 1} plain-HTTP redirect(s), at {last.url})"
        text += " instead of redirecting to HTTPS"
    elif plain.verdict == "redirects_to_http":
        text = f"{url} redirects to another plain-HTTP URL {plain.stop} instead of to HTTPS"
    else:
        text = f"{url}: {plain.stop}, without reaching HTTPS"
    return hit(
        "http.https_not_enforced",
        text,
        url=url,
        chain=[h.to_dict() for h in plain.chain],
        final_status=last.status,
        stop=plain.stop,
    )


def page_hits(landing: HasHeaders, page: PageScan, body_incomplete: bool) -> list[Hit]:
    """The landing page's CSP, framing, nosniff, referrer policy, mixed content and SRI.

    A body cut short (by an error or the deadline, not the size cap) may have lost the <meta>
    policies: without a header, their absence is then untested, not a finding.
    """
    header_policies, meta_policies = enforced_policies(landing, page.meta_csp)
    policies = header_policies + meta_policies
    referrer, _ = effective_referrer_policy(landing.header_values("Referrer-Policy"), page.meta_referrer)
    hits: list[Hit | None] = []
    if policies or not body_incomplete:
        hits.extend(csp_hits(landing, page.meta_csp))
    hits += [
        clickjacking_hit(landing),
        nosniff_hit(landing),
        referrer_hit(landing, page.meta_referrer) if referrer is not None or not body_incomplete else None,
        mixed_content_hit(landing.url, page, upgrades_insecure_requests(policies)),
        sri_hit(landing.url, page),
    ]
    hits.extend(
        isolation_hits(
            landing.url,
            landing.header_values("Cross-Origin-Opener-Policy"),
            landing.header_values("Cross-Origin-Embedder-Policy"),
            landing.header_values("Cross-Origin-Resource-Policy"),
        )
    )
    return [h for h in hits if h is not None]
