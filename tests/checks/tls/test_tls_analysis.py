"""Tests of the ``tls`` check.

Most tests feed hand-made evidence dicts (the stored JSON shape of what
:func:`checks.tls.collect.collect` records) to the pure :func:`checks.tls.analysis.analyse`:
that covers what Debian's OpenSSL cannot serve
(SSL 2.0/3.0, RC4/3DES, Heartbleed, CCS injection, ROBOT, compression, missing fallback
SCSV) and the boundaries (expiry exactly at the warning window, RSA 2047/2048, EC 224/256).
Certificates are real, made by the lab's own PKI (:class:`auditor.lab.pki.LabPKI`) on the
fixed clock ``NOW``, so the tests and the lab share one certificate builder.

The ``live`` tests at the end run the whole check against the loopback lab on 127.0.0.100
upwards and assert that each TLS lab site yields exactly its planted ids.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from project_paths import TESTS

from auditor.check import CheckContext, CheckOutcome, Severity
from auditor.lab.pki import Authority, KeySpec, LabPKI
from auditor.targets import Target
from checks.tls.analysis import analyse, has_forward_secrecy, hostname_matches, insecure_reasons
from checks.tls.check import TLSCheck
from checks.tls.collect import collect
from checks.tls.evidence import CipherSuite, TLSEvidence

# sslyze parses its bundled Mozilla store, where two roots have non-positive serials.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Parsed a serial number:cryptography.utils.CryptographyDeprecationWarning"
)

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
HOST = "portal.example.test"
PARAMS = dict(TLSCheck.parameters)
CATALOGUE = {spec.id: spec for spec in TLSCheck.catalogue}


# --------------------------------------------------------------------------- a small PKI


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


class PKI:
    """The lab's PKI on the clock ``NOW`` with this module's own CAs: the lab root ->
    "Test Intermediate CA" (EC P-384) -> leaves (one shared EC P-256 key), plus a
    "Rogue Root CA" that no store trusts. Keys are made once per module."""

    def __init__(self, directory: Path) -> None:
        self.lab = LabPKI(directory, now=NOW)
        self.root_ca = self.lab.root
        self.inter_ca = self.lab.new_intermediate(
            "Test Intermediate CA",
            key="ec384",
            not_before=NOW - timedelta(days=800),
            not_after=NOW + timedelta(days=2000),
        )
        self.rogue_ca = self.lab.new_root(
            "Rogue Root CA",
            key="ec256",
            not_before=NOW - timedelta(days=900),
            not_after=NOW + timedelta(days=3000),
        )
        self.leaf_key = self.lab.leaf_key("ec256")

    @property
    def root(self) -> x509.Certificate:
        return self.root_ca.cert

    @property
    def inter(self) -> x509.Certificate:
        return self.inter_ca.cert

    @property
    def rogue(self) -> x509.Certificate:
        return self.rogue_ca.cert

    def leaf(
        self,
        sans: list[str] | None = None,
        *,
        key: KeySpec | None = None,
        issuer: Authority | None = None,
        **kw: Any,
    ) -> x509.Certificate:
        """A server certificate for ``sans`` (default: HOST) signed by ``issuer`` (default:
        the test intermediate); ``kw`` goes to :meth:`LabPKI.leaf_certificate`."""
        if issuer is None and not kw.get("self_signed"):
            issuer = self.inter_ca
        return self.lab.leaf_certificate(
            [HOST] if sans is None else sans, key=key or self.leaf_key, issuer=issuer, **kw
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("tls-pki"))


# --------------------------------------------------------------------------- evidence


def suite(
    name: str, openssl_name: str, *, kx: tuple[str, int] | None = ("ECDH", 253), anonymous: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "openssl_name": openssl_name,
        "key_size": 128,
        "anonymous": anonymous,
        "kx": None
        if kx is None
        else {"type": kx[0], "size": kx[1], "curve": "X25519" if kx[0] == "ECDH" else None},
    }


ECDHE_GCM = suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256")
ECDHE_CBC = suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA")
TLS13 = suite("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256")
RSA_KX = suite("TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256", kx=None)


def typed(s: dict[str, Any]) -> CipherSuite:
    """A suite dict as the analysis's suite helpers take it."""
    return CipherSuite.from_dict(s)


def evidence_for(pki: PKI, chain: list[x509.Certificate] | None = None, **changes: Any) -> dict[str, Any]:
    """Evidence of a well-configured server (TLS 1.2 + 1.3, ECDHE AEAD, good chain)."""
    chain = chain if chain is not None else [pki.leaf(), pki.inter]
    ev: dict[str, Any] = {
        "schema": 1,
        "target": {"host": HOST, "port": 443, "address": "127.0.0.5", "sni": HOST},
        "connectivity": {"status": "ok", "error": None, "highest_protocol": "TLS 1.3"},
        "protocols": {
            "ssl2": {"accepted": []},
            "ssl3": {"accepted": []},
            "tls1_0": {"accepted": []},
            "tls1_1": {"accepted": []},
            "tls1_2": {"accepted": [ECDHE_GCM]},
            "tls1_3": {"accepted": [TLS13]},
        },
        "certificate": {
            "trust_store": {
                "name": "CA file test-ca.pem",
                "custom": True,
                "anchors_pem": [pem(pki.root)],
                "intermediates_pem": [],
            },
            "deployments": [{"chain_pem": [pem(c) for c in chain]}],
            "sni_disabled_chain_pem": None,
            "no_certificate": False,
        },
        "vulnerabilities": {
            "heartbleed": False,
            "ccs_injection": False,
            "robot": "NOT_VULNERABLE_RSA_NOT_SUPPORTED",
            "compression": False,
            "fallback_scsv": True,
            "secure_renegotiation": True,
            "client_renegotiation": False,
        },
        "errors": {},
    }
    for dotted, value in changes.items():
        node = ev
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return ev


def run(
    ev: dict[str, Any], *, host: str = HOST, now: datetime = NOW, **params: Any
) -> tuple[dict[str, tuple[str, dict[str, Any]]], list[str]]:
    """analyse() on a JSON round-trip of ``ev``; findings as {id: (line, details)}."""
    wire = json.loads(json.dumps(ev))
    kw: dict[str, Any] = {"host": host, "params": {**PARAMS, **params}, "now": now}
    findings, errors = analyse(wire, **kw)
    # The typed evidence, and its stored JSON, are judged exactly as the dict is.
    typed = TLSEvidence.from_dict(wire)
    assert analyse(typed, **kw) == (findings, errors)
    assert analyse(json.loads(json.dumps(typed.to_dict())), **kw) == (findings, errors)
    ids = [f[0] for f in findings]
    assert len(ids) == len(set(ids)), f"duplicate ids {ids}"
    for fid, line, details in findings:
        assert fid in CATALOGUE, fid
        assert isinstance(line, str) and line
        json.dumps(details)
    return {fid: (line, details) for fid, line, details in findings}, errors


def ids(ev: dict[str, Any], **kw: Any) -> set[str]:
    found, errors = run(ev, **kw)
    assert errors == [], errors
    return set(found)


# --------------------------------------------------------------------------- catalogue


def test_catalogue_matches_findings_doc() -> None:
    doc = Path("/work/shared/docs/findings.md")
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    rows = re.findall(r"^\| (tls\.[a-z0-9_.]+) \| (\w+) \|", text, re.M)
    if not rows:
        pytest.skip("findings.md not available")
    assert {fid: sev for fid, sev in rows} == {s.id: s.severity.value for s in TLSCheck.catalogue}
    for spec in TLSCheck.catalogue:
        assert spec.title and spec.rationale and spec.remediation and spec.references


def test_parameters_declared() -> None:
    assert TLSCheck.parameters == {
        "tls.min_rsa_bits": 2048,
        "tls.min_ec_bits": 256,
        "tls.min_dh_bits": 2048,
        "tls.cert_expiry_warning_days": 30,
    }


# --------------------------------------------------------------------------- baseline


def test_good_server_yields_nothing(pki: PKI) -> None:
    assert ids(evidence_for(pki)) == set()


def test_mozilla_style_store_without_intermediates(pki: PKI) -> None:
    ev = evidence_for(pki)
    ev["certificate"]["trust_store"].update(name="Mozilla trust store", custom=False)
    assert ids(ev) == set()


# --------------------------------------------------------------------------- connectivity


def test_unreachable_is_an_error_not_a_finding(pki: PKI) -> None:
    ev = evidence_for(pki, connectivity={"status": "unreachable", "error": "connection refused"})
    found, errors = run(ev)
    assert found == {}
    assert errors == ["cannot connect to 127.0.0.5:443: connection refused"]


def test_no_tls_yields_only_not_offered(pki: PKI) -> None:
    ev = evidence_for(
        pki, connectivity={"status": "no_tls", "error": "the port answered in plain text: 'HTTP/1.0 400'"}
    )
    ev["protocols"]["tls1_0"]["accepted"] = [ECDHE_CBC]  # ignored: nothing completed
    found, errors = run(ev)
    assert set(found) == {"tls.not_offered"} and errors == []
    assert "plain text" in found["tls.not_offered"][0]


def test_unfinished_probe_is_an_error(pki: PKI) -> None:
    ev = evidence_for(pki, connectivity={"status": "unknown", "error": "site deadline reached"})
    found, errors = run(ev)
    assert found == {} and errors and "deadline" in errors[0]


# --------------------------------------------------------------------------- protocols


@pytest.mark.parametrize(
    ("key", "fid", "label"),
    [
        ("ssl2", "tls.protocol.sslv2", "SSL 2.0"),
        ("ssl3", "tls.protocol.sslv3", "SSL 3.0"),
        ("tls1_0", "tls.protocol.tls1_0", "TLS 1.0"),
        ("tls1_1", "tls.protocol.tls1_1", "TLS 1.1"),
    ],
)
def test_old_protocols(pki: PKI, key: str, fid: str, label: str) -> None:
    ev = evidence_for(pki)
    ev["protocols"][key]["accepted"] = [
        ECDHE_CBC,
        suite("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"),
    ]
    found, _ = run(ev)
    assert set(found) == {fid}
    assert found[fid][0] == f"{label} accepted with 2 cipher suites"


def test_no_tls1_3(pki: PKI) -> None:
    ev = evidence_for(pki)
    ev["protocols"]["tls1_3"]["accepted"] = []
    found, _ = run(ev)
    assert set(found) == {"tls.protocol.no_tls1_3"}
    assert "highest accepted: TLS 1.2" in found["tls.protocol.no_tls1_3"][0]


def test_untested_tls1_3_is_an_error_not_no_tls1_3(pki: PKI) -> None:
    ev = evidence_for(pki)
    del ev["protocols"]["tls1_3"]
    ev["errors"]["tls_1_3_cipher_suites"] = "connectivity issue: TlsHandshakeTimedOut"
    found, errors = run(ev)
    assert found == {}
    assert errors == ["could not test: TLS 1.3 cipher suites (connectivity issue: TlsHandshakeTimedOut)"]


# --------------------------------------------------------------------------- cipher suites


@pytest.mark.parametrize(
    ("name", "openssl_name", "reason"),
    [
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA", "3DES"),
        ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-RSA-DES-CBC3-SHA", "3DES"),
        ("TLS_RSA_WITH_RC4_128_SHA", "RC4-SHA", "RC4"),
        ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", "ECDHE-RSA-RC4-SHA", "RC4"),
        ("TLS_RSA_WITH_DES_CBC_SHA", "DES-CBC-SHA", "DES"),
        ("TLS_RSA_WITH_NULL_SHA256", "NULL-SHA256", "NULL"),
        ("TLS_ECDHE_RSA_WITH_NULL_SHA", "ECDHE-RSA-NULL-SHA", "NULL"),
        ("TLS_DH_anon_WITH_AES_128_CBC_SHA", "ADH-AES128-SHA", "anonymous"),
        ("TLS_ECDH_anon_WITH_AES_128_CBC_SHA", "AECDH-AES128-SHA", "anonymous"),
        ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", "EXP-RC4-MD5", "EXPORT"),
        ("TLS_RSA_WITH_RC4_128_MD5", "RC4-MD5", "MD5"),
        ("SSL_CK_DES_192_EDE3_CBC_WITH_MD5", "DES-CBC3-MD5", "3DES"),
    ],
)
def test_insecure_suites(pki: PKI, name: str, openssl_name: str, reason: str) -> None:
    bad = suite(name, openssl_name, kx=None, anonymous="anon" in name)
    assert reason in insecure_reasons(typed(bad))
    ev = evidence_for(pki)
    ev["protocols"]["tls1_2"]["accepted"] = [ECDHE_GCM, bad]
    found, _ = run(ev)
    assert "tls.cipher.insecure" in found
    assert name in found["tls.cipher.insecure"][0]
    assert found["tls.cipher.insecure"][1]["suites"] == [
        {"protocol": "TLS 1.2", "name": name, "reasons": insecure_reasons(typed(bad))}
    ]


@pytest.mark.parametrize(
    ("name", "openssl_name"),
    [
        ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
        ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256"),
        ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"),
    ],
)
def test_strong_suites_are_not_insecure(name: str, openssl_name: str) -> None:
    assert insecure_reasons(typed(suite(name, openssl_name))) == []


def test_3des_example_lists_every_suite(pki: PKI) -> None:
    ev = evidence_for(pki)
    ev["protocols"]["tls1_0"]["accepted"] = [suite("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA", kx=None)]
    ev["protocols"]["tls1_2"]["accepted"] = [ECDHE_GCM, suite("TLS_RSA_WITH_RC4_128_SHA", "RC4-SHA", kx=None)]
    found, _ = run(ev)
    assert set(found) == {"tls.protocol.tls1_0", "tls.cipher.insecure", "tls.cipher.no_forward_secrecy"}
    line = found["tls.cipher.insecure"][0]
    assert line.startswith("2 insecure cipher suites accepted")
    assert "TLS_RSA_WITH_3DES_EDE_CBC_SHA (TLS 1.0)" in line and "TLS_RSA_WITH_RC4_128_SHA (TLS 1.2)" in line


def test_no_forward_secrecy(pki: PKI) -> None:
    ev = evidence_for(pki)
    ev["protocols"]["tls1_2"]["accepted"] = [ECDHE_GCM, RSA_KX]
    found, _ = run(ev)
    assert set(found) == {"tls.cipher.no_forward_secrecy"}
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256 (TLS 1.2)" in found["tls.cipher.no_forward_secrecy"][0]


def test_forward_secrecy_rules() -> None:
    assert has_forward_secrecy(typed(TLS13), "tls1_3")
    assert has_forward_secrecy(typed(ECDHE_GCM), "tls1_2")
    assert has_forward_secrecy(
        typed(suite("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256")), "tls1_2"
    )
    assert not has_forward_secrecy(typed(RSA_KX), "tls1_2")
    assert not has_forward_secrecy(
        typed(suite("TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256", "ECDH-RSA-AES128-GCM-SHA256")), "tls1_2"
    )
    assert not has_forward_secrecy(typed(suite("SSL_CK_RC4_128_WITH_MD5", "RC4-MD5")), "ssl2")


@pytest.mark.parametrize(
    ("bits", "min_bits", "expected"),
    [(1024, 2048, True), (2047, 2048, True), (2048, 2048, False), (2048, 3072, True), (4096, 3072, False)],
)
def test_weak_dh(pki: PKI, bits: int, min_bits: int, expected: bool) -> None:
    ev = evidence_for(pki)
    ev["protocols"]["tls1_2"]["accepted"] = [
        ECDHE_GCM,
        suite("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256", kx=("DH", bits)),
    ]
    found, _ = run(ev, **{"tls.min_dh_bits": min_bits})
    assert ("tls.cipher.weak_dh" in found) is expected
    if expected:
        assert f"{bits}-bit" in found["tls.cipher.weak_dh"][0]


def test_dhe_accepted_without_key_info_is_weak_dh(pki: PKI) -> None:
    """sslyze keeps the suite as accepted but has no key when its OpenSSL refused the group
    ("dh key too small")."""
    ev = evidence_for(pki)
    ev["protocols"]["tls1_2"]["accepted"] = [
        suite("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256", kx=None)
    ]
    assert ids(ev) == {"tls.cipher.weak_dh"}


def test_ecdhe_small_curve_is_not_weak_dh(pki: PKI) -> None:
    ev = evidence_for(pki)
    ev["protocols"]["tls1_2"]["accepted"] = [
        suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256", kx=("ECDH", 224))
    ]
    assert ids(ev) == set()


# --------------------------------------------------------------------------- vulnerabilities


@pytest.mark.parametrize(
    ("key", "value", "fid"),
    [
        ("heartbleed", True, "tls.vuln.heartbleed"),
        ("ccs_injection", True, "tls.vuln.ccs_injection"),
        ("robot", "VULNERABLE_WEAK_ORACLE", "tls.vuln.robot"),
        ("robot", "VULNERABLE_STRONG_ORACLE", "tls.vuln.robot"),
        ("compression", True, "tls.vuln.compression"),
        ("secure_renegotiation", False, "tls.vuln.insecure_renegotiation"),
        ("client_renegotiation", True, "tls.vuln.insecure_renegotiation"),
    ],
)
def test_vulnerabilities(pki: PKI, key: str, value: Any, fid: str) -> None:
    ev = evidence_for(pki)
    ev["vulnerabilities"][key] = value
    assert ids(ev) == {fid}


def test_robot_not_vulnerable_no_oracle(pki: PKI) -> None:
    ev = evidence_for(pki)
    ev["vulnerabilities"]["robot"] = "NOT_VULNERABLE_NO_ORACLE"
    assert ids(ev) == set()


def test_robot_inconsistent_is_an_error(pki: PKI) -> None:
    ev = evidence_for(pki)
    ev["vulnerabilities"]["robot"] = "UNKNOWN_INCONSISTENT_RESULTS"
    found, errors = run(ev)
    assert found == {} and errors == [
        "could not test: ROBOT (inconclusive result UNKNOWN_INCONSISTENT_RESULTS)"
    ]


def test_no_fallback_scsv_only_with_old_protocols(pki: PKI) -> None:
    ev = evidence_for(pki)
    ev["vulnerabilities"]["fallback_scsv"] = False
    ev["protocols"]["tls1_2"]["accepted"] = []  # TLS 1.3 only: nothing to fall back to
    assert ids(ev) == set()
    ev["protocols"]["tls1_2"]["accepted"] = [ECDHE_GCM]
    ev["protocols"]["tls1_0"]["accepted"] = [ECDHE_CBC]
    found, _ = run(ev)
    assert set(found) == {"tls.vuln.no_fallback_scsv", "tls.protocol.tls1_0"}
    assert "TLS 1.0, TLS 1.2 are accepted below TLS 1.3" in found["tls.vuln.no_fallback_scsv"][0]


def test_errored_commands_are_listed_and_other_findings_kept(pki: PKI) -> None:
    ev = evidence_for(pki)
    del ev["vulnerabilities"]["heartbleed"]
    del ev["vulnerabilities"]["secure_renegotiation"]
    del ev["vulnerabilities"]["client_renegotiation"]
    ev["errors"]["heartbleed"] = "connectivity issue: ConnectionToServerTimedOut"
    ev["vulnerabilities"]["compression"] = True
    ev["protocols"]["tls1_1"]["accepted"] = [ECDHE_CBC]
    found, errors = run(ev)
    assert set(found) == {"tls.vuln.compression", "tls.protocol.tls1_1"}
    assert errors == [
        "could not test: heartbleed (connectivity issue: ConnectionToServerTimedOut)",
        "could not test: renegotiation (no result)",
    ]


def test_missing_certificate_block_is_an_error(pki: PKI) -> None:
    ev = evidence_for(pki, certificate=None)
    ev["errors"]["certificate_info"] = "cannot use CA file /nope.pem: [Errno 2] No such file"
    found, errors = run(ev)
    assert found == {}
    assert errors == ["could not test: certificate (cannot use CA file /nope.pem: [Errno 2] No such file)"]


def test_deadline_errors_surface(pki: PKI) -> None:
    ev = evidence_for(pki)
    del ev["vulnerabilities"]["robot"]
    ev["errors"]["deadline"] = "site deadline reached after 29.8 s; TLS scan incomplete"
    ev["errors"]["robot"] = "site deadline reached after 29.8 s; TLS scan incomplete"
    found, errors = run(ev)
    assert found == {}
    assert errors[0].startswith("site deadline reached") and errors[1].startswith(
        "could not test: ROBOT (site deadline"
    )


# --------------------------------------------------------------------------- certificate dates


def test_expired(pki: PKI) -> None:
    leaf = pki.leaf(not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=3))
    found, _ = run(evidence_for(pki, [leaf, pki.inter]))
    assert set(found) == {"tls.cert.expired"}
    assert "3 days ago" in found["tls.cert.expired"][0]


def test_expired_leaf_issued_before_the_current_intermediate(pki: PKI) -> None:
    """The leaf's and the served intermediate's validity windows do not overlap (a re-issued
    intermediate, or the lab's CA made today): still only tls.cert.expired."""
    inter = pki.lab.new_intermediate(
        "Test Intermediate CA", key=pki.inter_ca.key, not_before=NOW - timedelta(days=1)
    ).cert
    leaf = pki.leaf(not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=10))
    assert ids(evidence_for(pki, [leaf, inter])) == {"tls.cert.expired"}


def test_not_yet_valid(pki: PKI) -> None:
    leaf = pki.leaf(not_before=NOW + timedelta(days=10), not_after=NOW + timedelta(days=300))
    assert ids(evidence_for(pki, [leaf, pki.inter])) == {"tls.cert.not_yet_valid"}


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (timedelta(days=30), True),  # exactly at the window: "within 30 days"
        (timedelta(days=30, seconds=1), False),
        (timedelta(days=29, hours=23), True),
        (timedelta(seconds=1), True),
        (timedelta(days=31), False),
    ],
)
def test_expiring_soon_boundary(pki: PKI, left: timedelta, expected: bool) -> None:
    leaf = pki.leaf(not_after=NOW + left)
    assert ids(evidence_for(pki, [leaf, pki.inter])) == ({"tls.cert.expiring_soon"} if expected else set())


def test_expiring_soon_window_is_a_parameter(pki: PKI) -> None:
    leaf = pki.leaf(not_after=NOW + timedelta(days=20))
    ev = evidence_for(pki, [leaf, pki.inter])
    assert ids(ev) == {"tls.cert.expiring_soon"}
    assert ids(ev, **{"tls.cert_expiry_warning_days": 14}) == set()


def test_expired_is_not_also_expiring_soon(pki: PKI) -> None:
    leaf = pki.leaf(not_before=NOW - timedelta(days=100), not_after=NOW - timedelta(seconds=1))
    assert ids(evidence_for(pki, [leaf, pki.inter])) == {"tls.cert.expired"}


# --------------------------------------------------------------------------- host names


def test_hostname_mismatch_is_not_untrusted(pki: PKI) -> None:
    leaf = pki.leaf(["elsewhere.example.test"])
    found, _ = run(evidence_for(pki, [leaf, pki.inter]))
    assert set(found) == {"tls.cert.hostname_mismatch"}
    assert "elsewhere.example.test" in found["tls.cert.hostname_mismatch"][0]


@pytest.mark.parametrize(
    ("host", "names", "expected"),
    [
        ("a.example.test", ["*.example.test"], True),
        ("A.Example.Test.", ["*.example.test"], True),
        ("a.b.example.test", ["*.example.test"], False),
        ("example.test", ["*.example.test"], False),
        ("a.example.test", ["a*.example.test"], False),
        ("a.example.test", ["*.test"], False),
        ("portal.example.test", ["www.example.test", "portal.example.test"], True),
        ("xn--bcher-kva.example.test", ["xn--bcher-kva.example.test"], True),
    ],
)
def test_hostname_matching(pki: PKI, host: str, names: list[str], expected: bool) -> None:
    assert hostname_matches(host, pki.leaf(names))[0] is expected


def test_common_name_used_only_without_san(pki: PKI) -> None:
    no_san = pki.leaf([HOST], with_san=False)
    assert hostname_matches(HOST, no_san)[0]
    with_san = pki.leaf(["other.example.test"], common_name=HOST)
    assert not hostname_matches(HOST, with_san)[0]


def test_ip_host_matches_ip_san_only(pki: PKI) -> None:
    # Built by hand: a DNS-type SAN spelling an IP address is exactly what LabPKI (rightly)
    # never writes, since it turns every IP-looking host name into an IP-type SAN.
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.5")]))
        .issuer_name(pki.inter.subject)
        .public_key(pki.leaf_key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=90))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("127.0.0.6"), x509.IPAddress(ipaddress.ip_address("127.0.0.5"))]
            ),
            critical=False,
        )
        .sign(pki.inter_ca.key, hashes.SHA256())
    )
    assert hostname_matches("127.0.0.5", cert)[0]
    assert not hostname_matches("127.0.0.6", cert)[0]


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize(("bits", "expected"), [(2047, True), (2048, False)])
def test_rsa_key_boundary(pki: PKI, bits: int, expected: bool) -> None:
    key = rsa.generate_private_key(65537, bits)
    ev = evidence_for(pki, [pki.leaf(key=key), pki.inter])
    found, _ = run(ev)
    assert set(found) == ({"tls.cert.weak_key"} if expected else set())
    if expected:
        assert "RSA 2047 bits (minimum 2048)" in found["tls.cert.weak_key"][0]


@pytest.mark.parametrize(
    ("curve", "expected"), [(ec.SECP224R1(), True), (ec.SECP256R1(), False), (ec.SECP384R1(), False)]
)
def test_ec_key_boundary(pki: PKI, curve: ec.EllipticCurve, expected: bool) -> None:
    key = ec.generate_private_key(curve)
    assert ids(evidence_for(pki, [pki.leaf(key=key), pki.inter])) == (
        {"tls.cert.weak_key"} if expected else set()
    )


def test_key_minimums_are_parameters(pki: PKI) -> None:
    ev = evidence_for(pki)  # EC P-256 leaf
    assert ids(ev, **{"tls.min_ec_bits": 384}) == {"tls.cert.weak_key"}


def test_weak_key_on_served_intermediate_but_not_on_served_root(pki: PKI) -> None:
    small = rsa.generate_private_key(65537, 1024)
    inter = pki.lab.new_intermediate("Small Intermediate", key=small)
    leaf = pki.leaf(issuer=inter)
    found, _ = run(evidence_for(pki, [leaf, inter.cert]))
    assert set(found) == {"tls.cert.weak_key"}
    assert "Small Intermediate" in found["tls.cert.weak_key"][0]

    # A served self-signed root is not checked for key size (the store decides about
    # roots), but modern validators refuse a 1024-bit CA key, so the chain is untrusted.
    small_root = pki.lab.new_root("Small Root", key=small)
    leaf2 = pki.leaf(issuer=small_root)
    ev = evidence_for(pki, [leaf2, small_root.cert])
    ev["certificate"]["trust_store"]["anchors_pem"] = [pem(small_root.cert)]
    found, _ = run(ev)
    assert set(found) == {"tls.cert.untrusted"}
    assert "too weak" in found["tls.cert.untrusted"][0]


# --------------------------------------------------------------------------- trust attribution


def test_self_signed_instead_of_untrusted(pki: PKI) -> None:
    leaf = pki.leaf(self_signed=True)
    found, _ = run(evidence_for(pki, [leaf]))
    assert set(found) == {"tls.cert.self_signed"}


def test_self_signed_leaf_in_the_store_is_trusted(pki: PKI) -> None:
    leaf = pki.leaf(self_signed=True)
    ev = evidence_for(pki, [leaf])
    ev["certificate"]["trust_store"]["anchors_pem"] = [pem(leaf)]
    assert ids(ev) == set()


def test_untrusted_root_served(pki: PKI) -> None:
    """The lab's cert-untrusted: leaf + the unknown root that issued it."""
    leaf = pki.leaf(issuer=pki.rogue_ca)
    found, _ = run(evidence_for(pki, [leaf, pki.rogue]))
    assert set(found) == {"tls.cert.untrusted"}
    assert "Rogue Root CA" in found["tls.cert.untrusted"][0]


def test_unknown_intermediate_served_without_its_root_is_untrusted(pki: PKI) -> None:
    """Servers rightly omit the root: a sent intermediate whose issuer is unknown means the
    root is not in the store (untrusted), not an incomplete chain."""
    rogue_inter = pki.lab.new_intermediate("Rogue Intermediate", issuer=pki.rogue_ca, key="ec256")
    leaf = pki.leaf(issuer=rogue_inter)
    assert ids(evidence_for(pki, [leaf, rogue_inter.cert])) == {"tls.cert.untrusted"}


def test_incomplete_chain_leaf_only(pki: PKI) -> None:
    """The lab's cert-incomplete-chain: only the leaf, its intermediate nowhere known."""
    found, _ = run(evidence_for(pki, [pki.leaf()]))
    assert set(found) == {"tls.cert.incomplete_chain"}
    assert found["tls.cert.incomplete_chain"][1]["anchor_verified"] is False
    assert "Test Intermediate CA" in found["tls.cert.incomplete_chain"][0]


def test_incomplete_chain_proved_with_known_intermediate(pki: PKI) -> None:
    ev = evidence_for(pki, [pki.leaf()])
    ev["certificate"]["trust_store"]["intermediates_pem"] = [pem(pki.inter)]
    found, _ = run(ev)
    assert set(found) == {"tls.cert.incomplete_chain"}
    assert found["tls.cert.incomplete_chain"][1]["anchor_verified"] is True


def test_incomplete_chain_proved_by_the_servers_other_deployment(pki: PKI) -> None:
    ev = evidence_for(pki, [pki.leaf()])
    ev["certificate"]["sni_disabled_chain_pem"] = [pem(pki.leaf(["default.example.test"])), pem(pki.inter)]
    found, _ = run(ev)
    assert set(found) == {"tls.cert.incomplete_chain"}
    assert found["tls.cert.incomplete_chain"][1]["anchor_verified"] is True


def _expired_test_intermediate(pki: PKI) -> Authority:
    """The test intermediate (same name, same key) re-issued with dates that ended yesterday."""
    return pki.lab.new_intermediate(
        "Test Intermediate CA",
        key=pki.inter_ca.key,
        not_before=NOW - timedelta(days=800),
        not_after=NOW - timedelta(days=1),
    )


def test_expired_intermediate_is_untrusted(pki: PKI) -> None:
    inter = _expired_test_intermediate(pki)
    leaf = pki.leaf(not_before=NOW - timedelta(days=100))
    found, _ = run(evidence_for(pki, [leaf, inter.cert]))
    assert set(found) == {"tls.cert.untrusted"}
    assert "Test Intermediate CA" in found["tls.cert.untrusted"][0]


def test_expired_intermediate_is_untrusted_even_with_a_weak_leaf_key(pki: PKI) -> None:
    """The weak key explains a strict-validation failure, not the intermediate's dates."""
    inter = _expired_test_intermediate(pki)
    small = rsa.generate_private_key(65537, 1024)
    leaf = pki.leaf(key=small, issuer=inter, not_before=NOW - timedelta(days=100))
    found, _ = run(evidence_for(pki, [leaf, inter.cert]))
    assert set(found) == {"tls.cert.weak_key", "tls.cert.untrusted"}
    assert "Test Intermediate CA' expired" in found["tls.cert.untrusted"][0]


def test_leaf_served_with_a_foreign_signature_is_untrusted(pki: PKI) -> None:
    """Issuer name matches the served intermediate, but another key signed the leaf."""
    impostor = pki.lab.new_intermediate("Test Intermediate CA", key="ec384")
    leaf = pki.leaf(issuer=impostor)
    found, _ = run(evidence_for(pki, [leaf, pki.inter]))
    assert set(found) == {"tls.cert.untrusted"}
    assert "verifies its signature" in found["tls.cert.untrusted"][0]


def test_leaf_without_server_extensions_is_untrusted(pki: PKI) -> None:
    """A chain that reaches the store but breaks web-PKI rules (a CA certificate as leaf)."""
    # Built by hand: the point is a leaf asserting cA=TRUE while carrying a SAN, so that
    # nothing but the CA flag breaks it. LabPKI's CAs have no SAN (the validator would stop
    # at that first) and its leaves are never CAs, and neither should change for this test.
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(pki.inter.subject)
        .public_key(pki.leaf_key.public_key())
        .serial_number(11)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.inter_ca.key.public_key()), critical=False
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(pki.inter_ca.key, hashes.SHA256())
    )
    found, _ = run(evidence_for(pki, [leaf, pki.inter]))
    assert set(found) == {"tls.cert.untrusted"}


def test_combined_expired_wrong_host_self_signed(pki: PKI) -> None:
    leaf = pki.leaf(
        ["other.example.test"],
        self_signed=True,
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=1),
    )
    assert ids(evidence_for(pki, [leaf])) == {
        "tls.cert.expired",
        "tls.cert.hostname_mismatch",
        "tls.cert.self_signed",
    }


def test_no_certificate_at_all(pki: PKI) -> None:
    ev = evidence_for(pki)
    ev["certificate"]["deployments"] = []
    ev["certificate"]["no_certificate"] = True
    assert "tls.cert.untrusted" in ids(ev)


def _patched_pem(cert: x509.Certificate, old: bytes, new: bytes) -> str:
    """``cert`` with one DER byte string replaced (the signature no longer matches)."""
    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(old) == 1
    body = base64.encodebytes(der.replace(old, new)).decode("ascii")
    return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"


def test_unreadable_certificates_are_errors_not_crashes(pki: PKI) -> None:
    """Hostile bytes: an unknown key type only fails when the key is read, a bad version at
    parse time. Either chain is reported as not analysed; the rest of the evidence counts."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    leaf = pki.leaf(key=ed25519.Ed25519PrivateKey.generate())
    # id-Ed25519 (1.3.101.112) in the leaf's key info -> 1.3.101.99, which nobody knows
    unknown_key = _patched_pem(leaf, bytes.fromhex("06032b6570"), bytes.fromhex("06032b6563"))
    bad_version = _patched_pem(pki.leaf(), bytes.fromhex("a003020102"), bytes.fromhex("a003020105"))
    for chain_pem, error in ((unknown_key, "Unknown key type"), (bad_version, "not a valid X509 version")):
        ev = evidence_for(pki, protocols__tls1_3__accepted=[])
        ev["certificate"]["deployments"] = [{"chain_pem": [chain_pem, pem(pki.inter)]}]
        found, errors = run(ev)
        assert set(found) == {"tls.protocol.no_tls1_3"}
        assert len(errors) == 1 and "could not" in errors[0] and error in errors[0], errors


# --------------------------------------------------------------------------- weak signatures


@pytest.fixture(scope="module")
def rsa_pki(pki: PKI) -> PKI:
    """The test PKI with an RSA intermediate (SHA-1 and MD5 signatures are made with RSA only)."""
    other = copy.copy(pki)
    other.inter_ca = pki.lab.new_intermediate("Test RSA Intermediate CA")
    return other


@pytest.mark.parametrize("digest", ["sha1", "md5"])
def test_weak_signature_is_not_also_untrusted(rsa_pki: PKI, digest: str) -> None:
    leaf = rsa_pki.leaf(hash_name=digest)
    assert leaf.signature_hash_algorithm is not None and leaf.signature_hash_algorithm.name == digest
    found, _ = run(evidence_for(rsa_pki, [leaf, rsa_pki.inter]))
    assert set(found) == {"tls.cert.weak_signature"}
    assert ("SHA-1" if digest == "sha1" else "MD5") in found["tls.cert.weak_signature"][0]


def test_weak_signature_on_served_intermediate(rsa_pki: PKI) -> None:
    inter = rsa_pki.lab.new_intermediate("SHA-1 Intermediate", key=rsa_pki.inter_ca.key, hash_name="sha1")
    leaf = rsa_pki.leaf(issuer=inter)
    found, _ = run(evidence_for(rsa_pki, [leaf, inter.cert]))
    assert set(found) == {"tls.cert.weak_signature"}
    assert "SHA-1 Intermediate signed with SHA-1" in found["tls.cert.weak_signature"][0]


def test_sha1_self_signature_of_a_served_root_is_not_weak(rsa_pki: PKI) -> None:
    """Only leaf and intermediate signatures count; a root vouches for itself by its key."""
    sha1_root = rsa_pki.lab.new_root("SHA-1 Root", key=rsa_pki.root_ca.key, hash_name="sha1")
    root = sha1_root.cert
    assert root.signature_hash_algorithm is not None and root.signature_hash_algorithm.name == "sha1"
    leaf = rsa_pki.leaf(issuer=sha1_root)
    ev = evidence_for(rsa_pki, [leaf, root])
    ev["certificate"]["trust_store"]["anchors_pem"] = [pem(root)]
    assert ids(ev) == set()


# --------------------------------------------------------------------------- TLSCheck.run


def test_run_builds_findings_from_catalogue(monkeypatch: pytest.MonkeyPatch, pki: PKI) -> None:
    ev = evidence_for(pki)
    ev["protocols"]["tls1_0"]["accepted"] = [ECDHE_CBC]
    del ev["vulnerabilities"]["heartbleed"]
    ev["errors"]["heartbleed"] = "connectivity issue: TlsHandshakeTimedOut"
    monkeypatch.setattr(
        "checks.tls.check.collect", lambda target, ctx: TLSEvidence.from_dict(json.loads(json.dumps(ev)))
    )
    target = Target(url=f"https://{HOST}/", host=HOST, port=443, address="127.0.0.5")
    out = TLSCheck().run(target, CheckContext(timeout=1))
    assert isinstance(out, CheckOutcome)
    assert [(f.id, f.severity, f.check) for f in out.findings] == [
        ("tls.protocol.tls1_0", Severity.HIGH, "tls")
    ]
    assert out.findings[0].references == list(CATALOGUE["tls.protocol.tls1_0"].references)
    assert out.error == "could not test: heartbleed (connectivity issue: TlsHandshakeTimedOut)"
    assert out.status == "error"


def test_run_reads_policy_parameters(monkeypatch: pytest.MonkeyPatch, pki: PKI) -> None:
    ev = evidence_for(pki)
    monkeypatch.setattr("checks.tls.check.collect", lambda target, ctx: TLSEvidence.from_dict(ev))
    target = Target(url=f"https://{HOST}/", host=HOST, port=443, address="127.0.0.5")
    ctx = CheckContext(params={"tls.min_ec_bits": 384, "tls.cert_expiry_warning_days": 400})
    out = TLSCheck().run(target, ctx)
    # run() uses the real clock, not NOW: assert only on the key size, which is timeless.
    assert "tls.cert.weak_key" in {f.id for f in out.findings}


def test_run_turns_collect_crash_into_check_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(target: Target, ctx: CheckContext) -> TLSEvidence:
        raise RuntimeError("nassl exploded")

    monkeypatch.setattr("checks.tls.check.collect", boom)
    target = Target(url=f"https://{HOST}/", host=HOST, port=443, address="127.0.0.5")
    out = TLSCheck().run(target, CheckContext())
    assert out.findings == [] and out.error == "TLS scan failed: RuntimeError: nassl exploded"


# --------------------------------------------------------------------------- live, against the lab

LIVE_FIRST_ADDRESS = "127.0.0.100"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def tls_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sites = pytest.importorskip("auditor.lab.sites")
    lab = sites.Lab(tmp_path_factory.mktemp("tls-lab"), sites.LAB_SITES, first_address=LIVE_FIRST_ADDRESS)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()
        if TIMINGS:
            width = max(len(n) for n in TIMINGS)
            print("\nTLS check wall time per lab site:")
            for name, seconds in TIMINGS.items():
                print(f"  {name:<{width}}  {seconds:6.2f} s")


def _scan(lab: Any, name: str) -> CheckOutcome:
    site = lab.site(name)
    target = Target(url=site.url, host=site.host, port=site.https_port, address=site.address)
    started = time.monotonic()
    out = TLSCheck().run(target, CheckContext(ca_file=str(lab.ca_file), timeout=5))
    TIMINGS[name] = time.monotonic() - started
    json.dumps(out.evidence)  # everything stored must be JSON-able
    return out


def _tls_sites() -> list[str]:
    try:
        from auditor.lab.sites import LAB_SITES
    except ImportError:
        return []
    return [s.name for s in LAB_SITES if any(i.startswith("tls.") for i in s.expect)]


@pytest.fixture(scope="module")
def good_ids(tls_lab: Any) -> set[str]:
    out = _scan(tls_lab, "good")
    assert out.error is None, out.error
    return {f.id for f in out.findings}


@pytest.mark.slow
def test_live_good_site_is_clean(tls_lab: Any, good_ids: set[str]) -> None:
    out = _scan(tls_lab, "good")
    bad = [f for f in out.findings if f.severity in (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM)]
    assert bad == [], [(f.id, f.evidence) for f in bad]
    ev = out.evidence
    assert ev["connectivity"]["status"] == "ok"
    assert ev["connectivity"]["highest_protocol"] == "TLS 1.3"
    assert ev["protocols"]["tls1_3"]["accepted"]
    assert ev["vulnerabilities"]["robot"].startswith("NOT_VULNERABLE")
    assert ev["certificate"]["trust_store"]["custom"] is True
    # The stored evidence re-analyses to the same verdict.
    again, errors = analyse(
        json.loads(json.dumps(ev)), host=tls_lab.site("good").host, params=PARAMS, now=datetime.now(UTC)
    )
    assert errors == [] and {f[0] for f in again} == {f.id for f in out.findings}


@pytest.mark.slow
@pytest.mark.parametrize("name", _tls_sites())
def test_live_lab_site_yields_exactly_its_planted_ids(tls_lab: Any, good_ids: set[str], name: str) -> None:
    out = _scan(tls_lab, name)
    expected = {i for i in tls_lab.site(name).spec.expect if i.startswith("tls.")}
    found = {f.id for f in out.findings}
    assert out.error is None, out.error
    assert found - good_ids == expected, [(f.id, f.evidence) for f in out.findings]


@pytest.mark.slow
def test_live_mozilla_store_does_not_trust_the_lab(tls_lab: Any) -> None:
    """Without --ca-file the Mozilla store is in use: the lab root is unknown, and the good
    site sends leaf + intermediate (a complete chain), so this is untrusted, not incomplete."""
    site = tls_lab.site("good")
    target = Target(url=site.url, host=site.host, port=site.https_port, address=site.address)
    out = TLSCheck().run(target, CheckContext(timeout=5))
    assert out.error is None, out.error
    assert {f.id for f in out.findings} == {"tls.cert.untrusted"}
    assert out.evidence["certificate"]["trust_store"]["custom"] is False
    pv = out.evidence["certificate"]["deployments"][0]["sslyze_path_validation"]
    assert pv and not any(r["ok"] for r in pv)


@pytest.mark.slow
def test_live_unreadable_ca_file_is_an_error_and_the_rest_is_kept(tls_lab: Any, tmp_path: Path) -> None:
    site = tls_lab.site("tls1-1")
    target = Target(url=site.url, host=site.host, port=site.https_port, address=site.address)
    missing = tmp_path / "missing-ca.pem"
    out = TLSCheck().run(target, CheckContext(ca_file=str(missing), timeout=5))
    assert {f.id for f in out.findings} == {"tls.protocol.tls1_1"}
    assert (
        out.error
        == f"could not test: certificate (cannot use CA file {missing}: [Errno 2] No such file or directory: '{missing}')"
    )


@pytest.mark.slow
def test_live_closed_port_is_a_check_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.99", 0))  # bound, never listening: connections are refused
        port = sock.getsockname()[1]
        target = Target(
            url=f"https://closed.test:{port}/", host="closed.test", port=port, address="127.0.0.99"
        )
        out = TLSCheck().run(target, CheckContext(timeout=2))
    assert out.findings == []
    assert out.error == f"cannot connect to 127.0.0.99:{port}: connection refused"


@pytest.mark.slow
def test_live_deadline_returns_an_error_with_what_is_known() -> None:
    """A server that accepts TCP and never answers: the preprobe settles it within 2 x timeout,
    before the site deadline, as a check error (no finding)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.98", 0))
        server.listen(16)
        port = server.getsockname()[1]
        target = Target(
            url=f"https://silent.test:{port}/", host="silent.test", port=port, address="127.0.0.98"
        )
        started = time.monotonic()
        out = TLSCheck().run(target, CheckContext(timeout=1, deadline=time.monotonic() + 3))
        elapsed = time.monotonic() - started
    assert elapsed < 4.5
    assert out.findings == []
    assert out.error and "no ServerHello within 1 s" in out.error


def _keys(value: Any) -> Any:
    """The key structure of JSON evidence (a list: the union over its items), leaves elided."""
    if isinstance(value, dict):
        return {k: _keys(v) for k, v in value.items()}
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            if isinstance(item, dict):
                merged.update(_keys(item))
        return [merged] if merged else []
    return "leaf"


@pytest.mark.slow
@pytest.mark.parametrize(("ca_file", "recorded"), [(True, "lab_ca_file"), (False, "mozilla_store")])
def test_live_evidence_keeps_the_stored_shape(tls_lab: Any, ca_file: bool, recorded: str) -> None:
    """collect() today writes the keys the pre-typed collector wrote (recorded in the fixture)."""
    fixture = json.loads((TESTS / "checks" / "tls" / "fixtures" / "collected_evidence.json").read_text())
    site = tls_lab.site("good")
    target = Target(url=site.url, host=site.host, port=site.https_port, address=site.address)
    ctx = CheckContext(ca_file=str(tls_lab.ca_file) if ca_file else None, timeout=5)
    assert _keys(collect(target, ctx).to_dict()) == _keys(fixture[recorded])


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["good", "cert-incomplete-chain", "cipher-weak-dh", "renegotiation", "no-tls"]
)
def test_live_collected_evidence_round_trips(tls_lab: Any, name: str) -> None:
    site = tls_lab.site(name)
    target = Target(url=site.url, host=site.host, port=site.https_port, address=site.address)
    typed = collect(target, CheckContext(ca_file=str(tls_lab.ca_file), timeout=5))
    assert isinstance(typed, TLSEvidence)
    stored = json.loads(json.dumps(typed.to_dict()))
    assert TLSEvidence.from_dict(stored) == typed
    assert TLSEvidence.from_dict(stored).to_dict() == stored
    kw: dict[str, Any] = {"host": site.host, "params": PARAMS, "now": datetime.now(UTC)}
    from_typed = analyse(typed, **kw)
    assert from_typed == analyse(stored, **kw)
    expected = {i for i in site.spec.expect if i.startswith("tls.")}
    assert expected <= {fid for fid, _, _ in from_typed[0]}
