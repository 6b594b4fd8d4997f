"""The admin-path probe (http.admin.exposed) against real TLS servers on 127.0.2.50-53."""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from auditor.check import CheckContext
from auditor.lab.pki import LabPKI
from auditor.lab.server import NOT_FOUND, LabHTTPServer, Page, TLSConfig, build_tls_context
from auditor.targets import Target
from checks.http.admin_paths import ADMIN_EXPOSED, DEFAULT_ADMIN_PATHS, probe_admin
from checks.web.net import make_session

HOME = "<!doctype html><html><head><title>Cổng thông tin</title></head><body><h1>Welcome</h1></body></html>"
LOGIN = """<!doctype html><html><head><title>{title}</title></head><body>
<form method="post" action="/login"><label>User <input name="user"></label>
<label>Password <input type="password" name="pass"></label><button>Sign in</button></form>
</body></html>"""
ADMIN_WORD = """<!doctype html><html><head><title>Administration news</title></head><body>
<h1>Admin</h1><p>The administrator of this portal is the provincial office. Admin admin admin.</p>
<!-- old form: <input type="password" name="p"> -->
<script>var tpl = '<input type=password>';</script>
<form action="/search"><input type="text" name="q"><button>Search</button></form>
</body></html>"""



@dataclass
class FreshTokenLogin(Page):
    """A login page with a new anti-forgery token in every response, as frameworks send."""

    title: str = "Sign in"

    def body_bytes(self) -> bytes:
        form = LOGIN.format(title=self.title)
        token = f'<input type="hidden" name="csrf" value="{secrets.token_hex(16)}">'
        return form.replace("<button>", token + "<button>").encode()


SITES = {
    # A site with three exposed logins: a form, a redirect to one, an HTTP Basic prompt.
    "exposed": ("127.0.2.50", {
        "/": Page(body=HOME),
        "/admin": Page(body=LOGIN.format(title="Quản trị hệ thống")),
        "/wp-admin/": Page(status=302, headers=[("Location", "/wp-login.php?redirect_to=%2Fwp-admin%2F")]),
        "/wp-login.php": Page(body=LOGIN.format(title="Log In &lsaquo; WordPress")),
        "/manager/html": Page(status=401, headers=[("WWW-Authenticate", 'Basic realm="Tomcat Manager Application"')],
                              body="<html><body>401 Unauthorized</body></html>"),
        "/phpmyadmin/": Page(status=403, body="<html><body>Forbidden</body></html>"),
        # a redirect to another host is never followed, so it cannot be judged
        "/administrator/": Page(status=302, headers=[("Location", "https://sso.other.example.test/login")]),
    }, NOT_FOUND),
    # Pages that talk about administration without being a login.
    "wordy": ("127.0.2.51", {
        "/": Page(body=HOME),
        "/admin": Page(body=ADMIN_WORD),
        "/quantri": Page(body=ADMIN_WORD),
    }, NOT_FOUND),
    # Every path answers with the same login page (a site-wide sign-in): only a different
    # login page at an admin path counts.
    "catchall": ("127.0.2.52", {
        "/admincp/": Page(body=LOGIN.format(title="Admin control panel")),
    }, Page(body=LOGIN.format(title="Sign in"))),
    # The same, with a token that changes on every request: still one site-wide login.
    "catchall-token": ("127.0.2.53", {
        "/admincp/": FreshTokenLogin(title="Admin control panel"),
    }, FreshTokenLogin()),
}


def host_of(name: str) -> str:
    return f"{name}.admin.example.test"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Target]]:
    pki = LabPKI(Path(tmp_path_factory.mktemp("admin-pki")))
    running: list[LabHTTPServer] = []
    targets: dict[str, Target] = {}
    try:
        for name, (address, pages, not_found) in SITES.items():
            leaf = pki.issue(name, [host_of(name)])
            tls = build_tls_context(TLSConfig(), leaf.cert, leaf.key)
            srv = LabHTTPServer(address, 0, pages=pages, not_found=not_found, tls=tls).start()
            running.append(srv)
            targets[name] = Target(url=f"https://{host_of(name)}:{srv.port}/", host=host_of(name),
                                   port=srv.port, address=address)
        yield targets
    finally:
        for srv in running:
            srv.stop()


def probe(target: Target) -> list:  # type: ignore[type-arg]
    ctx = CheckContext(timeout=5)
    with make_session(ctx, target) as session:
        result = probe_admin(session, target, ctx)
    assert result.untested == [], result.reason
    return result.hits


def paths_of(hits: list) -> list[str]:  # type: ignore[type-arg]
    assert len(hits) <= 1, "one finding per id"
    return [p["path"] for h in hits for p in h.details["paths"]]


def test_login_pages_at_admin_paths_are_reported(servers: dict[str, Target]) -> None:
    t = servers["exposed"]
    hits = probe(t)
    # /wp-login.php is the page /wp-admin/ redirected to: reported once
    assert paths_of(hits) == ["/admin", "/wp-admin/", "/manager/html"]
    hit = hits[0]
    assert hit.id == "http.admin.exposed" and hit.url == f"{t.origin}/admin"
    assert hit.evidence == (
        "login reachable at /admin (login form with a password field, HTTP 200); "
        "/wp-admin/ → /wp-login.php (login form with a password field, HTTP 200); "
        "/manager/html (HTTP Basic authentication prompt, HTTP 401)"
    )
    by_path = {p["path"]: p for p in hit.details["paths"]}
    # the redirect is followed on the same host only
    assert by_path["/wp-admin/"]["final_url"] == f"{t.origin}/wp-login.php?redirect_to=%2Fwp-admin%2F"
    assert by_path["/manager/html"]["status"] == 401


def test_a_page_that_only_mentions_admin_is_not_a_login(servers: dict[str, Target]) -> None:
    assert probe(servers["wordy"]) == []


def test_site_wide_login_is_not_an_admin_exposure(servers: dict[str, Target]) -> None:
    assert paths_of(probe(servers["catchall"])) == ["/admincp/"]
    assert paths_of(probe(servers["catchall-token"])) == ["/admincp/"]


def test_paths_are_a_policy_parameter(servers: dict[str, Target]) -> None:
    t = servers["exposed"]
    ctx = CheckContext(timeout=5, params={"http.admin_paths": "/manager/html, quantri"})
    with make_session(ctx, t) as session:
        hits = probe_admin(session, t, ctx).hits
    assert paths_of(hits) == ["/manager/html"]


def test_time_budget_bounds_every_fetch() -> None:
    """A server that accepts connections and never answers: the probe ends with its budget,
    not one read timeout (or a redirect chain of them) later."""
    silent = socket.socket()
    try:
        silent.bind(("127.0.2.54", 0))
        silent.listen(64)  # the kernel completes TCP handshakes; nobody ever reads
        port = silent.getsockname()[1]
        host = "silent.admin.example.test"
        t = Target(url=f"https://{host}:{port}/", host=host, port=port, address="127.0.2.54")
        ctx = CheckContext(timeout=5, params={"http.admin_max_seconds": 1})
        started = time.monotonic()
        with make_session(ctx, t) as session:
            result = probe_admin(session, t, ctx)
        assert time.monotonic() - started < 3
        # Nothing answered: no finding, and every path is reported untested, never safe.
        assert result.hits == []
        assert result.untested == list(DEFAULT_ADMIN_PATHS)
        assert result.reason and result.reason.startswith("baseline request failed")
    finally:
        silent.close()


def test_spec_and_defaults() -> None:
    assert (ADMIN_EXPOSED.id, ADMIN_EXPOSED.severity.value) == ("http.admin.exposed", "medium")
    for path in ("/admin", "/wp-admin/", "/phpmyadmin/", "/manager/html", "/quantri"):
        assert path in DEFAULT_ADMIN_PATHS


def test_http_check_reports_admin_exposure(servers: dict[str, Target]) -> None:
    """Once hooked into the http check, its catalogue and findings carry http.admin.exposed."""
    from checks.http.check import HTTPCheck

    check = HTTPCheck()
    if "http.admin.exposed" not in {s.id for s in check.catalogue}:
        pytest.skip("http check not hooked yet")
    ctx = CheckContext(timeout=5, params=dict(check.parameters))
    out = check.run(servers["exposed"], ctx)
    admin = [f for f in out.findings if f.id == "http.admin.exposed"]
    assert len(admin) == 1 and admin[0].severity.value == "medium"
    assert [p["path"] for p in admin[0].details["paths"]] == ["/admin", "/wp-admin/", "/manager/html"]
    assert [p["path"] for p in out.evidence["admin_paths"]] == ["/admin", "/wp-admin/", "/manager/html"]
    clean = check.run(servers["wordy"], CheckContext(timeout=5, params=dict(check.parameters)))
    assert not [f for f in clean.findings if f.id == "http.admin.exposed"]


def test_admin_evidence_round_trips(servers: dict[str, Target]) -> None:
    """A real lab scan with exposed logins: the stored evidence reads back into equal typed
    evidence and, judged again, gives the same findings (the admin one included)."""
    from checks.http.check import HTTPCheck
    from checks.http.evidence import HTTPEvidence

    check = HTTPCheck()
    out = check.run(servers["exposed"], CheckContext(timeout=5, params=dict(check.parameters)))
    stored = json.loads(json.dumps(out.evidence))
    evidence = HTTPEvidence.from_dict(stored)
    assert json.dumps(evidence.to_dict()) == json.dumps(out.evidence)
    assert HTTPEvidence.from_dict(evidence.to_dict()) == evidence
    assert evidence.admin is not None and [p["path"] for p in evidence.admin.paths] == ["/admin", "/wp-admin/", "/manager/html"]
    assert check.reanalyse(stored) == out.findings
    assert "http.admin.exposed" in {f.id for f in out.findings}
