"""The certificate rules: whether one stored scan of a site deserves a certificate.

The rules come from the policy's ``certificate:`` section and read only what is stored
(the scan, its findings, its check runs, the site's system), so the same verdict can be
reached again later from the database alone. Each rule yields a :class:`RuleCheck` with a
stable id (:data:`RULE_IDS`) that reports and refusals name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

import policies
from auditor import storage
from auditor.check import Severity
from auditor.errors import AuditorError
from auditor.models import CheckRun, FindingRecord, InformationSystem, Scan, Site, utcnow
from auditor.results import iso

GRADE_ORDER = policies.GRADE_ORDER

RULE_IDS = (
    "scan.completed",
    "scan.recent",
    "grade.minimum",
    "findings.severity",
    "checks.completed",
    "reputation.feeds",  # only when the policy requires the reputation check
    "level.requirements",
)


@dataclass
class RuleCheck:
    """One certificate rule and whether the scan satisfies it. ``rule`` is a stable id."""

    rule: str
    ok: bool
    detail: str


class CertificationRefused(AuditorError):
    """Raised by ``issue_certificate`` with every rule that failed."""

    def __init__(self, site_url: str, failed: list[RuleCheck]) -> None:
        self.site_url = site_url
        self.failed = failed
        names = ", ".join(r.rule for r in failed)
        super().__init__(f"certificate refused for {site_url}: {len(failed)} rule(s) failed ({names})")


def resolve_policy(policy: Any) -> policies.Policy:
    """A loaded policy from what callers pass: None (the default policy), a policy, or a directory."""
    if policy is None:
        return policies.load_policy()
    if isinstance(policy, policies.Policy):
        return policy
    return policies.load_policy(policy)


# --- the stored scan the rules judge ------------------------------------------------------


def find_site(session: Session, site_url: str) -> Site:
    """The stored site for a URL as the user typed it (normalised like ``auditor scan`` does)."""
    from auditor.targets import parse_target

    site = session.exec(select(Site).where(Site.url == site_url)).first()
    if site is None:
        try:
            url = parse_target(site_url)[0]
        except AuditorError:
            url = site_url
        site = session.exec(select(Site).where(Site.url == url)).first()
    if site is None:
        raise AuditorError(f"no scans of {site_url}: run `auditor scan {site_url}` first")
    return site


def latest_finished_scan(session: Session, site: Site) -> Scan | None:
    """The site's newest finished scan (completed or failed; running and interrupted ones are not results)."""
    return storage.latest_scan(session, site.url)


def scan_for(session: Session, site: Site, scan_id: int | None) -> Scan | None:
    """``scan_id``, else the site's newest finished scan (completed or not).

    A certificate rests on the latest verdict: when the newest scan failed (site
    unreachable), an older completed scan does not stand in for it.
    """
    if scan_id is None:
        return latest_finished_scan(session, site)
    scan = session.get(Scan, scan_id)
    if scan is None or scan.site_id != site.id:
        raise AuditorError(f"scan #{scan_id} is not a scan of {site.url}")
    return scan


# --- the rules ------------------------------------------------------------------------------


def certificate_rules(
    session: Session, site_url: str, *, scan_id: int | None = None, policy: Any = None,
    now: datetime | None = None,
) -> list[RuleCheck]:
    """Evaluate the policy's certificate rules on the latest finished scan (or ``scan_id``).

    Rules (policy ``certificate:`` section): a completed scan exists; its grade is at least
    ``min_grade``; no finding has a severity in ``forbidden_severities``; every check in
    ``require_checks`` ran without error and no check that ran is in error; when the site
    belongs to an inventoried system and ``require_level_requirements`` is set, every
    requirement of the system's level is met or attested. A site of no system is judged on
    the network-trust criteria alone.
    """
    pol = resolve_policy(policy)
    cfg = pol.certificate
    site = find_site(session, site_url)
    scan = scan_for(session, site, scan_id)
    if scan is None:
        return [RuleCheck("scan.completed", False, f"no completed scan of {site.url}")]
    if scan.status != "completed":
        why = f": {scan.error}" if scan.error else ""
        return [RuleCheck("scan.completed", False, f"scan #{scan.id} is {scan.status}{why}")]
    out = [
        RuleCheck("scan.completed", True, f"scan #{scan.id} completed {iso(scan.finished_at or scan.started_at)}"),
        _recent_rule(scan, int(cfg.get("max_scan_age_days", 14)), now or utcnow()),
        _grade_rule(scan, str(cfg.get("min_grade", "B"))),
        _severity_rule(session, scan, forbidden_severities(pol)),
        _checks_rule(scan, [str(c) for c in cfg.get("require_checks", [])]),
    ]
    if feeds_rule_applies(pol):
        feeds_rule = _feeds_rule(session, scan)
        if feeds_rule is not None:
            out.append(feeds_rule)
    out.append(_level_rule(session, site, pol, bool(cfg.get("require_level_requirements", True))))
    return out


def _recent_rule(scan: Scan, max_age: int, now: datetime) -> RuleCheck:
    """The scan is at most ``max_age`` days old: a certificate does not rest on stale evidence."""
    scanned = scan.finished_at or scan.started_at
    if scanned.tzinfo is None:  # stored times are UTC
        scanned = scanned.replace(tzinfo=UTC)
    age_days = (now - scanned).total_seconds() / 86400
    return RuleCheck("scan.recent", age_days <= max_age,
                     f"scan #{scan.id} is {max(0.0, age_days):.1f} days old (at most {max_age})")


def _grade_rule(scan: Scan, min_grade: str) -> RuleCheck:
    grade = scan.grade or "F"
    ok = _grade_rank(grade) <= _grade_rank(min_grade)
    return RuleCheck("grade.minimum", ok, f"grade {grade} (minimum {min_grade})")


def _severity_rule(session: Session, scan: Scan, forbidden: list[str]) -> RuleCheck:
    findings = session.exec(select(FindingRecord).where(FindingRecord.scan_id == scan.id)).all()
    bad = sorted({f"{f.finding_id} ({f.severity})" for f in findings if f.severity in forbidden})
    return RuleCheck(
        "findings.severity", not bad,
        ("findings of forbidden severity: " + ", ".join(bad)) if bad
        else f"no {' or '.join(forbidden)} finding",
    )


def _checks_rule(scan: Scan, required: list[str]) -> RuleCheck:
    ran = dict(scan.checks or {})
    missing = [c for c in required if c not in ran]
    errored = sorted(c for c, st in ran.items() if (st or {}).get("status") != "ok")
    problems = [f"{c} not run" for c in missing] + [f"{c} in error" for c in errored]
    return RuleCheck(
        "checks.completed", not problems,
        "; ".join(problems) if problems else "checks completed: " + ", ".join(sorted(ran)),
    )


def feeds_rule_applies(pol: policies.Policy) -> bool:
    """Whether certificates need the reputation check to have used real feeds (policy default: yes)."""
    cfg = pol.certificate
    return "reputation" in [str(c) for c in cfg.get("require_checks", [])] and bool(cfg.get("require_real_feeds", True))


def _feeds_rule(session: Session, scan: Scan) -> RuleCheck | None:
    """The reputation check must have used real blocklist feeds, not the built-in test sample.

    None when the check did not run: ``checks.completed`` already says so.
    """
    run = session.exec(
        select(CheckRun).where(CheckRun.scan_id == scan.id, CheckRun.check == "reputation")
    ).first()
    if run is None:
        return None
    feeds = (run.evidence or {}).get("feeds") or {}
    if not feeds:
        return RuleCheck("reputation.feeds", False, "no record of the blocklist feeds the reputation check used")
    if feeds.get("builtin_sample"):
        return RuleCheck("reputation.feeds", False,
                         "blocklists checked only against the built-in sample feed: scan with --feeds DIR "
                         "or AUDITOR_FEEDS")
    return RuleCheck("reputation.feeds", True, f"blocklist feeds: {feeds.get('directory') or 'given'}")


def forbidden_severities(pol: policies.Policy) -> list[str]:
    """The severities no finding of a certified scan may have (policy, default critical and high)."""
    return [Severity.parse(s).value for s in pol.certificate.get("forbidden_severities", ["critical", "high"])]


def _level_rule(session: Session, site: Site, pol: policies.Policy, required: bool) -> RuleCheck:
    if site.system_id is None:
        return RuleCheck("level.requirements", True, "no inventoried system: no security level declared; "
                         "judged on the network-trust criteria alone")
    system = session.get(InformationSystem, site.system_id)
    if system is None:
        return RuleCheck("level.requirements", True, "no inventoried system: no security level declared")
    if not required:
        return RuleCheck("level.requirements", True, "not required by the policy")
    try:
        from auditor.compliance import evaluate_compliance
    except ImportError:
        return RuleCheck("level.requirements", False, "compliance evaluation is not available in this installation")
    result = evaluate_compliance(session, system.name, policy_dir=pol.directory)
    unmet = [f"{r.id} ({r.state})" for r in result.requirements if r.state not in ("pass", "attested")]
    level = result.level
    if unmet:
        return RuleCheck("level.requirements", False, f"level {level} requirements not met: " + ", ".join(unmet))
    return RuleCheck("level.requirements", True, f"every level {level} requirement met or attested "
                     f"({len(result.requirements)})")


def _grade_rank(grade: str) -> int:
    return GRADE_ORDER.index(grade) if grade in GRADE_ORDER else len(GRADE_ORDER)
