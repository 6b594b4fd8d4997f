"""The ``http`` check: HTTPS enforcement, security headers, cookies, mixed content and SRI.

It collects (:mod:`checks.http.collect`), stores typed evidence (:mod:`checks.http.evidence`)
and analyses (:mod:`checks.http.analysis`). Certificates are not judged here (that is the
``tls`` check), so the client reads sites with bad certificates or old protocols too.

Redirects are followed within the site: the audited host and the other hosts of its
registrable domain (``example.gov.vn`` → ``www.example.gov.vn``), each hop's HSTS judged
(:mod:`checks.http.hops`). When the landing page redirects somewhere the check does not
follow (an unrelated host, plain HTTP, a loop), the transport-level findings (HSTS, cookies,
version disclosure) are still raised from the responses received, but page-level properties
(CSP, framing, nosniff, referrer policy, mixed content, SRI) were not tested, so the check
reports an error rather than passing them.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from auditor.catalogue import catalogue_of
from auditor.check import Check, CheckContext, CheckOutcome, Finding
from auditor.targets import Target
from checks.http import security_txt
from checks.http.analysis import Observed, analyse
from checks.http.collect import Collection, Params, collect
from checks.http.evidence import HTTPEvidence
from checks.http.hit import Hit, clip
from checks.web.net import StopReason, one_line

__all__ = ["HTTPCheck"]

CATALOGUE = catalogue_of("checks.http")  # findings.yaml beside this file (http.admin.exposed too)

# The whole check stays within this many per-operation timeouts (README: http ≤ 8T); the
# security.txt fetch gets what the fetch chains and the admin probe left of it.
HTTP_BUDGET_FACTOR = 8

_UNTESTED_PAGE = "page-level headers (CSP, framing, nosniff, referrer policy, mixed content, SRI) not tested"


class HTTPCheck(Check):
    """HTTP-level security of the landing page: redirects, headers, cookies, HTML loads."""

    id = "http"
    title = "HTTP security: HTTPS enforcement, security headers, cookies, mixed content"
    description = (
        "Fetches the plain-HTTP and HTTPS landing URLs (redirects followed within the site's "
        "registrable domain, bounded time and size) and checks HTTPS enforcement, HSTS on every "
        "hop, Content Security Policy, framing protection, nosniff, referrer policy, "
        "cross-origin policies (COOP, COEP, CORP), CORS, version disclosure, cookie attributes, "
        "mixed content and Subresource Integrity of external scripts."
    )
    catalogue = CATALOGUE
    parameters = {
        "http.hsts_min_max_age": 15768000,
        "http.max_redirects": 10,
        "http.max_body_bytes": 2_097_152,
    }

    def params(self, ctx: CheckContext) -> Params:
        def get(name: str) -> int:
            return int(ctx.param(name, self.parameters[name]))

        return Params(
            hsts_min_max_age=get("http.hsts_min_max_age"),
            max_redirects=max(0, get("http.max_redirects")),
            max_body_bytes=max(1024, get("http.max_body_bytes")),
        )

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        params = self.params(ctx)
        budget_end = time.monotonic() + HTTP_BUDGET_FACTOR * ctx.bounded_timeout()
        collection = collect(target, ctx, params)
        hits = analyse(collection.observed(), params.hsts_min_max_age)
        evidence = collection.evidence()
        error = _error(target, collection, evidence)
        if collection.https.error is None:  # security.txt (RFC 9116), see checks/http/security_txt.py
            evidence = dataclasses.replace(evidence, security_txt=security_txt.collect(target, ctx, budget_end))
            hits += security_txt.judge(evidence.security_txt)
            error = "; ".join(e for e in (error, security_txt.untested(evidence.security_txt)) if e) or None
        return CheckOutcome(findings=self.findings_of(hits), evidence=evidence.to_dict(), error=error)

    def reanalyse(self, stored: dict[str, Any], ctx: CheckContext | None = None) -> list[Finding]:
        """The findings a stored evidence dict supports, judged again by today's code.

        Stored evidence is bounded (see :mod:`checks.http.analysis`), so this equals the
        original findings unless the scan had to cut something out of its evidence.
        """
        minimum = self.params(ctx).hsts_min_max_age if ctx else self.parameters["http.hsts_min_max_age"]
        hits = analyse(Observed.from_evidence(HTTPEvidence.from_dict(stored)), minimum)
        return self.findings_of(hits + security_txt.judge(stored.get("security_txt")))

    def findings_of(self, hits: list[Hit]) -> list[Finding]:
        """Catalogue findings (title, severity, references) for the analysis' hits."""
        return [self.finding(h.id, h.evidence, url=h.url, **h.details) for h in hits]


def _error(target: Target, collection: Collection, evidence: HTTPEvidence) -> str | None:
    """Why part of the check could not be done, or None when everything was tested."""
    if collection.https.error is not None:
        return f"cannot fetch {target.url}: {collection.https.error}"
    if collection.stop is not None:
        return _stop_message(target, collection.stop)
    problems = []
    final, page, admin = evidence.final, evidence.page, collection.admin
    if final is not None and page is not None and page.untested:
        problems.append(f"page body incomplete ({final.body_error}): not tested: " + ", ".join(page.untested))
    if admin is not None and admin.untested:
        more = len(admin.untested) - 5
        shown = ", ".join(admin.untested[:5]) + (f" and {more} more" if more > 0 else "")
        problems.append(f"admin paths not tested: {shown} ({admin.reason})")
    return one_line("; ".join(problems), 400) if problems else None


def _stop_message(target: Target, stop: StopReason) -> str:
    where = clip(str(stop), 200)
    if stop.kind == "offsite":
        return (
            f"{target.url} redirects off-site to {where} (another registrable domain); "
            f"{_UNTESTED_PAGE}: audit that URL instead"
        )
    if stop.kind == "unresolved":
        return f"{target.url} redirects to {where}; {_UNTESTED_PAGE}"
    if stop.kind == "scheme":
        return f"{target.url} redirects to {where}, which is not HTTPS; {_UNTESTED_PAGE}"
    return f"cannot fetch {target.url}: {where}"
