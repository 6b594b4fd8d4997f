"""Security headers: parsing (HSTS, CSP, Referrer-Policy, version banners) and their verdicts.

Everything here is a pure function of header values. The verdict functions take any
:class:`HasHeaders` (a live :class:`checks.web.net.FetchResult` or the stored
:class:`checks.http.evidence.FinalResponse`) and return a :class:`~checks.http.hit.Hit` or
None, so the same code judges a fresh fetch and evidence read back from a stored scan.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from checks.http.csp import (
    CSPPolicy,
    CSPVerdicts,
    header_policies,
    meta_ignored_hit,
    meta_policies,
    report_only_hit,
)
from checks.http.hit import MAX_LISTED, Hit, clip, hit
from checks.http.hsts import first_sts, parse_sts

Policy = dict[str, list[str]]

# "nginx/1.18.0", "PHP/8.1.2-1ubuntu", "Apache/2", "Jetty(9.4.z)", "4.0.30319"; not "sec/97A6".
_VERSION_RE = re.compile(r"/\s*v?\d+(?:\.\d+)*(?!\w)|(?<![\w.])v?\d+\.\d+")
VERSION_HEADERS = ("Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version")
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
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
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


class HasHeaders(Protocol):
    """A response whose header lines can be read one by one, and the URL it came from."""

    @property
    def url(self) -> str: ...

    def header_values(self, name: str) -> list[str]: ...


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_hsts(value: str) -> tuple[int | None, str | None]:
    """RFC 6797 section 6.1: ``(max_age, None)`` for a valid header, ``(None, problem)`` else
    (the strict parser is :func:`checks.http.hsts.parse_sts`)."""
    policy, problem = parse_sts(value)
    return (policy.max_age, None) if policy is not None else (None, problem)


def parse_csp(value: str) -> list[Policy]:
    """Policies in one CSP header value (comma-separated), each ``{directive: [sources]}``.

    Directive names are lower-cased, the first occurrence of a directive wins and policies
    without any directive are dropped, as the CSP3 parser does.
    """
    policies: list[Policy] = []
    for serialized in value.split(","):
        directives: Policy = {}
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


def script_issues(policy: Policy) -> set[str] | None:
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


def combined_script_issues(policies: list[Policy]) -> set[str] | None:
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


def split_header(values: list[str]) -> list[str]:
    """The comma-separated tokens of every line of a header, trimmed and lower-cased."""
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


def _meta_referrer_token(raw: str) -> str | None:
    """HTML <meta name=referrer>: the content converted to ASCII lower case (not trimmed, as
    the HTML standard says), legacy names mapped; None when that is not one policy token."""
    value = raw.translate(_ASCII_LOWER)
    value = _LEGACY_META_REFERRER.get(value, value)
    return value if value in _REFERRER_TOKENS else None


def effective_referrer_policy(header_values: list[str], meta_values: list[str]) -> tuple[str | None, str]:
    """``(policy, source)``: the last recognised header token, overridden by a valid meta tag."""
    policy: str | None = None
    source = "none"
    for token in split_header(header_values):
        if token in _REFERRER_TOKENS:
            policy, source = token, "header"
    for raw in meta_values:
        value = _meta_referrer_token(raw)
        if value is not None:
            policy, source = value, "meta"
    return policy, source


def discloses_version(name: str, value: str) -> bool:
    if name.lower() in _BARE_VERSION_HEADERS:
        return any(ch.isdigit() for ch in value)
    return bool(_VERSION_RE.search(value))


def enforced_policies(final: HasHeaders, meta_csp: list[str]) -> tuple[list[Policy], list[Policy]]:
    """``(header policies, meta policies)``: the enforced CSPs of the landing page, sources
    lower-cased. A <meta> policy is one serialized policy (no comma split) without the
    directives browsers ignore there (:mod:`checks.http.csp`)."""
    header = [p.lowered() for p in header_policies(final.header_values("Content-Security-Policy"))]
    return header, [p.lowered() for p in meta_policies(meta_csp) if p.directives]


def upgrades_insecure_requests(policies: list[Policy]) -> bool:
    return any("upgrade-insecure-requests" in p for p in policies)


def untested_policies(final: HasHeaders, meta_csp: list[str], meta_referrer: list[str]) -> list[str]:
    """Policies a body cut short (by an error or the deadline, not the size cap) may have lost.

    With no header, their <meta> tags could be in the missing part: their absence is then
    untested, not a finding. Call only when the body is incomplete.
    """
    header_policies, meta_policies = enforced_policies(final, meta_csp)
    untested = []
    if not header_policies + meta_policies:
        untested.append("Content-Security-Policy")
    if effective_referrer_policy(final.header_values("Referrer-Policy"), meta_referrer)[0] is None:
        untested.append("Referrer-Policy")
    return untested


# ---------------------------------------------------------------------------------------------
# Transport-level verdicts (any HTTPS response)


def hsts_hit(final: HasHeaders, minimum: int) -> Hit | None:
    """HSTS of the last HTTPS response: RFC 6797 8.1, only the first header counts."""
    url = final.url
    lines = final.header_values("Strict-Transport-Security")
    raw, policy, problem = first_sts(lines)
    if raw is None:
        return hit("http.hsts.missing", f"no Strict-Transport-Security header on {url}", url=url)
    header = clip(raw, 200)
    # RFC 6797 8.1: the UA processes only the first header line.
    note = f" (first of {len(lines)} header lines; browsers read only it)" if len(lines) > 1 else ""
    if policy is None:
        return hit(
            "http.hsts.missing",
            f"Strict-Transport-Security '{header}' is ignored by browsers: {problem}{note}",
            url=url,
            header=header,
            problem=problem,
        )
    if policy.max_age == 0:
        return hit(
            "http.hsts.missing",
            f"Strict-Transport-Security '{header}' has max-age=0, which switches HSTS off{note}",
            url=url,
            header=header,
            max_age=0,
        )
    if policy.max_age < minimum:
        return hit(
            "http.hsts.short_max_age",
            f"HSTS max-age={policy.max_age} s, below {minimum} s (parsed: {policy.describe()}){note}",
            url=url,
            header=header,
            max_age=policy.max_age,
            minimum=minimum,
        )
    return None


def version_hit(responses: Sequence[HasHeaders]) -> Hit | None:
    """Server/framework banners carrying a version, on any of ``responses``."""
    disclosed: list[str] = []
    disclosed_url: str | None = None
    for result in responses:
        for name in VERSION_HEADERS:
            for value in result.header_values(name):
                if discloses_version(name, value):
                    item = clip(f"{name}: {value}", 120)
                    if item not in disclosed:
                        disclosed.append(item)
                        disclosed_url = disclosed_url or result.url
    if not disclosed:
        return None
    return hit(
        "http.version_disclosure", "; ".join(disclosed), url=disclosed_url, headers=disclosed[:MAX_LISTED]
    )


# ---------------------------------------------------------------------------------------------
# Page-level verdicts (the landing page)


def csp_policies(final: HasHeaders, meta_csp: list[str]) -> tuple[list[CSPPolicy], list[CSPPolicy], list[CSPPolicy]]:
    """``(header, meta, report-only)`` policies of the page as CSP3 browsers read them."""
    return (
        header_policies(final.header_values("Content-Security-Policy")),
        meta_policies(meta_csp),
        header_policies(final.header_values("Content-Security-Policy-Report-Only"), "report-only"),
    )


def csp_hits(final: HasHeaders, meta_csp: list[str]) -> list[Hit]:
    """No enforced CSP (http.csp.missing), else every CSP weakness, plus the <meta> directives
    browsers drop and what a report-only policy would flag (info).

    Call only when the policies were tested (the body was complete or a header was sent).
    """
    url = final.url
    header, meta, report_only = csp_policies(final, meta_csp)
    enforced = [p for p in header + meta if p.directives]
    hits: list[Hit | None] = []
    if not enforced:
        text = f"no Content-Security-Policy header or <meta> on {url}"
        if report_only:
            text += " (only Content-Security-Policy-Report-Only, which is not enforced)"
        elif meta:
            text += " (the <meta> policy holds only directives browsers ignore there)"
        hits.append(hit("http.csp.missing", text, url=url, report_only=bool(report_only)))
    else:
        hits.extend(CSPVerdicts(url, enforced).hits())
    hits.append(meta_ignored_hit(url, meta))
    hits.append(report_only_hit(url, report_only))
    return [h for h in hits if h is not None]


def csp_hit(final: HasHeaders, meta_csp: list[str]) -> Hit | None:
    """http.csp.missing or http.csp.unsafe alone (the two ids the check had first)."""
    return next((h for h in csp_hits(final, meta_csp) if h.id in ("http.csp.missing", "http.csp.unsafe")), None)


def framing(final: HasHeaders) -> tuple[bool, str]:
    """``(protected, what was parsed)``: can another site frame the page, as browsers decide.

    An enforced *header* policy with frame-ancestors makes browsers ignore X-Frame-Options
    (CSP3); framing is blocked when any such policy restricts it. Otherwise HTML's
    X-Frame-Options processing: the values split on commas and lower-cased into a set; two
    different values of which one is deny/sameorigin/allowall block framing; one value
    "deny" or "sameorigin" protects; anything else (ALLOW-FROM, which browsers no longer
    support, a typo, nothing) leaves the page frameable.
    """
    policies = header_policies(final.header_values("Content-Security-Policy"))
    ancestors = [p for p in policies if "frame-ancestors" in p.directives]
    xfo_raw = ", ".join(final.header_values("X-Frame-Options"))
    if ancestors:
        strict = [p for p in ancestors if not (set(p.sources("frame-ancestors") or []) & _PERMISSIVE_ANCESTORS)]
        shown = " ".join(ancestors[0].directives["frame-ancestors"]) or "(empty)"
        if strict:
            kept = " ".join(strict[0].directives["frame-ancestors"]) or "(empty: 'none')"
            return True, f"CSP frame-ancestors {clip(kept, 80)}"
        why = f"CSP frame-ancestors {clip(shown, 80)} allows any site to frame the page"
        if xfo_raw:
            why += f" (X-Frame-Options '{clip(xfo_raw, 60)}' is ignored when frame-ancestors is present)"
        return False, why
    values = {v.strip(" \t").lower() for v in xfo_raw.split(",") if v.strip(" \t")} if xfo_raw else set()
    if len(values) > 1:
        if values & {"deny", "sameorigin", "allowall"}:
            return True, f"X-Frame-Options '{clip(xfo_raw, 80)}' (conflicting values block framing)"
        return False, f"X-Frame-Options '{clip(xfo_raw, 80)}' has several invalid values, ignored"
    value = next(iter(values), "")
    if value in ("deny", "sameorigin"):
        return True, f"X-Frame-Options {value}"
    if not value:
        return False, "no X-Frame-Options and no CSP frame-ancestors header directive"
    if value.startswith("allow-from"):
        why = "ALLOW-FROM is obsolete, browsers ignore it"
    elif value == "allowall":
        why = "ALLOWALL allows every site"
    else:
        why = "not DENY or SAMEORIGIN, ignored"
    return False, f"X-Frame-Options '{clip(xfo_raw, 80)}': {why}; and no CSP frame-ancestors header directive"


def clickjacking_hit(final: HasHeaders) -> Hit | None:
    """The page can be framed by another site (see :func:`framing`)."""
    protected, why = framing(final)
    if protected:
        return None
    xfo = ", ".join(final.header_values("X-Frame-Options"))
    return hit("http.clickjacking", why, url=final.url, x_frame_options=clip(xfo, 200))


def nosniff_hit(final: HasHeaders) -> Hit | None:
    """Fetch "determine nosniff": the first value of the combined header must be nosniff
    (ASCII case-insensitive); later values do not count."""
    raw = final.header_values("X-Content-Type-Options")
    xcto = [t.strip(" \t") for v in raw for t in v.split(",")]
    if xcto and xcto[0].lower() == "nosniff":
        return None
    shown = ", ".join(raw)
    if not raw:
        text = "no X-Content-Type-Options: nosniff"
    elif "nosniff" in [t.lower() for t in xcto]:
        text = f"X-Content-Type-Options '{clip(shown, 80)}': only the first value counts and it is not nosniff"
    else:
        text = f"X-Content-Type-Options '{clip(shown, 80)}' is not nosniff, so browsers still sniff"
    return hit("http.xcto.missing", text, url=final.url, value=clip(shown, 200))


def referrer_hit(final: HasHeaders, meta_referrer: list[str]) -> Hit | None:
    """No recognised referrer policy, or one that leaks full URLs (call when it was tested)."""
    rp_header = final.header_values("Referrer-Policy")
    policy, source = effective_referrer_policy(rp_header, meta_referrer)
    if policy is not None and policy not in _WEAK_REFERRER:
        return None
    ignored = [t for t in split_header(rp_header) if t not in _REFERRER_TOKENS]
    bad_meta = [m for m in meta_referrer if _meta_referrer_token(m) is None]
    if policy is None:
        text = "no Referrer-Policy header or <meta name=referrer>"
        if rp_header:
            text = f"Referrer-Policy '{clip(', '.join(rp_header), 80)}' has no recognised policy token"
    else:
        text = f"effective referrer policy is {policy} (from {source})"
    if ignored:
        text += f"; unknown header token(s) ignored: {', '.join(clip(t, 30) for t in ignored[:3])}"
    if bad_meta:
        text += f"; <meta name=referrer content='{clip(bad_meta[0], 40)}'> ignored (it takes a single token)"
    return hit(
        "http.referrer_policy.weak",
        text,
        url=final.url,
        effective=policy,
        source=source,
        header=clip(", ".join(rp_header), 200),
    )
