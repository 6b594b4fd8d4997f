"""What the http check fetches, through the pinned, bounded client of :mod:`checks.web.net`.

1. The plain-HTTP URL (``Target.http_url``), following plain-HTTP redirects within the site,
   to see whether it hands the visitor to HTTPS or serves the site in clear text.
2. The HTTPS landing URL (``Target.url``), following HTTPS redirects within the site (the
   audited host and the other hosts of its registrable domain, :mod:`checks.http.site`, so
   ``example.gov.vn`` → ``www.example.gov.vn`` is one site); its HTML is scanned when the
   chain ends on the site. A redirect to an unrelated host still stops the chain.
3. Two CORS probes of the landing page (``Origin`` of an unknown site, then ``Origin: null``)
   and the admin-path probe (:mod:`checks.http.admin_paths`), once the landing page was reached.

Each step has its own session: cookies the plain-HTTP answer sets must not reach the HTTPS
requests, or a server that only sets a session cookie once would hide it from us. Nothing
here judges anything; :class:`Collection` hands the material to the analysis and the evidence.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlsplit

import requests

from auditor.check import CheckContext
from auditor.errors import AuditorError
from auditor.targets import Target
from checks.http.admin_paths import AdminProbe, probe_admin
from checks.http.analysis import Observed
from checks.http.content import PageScan, scan_html
from checks.http.cookies import MAX_COOKIES, CookieInfo, cookies_set_by
from checks.http.cross_origin import NULL_ORIGIN, PROBE_ORIGIN, CORSProbe
from checks.http.evidence import (
    AdminEvidence,
    FinalResponse,
    Hop,
    HTTPEvidence,
    HTTPSEvidence,
    PageEvidence,
    PlainHTTPEvidence,
)
from checks.http.hops import HopHeaders
from checks.http.site import host_of, same_site
from checks.web.net import (
    CHAIN_BUDGET_FACTOR,
    FetchError,
    FetchResult,
    StopReason,
    fetch,
    follow,
    make_session,
)

PLAIN_MAX_BYTES = 65_536
# The admin-path probe may take at most this many per-operation timeouts (and never more than
# its own ``http.admin_max_seconds``): with the two fetch chains (each bounded by
# checks.web.net.CHAIN_BUDGET_FACTOR timeouts) and the CORS probes (CORS_BUDGET_FACTOR) the whole
# check stays within 8 T.
ADMIN_BUDGET_FACTOR = 3.0
CORS_BUDGET_FACTOR = 1.0
CORS_MAX_BYTES = 4096


@dataclass(frozen=True)
class Params:
    """The check's tunable limits, read from the policy parameters."""

    hsts_min_max_age: int
    max_redirects: int
    max_body_bytes: int


@dataclass(frozen=True)
class Collection:
    """Everything fetched for one target.

    ``responses`` are the HTTPS responses received, in order (the partial chain when the
    fetch failed); ``final`` is the last of them when the fetch did not fail; ``page`` and
    ``admin`` are set only when the chain ended on the landing page itself (``stop`` None).
    """

    plain: PlainHTTPEvidence
    https: HTTPSEvidence
    responses: list[FetchResult]
    final: FetchResult | None = None
    stop: StopReason | None = None
    page: PageScan | None = None
    admin: AdminProbe | None = None
    cors: list[CORSProbe] | None = None

    @cached_property
    def cookies(self) -> list[CookieInfo]:
        """Every cookie the HTTPS responses set (parsed once for analysis and evidence)."""
        return cookies_set_by(self.responses)

    def observed(self) -> Observed:
        """The unbounded material the analysis judges."""
        judged = self.final if self.page is not None else None
        return Observed(
            plain=self.plain,
            responses=list(self.responses),
            cookies=self.cookies,
            landing=judged,
            page=self.page,
            body_incomplete=judged is not None and judged.body_error is not None,
            admin=list(self.admin.hits) if self.admin is not None else [],
            hops=list(self.responses),
            cors=self.cors,
        )

    def evidence(self) -> HTTPEvidence:
        """The bounded evidence stored with the scan."""
        cookies = self.cookies
        page = None
        if self.final is not None and self.page is not None:
            page = PageEvidence.of(self.final, self.final.body_error, self.page)
        admin = None
        if self.admin is not None:
            admin = AdminEvidence([p for hit in self.admin.hits for p in hit.details["paths"]], self.admin.untested)
        return HTTPEvidence(
            plain_http=self.plain,
            https=self.https,
            final=FinalResponse.of(self.final) if self.final is not None else None,
            cookies=cookies[:MAX_COOKIES] if self.responses else None,
            cookies_total=len(cookies),
            page=page,
            admin=admin,
            https_hops=[HopHeaders.of(r, r.status) for r in self.responses[:12]] if self.responses else None,
            cors=[CORSProbe.from_dict(c.to_dict()) for c in self.cors] if self.cors is not None else None,
        )


def collect(target: Target, ctx: CheckContext, params: Params) -> Collection:
    """Fetch the plain-HTTP URL, the HTTPS landing page and (when reached) the admin paths."""
    with make_session(ctx, target) as session:
        plain = probe_plain_http(session, target, ctx, params)
    with make_session(ctx, target) as session:
        try:
            chain, stop = _follow(session, target.url, target, ctx, params.max_body_bytes, params.max_redirects, "https")
        except FetchError as exc:
            https = HTTPSEvidence(
                target.url, Hop.chain_of(exc.chain), error=exc.message, error_kind=exc.kind
            )
            return Collection(plain, https, _https_only(exc.chain))
    https = HTTPSEvidence.reached(target.url, chain, stop)
    final = chain[-1]
    if stop is not None:
        return Collection(plain, https, _https_only(chain), final, stop)
    page = scan_html(final)
    cors = probe_cors(target, ctx, final.url)
    landing = _landing_target(target, ctx, final.url)
    with make_session(ctx, landing) as session:
        admin = probe_admin(session, landing, _admin_context(ctx))
    return Collection(plain, https, _https_only(chain), final, None, page, admin, cors)


def _landing_target(target: Target, ctx: CheckContext, url: str) -> Target:
    """The target moved to the landing page's host when a redirect within the site took the
    chain there (``example.gov.vn`` → ``www.example.gov.vn``): the admin paths are probed
    where the site is served. The address is the one the chain itself connected to."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or host == target.host or ctx.resolver is None:
        return target
    port = parts.port or 443
    try:
        address = ctx.resolver.resolve(host, port)
    except AuditorError:
        return target
    return dataclasses.replace(target, url=url, host=host, port=port, address=address, path=parts.path or "/")


def probe_cors(target: Target, ctx: CheckContext, url: str) -> list[CORSProbe]:
    """GET the landing page with an ``Origin`` the site cannot know, then ``Origin: null``,
    each on a fresh session (no cookies), within ``CORS_BUDGET_FACTOR`` timeouts together."""
    budget_end = time.monotonic() + CORS_BUDGET_FACTOR * ctx.bounded_timeout()
    probes: list[CORSProbe] = []
    for origin in (PROBE_ORIGIN, NULL_ORIGIN):
        left = budget_end - time.monotonic()
        if left <= 0.05:
            probes.append(CORSProbe(origin, url, error="not tested (CORS probe time budget spent)"))
            continue
        with make_session(ctx, target) as session:
            session.headers["Origin"] = origin
            try:
                result = fetch(session, url, ctx=ctx, max_bytes=CORS_MAX_BYTES, max_seconds=left)
            except FetchError as exc:
                probes.append(CORSProbe(origin, url, error=exc.message))
                continue
        probes.append(
            CORSProbe(
                origin,
                url,
                result.status,
                result.header_values("Access-Control-Allow-Origin"),
                result.header_values("Access-Control-Allow-Credentials"),
            )
        )
    return probes


def _admin_context(ctx: CheckContext) -> CheckContext:
    """``ctx`` with the admin probe's budget cut to ``ADMIN_BUDGET_FACTOR`` timeouts (the probe
    names its ``http.admin_max_seconds`` budget when it runs out, so that is what is cut)."""
    budget = min(float(ctx.param("http.admin_max_seconds", 30)), ADMIN_BUDGET_FACTOR * ctx.bounded_timeout())
    sub = ctx.with_deadline(time.monotonic() + budget)
    shown = round(budget, 1)
    sub.params = {**ctx.params, "http.admin_max_seconds": int(shown) if shown.is_integer() else shown}
    return sub


def probe_plain_http(
    session: requests.Session, target: Target, ctx: CheckContext, params: Params
) -> PlainHTTPEvidence:
    """Where the plain-HTTP URL leads; a refused or closed port means it is not served (fine)."""
    url = target.http_url
    try:
        chain, stop = _follow(session, url, target, ctx, PLAIN_MAX_BYTES, params.max_redirects, "http")
    except FetchError as exc:
        return PlainHTTPEvidence(
            url, Hop.chain_of(exc.chain), error=exc.message, verdict="not_served", error_kind=exc.kind
        )
    return PlainHTTPEvidence(url, Hop.chain_of(chain), str(stop) if stop is not None else None, None, _verdict(stop))


def _verdict(stop: StopReason | None) -> str:
    """How a plain-HTTP chain that stopped at ``stop`` (None: it ended on a page) treats visitors."""
    if stop is not None and stop.kind in ("scheme", "offsite", "unresolved") and (stop.location or "").startswith("https://"):
        return "redirects_to_https"
    if stop is None:
        return "serves_content"
    if stop.kind in ("offsite", "unresolved"):
        return "redirects_to_http"
    return "no_https_redirect"


def _follow(
    session: requests.Session,
    url: str,
    target: Target,
    ctx: CheckContext,
    max_bytes: int,
    max_redirects: int,
    scheme: str,
) -> tuple[list[FetchResult], StopReason | None]:
    """Follow redirects of one scheme within the site (the hosts of the target's registrable
    domain), all hops within one chain budget and hop limit.

    :func:`checks.web.net.follow` stops at the first host it was not told about; a stop at a
    host of the same site resumes from there with what is left of the budget and hops. A
    host of the site that cannot be resolved (no ``--resolve`` for it under ``--no-dns``)
    stops the chain like an unrelated host would, saying why.
    """
    budget_end = time.monotonic() + CHAIN_BUDGET_FACTOR * ctx.bounded_timeout()
    allowed = {target.host}
    chain: list[FetchResult] = []
    current = url
    while True:
        left = budget_end - time.monotonic()
        if left <= 0:
            raise FetchError(f"no final response within the fetch time bound after {len(chain)} redirects",
                             kind="timeout", url=current, chain=chain)
        try:
            part, stop = follow(
                session,
                current,
                ctx=ctx,
                max_bytes=max_bytes,
                max_redirects=max_redirects - len(chain),
                allowed_hosts=set(allowed),
                schemes=frozenset({scheme}),
                max_seconds=left,
            )
        except FetchError as exc:
            if exc.kind == "resolve" and not exc.chain and chain:
                where = chain[-1].location or current
                return chain, StopReason(f"{where} (same site, but {exc.message})", "unresolved", where)
            exc.chain = chain + exc.chain
            raise
        chain.extend(part)
        if stop is None or stop.kind != "offsite" or stop.location is None:
            return chain, stop
        host = host_of(stop.location)
        if not host or not same_site(host, target.host):
            return chain, stop
        if len(chain) > max_redirects:
            return chain, StopReason(f"too many redirects (more than {max_redirects})", "too_many", stop.location)
        allowed.add(host)
        current = stop.location


def _https_only(chain: list[FetchResult]) -> list[FetchResult]:
    return [r for r in chain if r.url.lower().startswith("https://")]
