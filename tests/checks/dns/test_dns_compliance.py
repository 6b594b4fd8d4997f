"""DMARC/SPF findings judge the level-4+ e-mail row of Decree 331 / TCVN 14423 (vn-law.md §3.4),
and the dns findings reach reports in Vietnamese."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import select

from auditor import storage
from auditor.compliance import evaluate_compliance
from auditor.inventory import parse_yaml, store_records
from auditor.models import FindingRecord, Scan, Site

D331 = "decree-331-2026"
URL = "https://www.example.gov.vn/"
OK = {"status": "ok", "error": None, "duration_s": 1.0}


def _system(db: str, level: int) -> int:
    with storage.session_scope(db) as s:
        store_records(s, parse_yaml(f"systems:\n  - {{name: mail{level}, owner: O, category: other, "
                                    f"declared_level: {level}, sites: ['{URL}']}}\n"))
        site = s.exec(select(Site)).first()
        assert site is not None
        return site.id or 0


def _scan(db: str, site_id: int, checks: dict[str, Any], findings: tuple[str, ...], offset: int) -> int:
    with storage.session_scope(db) as s:
        scan = Scan(site_id=site_id, url=URL, host="www.example.gov.vn", port=443, status="completed",
                    checks=checks, started_at=datetime.now(UTC) + timedelta(seconds=offset))
        s.add(scan)
        s.flush()
        for fid in findings:
            s.add(FindingRecord(scan_id=scan.id or 0, finding_id=fid, check="dns", severity="medium",
                                title=fid, evidence=f"{fid} seen"))
        return scan.id or 0


def _row(db: str, system: str, rid: str) -> Any:
    with storage.session_scope(db) as s:
        res = evaluate_compliance(s, system, rules=D331)
    return next((r for r in res.requirements if r.id == rid), None)


def test_dmarc_row_is_judged_by_the_dns_check_at_level_4(db_url: str) -> None:
    site = _system(db_url, 4)
    _scan(db_url, site, {"tls": OK, "http": OK}, (), 0)
    row = _row(db_url, "mail4", "d331.email.dmarc")
    assert row is not None and row.state == "not_assessed"  # the dns check did not run
    _scan(db_url, site, {"dns": OK}, ("dns.dmarc.not_enforcing",), 1)
    row = _row(db_url, "mail4", "d331.email.dmarc")
    assert row.state == "fail" and row.findings[0]["id"] == "dns.dmarc.not_enforcing"
    _scan(db_url, site, {"dns": OK}, ("dns.caa.missing",), 2)
    assert _row(db_url, "mail4", "d331.email.dmarc").state == "pass"
    assert _row(db_url, "mail4", "d331.email.dkim").state == "needs_attestation"


def test_dmarc_row_does_not_apply_below_level_4(db_url: str) -> None:
    site = _system(db_url, 3)
    _scan(db_url, site, {"dns": OK}, ("dns.dmarc.missing",), 0)
    assert _row(db_url, "mail3", "d331.email.dmarc") is None


def test_dns_findings_have_vietnamese_text_for_reports() -> None:
    from auditor import registry

    catalogue = registry.finding_catalogue()
    dns_ids = [fid for fid in catalogue if fid.startswith("dns.")]
    assert len(dns_ids) >= 18
    for fid in dns_ids + ["http.security_txt.missing", "http.security_txt.expired", "http.security_txt.invalid"]:
        vi = catalogue[fid].translations.get("vi", {})
        assert vi.get("title") and vi.get("rationale") and vi.get("remediation"), fid
