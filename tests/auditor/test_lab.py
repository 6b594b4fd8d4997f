"""The loopback lab really plants what its site specs say, as seen by Python's ssl module."""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from auditor.lab.pki import LabPKI
from auditor.lab.server import Page
from auditor.lab.sites import GOOD_SITE, LAB_SITES, Lab, RunningSite, variant

X509_V_ERR_CERT_HAS_EXPIRED = 10

# Every finding the lab must plant, one site each (from docs/findings.md).
PLANTED = {
    "tls.cert.expired",
    "tls.cert.not_yet_valid",
    "tls.cert.expiring_soon",
    "tls.cert.self_signed",
    "tls.cert.untrusted",
    "tls.cert.hostname_mismatch",
    "tls.cert.incomplete_chain",
    "tls.cert.weak_key",
    "tls.cert.weak_signature",
    "tls.protocol.tls1_0",
    "tls.protocol.tls1_1",
    "tls.protocol.no_tls1_3",
    "tls.cipher.insecure",
    "tls.cipher.no_forward_secrecy",
    "tls.cipher.weak_dh",
    "tls.vuln.insecure_renegotiation",
    "tls.not_offered",
    "http.https_not_enforced",
    "http.hsts.missing",
    "http.hsts.short_max_age",
    "http.csp.missing",
    "http.csp.unsafe",
    "http.clickjacking",
    "http.xcto.missing",
    "http.referrer_policy.weak",
    "http.version_disclosure",
    "http.cookie.no_secure",
    "http.cookie.no_httponly",
    "http.cookie.no_samesite",
    "http.mixed_content",
    "http.sri.missing",
}


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("lab"), first_address="127.0.0.10") as running:
        yield running


def client_context(lab: Lab, *, legacy: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(lab.ca_file))
    if legacy:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def only_version(ctx: ssl.SSLContext, version: ssl.TLSVersion) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def handshake(site: RunningSite, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection((site.address, site.https_port), timeout=5)
    try:
        return ctx.wrap_socket(sock, server_hostname=site.host)
    except BaseException:
        sock.close()
        raise


def fetch(
    site: RunningSite,
    path: str = "/",
    *,
    method: str = "GET",
    ctx: ssl.SSLContext | None = None,
    port: int | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request to the pinned address, over TLS when ``ctx`` is given (no DNS involved)."""
    sock: socket.socket = socket.create_connection(
        (site.address, port or (site.https_port if ctx else site.http_port)), timeout=5
    )
    try:
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_hostname=site.host)
        body = b"a=1" if method == "POST" else b""
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: {site.host}\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return response, response.read()
    finally:
        sock.close()


# --- the spec table ----------------------------------------------------------------------


def test_one_site_per_planted_finding() -> None:
    names = [s.name for s in LAB_SITES]
    assert len(names) == len(set(names))
    flawed = [s for s in LAB_SITES if s.expect]
    assert all(len(s.expect) == 1 for s in flawed)
    planted = [next(iter(s.expect)) for s in flawed]
    assert sorted(planted) == sorted(PLANTED)
    assert GOOD_SITE.expect == frozenset()


def test_lab_layout(lab: Lab) -> None:
    assert [s.spec for s in lab.sites] == list(LAB_SITES)
    good = lab.site("good")
    assert good.address == "127.0.0.10"
    assert good.host == "good.lab.auditor.test"
    assert len({s.address for s in lab.sites}) == len(lab.sites)
    for site in lab.sites:
        assert site.url == (
            f"https://{site.host}/" if site.https_port == 443 else f"https://{site.host}:{site.https_port}/"
        )
        assert site.resolve == [
            f"{site.host}:{site.https_port}:{site.address}",
            f"{site.host}:{site.http_port}:{site.address}",
        ]
    assert len(lab.resolve_args) == 2 * len(lab.sites)
    assert lab.ca_file.read_text().count("BEGIN CERTIFICATE") == 1
    with pytest.raises(KeyError):
        lab.site("nope")


# --- TLS ---------------------------------------------------------------------------------


def test_good_site_validates_with_tls13(lab: Lab) -> None:
    with handshake(lab.site("good"), client_context(lab)) as tls:
        assert tls.version() == "TLSv1.3"


def test_good_site_refuses_old_protocols_and_weak_suites(lab: Lab) -> None:
    good = lab.site("good")
    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises(ssl.SSLError):
            handshake(good, only_version(client_context(lab, legacy=True), version)).close()
    ctx = only_version(client_context(lab, legacy=True), ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:AECDH-AES128-SHA:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        handshake(good, ctx).close()


def test_expired_site_fails_as_expired(lab: Lab) -> None:
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        handshake(lab.site("cert-expired"), client_context(lab)).close()
    assert info.value.verify_code == X509_V_ERR_CERT_HAS_EXPIRED


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cert-not-yet-valid", "not yet valid"),
        ("cert-self-signed", "self-signed certificate"),
        ("cert-untrusted", "self-signed certificate in certificate chain"),
        ("cert-wrong-host", "Hostname mismatch"),
        ("cert-incomplete-chain", "unable to get local issuer certificate"),
        ("cert-weak-key", "key too weak"),
        ("cert-sha1", "digest algorithm too weak"),
    ],
)
def test_certificate_flaws_fail_validation(lab: Lab, name: str, message: str) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match=message):
        handshake(lab.site(name), client_context(lab)).close()


def test_expiring_soon_site_still_validates(lab: Lab) -> None:
    site = lab.site("cert-expiring-soon")
    with handshake(site, client_context(lab)) as tls:
        leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
    days_left = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days
    assert days_left == 365
    remaining = leaf.not_valid_after_utc.timestamp() - time.time()
    assert 9 * 86400 < remaining <= 10 * 86400


def test_weak_key_and_sha1_certificates_are_what_they_claim(lab: Lab) -> None:
    weak = x509.load_pem_x509_certificates((lab.directory / "cert-weak-key.pem").read_bytes())
    key = weak[0].public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 1024

    sha1_chain = x509.load_pem_x509_certificates((lab.directory / "cert-sha1.pem").read_bytes())
    leaf, intermediate = sha1_chain
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA1)
    issuer_key = intermediate.public_key()
    assert isinstance(issuer_key, rsa.RSAPublicKey)
    issuer_key.verify(leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA1())
    # Still served at security level 0, so a lenient client can connect.
    with handshake(lab.site("cert-sha1"), client_context(lab, legacy=True)) as tls:
        assert tls.version() == "TLSv1.3"


def test_served_chains(lab: Lab) -> None:
    def chain(name: str) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates((lab.directory / f"{name}.pem").read_bytes())

    root = x509.load_pem_x509_certificate(lab.ca_file.read_bytes())
    good = chain("good")
    assert len(good) == 2 and good[1].issuer == root.subject
    ski = good[1].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = good[0].extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    san = good[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["good.lab.auditor.test"]
    assert len(chain("cert-incomplete-chain")) == 1
    (self_signed,) = chain("cert-self-signed")
    assert self_signed.issuer == self_signed.subject
    untrusted = chain("cert-untrusted")
    assert untrusted[0].issuer == untrusted[1].subject != root.subject


def test_tls1_0_site_accepts_tls10_but_not_tls11(lab: Lab) -> None:
    site = lab.site("tls1-0")
    with handshake(site, only_version(client_context(lab, legacy=True), ssl.TLSVersion.TLSv1)) as tls:
        assert tls.version() == "TLSv1"
    with pytest.raises(ssl.SSLError):
        handshake(site, only_version(client_context(lab, legacy=True), ssl.TLSVersion.TLSv1_1)).close()
    with handshake(site, client_context(lab)) as tls:
        assert tls.version() == "TLSv1.3"


def test_tls1_1_and_no_tls13_sites(lab: Lab) -> None:
    ctx = only_version(client_context(lab, legacy=True), ssl.TLSVersion.TLSv1_1)
    with handshake(lab.site("tls1-1"), ctx) as tls:
        assert tls.version() == "TLSv1.1"
    with handshake(lab.site("no-tls1-3"), client_context(lab)) as tls:
        assert tls.version() == "TLSv1.2"


@pytest.mark.parametrize(
    ("name", "suite"),
    [
        ("cipher-insecure", "ECDHE-RSA-NULL-SHA"),
        ("cipher-insecure", "AECDH-AES128-SHA"),
        ("cipher-no-fs", "AES128-GCM-SHA256"),
        ("cipher-weak-dh", "DHE-RSA-AES128-GCM-SHA256"),
    ],
)
def test_cipher_flaws(lab: Lab, name: str, suite: str) -> None:
    ctx = only_version(client_context(lab, legacy=True), ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers(f"{suite}:@SECLEVEL=0")
    if suite.startswith("AECDH"):  # anonymous: no certificate to verify
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    with handshake(lab.site(name), ctx) as tls:
        assert tls.cipher()[0] == suite


def test_weak_dh_is_1024_bits(lab: Lab) -> None:
    ctx = only_version(client_context(lab), ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("DHE-RSA-AES128-GCM-SHA256")  # default security level refuses DH < 2048
    with pytest.raises(ssl.SSLError, match="dh key too small"):
        handshake(lab.site("cipher-weak-dh"), ctx).close()


def test_plain_site_does_not_speak_tls(lab: Lab) -> None:
    site = lab.site("no-tls")
    with pytest.raises(ssl.SSLError):
        handshake(site, client_context(lab)).close()
    response, _ = fetch(site, port=site.https_port)
    assert response.status == 200


# --- HTTP --------------------------------------------------------------------------------


def test_http_redirects_to_https(lab: Lab) -> None:
    site = lab.site("good")
    response, _ = fetch(site, "/about?x=1")
    assert response.status == 301
    assert response.getheader("Location") == site.url.rstrip("/") + "/about?x=1"
    assert response.getheader("Location", "").startswith("https://good.lab.auditor.test")


def test_http_content_and_closed_port(lab: Lab) -> None:
    response, body = fetch(lab.site("http-content"))
    assert response.status == 200 and b"Auditor lab" in body
    closed = lab.site("good-no-http")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((closed.address, closed.http_port), timeout=5).close()


def test_good_page_headers(lab: Lab) -> None:
    response, body = fetch(lab.site("good"), ctx=client_context(lab))
    assert response.status == 200
    assert response.getheader("Strict-Transport-Security") == "max-age=31536000; includeSubDomains"
    assert response.getheader("Content-Security-Policy") == (
        "default-src 'self'; script-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'self'"
    )
    assert response.getheader("X-Frame-Options") == "DENY"
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Referrer-Policy") == "strict-origin-when-cross-origin"
    assert response.getheader("Server") == "lab"
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert response.headers.get_all("Set-Cookie") == [
        "sessionid=4f1c2a9e7b3d8056e1a2c4b6d8f0a1b3; Secure; HttpOnly; SameSite=Lax; Path=/"
    ]
    urls = re.findall(rb'(?:src|href)="([^"]*)"', body)
    assert urls and all(u.startswith(b"/") for u in urls)
    for url in urls:
        sub, _ = fetch(lab.site("good"), url.decode(), ctx=client_context(lab))
        assert sub.status == 200
    missing, _ = fetch(lab.site("good"), "/missing", ctx=client_context(lab))
    assert missing.status == 404 and missing.getheader("Strict-Transport-Security")
    assert missing.getheader("Set-Cookie") is None


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("hsts-missing", {"Strict-Transport-Security": None}),
        ("hsts-short", {"Strict-Transport-Security": "max-age=86400; includeSubDomains"}),
        ("csp-missing", {"Content-Security-Policy": None}),
        ("xcto-missing", {"X-Content-Type-Options": None}),
        ("referrer-weak", {"Referrer-Policy": "unsafe-url"}),
        ("version-disclosure", {"Server": "nginx/1.18.0"}),
        (
            "clickjacking",
            {
                "X-Frame-Options": None,
                "Content-Security-Policy": "default-src 'self'; script-src 'self'; object-src 'none'; "
                "base-uri 'self'",
            },
        ),
        (
            "csp-unsafe",
            {
                "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                "frame-ancestors 'none'; object-src 'none'; base-uri 'self'"
            },
        ),
    ],
)
def test_header_flaws(lab: Lab, name: str, changes: dict[str, str | None]) -> None:
    response, _ = fetch(lab.site(name), ctx=client_context(lab))
    for header, value in changes.items():
        assert response.getheader(header) == value
    good, _ = fetch(lab.site("good"), ctx=client_context(lab))
    names = {h for h, _ in good.getheaders()} | {h for h, _ in response.getheaders()}
    changed = {h for h in names if good.getheader(h) != response.getheader(h)}
    assert changed - {"Date"} == set(changes)


@pytest.mark.parametrize(
    ("name", "missing"),
    [("cookie-no-secure", "Secure"), ("cookie-no-httponly", "HttpOnly"), ("cookie-no-samesite", "SameSite")],
)
def test_cookie_flaws(lab: Lab, name: str, missing: str) -> None:
    response, _ = fetch(lab.site(name), ctx=client_context(lab))
    (cookie,) = response.headers.get_all("Set-Cookie")
    assert cookie.startswith("sessionid=") and missing not in cookie


def test_markup_flaws(lab: Lab) -> None:
    _, body = fetch(lab.site("mixed-content"), ctx=client_context(lab))
    assert b'<img src="http://127.0.0.1:9/x.png"' in body
    response, body = fetch(lab.site("sri-missing"), ctx=client_context(lab))
    assert b'<script src="https://cdn.lab.auditor.test/lib.js"></script>' in body
    assert b"integrity" not in body
    assert "https://cdn.lab.auditor.test" in (response.getheader("Content-Security-Policy") or "")


def test_head_and_post(lab: Lab) -> None:
    site = lab.site("good")
    response, body = fetch(site, method="HEAD", ctx=client_context(lab))
    assert response.status == 200 and body == b""
    assert int(response.getheader("Content-Length") or 0) > 0
    response, _ = fetch(site, method="POST", ctx=client_context(lab))
    assert response.status == 200


# --- robustness --------------------------------------------------------------------------


def test_bad_clients_do_not_block_the_server(lab: Lab) -> None:
    site = lab.site("good")
    idle = socket.create_connection((site.address, site.https_port), timeout=5)  # never speaks
    garbage = socket.create_connection((site.address, site.https_port), timeout=5)
    garbage.sendall(b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256)))
    try:
        with handshake(site, client_context(lab)) as tls:
            assert tls.version() == "TLSv1.3"
        # The garbage connection was answered (an alert, a close or a reset), not left hanging.
        with contextlib.suppress(ConnectionResetError):
            garbage.recv(100)
    finally:
        idle.close()
        garbage.close()
    response, _ = fetch(site, ctx=client_context(lab))
    assert response.status == 200


def test_custom_specs_closed_modes_and_clean_stop(tmp_path: Path) -> None:
    specs = [
        variant("closed", (), "nothing on either port", https_mode="closed", http_mode="closed"),
        variant("extra", "x.custom", "custom page", pages={"/admin": Page(body="<form>login</form>")}),
    ]
    before = set(threading.enumerate())
    with Lab(tmp_path, specs, first_address="127.0.0.240", standard_ports=False) as mini:
        closed = mini.site("closed")
        for port in (closed.https_port, closed.http_port):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((closed.address, port), timeout=5).close()
        response, body = fetch(mini.site("extra"), "/admin", ctx=client_context(mini))
        assert response.status == 200 and body == b"<form>login</form>"
        assert mini.site("extra").https_port != 443
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=2)
    assert [t for t in set(threading.enumerate()) - before if t.is_alive()] == []


def test_lab_refuses_non_loopback_addresses(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Lab(tmp_path, LAB_SITES, first_address="127.255.255.250")
    with pytest.raises(ValueError, match="duplicate"):
        Lab(tmp_path, [GOOD_SITE, GOOD_SITE])


def test_pki_rejects_bad_requests(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path)
    with pytest.raises(ValueError):
        pki.issue("x", [])
    with pytest.raises(ValueError):
        pki.issue("../x", ["a.test"])
    ec_leaf = pki.issue("ec", ["a.test", "127.0.0.1"], key="ec256")
    leaf = x509.load_pem_x509_certificates(ec_leaf.cert.read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["a.test"]


def test_pki_on_a_fixed_clock_builds_extra_cas_and_plain_leaves(tmp_path: Path) -> None:
    """The options the TLS analysis tests build their certificates with."""
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    pki = LabPKI(tmp_path, now=now)
    assert pki.now == now and pki.root_cert.not_valid_before_utc == now - timedelta(days=1)
    served = x509.load_pem_x509_certificates(pki.issue("fixed", ["a.test"]).cert.read_bytes())
    assert [c.subject for c in served[1:]] == [pki.intermediate_cert.subject]
    assert served[0].not_valid_after_utc == now + timedelta(days=365)

    expired = pki.new_intermediate(
        "Old CA", key="ec384", not_before=now - timedelta(days=90), not_after=now - timedelta(days=1)
    )
    assert expired.cert.issuer == pki.root_cert.subject
    assert expired.cert.not_valid_after_utc == now - timedelta(days=1)
    impostor = pki.new_root("Auditor Lab Root CA")
    assert impostor.cert.subject == pki.root_cert.subject
    assert impostor.cert.public_key() != pki.root_cert.public_key()

    plain = pki.leaf_certificate(["b.test"], key="ec256", issuer=expired, with_san=False)
    assert plain.issuer == expired.cert.subject
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    for digest in ("sha1", "md5"):
        weak = pki.leaf_certificate(["c.test"], common_name="Weak", issuer=pki.root, hash_name=digest)
        assert weak.signature_hash_algorithm is not None and weak.signature_hash_algorithm.name == digest
        assert weak.subject.rfc4514_string() == "CN=Weak,O=Auditor Lab"
        root_key = pki.root_cert.public_key()
        assert isinstance(root_key, rsa.RSAPublicKey)
        root_key.verify(
            weak.signature, weak.tbs_certificate_bytes, padding.PKCS1v15(), weak.signature_hash_algorithm
        )
