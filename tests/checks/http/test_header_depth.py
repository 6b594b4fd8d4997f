"""The http check's header parsers, table-driven and black-box, and its redirect rules.

One HTTPS server and one plain-HTTP server on 127.0.10.1 serve every case of
:mod:`http_header_cases` under ``/case/<name>`` (each a well-configured page with one thing
changed); the full http check runs against each, as a user's scan would, and must raise
exactly the finding ids the table names. A second pair on 127.0.10.2 serves the redirect
patterns of real sites by Host header: the bare domain to ``www``, back, through plain HTTP,
to an unrelated host, to a sibling under a public suffix, to a host that cannot be resolved.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from http_header_cases import CASES, SUB, H, HeaderCase, family_counts
from loopback_http import Handler, Server, server_cert, tls_server_context

from auditor.check import CheckContext, CheckOutcome
from auditor.lab.sites import security_txt_body
from auditor.targets import Resolver, Target
from checks.http import HTTPCheck
from checks.http.cross_origin import PROBE_ORIGIN
from checks.http.evidence import HTTPEvidence

ADDR = "127.0.10.1"
REDIRECT_ADDR = "127.0.10.2"
PAGE = (
    b"<!doctype html><html><head><meta charset=utf-8><title>Trang ch\xe1\xbb\xa7</title>{meta}</head>"
    b"<body><h1>C\xe1\xbb\x95ng th\xc3\xb4ng tin</h1><script src=/app.js></script></body></html>"
)


def page(meta: str = "") -> bytes:
    return PAGE.replace(b"{meta}", meta.encode("utf-8"))


def cors_headers(mode: str | None, origin: str | None) -> list[tuple[str, str]]:
    """How the server answers a request's Origin in each CORS case."""
    if mode is None or mode == "none" or origin is None:
        return []
    creds = [("Access-Control-Allow-Credentials", "true")]
    if mode == "star":
        return [("Access-Control-Allow-Origin", "*")]
    if mode == "star_credentials":
        return [("Access-Control-Allow-Origin", "*"), *creds]
    https = origin.startswith("https://")
    reflect = {
        "reflect": True,
        "reflect_credentials": True,
        "reflect_https": https,
        "reflect_https_credentials": https,
        "reflect_https_true_uppercase": https,
        "reflect_twice": https,
        "reflect_list": https,
        "null_credentials": origin == "null",
        "allowlist": origin == f"https://{H}",
    }[mode]
    if not reflect:
        return []
    if mode == "reflect_twice":
        return [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Origin", origin)]
    if mode == "reflect_list":
        return [("Access-Control-Allow-Origin", f"{origin}, https://{H}")]
    out = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
    if mode == "reflect_https_true_uppercase":
        return [*out, ("Access-Control-Allow-Credentials", "TRUE")]
    if mode in ("reflect_credentials", "reflect_https_credentials", "null_credentials", "allowlist"):
        return [*out, *creds]
    return out


@dataclass
class Lab:
    https: Server
    http: Server

    def target(self, name: str, host: str = H) -> Target:
        path = f"/case/{name}"
        return Target(url=f"https://{host}:{self.https.port}{path}", host=host, port=self.https.port,
                      address=ADDR, path=path, http_port=self.http.port)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    cert = server_cert(tmp_path_factory, "header-depth", [H, SUB, "portal.hdr.gov.vn"])
    holder: dict[str, Server] = {}

    def https_route(h: Handler) -> tuple[int, list[tuple[str, str]], bytes]:
        name = h.path.split("?", 1)[0].removeprefix("/case/")
        case = CASES.get(name)
        if case is None:
            return 404, [("Content-Type", "text/plain")], b"no such case"
        return 200, case.served_headers() + cors_headers(case.cors, h.headers.get("Origin")), page(case.meta)

    def http_route(h: Handler) -> tuple[int, list[tuple[str, str]], bytes]:
        host = (h.headers.get("Host") or H).rsplit(":", 1)[0]
        return 301, [("Location", f"https://{host}:{holder['https'].port}{h.path}")], b""

    holder["https"] = Server(ADDR, {"/": https_route, "/.well-known/security.txt": _security_txt},
                              tls_server_context(cert.cert, cert.key))
    holder["http"] = Server(ADDR, {"/": http_route})
    yield Lab(holder["https"], holder["http"])
    holder["https"].stop()
    holder["http"].stop()


def run_check(target: Target, overrides: list[str] | None = None) -> CheckOutcome:
    ctx = CheckContext(resolver=Resolver(overrides, allow_dns=False), timeout=3)
    return HTTPCheck().run(target, ctx)


def ids(outcome: CheckOutcome) -> set[str]:
    return {f.id for f in outcome.findings}


def test_the_table_has_200_cases_and_every_new_id() -> None:
    counts = family_counts()
    assert sum(counts.values()) >= 200, counts
    covered = set().union(*(c.full_ids() for c in CASES.values()))
    new_ids = {s.id for s in HTTPCheck().catalogue} - {
        "http.https_not_enforced", "http.version_disclosure", "http.mixed_content", "http.sri.missing",
        "http.admin.exposed", "http.cookie.no_httponly",
    } - {s.id for s in HTTPCheck().catalogue if s.id.startswith("http.security_txt.")}
    # http.hsts.redirect_hop needs two hosts: the redirect lab below covers it; security.txt
    # has its own suite (test_security_txt.py).
    assert new_ids - covered == {"http.hsts.redirect_hop"}


@pytest.mark.parametrize("name", list(CASES))
def test_header_case(lab: Lab, name: str) -> None:
    case: HeaderCase = CASES[name]
    outcome = run_check(lab.target(name, case.host))
    assert outcome.error is None, outcome.error
    assert ids(outcome) == case.full_ids(), [f"{f.id}: {f.evidence}" for f in outcome.findings]
    for f in outcome.findings:
        assert "\n" not in f.evidence and len(f.evidence) <= 300
    if case.evidence is not None:
        texts = [f.evidence for f in outcome.findings if f.id in case.full_ids()]
        assert any(case.evidence in t for t in texts), texts
    # Stored evidence judged again gives the same findings.
    again = HTTPCheck().reanalyse(HTTPEvidence.from_dict(outcome.evidence).to_dict())
    assert {f.id for f in again} == ids(outcome)


def test_hsts_comma_evidence_says_what_was_parsed(lab: Lab) -> None:
    (f,) = run_check(lab.target("hsts_comma_pasted_twice")).findings
    assert f.id == "http.hsts.missing"
    assert "ignored by browsers" in f.evidence and "includeSubDomains directive" in f.evidence


def test_frame_ancestors_star_evidence_names_the_directive(lab: Lab) -> None:
    (f,) = run_check(lab.target("framing_ancestors_star_overrides_xfo")).findings
    assert "frame-ancestors *" in f.evidence and "no CSP frame-ancestors" not in f.evidence


def test_cors_probe_is_stored(lab: Lab) -> None:
    out = run_check(lab.target("cors_reflect_all_credentials"))
    probes = out.evidence["cors"]
    assert [p["origin"] for p in probes] == [PROBE_ORIGIN, "null"]
    assert probes[0]["allow_origin"] == [PROBE_ORIGIN] and probes[0]["allow_credentials"] == ["true"]
    seen = [s for s in holder_seen(lab) if s["path"] == "/case/cors_reflect_all_credentials"]
    assert len(seen) >= 3  # the page, then one request per Origin


def holder_seen(lab: Lab) -> list[dict[str, Any]]:
    return list(lab.https.seen)


# ----------------------------------------------------------------------------------------------
# Redirect patterns of real sites (served by Host header)

APEX, WWW, OTHER, CDN = "site.test", "www.site.test", "other.test", "cdn.site.test"
SHOP, WWW_SHOP = "shop.test", "www.shop.test"
LOGIN = b"<html><head><title>Qu\xe1\xba\xa3n tr\xe1\xbb\x8b</title></head><body><form method=post>" \
        b"<input name=user><input type=password name=pass></form></body></html>"
AGENCY, SIBLING = "agency.gov.vn", "sibling.gov.vn"
GOOD_PAGE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload"),
    ("Content-Security-Policy", "default-src 'self'; base-uri 'self'; frame-ancestors 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]
STS = "max-age=63072000; includeSubDomains; preload"


@dataclass
class RedirectLab:
    https: Server
    http: Server

    def target(self, scenario: str, host: str = APEX) -> Target:
        path = f"/r/{scenario}"
        return Target(url=f"https://{host}:{self.https.port}{path}", host=host, port=self.https.port,
                      address=REDIRECT_ADDR, path=path, http_port=self.http.port)

    def overrides(self, *hosts: str) -> list[str]:
        return [f"{h}:*:{REDIRECT_ADDR}" for h in hosts]


def _security_txt(h: Handler) -> tuple[int, list[tuple[str, str]], bytes]:
    """A valid RFC 9116 file, so the header cases yield only their own ids."""
    return 200, [("Content-Type", "text/plain; charset=utf-8")], security_txt_body().encode()


def _redirect(location: str, *extra: tuple[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
    return 301, [("Location", location), *extra], b""


@pytest.fixture(scope="module")
def rlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedirectLab]:
    cert = server_cert(tmp_path_factory, "redirect-lab", [APEX, WWW, OTHER, CDN, AGENCY, SIBLING, SHOP, WWW_SHOP])
    holder: dict[str, Server] = {}

    def https_route(h: Handler) -> tuple[int, list[tuple[str, str]], bytes]:
        port = holder["https"].port
        host = (h.headers.get("Host") or "").rsplit(":", 1)[0]
        path = h.path.split("?", 1)[0]
        scenario = path.removeprefix("/r/")
        www = f"https://{WWW}:{port}{path}"
        sts = ("Strict-Transport-Security", STS)
        if host == APEX:
            if scenario in ("apex_hsts", "plain_via_www"):
                return _redirect(www, sts)
            if scenario == "apex_no_hsts":
                return _redirect(www)
            if scenario == "apex_invalid_hsts":
                return _redirect(www, ("Strict-Transport-Security", "max-age=31536000, includeSubDomains"))
            if scenario == "apex_no_subdomains":
                return _redirect(www, ("Strict-Transport-Security", "max-age=63072000"))
            if scenario == "www_no_hsts":
                return _redirect(www, sts)
            if scenario == "offsite":
                return _redirect(f"https://{OTHER}:{port}/", ("Strict-Transport-Security", "max-age=60"))
            if scenario == "loop":
                return _redirect(www, sts)
            if scenario == "unresolved":
                return _redirect(f"https://{CDN}:{port}{path}", sts)
            if scenario == "to_http":
                return _redirect(f"http://{WWW}:{holder['http'].port}{path}", sts)
        if host == WWW:
            if scenario == "loop":
                return _redirect(f"https://{APEX}:{port}{path}", sts)
            if scenario == "reverse":
                return _redirect(f"https://{APEX}:{port}{path}", sts)
            headers = list(GOOD_PAGE_HEADERS)
            if scenario == "www_no_hsts":
                headers = [h for h in headers if h[0] != "Strict-Transport-Security"]
            return 200, headers, page()
        if host == AGENCY:
            return _redirect(f"https://{SIBLING}:{port}/", sts)
        if host == SHOP:  # every path of the bare domain goes to www, as on most real sites
            return _redirect(f"https://{WWW_SHOP}:{port}{path}", sts)
        if host == WWW_SHOP and path == "/quantri/":
            return 200, list(GOOD_PAGE_HEADERS), LOGIN
        if host == WWW_SHOP and path != "/":
            return 404, [("Content-Type", "text/plain")], b"not found"
        return 200, list(GOOD_PAGE_HEADERS), page()

    def http_route(h: Handler) -> tuple[int, list[tuple[str, str]], bytes]:
        host = (h.headers.get("Host") or "").rsplit(":", 1)[0]
        path = h.path.split("?", 1)[0]
        port, plain_port = holder["https"].port, holder["http"].port
        if host == APEX and path == "/r/preload_http_to_www":
            return _redirect(f"https://{WWW}:{port}{path}")
        if host == APEX and path == "/r/plain_via_www":
            return _redirect(f"http://{WWW}:{plain_port}{path}")
        return _redirect(f"https://{host}:{port}{path}")

    holder["https"] = Server(REDIRECT_ADDR, {"/": https_route, "/.well-known/security.txt": _security_txt},
                              tls_server_context(cert.cert, cert.key))
    holder["http"] = Server(REDIRECT_ADDR, {"/": http_route})
    yield RedirectLab(holder["https"], holder["http"])
    holder["https"].stop()
    holder["http"].stop()


def _hosts(outcome: CheckOutcome) -> list[str]:
    return [h["url"].split("/")[2].rsplit(":", 1)[0] for h in outcome.evidence["https"]["chain"]]


def test_issue_example_bare_domain_to_www_is_followed_and_graded(rlab: RedirectLab) -> None:
    # http://site.test/ -> https://site.test/ -> https://www.site.test/: one site, graded whole.
    out = run_check(rlab.target("apex_hsts"), rlab.overrides(WWW))
    assert out.error is None, out.error
    assert ids(out) == set()
    assert _hosts(out) == [APEX, WWW]
    assert out.evidence["plain_http"]["verdict"] == "redirects_to_https"
    assert [h["sts"] for h in out.evidence["https_hops"]] == [[STS], [STS]]
    assert out.evidence["final"]["url"].startswith(f"https://{WWW}:")


def test_bare_domain_redirect_without_hsts(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("apex_no_hsts"), rlab.overrides(WWW))
    assert out.error is None
    assert ids(out) == {"http.hsts.redirect_hop"}
    (f,) = out.findings
    assert f"https://{APEX}:" in f.evidence and "no Strict-Transport-Security" in f.evidence


def test_bare_domain_redirect_with_invalid_hsts(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("apex_invalid_hsts"), rlab.overrides(WWW))
    assert ids(out) == {"http.hsts.redirect_hop"}
    assert "comma" in out.findings[0].evidence


def test_bare_domain_hsts_without_include_subdomains(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("apex_no_subdomains"), rlab.overrides(WWW))
    assert ids(out) == {"http.hsts.no_include_subdomains"}
    assert APEX in out.findings[0].evidence


def test_landing_host_without_hsts_is_judged_on_the_landing_page(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("www_no_hsts"), rlab.overrides(WWW))
    assert ids(out) == {"http.hsts.missing"}
    assert WWW in out.findings[0].evidence


def test_www_to_bare_domain_is_followed(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("reverse", WWW), rlab.overrides(APEX))
    assert out.error is None and ids(out) == set()
    assert _hosts(out) == [WWW, APEX]


def test_plain_http_through_www_reaches_https(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("plain_via_www"), rlab.overrides(WWW))
    assert out.error is None
    assert "http.https_not_enforced" not in ids(out)
    assert out.evidence["plain_http"]["verdict"] == "redirects_to_https"
    assert [h["url"].split("/")[2].rsplit(":", 1)[0] for h in out.evidence["plain_http"]["chain"]] == [APEX, WWW]


def test_preload_needs_the_bare_domain_to_upgrade_itself_first(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("preload_http_to_www"), rlab.overrides(WWW))
    assert out.error is None
    assert ids(out) == {"http.hsts.preload_not_ready"}
    assert "does not redirect to https://site.test/ first" in out.findings[0].evidence


def test_unrelated_host_stops_but_keeps_the_verdicts_before_it(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("offsite"), rlab.overrides(WWW, OTHER))
    assert out.error is not None and "redirects off-site" in out.error and OTHER in out.error
    assert ids(out) == {"http.hsts.short_max_age", "http.hsts.no_include_subdomains"}
    assert _hosts(out) == [APEX]
    assert not any(s["host"] and s["host"].startswith(OTHER) for s in rlab.https.seen)


def test_sibling_under_a_public_suffix_is_another_site(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("psl", AGENCY), rlab.overrides(SIBLING))
    assert out.error is not None and SIBLING in out.error
    assert _hosts(out) == [AGENCY]


def test_same_site_host_that_cannot_be_resolved_stops_cleanly(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("unresolved"), rlab.overrides(WWW))
    assert out.error is not None and "same site, but cannot resolve" in out.error
    assert "Traceback" not in out.error and _hosts(out) == [APEX]


def test_redirect_to_plain_http_www_stops(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("to_http"), rlab.overrides(WWW))
    assert out.error is not None and "not HTTPS" in out.error


def test_admin_paths_are_probed_on_the_landing_host(rlab: RedirectLab) -> None:
    target = Target(url=f"https://{SHOP}:{rlab.https.port}/", host=SHOP, port=rlab.https.port,
                    address=REDIRECT_ADDR, path="/", http_port=rlab.http.port)
    out = run_check(target, rlab.overrides(WWW_SHOP))
    assert out.error is None, out.error
    assert ids(out) == {"http.admin.exposed"}
    assert [p["final_url"] for p in out.evidence["admin_paths"]] == [f"https://{WWW_SHOP}:{rlab.https.port}/quantri/"]


def test_loop_between_hosts_of_the_site_is_bounded(rlab: RedirectLab) -> None:
    out = run_check(rlab.target("loop"), rlab.overrides(WWW))
    assert out.error is not None and ("loop" in out.error or "too many" in out.error)
    assert len(out.evidence["https"]["chain"]) <= 11
