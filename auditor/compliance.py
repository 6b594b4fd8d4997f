"""Level compliance: a system's latest scans and attestations against its level's requirements.

The requirement catalogue of a rule set (``policies/<dir>/requirements/<rules>.yaml``, read by
:mod:`policies.requirements`) says, per requirement, which levels it applies to and how it is judged:

- by finding ids: **fail** when any of them is present in the latest scan of any of the
  system's sites; **not assessed** when a site has no scan, or the check family that raises
  one of those ids (the id's first component: ``tls``, ``http``, ``ports``...) did not run or
  ended in error there — an untested property is never a pass; **pass** otherwise;
- by attestation: **attested** when the owner recorded evidence (still within the
  requirement's ``attestation_valid_days``), else **needs attestation**.

The level judged against is the stricter of the computed and the declared level; a
difference between them is reported by the classification, never hidden.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session

from auditor import storage
from auditor.errors import AuditorError
from auditor.inventory import get_system, level_attrs, sites_of
from auditor.models import Attestation, FindingRecord, Scan, utcnow
from auditor.results import iso
from policies.levels import Classification, classify, ruleset_for
from policies.requirements import Requirement, find_requirement, load_requirements

STATES = ("fail", "not_assessed", "needs_attestation", "attested", "pass")
MAX_EVIDENCE_CHARS = 200_000


# --- results ---------------------------------------------------------------------------------


@dataclass
class RequirementStatus:
    id: str
    title_vi: str
    title_en: str
    source: str
    verified: bool
    judged_by: str
    state: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    attestation: dict[str, Any] | None = None
    detail: str = ""
    finding_ids: list[str] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title_vi": self.title_vi, "title_en": self.title_en, "source": self.source,
            "verified": self.verified, "levels": list(self.levels), "judged_by": self.judged_by,
            "finding_ids": list(self.finding_ids), "state": self.state, "detail": self.detail,
            "findings": list(self.findings), "attestation": self.attestation,
        }


@dataclass
class ComplianceResult:
    system: str
    owner: str
    level: int
    rules: str
    classification: Classification
    sites: list[dict[str, Any]]
    requirements: list[RequirementStatus]
    evaluated_at: str = ""

    @property
    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATES}
        for r in self.requirements:
            out[r.state] = out.get(r.state, 0) + 1
        return out

    @property
    def compliant(self) -> bool:
        c = self.counts
        return c["fail"] == 0 and c["needs_attestation"] == 0 and c["not_assessed"] == 0

    def to_dict(self) -> dict[str, Any]:
        cls = self.classification
        return {
            "system": self.system,
            "owner": self.owner,
            "level": self.level,
            "rules": self.rules,
            "evaluated_at": self.evaluated_at,
            "classification": {
                **cls.to_dict(),
                "reasons": [
                    {**r.to_dict(), "text_vi": r.text_vi, "verified": r.verified} for r in cls.reasons
                ],
            },
            "compliant": self.compliant,
            "counts": self.counts,
            "sites": list(self.sites),
            "requirements": [r.to_dict() for r in self.requirements],
        }


# --- evaluation -------------------------------------------------------------------------------


def _cutoff(on: date | None) -> _dt.datetime | None:
    """Scans and attestations after the evaluation date do not count (None: now)."""
    if on is None:
        return None
    return _dt.datetime.combine(on + timedelta(days=1), _dt.time(), tzinfo=_dt.UTC)


def _aware(dt: _dt.datetime) -> _dt.datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=_dt.UTC)


def latest_assessed_scan(session: Session, url: str, before: _dt.datetime | None = None) -> Scan | None:
    """The newest finished scan of a site (completed, or failed: the site could not be scanned)."""
    return storage.latest_scan(session, url, before=before)


def _judge_findings(req: Requirement, site_scans: list[tuple[str, Scan | None, list[FindingRecord]]]
                    ) -> tuple[str, list[dict[str, Any]], str]:
    wanted = set(req.finding_ids)
    fails: list[dict[str, Any]] = []
    gaps: list[str] = []
    if not site_scans:
        gaps.append("the system has no websites in the inventory")
    for url, scan, findings in site_scans:
        if scan is None:
            gaps.append(f"{url} has not been scanned")
            continue
        for f in findings:
            if f.finding_id in wanted:
                fails.append({"id": f.finding_id, "url": f.url or scan.url, "evidence": f.evidence,
                              "scan_id": scan.id, "severity": f.severity, "title": f.title})
        runs = scan.checks or {}
        for check in req.checks:
            run = runs.get(check)
            if run is None:
                gaps.append(f"check {check} did not run in scan #{scan.id} of {url}")
            elif run.get("status") != "ok":
                gaps.append(f"check {check} erred in scan #{scan.id} of {url}: {run.get('error') or 'error'}")
    if fails:
        return "fail", fails, ""
    if gaps:
        return "not_assessed", [], "; ".join(gaps)
    return "pass", [], ""


def _judge_attestation(req: Requirement, att: Attestation | None, now: _dt.datetime
                       ) -> tuple[str, dict[str, Any] | None, str]:
    if att is None:
        return "needs_attestation", None, "no attestation recorded"
    at = _aware(att.attested_at)
    record = {"evidence": att.evidence, "by": att.attested_by, "at": iso(at)}
    if req.attestation_valid_days and now - at > timedelta(days=req.attestation_valid_days):
        return ("needs_attestation", record,
                f"the attestation of {iso(at)} is older than {req.attestation_valid_days} days")
    return "attested", record, ""


def evaluate_compliance(
    session: Session,
    system_name: str,
    *,
    rules: str | None = None,
    on: date | None = None,
    policy_dir: str | Path | None = None,
) -> ComplianceResult:
    """Judge a system's latest scans and attestations against its level's requirements.

    ``on`` evaluates as of that date (rule set in force then, scans and attestations up to
    that day); default: now.
    """
    system = get_system(session, system_name)
    today = on or _dt.datetime.now(_dt.UTC).date()
    rules = rules or ruleset_for(today, policy_dir)
    cls = classify(level_attrs(system), name=system.name, rules=rules, on=today, policy_dir=policy_dir)
    level = cls.effective_level
    if level == 0:
        raise AuditorError(
            f"cannot determine the security level of {system.name}: no criterion of {cls.rules} matches "
            "its declared attributes and it has no declared_level"
        )
    before = _cutoff(on)
    now = before - timedelta(microseconds=1) if before else utcnow()
    site_scans: list[tuple[str, Scan | None, list[FindingRecord]]] = []
    sites: list[dict[str, Any]] = []
    for site in sites_of(session, system):
        scan = latest_assessed_scan(session, site.url, before)
        findings = storage.findings_of(session, scan.id) if scan and scan.id else []
        site_scans.append((site.url, scan, findings))
        sites.append({
            "url": site.url,
            "scan_id": scan.id if scan else None,
            "grade": scan.grade if scan else None,
            "score": scan.score if scan else None,
            "scanned_at": iso(scan.started_at) if scan else None,
            "status": scan.status if scan else "not_scanned",
            "checks": {k: v.get("status") for k, v in (scan.checks or {}).items()} if scan else {},
        })
    statuses: list[RequirementStatus] = []
    attrs = level_attrs(system)
    for req in load_requirements(cls.rules, policy_dir):
        if level not in req.levels or not req.concerns(attrs):
            continue
        st = RequirementStatus(
            id=req.id, title_vi=req.title_vi, title_en=req.title_en, source=req.source,
            verified=req.verified, judged_by=req.judged_by, state="not_assessed",
            finding_ids=list(req.finding_ids), levels=list(req.levels),
        )
        if req.judged_by == "findings":
            st.state, st.findings, st.detail = _judge_findings(req, site_scans)
        else:
            att = storage.latest_attestation(session, system.id or 0, req.id, before)
            st.state, st.attestation, st.detail = _judge_attestation(req, att, now)
        statuses.append(st)
    return ComplianceResult(
        system=system.name, owner=system.owner, level=level, rules=cls.rules, classification=cls,
        sites=sites, requirements=statuses, evaluated_at=iso(now) or "",
    )


def record_attestation(
    session: Session,
    system_name: str,
    req_id: str,
    evidence: str,
    by: str,
    *,
    policy_dir: str | Path | None = None,
) -> tuple[Attestation, Requirement]:
    """Store the owner's attestation that a requirement judged by attestation is met."""
    system = get_system(session, system_name)
    req = find_requirement(req_id, policy_dir)
    if req.judged_by != "attestation":
        raise AuditorError(
            f"{req_id} is judged by findings ({', '.join(req.finding_ids)}), not by attestation: "
            "fix the findings and scan again"
        )
    evidence = evidence.strip()
    if not evidence:
        raise AuditorError("--evidence is empty")
    if len(evidence) > MAX_EVIDENCE_CHARS:
        raise AuditorError(f"evidence longer than {MAX_EVIDENCE_CHARS} characters; give a file reference instead")
    by = by.strip()[:200] or "unknown"
    return storage.add_attestation(session, system.id or 0, req.id, evidence, by), req
