"""Fuzz the security-header parsers (HSTS, CSP, Referrer-Policy, version banners), the
Set-Cookie parser and the landing-page HTML scan with hostile header values and bodies.

Property: each returns its declared type, never raises, and every piece of evidence that can
reach a terminal is one line.
"""

from __future__ import annotations

import pytest
from fuzz_strategies import any_text, assert_one_line, base_urls, mixed, urls
from hypothesis import example, given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from checks.http import content, cookies, cross_origin, headers, hops, hsts
from checks.web.net import FetchResult

hsts_values = mixed("max-age", "=", '"', "31536000", "0", "-1", ";", "includeSubDomains", "preload",
                    " ", "9" * 20, "max-age=", "١٢٣")
csp_values = mixed("default-src", "script-src", "frame-ancestors", "upgrade-insecure-requests", ";", ",",
                   " ", "'self'", "'none'", "'unsafe-inline'", "'unsafe-eval'", "'strict-dynamic'",
                   "'nonce-abc'", "'sha256-x'", "*", "http:", "data:", "https://*")
referrer_values = mixed("no-referrer", "unsafe-url", "origin", "strict-origin-when-cross-origin",
                        "never", "always", "default", ",", " ", "NO-REFERRER")
cookie_lines = mixed("sid", "=", "value", ";", " ", "Secure", "HttpOnly", "SameSite", "=Lax", "=None",
                     "Max-Age", "=0", "=-1", "=99999999999999999999", "Expires", "=Thu, 01 Jan 1970 00:00:00 GMT",
                     "=Fri, 31 Dec 9999 23:59:59 GMT", "Path=/", "Domain=.example.com")
header_names = st.sampled_from(["Strict-Transport-Security", "Content-Security-Policy", "Referrer-Policy",
                                "X-Frame-Options", "X-Content-Type-Options", "Server", "X-Powered-By",
                                "X-AspNet-Version", "Content-Security-Policy-Report-Only", "Set-Cookie"])

pytestmark = pytest.mark.filterwarnings("ignore::bs4.MarkupResemblesLocatorWarning")


def response(url: str, lines: list[tuple[str, str]], body: bytes = b"", ctype: str = "text/html") -> FetchResult:
    joined: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in lines:
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    joined.setdefault("Content-Type", ctype)
    return FetchResult(url=url, status=200, headers=joined, raw_headers=lines,
                       set_cookies=[v for k, v in lines if k == "Set-Cookie"], body=body, truncated=False,
                       encoding=None, elapsed=0.0)


@given(hsts_values)
@example("\x1b;\x1b")  # the repeated directive's name is shown: one line, no escape codes
@example('max-age="')  # a lone quote is not a quoted empty value
@example("max-age=" + "9" * 5000)
def test_parse_hsts(value: str) -> None:
    max_age, problem = headers.parse_hsts(value)
    assert (max_age is None) != (problem is None)
    if max_age is not None:
        assert isinstance(max_age, int) and max_age >= 0
    else:
        assert isinstance(problem, str)
        assert_one_line(problem)


@given(csp_values)
def test_parse_csp(value: str) -> None:
    policies = headers.parse_csp(value)
    assert isinstance(policies, list)
    for policy in policies:
        assert policy and all(isinstance(k, str) and k and isinstance(v, list) for k, v in policy.items())
        issues = headers.script_issues(policy)
        assert issues is None or isinstance(issues, set)
    combined = headers.combined_script_issues(policies)
    assert combined is None or isinstance(combined, set)


@given(st.lists(referrer_values, max_size=4), st.lists(referrer_values, max_size=4))
def test_effective_referrer_policy(header: list[str], meta: list[str]) -> None:
    policy, source = headers.effective_referrer_policy(header, meta)
    assert source in ("none", "header", "meta")
    assert (policy is None) == (source == "none")


@given(st.sampled_from(headers.VERSION_HEADERS), mixed("nginx", "/", "1.18.0", "v", ".", "(", ")", "9"))
def test_discloses_version(name: str, value: str) -> None:
    assert isinstance(headers.discloses_version(name, value), bool)


@given(urls, st.lists(st.tuples(header_names, any_text | csp_values | hsts_values | referrer_values), max_size=5),
       st.lists(csp_values, max_size=2), st.lists(referrer_values, max_size=2), st.integers(0, 10**9))
@example("", [("Content-Security-Policy", "\x0b")], [], [], 0)
def test_header_verdicts(url: str, lines: list[tuple[str, str]], meta_csp: list[str], meta_ref: list[str],
                         minimum: int) -> None:
    final = response(url, lines)
    hits = [headers.hsts_hit(final, minimum), headers.version_hit([final]), headers.csp_hit(final, meta_csp),
            headers.clickjacking_hit(final), headers.nosniff_hit(final), headers.referrer_hit(final, meta_ref)]
    assert isinstance(headers.untested_policies(final, meta_csp, meta_ref), list)
    for found in hits:
        if found is not None:
            assert_one_line(found.evidence)
            assert len(found.evidence) <= 300


@given(cookie_lines, base_urls, st.floats(allow_nan=False, allow_infinity=False) | st.none())
@example("a=b; Expires=Fri, 31 Dec 99999 23:59:59 GMT", "https://example.com/", None)
@example("a=b; Max-Age=" + "9" * 5000, "https://example.com/", None)
def test_parse_set_cookie(line: str, url: str, now: float | None) -> None:
    cookie = cookies.parse_set_cookie(line, url, now)
    if cookie is None:
        return
    assert isinstance(cookie, cookies.CookieInfo)
    assert_one_line(cookie.name)
    assert_one_line(cookie.attributes)
    assert cookies.CookieInfo.from_dict(cookie.to_dict()).name == cookie.name
    for found in cookies.cookie_hits([cookie]):
        assert_one_line(found.evidence)


html_bodies = mixed("<meta http-equiv=content-security-policy content=\"", "<meta name=referrer content=",
                    "<script src=", "<img srcset=", "<link rel=stylesheet href=", "<base href=", "<iframe src=",
                    "<input type=image src=", "http://", "https://cdn.example/", "//x", "\"", "'", ">", "<",
                    " integrity=", ", ", " 2x", "<!--", "]]>", "<svg><script src=", "&#0;", "http://[", ":99999",
                    max_size=40)


@given(base_urls, html_bodies, st.sampled_from(["text/html", "", "application/xhtml+xml"]))
@example("https://example.com/", "<script src='http://[::1'>", "text/html")
@example("https://[", "", "text/html")  # a page URL that does not even split
@example("https://example.com/", "<script src='http://cdn.example/\x1b[2J'>", "text/html")
def test_scan_html(url: str, body: str, ctype: str) -> None:
    result = response(url, [], body.encode("utf-8", "surrogatepass"), ctype)
    page = content.scan_html(result)
    assert isinstance(page, content.PageScan)
    assert page.mixed_total == len(page.mixed) and page.sri_total == len(page.sri_missing)
    for found_url in [*(m.url for m in page.mixed), *page.sri_missing]:
        assert_one_line(found_url)
    for found in (content.mixed_content_hit(url, page, False), content.sri_hit(url, page)):
        if found is not None:
            assert_one_line(found.evidence)


# ---- issue 15: strict HSTS, CSP verdicts, cross-origin policies, CORS, cookie rules, hops

sf_values = mixed("same-origin", "require-corp", "unsafe-none", ";", "report-to", "=", '"x"', ",", " ", "*", "?1",
                  "Same-Origin", "1.5", "\\")


@given(hsts_values)
@example("max-age=1; includeSubDomains, max-age=1")
@example('max-age="1\\')
def test_parse_sts(value: str) -> None:
    policy, problem = hsts.parse_sts(value)
    assert (policy is None) != (problem is None)
    if policy is not None:
        assert policy.max_age >= 0 and isinstance(policy.preload_problems(), list)
        assert_one_line(policy.describe())
    else:
        assert_one_line(str(problem))


@given(urls, st.lists(csp_values, max_size=3), st.lists(csp_values, max_size=2), st.lists(csp_values, max_size=2))
@example("", [], [], ["\x0b"])  # a vertical tab is not ASCII whitespace: a one-character directive name
@example("", ["\x0b"], ["a\x0bb; \x0b"], [])
def test_csp_hits(url: str, header: list[str], meta: list[str], report_only: list[str]) -> None:
    lines = [("Content-Security-Policy", v) for v in header] + [
        ("Content-Security-Policy-Report-Only", v) for v in report_only]
    for found in headers.csp_hits(response(url, lines), meta):
        assert found.id.startswith("http.csp.")
        assert_one_line(found.evidence)
        assert len(found.evidence) <= 300


@given(st.lists(sf_values, max_size=3), st.lists(sf_values, max_size=2), st.lists(sf_values, max_size=2))
def test_cross_origin_policies(coop: list[str], coep: list[str], corp: list[str]) -> None:
    for parsed in (cross_origin.parse_coop(coop), cross_origin.parse_coep(coep), cross_origin.parse_corp(corp)):
        assert (parsed.value is None) or parsed.problem is None
        assert_one_line(parsed.describe())
    for found in cross_origin.isolation_hits("https://example.com/", coop, coep, corp):
        assert_one_line(found.evidence)


@given(st.lists(any_text | st.just("https://auditor-probe.invalid") | st.just("*") | st.just("null"), max_size=2),
       st.lists(st.just("true") | any_text, max_size=2), st.sampled_from(["https://auditor-probe.invalid", "null"]))
def test_cors_hits(acao: list[str], acac: list[str], origin: str) -> None:
    probe = cross_origin.CORSProbe(origin, "https://example.com/", 200, acao, acac)
    assert cross_origin.CORSProbe.from_dict(probe.to_dict()).origin == origin
    for found in cross_origin.cors_hits([probe]):
        assert_one_line(found.evidence)


@given(cookie_lines | mixed("__Host-", "__Secure-", "sid", "=", "1", ";", " Secure", " Path=/", " Domain=",
                            "example.com", ".com", "gov.vn", " SameSite=None", "\x1b"), base_urls)
@example("__Host-a=1; Domain=\x1b[2J", "https://example.com/")
@example("0", "https://[")  # a URL whose host does not parse
def test_strict_cookie_hits(line: str, url: str) -> None:
    cookie = cookies.parse_set_cookie(line, url)
    if cookie is None:
        return
    for found in cookies.strict_cookie_hits([cookie]):
        assert_one_line(found.evidence)
        assert len(found.evidence) <= 300


@given(st.lists(st.tuples(base_urls, st.lists(hsts_values, max_size=2)), min_size=1, max_size=4))
@example([("https://[", [])])
def test_hop_hits(chain: list[tuple[str, list[str]]]) -> None:
    hops_ = [hops.HopHeaders(url, 301, sts) for url, sts in chain]
    for found in hops.hop_hits(hops_, [(chain[0][0], None)]):
        assert_one_line(found.evidence)
