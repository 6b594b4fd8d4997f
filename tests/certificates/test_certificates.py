"""Network-trust certificates on real loopback sites: rules, PDF with a QR code that verifies,
anti-forgery, revocation, expiry, suspension and renewal.

The lab runs on 127.0.4.10+ (this part's address range) with two sites: ``good`` passes,
``cert-expired`` fails. Each is scanned once, with the real checks the default policy's
certificate rules require (tls, http, privacy, reputation).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from project_paths import PROJECT
from sqlmodel import select

import certificates as C
from auditor import storage
from auditor.errors import AuditorError
from auditor.models import Certificate, FindingRecord, Scan, utcnow
from auditor.scanning import Auditor, ScanRequest
from certificates.rules import RULE_IDS, resolve_policy
from policies import SAMPLE_FEEDS_DIR as SAMPLE_DIR

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")

CERT_CHECKS = "tls,http,privacy,reputation"  # the default policy's certificate.require_checks


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from auditor.lab.sites import LAB_SITES, Lab

    specs = [s for s in LAB_SITES if s.name in ("good", "cert-expired")]
    lab = Lab(tmp_path_factory.mktemp("lab-certs"), specs, first_address="127.0.4.10")
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, lab) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """A database with one real scan of each lab site, and a fresh issuer key path."""
    base = tmp_path_factory.mktemp("certs")
    db = f"sqlite:///{base / 'certs.db'}"
    key = base / "keys" / "issuer.pem"
    # A user's own feed directory (a copy of the sample): certificates refuse the built-in sample.
    feeds = base / "feeds"
    shutil.copytree(SAMPLE_DIR, feeds)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDITOR_ISSUER_KEY", str(key))
        good, bad = lab.site("good"), lab.site("cert-expired")
        results = Auditor(db=db).scan(ScanRequest(
            targets=[good.url, bad.url], resolve=lab.resolve_args, ca_file=str(lab.ca_file),
            allow_dns=False, checks=CERT_CHECKS, timeout=5.0, options={"feeds_dir": str(feeds)},
        ))
        assert [r["grade"] for r in results] == ["A", "F"], results
        yield {"db": db, "key": str(key), "good": good.url, "bad": bad.url, "dir": str(base),
               "resolve": lab.resolve_args, "ca": str(lab.ca_file), "feeds": str(feeds)}


def _text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


def _qr_texts(pdf: Path, tmp: Path) -> list[str]:
    from PIL import Image
    from pyzbar.pyzbar import decode

    prefix = tmp / "page"
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(pdf), str(prefix)], check=True)
    out = []
    for png in sorted(tmp.glob("page*.png")):
        out += [d.data.decode("utf-8") for d in decode(Image.open(png))]
    return out


def _tamper(token: str) -> str:
    """Change one byte of the signed payload (the grade) and re-encode it."""
    prefix, body, sig = token.split(".")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    i = raw.index(b'"grade":"') + len(b'"grade":"')
    raw = raw[:i] + (b"B" if raw[i:i + 1] == b"A" else b"A") + raw[i + 1:]
    return ".".join([prefix, base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), sig])


# --- rules and refusal ------------------------------------------------------------------


def test_failing_site_is_refused_with_each_failed_rule(env, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("certify", env["bad"], "--db", env["db"])
    assert r.code == 1, r
    failed = [line.split()[1].rstrip(":") for line in r.out.splitlines() if line.strip().startswith("FAILED")]
    assert failed == ["grade.minimum", "findings.severity"], r.out
    assert "tls.cert.expired (critical)" in r.out
    with storage.session_scope(env["db"]) as s:
        assert s.exec(select(Certificate)).all() == []
        rules = {x.rule: x for x in C.certificate_rules(s, env["bad"])}
    assert set(rules) == set(RULE_IDS)
    assert rules["checks.completed"].ok and rules["level.requirements"].ok
    assert "no security level declared" in rules["level.requirements"].detail


def test_unknown_site_is_a_one_line_error(env, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("certify", "https://never-scanned.example/", "--db", env["db"])
    assert r.code == 2 and r.err.count("\n") == 1 and "run `auditor scan" in r.err, r


# --- issue, PDF, QR, verify ---------------------------------------------------------------


@pytest.fixture(scope="module")
def issued(env, tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from tests.conftest import run_cli

    pdf = tmp_path_factory.mktemp("certpdf") / "certificate.pdf"
    r = run_cli("certify", env["good"], "--pdf", str(pdf), "--db", env["db"], "--key", env["key"],
                "--format", "json")
    assert r.code == 0, r
    info = json.loads(r.out)
    assert info["issued"] and info["grade"] == "A" and info["status"] == "valid"
    return {**info, "pdf": str(pdf)}


def test_key_is_generated_with_mode_0600(env, issued, cli) -> None:  # type: ignore[no-untyped-def]
    mode = stat.S_IMODE(os.stat(env["key"]).st_mode)
    assert mode == 0o600
    r = cli("certificates", "public-key", "--key", env["key"])
    assert r.code == 0 and r.out.startswith("-----BEGIN PUBLIC KEY-----"), r
    os.chmod(env["key"], 0o644)
    try:
        with pytest.raises(AuditorError, match="chmod 600"):
            C.load_issuer_key(env["key"])
    finally:
        os.chmod(env["key"], 0o600)


def test_certificate_pdf_reads_back(env, issued) -> None:  # type: ignore[no-untyped-def]
    pdf = Path(issued["pdf"])
    text = _text(pdf)
    assert "CHỨNG NHẬN TÍN NHIỆM MẠNG" in text
    assert "Network Trust Certificate" in text  # the English subtitle of the Vietnamese document
    assert env["good"] in text
    assert "Chưa khai báo cấp độ an toàn" in text  # a site of no inventoried system
    assert "Không thuộc hệ thống thông tin đã kiểm kê" in text
    assert issued["serial"] in text
    assert "Xếp hạng" in text and " A " in text
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+1$", info, re.M), info
    assert f"Chứng nhận Tín nhiệm mạng {issued['serial']}" in info


def test_qr_code_decodes_to_a_token_that_verifies(env, issued, tmp_path, cli) -> None:  # type: ignore[no-untyped-def]
    texts = _qr_texts(Path(issued["pdf"]), tmp_path)
    assert texts == [issued["token"]]
    r = cli("verify", texts[0], "--db", env["db"], "--key", env["key"])
    assert r.code == 0 and r.out.startswith("VALID"), r
    # The PDF's metadata carries the same token, so the file itself verifies too.
    assert C.read_pdf_token(issued["pdf"]) == issued["token"]
    r = cli("verify", issued["pdf"], "--db", env["db"], "--key", env["key"])
    assert r.code == 0 and r.out.startswith("VALID"), r
    r = cli("verify", issued["serial"], "--db", env["db"], "--key", env["key"])
    assert r.code == 0 and r.out.startswith("VALID"), r


def test_one_byte_of_payload_changed_is_forged(env, issued, cli) -> None:  # type: ignore[no-untyped-def]
    forged = _tamper(issued["token"])
    assert forged != issued["token"]
    r = cli("verify", forged, "--db", env["db"], "--key", env["key"])
    assert r.code == 1 and r.out.startswith("FORGED"), r
    # A flipped character anywhere in the encoded token is caught as well.
    body = issued["token"]
    i = len(body) // 2
    flipped = body[:i] + ("A" if body[i] != "A" else "B") + body[i + 1:]
    with storage.session_scope(env["db"]) as s:
        assert C.verify(flipped, s, key_path=env["key"]).status == "FORGED"
        assert C.verify("TNM1.not-base64!.x", s, key_path=env["key"]).status == "FORGED"
        # The genuine token with a character outside base64url added, or with padding: not the token.
        prefix, body, sig = issued["token"].split(".")
        for odd in (f"{prefix}.{body}!.{sig}", f"{prefix}.{body}.{sig}==", f"{prefix}.{body}.{sig}+"):
            assert C.verify(odd, s, key_path=env["key"]).status == "FORGED", odd
    # A payload that is not JSON (or JSON nested too deep to parse) is a forgery, told in one line.
    for payload in (b"not json", b"[" * 5000):
        token = f"TNM1.{base64.urlsafe_b64encode(payload).rstrip(b'=').decode()}.AAAA"
        r = cli("verify", token, "--db", env["db"], "--key", env["key"])
        assert r.code == 1 and r.out.startswith("FORGED") and "payload is not JSON" in r.out, r
        assert r.err == "", r


def test_signed_with_another_key_is_forged(env, issued) -> None:  # type: ignore[no-untyped-def]
    with storage.session_scope(env["db"]) as s:
        cert = C.get_certificate(s, issued["serial"])
        assert cert is not None
        other = Ed25519PrivateKey.generate()
        token = C.make_token(cert.payload, C.sign_payload(cert.payload, other))
        result = C.verify(token, s, key_path=env["key"])
    assert result.status == "FORGED", result


def test_tampered_register_row_is_forged(env, issued) -> None:  # type: ignore[no-untyped-def]
    """Editing the stored payload (e.g. the grade) behind the tool's back breaks the signature."""
    with storage.session_scope(env["db"]) as s:
        cert = C.get_certificate(s, issued["serial"])
        assert cert is not None
        saved = dict(cert.payload)
        cert.payload = {**saved, "expires": "2099-01-01T00:00:00Z"}
        s.add(cert)
        s.flush()
        assert C.verify(issued["serial"], s, key_path=env["key"]).status == "FORGED"
        assert C.verify(issued["token"], s, key_path=env["key"]).status == "FORGED"
        cert.payload = saved
        s.add(cert)


def test_unknown_serial_and_bad_input(env, issued, cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = cli("verify", "TNM-2026-0000000000", "--db", env["db"], "--key", env["key"])
    assert r.code == 1 and r.out.startswith("UNKNOWN"), r
    not_pdf = tmp_path / "x.pdf"
    not_pdf.write_text("not a pdf")
    r = cli("verify", str(not_pdf), "--db", env["db"], "--key", env["key"])
    assert r.code == 2 and "cannot read PDF" in r.err and r.err.count("\n") == 1, r
    # A broken PDF that trips pypdf (an /Info object that refers to itself, a wrong startxref):
    # one line, none of pypdf's own warnings, no internal error.
    looped = tmp_path / "looped.pdf"
    looped.write_bytes(b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>"
                       b"endobj\n3 0 obj 3 0 R endobj\ntrailer<</Root 1 0 R/Info 3 0 R>>\nstartxref\n0\n%%EOF")
    r = cli("verify", str(looped), "--db", env["db"], "--key", env["key"])
    assert r.code == 2 and "cannot read PDF" in r.err and r.err.count("\n") == 1, r
    r = cli("verify", issued["serial"], "--db", env["db"], "--key", str(tmp_path / "missing.pem"))
    assert r.code == 2 and "no issuer key" in r.err, r


# --- lifecycle ------------------------------------------------------------------------------


def _failing_copy(s, scan_id: int) -> int:  # type: ignore[no-untyped-def]
    """A later, completed scan of the same site that raises a critical finding."""
    src = s.get(Scan, scan_id)
    data = src.model_dump(exclude={"id"})
    data.update(started_at=utcnow(), finished_at=utcnow(), grade="F", score=60,
                counts={"critical": 1, "high": 0, "medium": 0, "low": 0, "info": 0}, result_hash="0" * 64)
    scan = Scan(**data)
    s.add(scan)
    s.flush()
    s.add(FindingRecord(scan_id=scan.id, finding_id="tls.cert.expired", check="tls", severity="critical",
                        title="Certificate expired", evidence="notAfter in the past"))
    s.flush()
    return int(scan.id)


def test_suspend_reinstate_renew(env, issued) -> None:  # type: ignore[no-untyped-def]
    with storage.session_scope(env["db"]) as s:
        cert = C.get_certificate(s, issued["serial"])
        good_scan = cert.scan_id
        bad_scan = _failing_copy(s, good_scan)
        t = C.reassess(s, env["good"], bad_scan, key_path=env["key"])
        assert (t.action, t.old_status, t.new_status, t.serial) == ("suspend", "valid", "suspended", issued["serial"])
        assert any(r.startswith("findings.severity") for r in t.reasons)
        assert f"scan #{bad_scan}" in cert.status_reason and "grade.minimum" in cert.status_reason
        assert C.verify(issued["token"], s, key_path=env["key"]).status == "SUSPENDED"
        # A re-audit that passes again brings it back.
        t = C.reassess(s, env["good"], good_scan, key_path=env["key"])
        assert (t.action, t.new_status) == ("reinstate", "valid")
        assert C.verify(issued["serial"], s, key_path=env["key"]).status == "VALID"
        # Far from expiry a passing re-audit keeps the certificate; near expiry it renews.
        assert C.reassess(s, env["good"], good_scan, key_path=env["key"]).action == "keep"
        near = cert.expires_at - timedelta(days=10)
        # "Near expiry" is simulated with the same scans a year on: lift the scan-age rule here
        # (a real re-audit rests on the scan it has just made).
        aged = dataclasses.replace(resolve_policy(None), certificate={**resolve_policy(None).certificate,
                                                                         "max_scan_age_days": 1000})
        t = C.reassess(s, env["good"], good_scan, key_path=env["key"], now=near, policy=aged)
        assert t.action == "renew" and t.previous_serial == issued["serial"] and t.serial != issued["serial"]
        new = C.get_certificate(s, t.serial)
        assert new.expires_at > cert.expires_at and new.status == "valid"
        assert C.verify(C.certificate_token(new), s, key_path=env["key"], now=near).status == "VALID"
        # The renewed-from certificate is still live: a failed re-audit suspends it too, a pass reinstates both.
        t = C.reassess(s, env["good"], bad_scan, key_path=env["key"], now=near, policy=aged)
        assert (t.action, t.serial, t.also) == ("suspend", new.serial, [issued["serial"]])
        assert C.verify(issued["token"], s, key_path=env["key"], now=near).status == "SUSPENDED"
        t = C.reassess(s, env["good"], good_scan, key_path=env["key"], now=near, policy=aged)
        assert (t.action, t.serial, t.also) == ("reinstate", new.serial, [issued["serial"]])
        assert C.verify(issued["token"], s, key_path=env["key"], now=near).status == "VALID"
        # Put the register back as the other tests expect it.
        s.delete(new)
        for f in s.exec(select(FindingRecord).where(FindingRecord.scan_id == bad_scan)).all():
            s.delete(f)
        s.flush()
        s.delete(s.get(Scan, bad_scan))


def test_revoked_and_expired(env, issued, cli) -> None:  # type: ignore[no-untyped-def]
    # A second real scan, certified as if 400 days ago: its 365-day validity has ended.
    Auditor(db=env["db"]).scan(ScanRequest(targets=[env["good"]], resolve=env["resolve"], ca_file=env["ca"],
                                           allow_dns=False, checks=CERT_CHECKS, timeout=5.0,
                                    options={"feeds_dir": env["feeds"]}))
    with storage.session_scope(env["db"]) as s:
        old = C.issue_certificate(s, env["good"], key_path=env["key"], now=utcnow() - timedelta(days=400))
        assert old.serial != issued["serial"]
        old_token, old_serial = C.certificate_token(old), old.serial
    r = cli("verify", old_token, "--db", env["db"], "--key", env["key"])
    assert r.code == 1 and r.out.startswith("EXPIRED"), r
    r = cli("certificates", "list", "--db", env["db"], "--format", "json")
    statuses = {c["serial"]: c["status"] for c in json.loads(r.out)["certificates"]}
    assert statuses[old_serial] == "expired" and statuses[issued["serial"]] == "valid"

    r = cli("revoke", issued["serial"], "--reason", "owner asked: site moved", "--db", env["db"])
    assert r.code == 0, r
    r = cli("verify", issued["pdf"], "--db", env["db"], "--key", env["key"])
    assert r.code == 1 and r.out.startswith("REVOKED") and "site moved" in r.out, r
    r = cli("revoke", issued["serial"], "--reason", "again", "--db", env["db"])
    assert r.code == 2 and "already revoked" in r.err, r
    r = cli("revoke", "TNM-0000-NOPE", "--reason", "x", "--db", env["db"])
    assert r.code == 2, r
    r = cli("certificates", "list", "--status", "revoked", "--db", env["db"])
    assert issued["serial"] in r.out and old_serial not in r.out, r


# --- a site of an inventoried system ------------------------------------------------------


def test_system_site_certificate_names_system_and_level(env, tmp_path, cli) -> None:  # type: ignore[no-untyped-def]
    from auditor.inventory import parse_yaml, store_records

    db = f"sqlite:///{tmp_path / 'sys.db'}"
    record = f"""
- name: cong-thong-tin-so
  owner: "Sở Thông tin và Truyền thông"
  category: citizen_business
  info_types: [public, personal]
  personal_data_subjects: 5000
  sites: ["{env['good']}"]
"""
    with storage.session_scope(db) as s:
        store_records(s, parse_yaml(record))
    Auditor(db=db).scan(ScanRequest(targets=[env["good"]], resolve=env["resolve"], ca_file=env["ca"],
                                    allow_dns=False, checks=CERT_CHECKS, timeout=5.0,
                                    options={"feeds_dir": env["feeds"]}))
    # The default policy asks every level requirement to be met: owner attestations are missing.
    r = cli("certify", env["good"], "--db", db, "--key", env["key"])
    assert r.code == 1 and "FAILED level.requirements" in r.out and "needs_attestation" in r.out, r
    assert "FAILED grade.minimum" not in r.out
    # A policy that does not require them (a copy of the default with that rule off) issues it.
    policy = tmp_path / "policy"
    shutil.copytree(PROJECT / "policies" / "default", policy)
    data = yaml.safe_load((policy / "policy.yaml").read_text(encoding="utf-8"))
    data["certificate"]["require_level_requirements"] = False
    (policy / "policy.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    pdf = tmp_path / "cert-en.pdf"
    r = cli("certify", env["good"], "--db", db, "--key", env["key"], "--policy", str(policy),
            "--pdf", str(pdf), "--lang", "en")
    assert r.code == 0, r
    text = _text(pdf)
    assert "NETWORK TRUST CERTIFICATE" in text
    assert "cong-thong-tin-so" in text and "Level 2" in text
    assert "Sở Thông tin và Truyền thông" in text
    flat = " ".join(text.split())  # the criteria as the policy states them
    assert "Every check of the policy completed (tls, http, privacy, reputation)" in flat, flat
    assert "No critical or high finding" in flat
    token = C.read_pdf_token(pdf)
    payload = C.parse_token(token).payload
    assert payload["system"] == "cong-thong-tin-so" and payload["level"] == 2


def test_newest_scan_failing_refuses_even_after_an_older_pass(env, tmp_path, cli) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'failed.db'}"
    Auditor(db=db).scan(ScanRequest(targets=[env["good"]], resolve=env["resolve"], ca_file=env["ca"],
                                    allow_dns=False, checks=CERT_CHECKS, timeout=5.0,
                                    options={"feeds_dir": env["feeds"]}))
    with storage.session_scope(db) as s:
        old = s.exec(select(Scan)).one()
        s.add(Scan(site_id=old.site_id, url=old.url, host=old.host, port=old.port, status="failed",
                   error="connect timeout", started_at=utcnow(), finished_at=utcnow()))
    r = cli("certify", env["good"], "--db", db, "--key", env["key"])
    assert r.code == 1 and "FAILED scan.completed" in r.out and "connect timeout" in r.out, r


def test_a_scan_without_every_required_check_is_refused(env, tmp_path, cli) -> None:  # type: ignore[no-untyped-def]
    """Consent and privacy policy (privacy) and blocklists (reputation) are network-trust criteria
    too (Decree 137/2024): a scan of tls and http alone, however good, does not certify."""
    assert resolve_policy(None).certificate["require_checks"] == CERT_CHECKS.split(",")
    db = f"sqlite:///{tmp_path / 'partial.db'}"
    Auditor(db=db).scan(ScanRequest(targets=[env["good"]], resolve=env["resolve"], ca_file=env["ca"],
                                    allow_dns=False, checks="tls,http", timeout=5.0))
    r = cli("certify", env["good"], "--db", db, "--key", env["key"])
    assert r.code == 1, r
    failed = [line.strip() for line in r.out.splitlines() if line.strip().startswith("FAILED")]
    assert failed == ["FAILED checks.completed: privacy not run; reputation not run"], r.out


def test_concurrent_first_use_makes_one_complete_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Processes certifying at once on a fresh install all end with the one key on disk."""
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "fresh" / "issuer.pem"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: C.load_issuer_key(path), range(16)))
    on_disk = C.key_id(C.load_issuer_key(path, create=False).public_key())
    assert {C.key_id(k.public_key()) for k in keys} == {on_disk}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["issuer.pem"]  # no temporary file left


def test_the_builtin_sample_feed_is_not_enough_for_a_certificate(env, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'sample.db'}"
    for options in ({}, {"feeds_dir": str(SAMPLE_DIR)}):  # by default, or named explicitly
        Auditor(db=db).scan(ScanRequest(targets=[env["good"]], resolve=env["resolve"], ca_file=env["ca"],
                                        allow_dns=False, checks=CERT_CHECKS, timeout=5.0, options=options))
        r = cli("certify", env["good"], "--db", db, "--key", env["key"])
        assert r.code == 1, r
        failed = [line.split()[1].rstrip(":") for line in r.out.splitlines() if line.strip().startswith("FAILED")]
        assert failed == ["reputation.feeds"], r.out
        assert "built-in sample feed" in r.out


def test_a_stale_scan_does_not_certify(env, cli) -> None:  # type: ignore[no-untyped-def]
    """The scan a certificate rests on may be at most max_scan_age_days old (policy, 14)."""
    with storage.session_scope(env["db"]) as s:
        rules = {r.rule: r for r in C.certificate_rules(s, env["good"], now=utcnow() + timedelta(days=15))}
        assert not rules["scan.recent"].ok and "(at most 14)" in rules["scan.recent"].detail
        assert C.certificate_rules(s, env["good"], now=utcnow() + timedelta(days=13))[1].ok
        with pytest.raises(C.CertificationRefused, match="scan.recent"):
            C.issue_certificate(s, env["good"], key_path=env["key"], now=utcnow() + timedelta(days=15))
