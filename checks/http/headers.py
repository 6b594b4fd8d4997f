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

from checks.http.hit import MAX_LISTED, Hit, clip, hit

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
    """RFC 6797 section 6.1: ``(max_age, None)`` for a valid header, ``(None, problem)`` else."""
    seen: dict[str, str] = {}
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, raw = part.partition("=")
        name = name.strip().lower()
        if name in seen:
            return None, f"directive {clip(name, 100)} repeated"  # a site's bytes: one short line
        seen[name] = raw.strip()
    if "max-age" not in seen:
        return None, "no max-age directive"
    raw = seen["max-age"]
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    if not re.fullmatch(r"[0-9]{1,15}", raw):
        return None, f"invalid max-age {raw!r}"
    return int(raw), None


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


def effective_referrer_policy(header_values: list[str], meta_values: list[str]) -> tuple[str | None, str]:
    """``(policy, source)``: the last recognised header token, overridden by a valid meta tag."""
    policy: str | None = None
    source = "none"
    for token in split_header(header_values):
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


def enforced_policies(final: HasHeaders, meta_csp: list[str]) -> tuple[list[Policy], list[Policy]]:
    """``(header policies, meta policies)``: the enforced CSPs of the landing page."""
    header = [p for v in final.header_values("Content-Security-Policy") for p in parse_csp(v)]
    return header, [p for v in meta_csp for p in parse_csp(v)]


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
    sts = final.header_values("Strict-Transport-Security")
    if not sts:
        return hit("http.hsts.missing", f"no Strict-Transport-Security header on {url}", url=url)
    max_age, problem = parse_hsts(sts[0])
    header = clip(sts[0], 200)
    if max_age is None:
        return hit(
            "http.hsts.missing",
            f"invalid Strict-Transport-Security '{header}': {problem}",
            url=url,
            header=header,
            problem=problem,
        )
    if max_age == 0:
        return hit(
            "http.hsts.missing",
            f"Strict-Transport-Security '{header}' has max-age=0, which switches HSTS off",
            url=url,
            header=header,
            max_age=0,
        )
    if max_age < minimum:
        return hit(
            "http.hsts.short_max_age",
            f"HSTS max-age={max_age} s, below {minimum} s",
            url=url,
            header=header,
            max_age=max_age,
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


def csp_hit(final: HasHeaders, meta_csp: list[str]) -> Hit | None:
    """No enforced CSP, or one that lets scripts run from anywhere or inline.

    Call only when the policies were tested (the body was complete or a header was sent).
    """
    url = final.url
    header_csp = final.header_values("Content-Security-Policy")
    header_policies, meta_policies = enforced_policies(final, meta_csp)
    policies = header_policies + meta_policies
    if not policies:
        report_only = final.header_values("Content-Security-Policy-Report-Only")
        text = f"no Content-Security-Policy header or <meta> on {url}"
        if report_only:
            text += " (only Content-Security-Policy-Report-Only, which is not enforced)"
        return hit("http.csp.missing", text, url=url, report_only=bool(report_only))
    issues = combined_script_issues(policies)
    raw_policies = [clip(v, 200) for v in header_csp + meta_csp]
    if issues is None:
        return hit(
            "http.csp.unsafe",
            f"CSP has no script-src or default-src, so scripts are unrestricted: {raw_policies[0]}",
            url=url,
            issues=["no script-src/default-src"],
            policies=raw_policies[:5],
        )
    if not issues:
        return None
    ordered = sorted(issues)
    return hit(
        "http.csp.unsafe",
        f"CSP script sources allow {', '.join(ordered)}: {raw_policies[0]}",
        url=url,
        issues=ordered,
        policies=raw_policies[:5],
    )


def clickjacking_hit(final: HasHeaders) -> Hit | None:
    """Neither X-Frame-Options DENY/SAMEORIGIN nor a strict frame-ancestors header policy."""
    xfo_values = split_header(final.header_values("X-Frame-Options"))
    xfo_ok = bool(xfo_values) and all(v in ("deny", "sameorigin") for v in xfo_values)
    header_policies, _ = enforced_policies(final, [])
    ancestors_ok = any(
        "frame-ancestors" in p and not (set(p["frame-ancestors"]) & _PERMISSIVE_ANCESTORS)
        for p in header_policies
    )
    if xfo_ok or ancestors_ok:
        return None
    xfo = ", ".join(final.header_values("X-Frame-Options"))
    text = "no X-Frame-Options DENY/SAMEORIGIN and no CSP frame-ancestors"
    if xfo:
        text += f" (X-Frame-Options: {xfo})"
    return hit("http.clickjacking", text, url=final.url, x_frame_options=clip(xfo, 200))


def nosniff_hit(final: HasHeaders) -> Hit | None:
    """The first value of the (combined) X-Content-Type-Options header must be nosniff."""
    xcto = split_header(final.header_values("X-Content-Type-Options"))
    if xcto and xcto[0] == "nosniff":
        return None
    shown = ", ".join(final.header_values("X-Content-Type-Options"))
    text = "no X-Content-Type-Options: nosniff" + (f" (got '{shown}')" if shown else "")
    return hit("http.xcto.missing", text, url=final.url, value=clip(shown, 200))


def referrer_hit(final: HasHeaders, meta_referrer: list[str]) -> Hit | None:
    """No recognised referrer policy, or one that leaks full URLs (call when it was tested)."""
    rp_header = final.header_values("Referrer-Policy")
    policy, source = effective_referrer_policy(rp_header, meta_referrer)
    if policy is not None and policy not in _WEAK_REFERRER:
        return None
    if policy is None:
        text = "no Referrer-Policy header or <meta name=referrer>"
        if rp_header:
            text = f"Referrer-Policy '{', '.join(rp_header)}' has no recognised policy"
    else:
        text = f"effective referrer policy is {policy} (from {source})"
    return hit(
        "http.referrer_policy.weak",
        text,
        url=final.url,
        effective=policy,
        source=source,
        header=clip(", ".join(rp_header), 200),
    )
