"""security.txt (RFC 9116) through the http check, against real HTTPS servers on 127.0.9.x:
valid (plain and OpenPGP-signed), missing, expired, and without a Contact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditor.check import CheckContext
from auditor.lab.pki import LabPKI
from auditor.lab.server import LabHTTPServer, Page, TLSConfig, build_tls_context
from auditor.lab.sites import good_pages, security_txt_body
from auditor.targets import Resolver, Target
from checks.http import HTTPCheck
from checks.http.security_txt import judge, parse

HOST = "sec.lab.test"
PATH = "/.well-known/security.txt"
SIGNED = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + security_txt_body()
          + "-----BEGIN PGP SIGNATURE-----\n\niQEzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n")

CASES: dict[str, tuple[Page | None, list[str]]] = {
    "valid": (Page(body=security_txt_body(), content_type="text/plain; charset=utf-8"), []),
    "signed": (Page(body=SIGNED, content_type="text/plain"), []),
    "missing": (None, ["http.security_txt.missing"]),
    "expired": (Page(body=security_txt_body(datetime.now(UTC) - timedelta(days=3)), content_type="text/plain"),
                ["http.security_txt.expired"]),
    "nocontact": (Page(body="Expires: 2099-01-01T00:00:00Z\n", content_type="text/plain"),
                  ["http.security_txt.invalid"]),
}


@pytest.fixture(scope="session")
def sec_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Target]]:
    pki = LabPKI(tmp_path_factory.mktemp("secpki"))
    leaf = pki.issue("sec", [HOST])
    servers = []
    targets = {}
    for i, (name, (page, _)) in enumerate(CASES.items()):
        pages = good_pages()
        pages.pop(PATH)
        if page is not None:
            pages[PATH] = page
        addr = f"127.0.9.{20 + i}"
        srv = LabHTTPServer(addr, 0, pages=pages, tls=build_tls_context(TLSConfig(), leaf.cert, leaf.key)).start()
        servers.append(srv)
        targets[name] = Target(url=f"https://{HOST}:{srv.port}/", host=HOST, port=srv.port, address=addr,
                               http_port=srv.port)
    yield targets
    for srv in servers:
        srv.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_each_case_yields_exactly_its_finding(sec_sites: dict[str, Target], name: str) -> None:
    ctx = CheckContext(resolver=Resolver(allow_dns=False), timeout=3)
    out = HTTPCheck().run(sec_sites[name], ctx)
    got = sorted(f.id for f in out.findings if f.id.startswith("http.security_txt."))
    assert got == CASES[name][1], out.evidence.get("security_txt")
    stored = json.loads(json.dumps(out.evidence))
    assert [f.id for f in HTTPCheck().reanalyse(stored) if f.id.startswith("http.security_txt")] == got


def test_parse_signed_and_fields() -> None:
    fields, signed = parse(SIGNED)
    assert signed and fields["contact"] == ["mailto:security@lab.test"] and len(fields["expires"]) == 1
    assert "iqezbaebcaadfiee" not in json.dumps(fields).lower()


@pytest.mark.parametrize(("ev", "expected"), [
    ({"url": "u", "status": 200, "content_type": "text/html", "text": "Contact: x"}, "http.security_txt.invalid"),
    ({"url": "u", "status": 200, "content_type": "text/plain", "text": "Contact: x\nExpires: tomorrow"},
     "http.security_txt.invalid"),
    ({"url": "u", "status": 200, "content_type": "text/plain",
      "text": "Contact: x\nExpires: 2030-01-01T00:00:00Z\nExpires: 2031-01-01T00:00:00Z"}, "http.security_txt.invalid"),
    ({"url": "u", "status": 200, "content_type": "text/plain", "fetched_at": "2031-01-02T00:00:00+00:00",
      "text": "Contact: x\nExpires: 2031-01-01T00:00:00Z"}, "http.security_txt.expired"),
    ({"url": "u", "status": 301, "stop": "https://other.example/"}, "http.security_txt.missing"),
])
def test_judge(ev: dict[str, Any], expected: str) -> None:
    assert [h.id for h in judge(ev)] == [expected]


def test_network_failure_is_untested_not_missing() -> None:
    assert judge({"url": "u", "error": "connection reset"}) == []
