"""The http check against real loopback HTTP and HTTPS servers (127.0.0.150, no DNS).

One HTTPS server and one plain-HTTP server serve every case under ``/case/<name>``; the
baseline is a well-configured page, and each case changes one thing so that exactly one
finding id (or none) appears.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from loopback_http import Server, server_cert, tls_server_context

from auditor.check import CheckContext, CheckOutcome, Severity
from auditor.lab.server import reserve_closed_port
from auditor.targets import Resolver, Target
from checks.http import HTTPCheck
from checks.http.cookies import parse_set_cookie
from checks.http.evidence import SCHEMA_VERSION, HTTPEvidence
from checks.http.headers import parse_csp, parse_hsts

ADDR = "127.0.0.150"
HOST = "h.test"
FINDINGS_MD = Path("/work/shared/docs/findings.md")

EXPECTED_SEVERITIES = {
    "http.https_not_enforced": "high",
    "http.hsts.missing": "medium",
    "http.hsts.short_max_age": "low",
    "http.csp.missing": "medium",
    "http.csp.unsafe": "low",
    "http.clickjacking": "medium",
    "http.xcto.missing": "low",
    "http.referrer_policy.weak": "low",
    "http.version_disclosure": "low",
    "http.cookie.no_secure": "medium",
    "http.cookie.no_httponly": "low",
    "http.cookie.no_samesite": "low",
    "http.mixed_content": "medium",
    "http.sri.missing": "low",
}

# ------------------------------------------------------------------------------------------
# Cases

BASE_CSP = "default-src 'self'; script-src 'self' https://cdn.example.net; frame-ancestors 'self'"
BASE_HEADERS: list[tuple[str, str]] = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("Content-Security-Policy", BASE_CSP),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Server", "nginx"),
    ("X-Powered-By", "ASP.NET"),
    ("Set-Cookie", "sessionid=s3cr3t-value; Path=/; Secure; HttpOnly; SameSite=Lax"),
    ("Set-Cookie", "lang=vi; Path=/; Secure; SameSite=Lax"),  # not session-like: HttpOnly optional
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]
BASE_HEAD = (
    '<meta charset="utf-8"><title>Cổng thông tin điện tử</title>'
    '<link rel="stylesheet" href="/site.css"><link rel="alternate" href="http://example.org/feed">'
    '<script src="/app.js"></script><script>var inline = 1;</script>'
    '<script src="https://cdn.example.net/lib.js" integrity="sha384-abc" crossorigin="anonymous"></script>'
)
BASE_BODY = (
    '<img src="/logo.png" srcset="/logo-2x.png 2x, //cdn.example.net/logo-3x.png 3x">'
    '<a href="http://example.org/">a link is not a load</a>'
    '<form action="http://example.org/search"><input name="q"></form>'
    '<iframe src="https://www.example.net/embed"></iframe>'
)


def html(head: str = "", body: str = "", *, base_head: bool = True) -> bytes:
    return (
        f"<!doctype html><html><head>{BASE_HEAD if base_head else ''}{head}</head>"
        f"<body><h1>Trang chủ</h1>{BASE_BODY}{body}</body></html>"
    ).encode()


@dataclass
class Case:
    expected: set[str]
    drop: tuple[str, ...] = ()  # header names removed from the baseline (and cookies when "set-cookie")
    add: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    plain: str = "redirect"  # redirect | content | http_offsite | https_offsite | two_hops
    status: int = 200

    def headers(self) -> list[tuple[str, str]]:
        drop = {d.lower() for d in self.drop}
        return [h for h in BASE_HEADERS if h[0].lower() not in drop] + self.add


def replace(name: str, value: str, **kw: Any) -> Case:
    expected = kw.pop("expected")
    return Case(expected, drop=(name,), add=[(name, value)], **kw)


def cookies(*lines: str, expected: set[str]) -> Case:
    return Case(expected, drop=("Set-Cookie",), add=[("Set-Cookie", line) for line in lines])


CASES: dict[str, Case] = {
    "baseline": Case(set()),
    "baseline_404": Case(set(), status=404),
    # https_not_enforced
    "http_content": Case({"http.https_not_enforced"}, plain="content"),
    "http_to_http_offsite": Case({"http.https_not_enforced"}, plain="http_offsite"),
    "http_to_https_offsite": Case(set(), plain="https_offsite"),
    "http_two_hops_to_https": Case(set(), plain="two_hops"),
    # HSTS
    "hsts_missing": Case({"http.hsts.missing"}, drop=("Strict-Transport-Security",)),
    "hsts_invalid": replace("Strict-Transport-Security", "max-age=abc", expected={"http.hsts.missing"}),
    "hsts_no_max_age": replace(
        "Strict-Transport-Security", "includeSubDomains", expected={"http.hsts.missing"}
    ),
    "hsts_zero": replace("Strict-Transport-Security", "max-age=0", expected={"http.hsts.missing"}),
    "hsts_short": replace("Strict-Transport-Security", "max-age=86400", expected={"http.hsts.short_max_age"}),
    "hsts_quoted": replace("Strict-Transport-Security", 'max-age="31536000"; preload', expected=set()),
    "hsts_first_header_counts": Case(
        {"http.hsts.short_max_age"},
        drop=("Strict-Transport-Security",),
        add=[("Strict-Transport-Security", "max-age=600"), ("Strict-Transport-Security", "max-age=31536000")],
    ),
    # CSP
    "csp_missing": Case({"http.csp.missing"}, drop=("Content-Security-Policy",)),
    "csp_report_only": Case(
        {"http.csp.missing"},
        drop=("Content-Security-Policy",),
        add=[("Content-Security-Policy-Report-Only", "default-src 'self'")],
    ),
    "csp_empty_header": replace("Content-Security-Policy", " ", expected={"http.csp.missing"}),
    "csp_meta": Case(
        set(),
        drop=("Content-Security-Policy",),
        body=html('<meta http-equiv="Content-Security-Policy" content="default-src \'self\'">'),
    ),
    "csp_meta_unsafe": Case(
        {"http.csp.unsafe"},
        drop=("Content-Security-Policy",),
        body=html("<META HTTP-EQUIV=content-security-policy CONTENT=\"script-src 'self' 'unsafe-eval'\">"),
    ),
    "csp_unsafe_inline": replace(
        "Content-Security-Policy",
        "script-src 'self' 'unsafe-inline'; frame-ancestors 'self'",
        expected={"http.csp.unsafe"},
    ),
    "csp_unsafe_eval": replace(
        "Content-Security-Policy", "script-src 'self' 'UNSAFE-EVAL'", expected={"http.csp.unsafe"}
    ),
    "csp_wildcard": replace("Content-Security-Policy", "script-src *", expected={"http.csp.unsafe"}),
    "csp_http_scheme": replace(
        "Content-Security-Policy", "script-src 'self' http:", expected={"http.csp.unsafe"}
    ),
    "csp_data_scheme": replace(
        "Content-Security-Policy", "script-src 'self' data:", expected={"http.csp.unsafe"}
    ),
    "csp_default_src_unsafe": replace(
        "Content-Security-Policy",
        "default-src 'self' 'unsafe-inline'; img-src *",
        expected={"http.csp.unsafe"},
    ),
    "csp_script_src_overrides_default": replace(
        "Content-Security-Policy", "default-src * 'unsafe-inline'; script-src 'self'", expected=set()
    ),
    "csp_no_script_restriction": replace(
        "Content-Security-Policy",
        "frame-ancestors 'self'; upgrade-insecure-requests",
        expected={"http.csp.unsafe"},
    ),
    "csp_inline_with_nonce": replace(
        "Content-Security-Policy", "script-src 'self' 'unsafe-inline' 'nonce-r4nd0m'", expected=set()
    ),
    "csp_strict_dynamic": replace(
        "Content-Security-Policy",
        "script-src 'strict-dynamic' 'nonce-r4nd0m' 'unsafe-inline' https: http:",
        expected=set(),
    ),
    "csp_second_policy_restricts": Case(
        set(),
        drop=("Content-Security-Policy",),
        add=[
            ("Content-Security-Policy", "script-src * 'unsafe-inline'"),
            ("Content-Security-Policy", "default-src 'self', frame-ancestors 'none'"),
        ],
    ),
    # Framing
    "clickjacking": Case(
        {"http.clickjacking"},
        drop=("X-Frame-Options", "Content-Security-Policy"),
        add=[("Content-Security-Policy", "default-src 'self'")],
    ),
    "clickjacking_allow_from": Case(
        {"http.clickjacking"},
        drop=("X-Frame-Options", "Content-Security-Policy"),
        add=[
            ("Content-Security-Policy", "default-src 'self'"),
            ("X-Frame-Options", "ALLOW-FROM https://x.example"),
        ],
    ),
    "clickjacking_ancestors_star": Case(
        {"http.clickjacking"},
        drop=("X-Frame-Options", "Content-Security-Policy"),
        add=[("Content-Security-Policy", "default-src 'self'; frame-ancestors *")],
    ),
    "clickjacking_meta_ancestors_ignored": Case(
        {"http.clickjacking"},
        drop=("X-Frame-Options", "Content-Security-Policy"),
        body=html(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; frame-ancestors 'none'\">"
        ),
    ),
    "frame_ancestors_only": Case(set(), drop=("X-Frame-Options",)),
    "xfo_deny_only": Case(
        set(),
        drop=("X-Frame-Options", "Content-Security-Policy"),
        add=[("Content-Security-Policy", "default-src 'self'"), ("X-Frame-Options", "deny")],
    ),
    # nosniff
    "xcto_missing": Case({"http.xcto.missing"}, drop=("X-Content-Type-Options",)),
    "xcto_wrong": replace("X-Content-Type-Options", "sniff", expected={"http.xcto.missing"}),
    # Referrer policy
    "referrer_missing": Case({"http.referrer_policy.weak"}, drop=("Referrer-Policy",)),
    "referrer_unsafe_url": replace("Referrer-Policy", "unsafe-url", expected={"http.referrer_policy.weak"}),
    "referrer_last_token_weak": replace(
        "Referrer-Policy", "no-referrer, no-referrer-when-downgrade", expected={"http.referrer_policy.weak"}
    ),
    "referrer_last_recognised_ok": replace(
        "Referrer-Policy", "unsafe-url, strict-origin, x-future", expected=set()
    ),
    "referrer_unrecognised": replace("Referrer-Policy", "x-future", expected={"http.referrer_policy.weak"}),
    "referrer_meta": Case(
        set(), drop=("Referrer-Policy",), body=html('<meta name="referrer" content="no-referrer">')
    ),
    "referrer_meta_weakens": Case(
        {"http.referrer_policy.weak"}, body=html('<meta name="referrer" content="always">')
    ),
    # Version disclosure
    "version_server": replace("Server", "nginx/1.18.0 (Ubuntu)", expected={"http.version_disclosure"}),
    "version_php": replace("X-Powered-By", "PHP/8.1.2-1ubuntu2.14", expected={"http.version_disclosure"}),
    "version_aspnet": Case({"http.version_disclosure"}, add=[("X-AspNet-Version", "4.0.30319")]),
    "version_aspnetmvc": Case({"http.version_disclosure"}, add=[("X-AspNetMvc-Version", "5.2")]),
    "no_version": Case(set(), drop=("Server",), add=[("Server", "Apache"), ("X-Powered-By", "Express")]),
    # Cookies
    "cookie_no_secure": cookies(
        "sessionid=abc; Path=/; HttpOnly; SameSite=Lax", expected={"http.cookie.no_secure"}
    ),
    "cookie_no_httponly": cookies(
        "PHPSESSID=abc; Path=/; Secure; SameSite=Strict", expected={"http.cookie.no_httponly"}
    ),
    "cookie_no_httponly_not_session": cookies("theme=dark; Secure; SameSite=Lax", expected=set()),
    "cookie_no_samesite": cookies("auth_token=abc; Secure; HttpOnly", expected={"http.cookie.no_samesite"}),
    "cookie_bad_samesite": cookies(
        "auth_token=abc; Secure; HttpOnly; SameSite=Sometimes", expected={"http.cookie.no_samesite"}
    ),
    "cookie_samesite_none": cookies("widget=1; Secure; SameSite=None", expected=set()),
    "cookie_deleted": cookies(
        "sessionid=; Max-Age=0", "old=; Expires=Thu, 01-Jan-1970 00:00:01 GMT", expected=set()
    ),
    # Mixed content
    "mixed_img": Case({"http.mixed_content"}, body=html(body=f'<img src="http://{HOST}/logo.png">')),
    "mixed_stylesheet": Case(
        {"http.mixed_content"}, body=html('<link rel="stylesheet" href="http://static.example.net/a.css">')
    ),
    "mixed_srcset": Case(
        {"http.mixed_content"}, body=html(body='<img src="/a.png" srcset="http://x.example/a.png 2x">')
    ),
    "mixed_via_base": Case(
        {"http.mixed_content"},
        body=b'<html><head><base href="http://static.example.net/"></head><body><video src="clip.mp4"></video>',
    ),
    "mixed_upgraded": Case(
        set(),
        drop=("Content-Security-Policy",),
        add=[("Content-Security-Policy", BASE_CSP + "; upgrade-insecure-requests")],
        body=html(body='<img src="http://x.example/a.png">'),
    ),
    # SRI
    "sri_missing": Case(
        {"http.sri.missing"}, body=html('<script src="https://cdn.example.net/other.js"></script>')
    ),
    "sri_other_port": Case(
        {"http.sri.missing"}, body=html(f'<script src="https://{HOST}:8443/x.js"></script>')
    ),
    "sri_protocol_relative": Case(
        {"http.sri.missing"}, body=html('<script src="//cdn.example.net/x.js"></script>')
    ),
    "sri_empty_integrity": Case(
        {"http.sri.missing"}, body=html('<script src="https://cdn.example.net/x.js" integrity=""></script>')
    ),
    # Bodies that must not break anything
    "windows_1258": Case(
        set(),
        drop=("Content-Type",),
        add=[("Content-Type", "text/html; charset=windows-1258")],
        body=b"<html><head><title>C\xf4\xdeng th\xf4ng tin</title></head><body>H\xe0 N\xf4\xf2i \x80\xff</body></html>",
    ),
    "latin1_undeclared": Case(
        set(),
        drop=("Content-Type",),
        add=[("Content-Type", "text/html")],
        body="<p>café</p>".encode("latin-1") + b"\xff",
    ),
    "malformed_html": Case(
        {"http.mixed_content"},
        body=b"<html><head><meta http-equiv=Content-Security-Policy content=\"default-src 'self'\"<script src=x"
        b"</scr\x00ipt><<<img src='http://x.example/a.png'<img src=\"http://[bad/\"><base href='javascript:x'>"
        b"<svg><![CDATA[ <!-- \xff\xfe </table></td></p></div> -->"
        + b"<div>" * 2000
        + b'<img src="http://x.example/after-the-junk.png">',
    ),
    "not_html": Case(
        set(),
        drop=("Content-Type",),
        add=[("Content-Type", "application/json")],
        body=b'{"img": "<img src=\\"http://x.example/a.png\\">"}',
    ),
}


# ------------------------------------------------------------------------------------------
# Servers


@dataclass
class Lab:
    https: Server
    http: Server
    closed_port: int

    def target(self, name: str, *, port: int | None = None, http_port: int | None = None) -> Target:
        path = f"/case/{name}"
        port = port or self.https.port
        return Target(
            url=f"https://{HOST}:{port}{path}",
            host=HOST,
            port=port,
            address=ADDR,
            path=path,
            http_port=http_port or self.http.port,
        )


def case_name(path: str) -> str:
    return path.removeprefix("/case/").strip("/")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    cert = server_cert(tmp_path_factory, "http-check", [HOST])
    tls = tls_server_context(cert.cert, cert.key)
    holder: dict[str, Server] = {}

    def https_respond(path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        port = holder["https"].port
        if path == "/.well-known/security.txt":  # every case has a valid one (RFC 9116)
            from auditor.lab.sites import security_txt_body

            return 200, [("Content-Type", "text/plain; charset=utf-8")], security_txt_body().encode()
        name = case_name(path)
        if name == "redirected":  # same-host hop that sets its own (insecure) cookie
            return (
                302,
                [
                    ("Location", "/case/baseline?from=redirect"),
                    ("Set-Cookie", "hop_sid=1; SameSite=Lax"),
                    ("Strict-Transport-Security", "max-age=31536000"),
                ],
                b"",
            )
        if name == "redirected_ok":
            return 301, [("Location", f"https://{HOST}:{port}/case/baseline")], b""
        if name == "offsite":
            return (
                301,
                [
                    ("Location", "https://www.other.example/"),
                    ("Strict-Transport-Security", "max-age=60"),
                    ("Server", "nginx/1.25.3"),
                ],
                b"",
            )
        if name == "loop":
            return 302, [("Location", "/case/loop")], b""
        if name == "cut_body":  # promises 100 kB, sends the start of <head>, hangs up
            head = "".join(f"{k}: {v}\r\n" for k, v in BASE_HEADERS
                           if k.lower() not in ("content-security-policy", "referrer-policy", "set-cookie"))
            return 0, [], (f"HTTP/1.1 200 OK\r\n{head}Content-Type: text/html\r\nContent-Length: 100000\r\n\r\n"
                           "<html><head><title>cut</title>").encode()
        if name == "hostile":
            long_value = "nginx/1.2.3 " + "A" * 5000
            return (
                200,
                [
                    ("Content-Type", "text/html"),
                    ("Server", long_value),
                    ("Set-Cookie", "sid\x01" + "n" * 500 + "=" + "x" * 3000),
                ],
                html(),
            )
        case = CASES.get(name)
        if case is None:
            return 404, [("Content-Type", "text/plain")], b"no such case"
        return case.status, case.headers(), case.body if case.body is not None else html()

    def http_respond(path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        name = case_name(path)
        https_url = f"https://{HOST}:{holder['https'].port}{path}"
        case = CASES.get(name)
        plain = case.plain if case else "redirect"
        if name == "closed_https":
            plain = "content"
        if plain == "content":
            return 200, [("Content-Type", "text/html")], html()
        if plain == "http_offsite":
            return 301, [("Location", "http://www.other.example/")], b""
        if plain == "https_offsite":
            return 301, [("Location", "https://www.other.example/")], b""
        if plain == "two_hops" and not path.endswith("/"):
            return 301, [("Location", path + "/")], b""
        return 301, [("Location", https_url)], b""

    # One route for every path: the case is in the path.
    holder["https"] = Server(ADDR, {"/": lambda h: https_respond(h.path.split("?", 1)[0])}, tls)
    holder["http"] = Server(ADDR, {"/": lambda h: http_respond(h.path.split("?", 1)[0])})
    closed = reserve_closed_port(ADDR)  # bound, never listening: refused, and no one else's
    yield Lab(holder["https"], holder["http"], closed.getsockname()[1])
    holder["https"].stop()
    holder["http"].stop()
    closed.close()


def run_check(target: Target, **params: Any) -> CheckOutcome:
    ctx = CheckContext(resolver=Resolver(allow_dns=False), timeout=3, params=params)
    return HTTPCheck().run(target, ctx)


def ids(outcome: CheckOutcome) -> set[str]:
    """The ids of the original catalogue (the ids added later have their own table-driven
    suite, tests/checks/http/test_header_depth.py)."""
    return {f.id for f in outcome.findings if f.id in EXPECTED_SEVERITIES or f.id == "http.admin.exposed"}


def assert_well_formed(outcome: CheckOutcome) -> None:
    json.dumps(outcome.evidence)
    for f in outcome.findings:
        json.dumps(f.details)
        assert f.url
        assert "\n" not in f.evidence and "\r" not in f.evidence and len(f.evidence) <= 300
    assert len({f.id for f in outcome.findings}) == len(outcome.findings), "one finding per id"


# ------------------------------------------------------------------------------------------
# Tests


def test_catalogue_matches_findings_md() -> None:
    check = HTTPCheck()
    got = {spec.id: spec.severity.value for spec in check.catalogue}
    # findings.md's http table, plus the admin-path probe it lists after the ports table,
    # plus security.txt (RFC 9116, checks/http/security_txt.py); the header-depth ids of
    # issue 15 are covered by test_header_depth.py.
    security_txt = {"http.security_txt.missing": "low", "http.security_txt.expired": "low",
                    "http.security_txt.invalid": "low"}
    original = {**EXPECTED_SEVERITIES, "http.admin.exposed": "medium", **security_txt}
    assert {k: v for k, v in got.items() if k in original} == original
    for spec in check.catalogue:
        assert spec.title and spec.rationale and spec.remediation and spec.references
    assert check.parameters == {
        "http.hsts_min_max_age": 15768000,
        "http.max_redirects": 10,
        "http.max_body_bytes": 2_097_152,
    }
    if FINDINGS_MD.exists():
        rows = re.findall(r"^\| (http\.[a-z_.]+) \| (\w+) \|", FINDINGS_MD.read_text(encoding="utf-8"), re.M)
        assert dict(rows) == EXPECTED_SEVERITIES
        assert "`http.admin.exposed` (medium)" in FINDINGS_MD.read_text(encoding="utf-8")
    assert Severity.HIGH.value == got["http.https_not_enforced"]


def test_every_finding_id_has_a_case() -> None:
    covered = set().union(*(c.expected for c in CASES.values()))
    assert covered == set(EXPECTED_SEVERITIES)


@pytest.mark.parametrize("name", list(CASES))
def test_case(lab: Lab, name: str) -> None:
    outcome = run_check(lab.target(name))
    assert outcome.error is None, outcome.error
    assert ids(outcome) == CASES[name].expected
    assert_well_formed(outcome)


def test_baseline_evidence(lab: Lab) -> None:
    outcome = run_check(lab.target("baseline"))
    ev = outcome.evidence
    assert ev["plain_http"]["verdict"] == "redirects_to_https"
    assert ev["plain_http"]["chain"][0]["status"] == 301
    assert ev["https"]["chain"] == [{"url": lab.target("baseline").url, "status": 200, "location": None}]
    headers = dict((k.lower(), v) for k, v in ev["final"]["headers"])
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert [c["name"] for c in ev["cookies"]] == ["sessionid", "lang"]
    assert all("s3cr3t" not in c["set_cookie"] for c in ev["cookies"]), "cookie values are redacted"
    assert ev["final"]["body_bytes"] > 0 and ev["final"]["truncated"] is False
    assert ev["mixed_content"] == [] and ev["sri_missing"] == []


def test_finding_details(lab: Lab) -> None:
    out = run_check(lab.target("cookie_no_secure"))
    (f,) = [f for f in out.findings if f.id in ids(out)]
    assert f.details["cookies"] == ["sessionid"] and f.url == lab.target("cookie_no_secure").url
    assert f.severity is Severity.MEDIUM and f.references

    out = run_check(lab.target("mixed_via_base"))
    (f,) = [f for f in out.findings if f.id in ids(out)]
    assert f.details["resources"] == [{"tag": "video", "url": "http://static.example.net/clip.mp4"}]

    out = run_check(lab.target("version_php"))
    (f,) = [f for f in out.findings if f.id in ids(out)]
    assert "PHP/8.1.2" in f.evidence

    out = run_check(lab.target("csp_unsafe_inline"))
    (f,) = [f for f in out.findings if f.id in ids(out)]
    assert f.details["issues"] == ["'unsafe-inline'"]


def test_hsts_parameter_is_read(lab: Lab) -> None:
    assert ids(run_check(lab.target("hsts_short"), **{"http.hsts_min_max_age": 3600})) == set()


def test_https_not_enforced_evidence(lab: Lab) -> None:
    out = run_check(lab.target("http_content"))
    (f,) = out.findings
    assert f.url == lab.target("http_content").http_url
    assert f.details["chain"][0]["status"] == 200
    assert out.evidence["plain_http"]["verdict"] == "serves_content"


def test_closed_http_port_is_fine(lab: Lab) -> None:
    out = run_check(lab.target("baseline", http_port=lab.closed_port))
    assert out.error is None and ids(out) == set()
    assert out.evidence["plain_http"]["verdict"] == "not_served"
    assert out.evidence["plain_http"]["error_kind"] == "refused"


def test_https_unreachable_fails_but_keeps_plain_http_finding(lab: Lab) -> None:
    out = run_check(lab.target("closed_https", port=lab.closed_port))
    assert out.status == "error"
    assert out.error is not None and out.error.startswith(f"cannot fetch https://{HOST}:{lab.closed_port}/")
    assert "refused" in out.error and "\n" not in out.error
    assert ids(out) == {"http.https_not_enforced"}


def test_cookies_from_every_https_response(lab: Lab) -> None:
    out = run_check(lab.target("redirected"))
    assert out.error is None
    assert ids(out) == {"http.cookie.no_secure", "http.cookie.no_httponly"}
    assert [c["name"] for c in out.evidence["cookies"]] == ["hop_sid", "sessionid", "lang"]
    assert [h["status"] for h in out.evidence["https"]["chain"]] == [302, 200]


def test_same_host_absolute_redirect_is_followed(lab: Lab) -> None:
    out = run_check(lab.target("redirected_ok"))
    assert out.error is None and ids(out) == set()


def test_offsite_landing_redirect_is_not_followed(lab: Lab) -> None:
    out = run_check(lab.target("offsite"))
    assert out.status == "error" and out.error is not None
    assert "https://www.other.example/" in out.error and "not tested" in out.error
    # Transport-level findings from the redirect response are kept.
    assert ids(out) == {"http.hsts.short_max_age", "http.version_disclosure"}
    assert out.evidence["https"]["stop_kind"] == "offsite"


def test_redirect_loop_is_an_error(lab: Lab) -> None:
    out = run_check(lab.target("loop"))
    assert out.error is not None and "loop" in out.error
    assert len(out.evidence["https"]["chain"]) <= 11


def test_hostile_values_are_clipped(lab: Lab) -> None:
    out = run_check(lab.target("hostile"))
    assert_well_formed(out)
    assert "http.version_disclosure" in ids(out)
    assert out.evidence["final"]["truncated"] is False
    for _name, value in out.evidence["final"]["headers"]:
        assert len(value) <= 1024


def test_parsers() -> None:
    assert parse_hsts("max-age=31536000; includeSubDomains") == (31536000, None)
    assert parse_hsts("max-age=1; max-age=2")[0] is None
    assert parse_hsts("max-age=-1")[0] is None
    assert parse_csp("default-src 'self'; DEFAULT-SRC *, , script-src a") == [
        {"default-src": ["'self'"]},
        {"script-src": ["a"]},
    ]
    cookie = parse_set_cookie("ASP.NET_SessionId=zz; path=/; secure; HTTPONLY; samesite=STRICT", "https://x/")
    assert cookie is not None
    assert (cookie.secure, cookie.httponly, cookie.samesite, cookie.session_like) == (
        True,
        True,
        "strict",
        True,
    )
    assert "zz" not in cookie.attributes


def test_body_cut_short_leaves_meta_policies_untested(lab: Lab) -> None:
    """Without CSP and Referrer-Policy headers, a body that breaks off may have lost the <meta>
    tags: no csp.missing or referrer finding, and the check says what it could not test."""
    outcome = run_check(lab.target("cut_body"))
    assert outcome.evidence["final"]["body_error"]
    assert not ids(outcome) & {"http.csp.missing", "http.referrer_policy.weak"}
    assert outcome.error and "page body incomplete" in outcome.error
    assert "Content-Security-Policy" in outcome.error and "Referrer-Policy" in outcome.error


# ------------------------------------------------------------------------------------------
# Typed evidence


ROUND_TRIP = [*CASES, "redirected", "redirected_ok", "offsite", "loop", "cut_body", "hostile", "closed_https"]


def assert_evidence_round_trips(check: HTTPCheck, outcome: CheckOutcome) -> HTTPEvidence:
    """The stored JSON reads back into equal typed evidence, writes out key for key in the
    same order, and judged again gives the very same findings."""
    stored = json.loads(json.dumps(outcome.evidence))
    evidence = HTTPEvidence.from_dict(stored)
    assert json.dumps(evidence.to_dict()) == json.dumps(outcome.evidence)
    assert HTTPEvidence.from_dict(evidence.to_dict()) == evidence
    assert check.reanalyse(stored) == outcome.findings
    return evidence


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_evidence_round_trips(lab: Lab, name: str) -> None:
    target = lab.target(name, port=lab.closed_port) if name == "closed_https" else lab.target(name)
    outcome = run_check(target)
    evidence = assert_evidence_round_trips(HTTPCheck(), outcome)
    assert evidence.plain_http is not None and evidence.https is not None
    assert (evidence.final is None) == (name == "closed_https")


def test_typed_evidence_fields(lab: Lab) -> None:
    evidence = HTTPEvidence.from_dict(run_check(lab.target("redirected")).evidence)
    assert evidence.https is not None and [h.status for h in evidence.https.chain] == [302, 200]
    assert evidence.cookies is not None and [c.name for c in evidence.cookies] == ["hop_sid", "sessionid", "lang"]
    assert evidence.page is not None and evidence.page.untested is None
    assert evidence.final is not None and evidence.final.header_values("x-frame-options") == ["SAMEORIGIN"]
    assert SCHEMA_VERSION == 1


def test_older_stored_evidence_is_read(lab: Lab) -> None:
    """Evidence stored before some keys existed still reads, with the totals taken from the lists."""
    outcome = run_check(lab.target("mixed_img"))
    stored = json.loads(json.dumps(outcome.evidence))
    for key in ("cookies_total", "mixed_content_total", "sri_missing_total", "admin_paths", "referrer_policy"):
        del stored[key]
    del stored["https"]["stop_kind"]
    evidence = HTTPEvidence.from_dict(stored)
    assert evidence.page is not None and evidence.page.mixed_total == 1 and evidence.admin is None
    assert evidence.cookies_total == 2
    assert {f.id for f in HTTPCheck().reanalyse(stored)} == ids(outcome) == {"http.mixed_content"}
    assert HTTPEvidence.from_dict({}) == HTTPEvidence() and HTTPEvidence().to_dict() == {}
