"""What the PDF templates show, gathered from stored results (reports read, never scan).

Everything here is plain data; the templates escape every string (Jinja autoescape), so a
site's hostile titles, headers or URLs reach the PDF as text. Sizes are bounded so that a
site raising thousands of findings cannot make a report of thousands of pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

import policies
from auditor import registry, storage
from auditor.check import Severity
from auditor.errors import AuditorError
from auditor.models import InformationSystem, Scan, Site, utcnow
from auditor.results import scan_assessment
from auditor.version import __version__
from certificates.rules import RuleCheck, certificate_rules, forbidden_severities
from reports.charts import (
    GRADE_COLOURS,
    SEVERITY_COLOURS,
    STATE_COLOURS,
    Bar,
    Point,
    bar_chart,
    history_chart,
    stacked_bar,
)
from reports.i18n import Messages

MAX_FINDINGS_PER_SITE = 200
MAX_EVIDENCE = 1500
MAX_DETAIL_ITEMS = 8
MAX_DETAIL_VALUE = 240
HISTORY_SCANS = 12
STATES = ("pass", "attested", "needs_attestation", "fail", "not_assessed")
SEVERITIES = [s.value for s in Severity]


def clip(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def grade_colour(grade: str | None) -> str:
    return GRADE_COLOURS.get(grade or "", "#6b7785")


def incomplete_checks(scan: Scan | None) -> list[str]:
    """The requested checks a graded scan's grade lacks (empty: complete or no grade at all)."""
    if scan is None or scan.grade is None:
        return []
    return list(scan_assessment(scan)["incomplete_checks"])


@dataclass
class FindingView:
    id: str
    severity: str
    title: str
    evidence: str
    url: str | None
    references: list[str]
    details: list[tuple[str, str]]
    why: str
    fix: str


@dataclass
class PortalRow:
    """One line of a state portal's checklist (present / missing / could not judge), from stored evidence."""

    key: str
    title: str
    state: str  # present | missing | unjudged
    article: str
    verified: bool
    url: str
    reason: str


@dataclass
class SiteView:
    url: str
    scan: Scan | None
    findings: list[FindingView] = field(default_factory=list)
    more_findings: int = 0
    history: list[Scan] = field(default_factory=list)
    history_svg: str = ""
    check_errors: list[tuple[str, str]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)  # checks the grade lacks
    portal: list[PortalRow] = field(default_factory=list)  # the portal check's checklist, if it ran
    portal_decree: str = ""


@dataclass
class RequirementRow:
    id: str
    title: str
    state: str
    source: str
    verified: bool
    evidence: list[str]
    judged_by: str = ""


@dataclass
class ReportData:
    kind: str  # "system" | "site"
    lang: str
    generated_at: datetime
    tool_version: str
    policy: policies.Policy
    sites: list[SiteView]
    system: InformationSystem | None = None
    level: int | None = None
    declared_level: int | None = None
    mismatch: bool = False
    level_reasons: list[dict[str, Any]] = field(default_factory=list)
    rules: str = ""
    rules_title: str = ""
    requirements: list[RequirementRow] = field(default_factory=list)
    compliant: bool | None = None
    criteria: list[RuleCheck] = field(default_factory=list)
    grade: str | None = None
    score: int | None = None
    # "url (checks)" of each site whose grade lacks a requested check (shown marked incomplete).
    incomplete_sites: list[str] = field(default_factory=list)
    severity_counts: dict[str, int] = field(default_factory=dict)
    check_counts: dict[str, int] = field(default_factory=dict)
    state_counts: dict[str, int] = field(default_factory=dict)
    charts: dict[str, str] = field(default_factory=dict)

    @property
    def total_findings(self) -> int:
        return sum(self.severity_counts.values())


def _details(details: dict[str, Any] | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, v in list((details or {}).items())[:MAX_DETAIL_ITEMS]:
        if isinstance(v, list):
            v = ", ".join(str(x) for x in v[:20]) + (" …" if len(v) > 20 else "")
        out.append((clip(k, 60), clip(v, MAX_DETAIL_VALUE)))
    return out


def _site_view(session: Session, site: Site, catalogue: dict[str, Any], t: Messages, pol: policies.Policy) -> SiteView:
    scan = storage.latest_scan(session, site.url, statuses=("completed",)) or storage.latest_scan(
        session, site.url, statuses=None)
    view = SiteView(url=site.url, scan=scan)
    if scan is None:
        return view
    records = storage.findings_of(session, scan.id or 0)
    records.sort(key=lambda f: (-Severity.parse(f.severity).rank, f.finding_id, f.url or ""))
    for f in records[:MAX_FINDINGS_PER_SITE]:
        spec = catalogue.get(f.finding_id)
        view.findings.append(FindingView(
            id=f.finding_id, severity=f.severity, title=clip(t.finding_title(f.finding_id, f.title), 300),
            evidence=clip(f.evidence, MAX_EVIDENCE),
            url=clip(f.url, 500) if f.url else None, references=[clip(r, 200) for r in (f.references or [])[:10]],
            details=_details(f.details),
            why=t.finding_text(f.finding_id, "rationale", getattr(spec, "rationale", "") or ""),
            fix=t.finding_text(f.finding_id, "remediation", getattr(spec, "remediation", "") or ""),
        ))
    view.more_findings = max(0, len(records) - MAX_FINDINGS_PER_SITE)
    view.check_errors = [(name, clip(st.get("error"), 400)) for name, st in (scan.checks or {}).items()
                         if (st or {}).get("status") != "ok"]
    view.params = dict(scan.options or {})
    view.portal_decree, view.portal = _portal_rows(session, scan.id or 0, t)
    view.incomplete = incomplete_checks(scan)
    history = list(reversed(storage.history(session, site.url, HISTORY_SCANS)))
    view.history = history
    points = [Point(t.short_date(s.started_at), s.score, s.grade) for s in history]
    view.history_svg = history_chart(points, pol.grades)
    return view


MAX_PORTAL_ROWS = 60
PORTAL_STATES = frozenset({"present", "missing", "unjudged"})


def _portal_rows(session: Session, scan_id: int, t: Messages) -> tuple[str, list[PortalRow]]:
    """The checklist the portal check stored with the scan (its ``checklist`` evidence), if it ran."""
    for run in storage.check_runs_of(session, scan_id):
        if run.check != "portal":
            continue
        evidence = run.evidence if isinstance(run.evidence, dict) else {}
        raw = evidence.get("checklist")
        rows: list[PortalRow] = []
        for r in raw if isinstance(raw, list) else []:
            if not isinstance(r, dict) or len(rows) >= MAX_PORTAL_ROWS:
                continue
            state = str(r.get("state") or "unjudged")
            title = (r.get("title_vi") if t.lang == "vi" else r.get("title_en")) or r.get("title_en") or r.get("key")
            rows.append(PortalRow(
                key=clip(r.get("key"), 60), title=clip(title, 300),
                state=state if state in PORTAL_STATES else "unjudged", article=clip(r.get("article"), 300),
                verified=bool(r.get("verified")), url=clip(r.get("url"), 300), reason=clip(r.get("reason"), 400)))
        if not rows and run.status != "ok":
            rows.append(PortalRow("portal", t("report.portal.not_run"), "unjudged", "", True, "",
                                  clip(run.error, 400)))
        return clip(evidence.get("decree"), 80), rows
    return "", []


def _sites_of_system(session: Session, system: InformationSystem) -> list[Site]:
    return list(session.exec(select(Site).where(Site.system_id == system.id).order_by(Site.url)))


def _aggregate(data: ReportData, t: Messages) -> None:
    sev: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    by_check: dict[str, int] = {}
    worst: tuple[int, str | None, int | None] | None = None
    for v in data.sites:
        if v.scan is None or v.scan.grade is None:
            continue
        for k, n in (v.scan.counts or {}).items():
            if k in sev:
                sev[k] += int(n)
        seen: set[str] = set()
        for f in v.findings:
            if f.id not in seen:
                seen.add(f.id)
                check = f.id.split(".", 1)[0]
                by_check[check] = by_check.get(check, 0) + 1
        rank = policies.GRADE_ORDER.index(v.scan.grade) if v.scan.grade in policies.GRADE_ORDER else 99
        if worst is None or rank > worst[0] or (rank == worst[0] and (v.scan.score or 0) < (worst[2] or 0)):
            worst = (rank, v.scan.grade, v.scan.score)
    if worst is not None:
        data.grade, data.score = worst[1], worst[2]
    data.incomplete_sites = [f"{v.url} ({', '.join(v.incomplete)})" for v in data.sites if v.incomplete]
    data.severity_counts = sev
    data.check_counts = dict(sorted(by_check.items(), key=lambda kv: (-kv[1], kv[0])))
    data.charts["severity"] = bar_chart([Bar(t(f"severity.{s}"), sev[s], SEVERITY_COLOURS[s]) for s in SEVERITIES])
    checks_ran = sorted({c for v in data.sites if v.scan for c in (v.scan.checks or {})})
    for c in checks_ran:
        data.check_counts.setdefault(c, 0)
    data.charts["checks"] = bar_chart([Bar(c, n) for c, n in data.check_counts.items()] or [Bar("—", 0)])
    if data.requirements:
        counts = dict.fromkeys(STATES, 0)
        for r in data.requirements:
            counts[r.state] = counts.get(r.state, 0) + 1
        data.state_counts = counts
        data.charts["states"] = stacked_bar([Bar(t(f"state.{s}"), counts[s], STATE_COLOURS[s]) for s in STATES])
    elif data.criteria:
        ok = sum(1 for r in data.criteria if r.ok)
        data.state_counts = {"pass": ok, "fail": len(data.criteria) - ok}
        data.charts["states"] = stacked_bar([Bar(t("state.pass"), ok, STATE_COLOURS["pass"]),
                                             Bar(t("state.fail"), len(data.criteria) - ok, STATE_COLOURS["fail"])])


def rule_title(rule: str, t: Messages, pol: policies.Policy, *, system: bool) -> str:
    """A certificate rule in words, with the policy's values (minimum grade, severities, checks)."""
    key = f"rule.{rule}"
    if rule == "level.requirements" and not system:
        key = "rule.level.requirements.no_system"
    if not t.has(key):
        return rule
    severities = [t(f"severity.{s}").lower() for s in forbidden_severities(pol)]
    return t(key, min_grade=str(pol.certificate.get("min_grade", "B")),
             max_days=str(pol.certificate.get("max_scan_age_days", 14)),
             severities=f" {t('doc.or')} ".join(severities),
             checks=", ".join(str(c) for c in pol.certificate.get("require_checks", [])) or t("doc.none").lower())


def _criteria_rows(rules: list[RuleCheck], t: Messages, pol: policies.Policy, system: bool) -> list[RequirementRow]:
    source = t("rule.source", policy=f"{pol.name} {pol.version}")
    return [RequirementRow(r.rule, rule_title(r.rule, t, pol, system=system), "pass" if r.ok else "fail", source,
                           True, [r.detail]) for r in rules]


def _compliance(session: Session, system: InformationSystem, pol: policies.Policy, t: Messages) -> Any:
    try:
        from auditor.compliance import evaluate_compliance
    except ImportError:
        return None
    return evaluate_compliance(session, system.name, policy_dir=pol.directory)


def _requirement_rows(result: Any, t: Messages) -> list[RequirementRow]:
    rows = []
    for r in result.requirements:
        title = (r.title_vi if t.lang == "vi" else r.title_en) or r.title_en or r.title_vi or r.id
        evidence: list[str] = []
        for f in (r.findings or [])[:12]:
            text = f"{f.get('id')}: {clip(f.get('evidence'), 200)}"
            if f.get("url"):
                text += f" — {clip(f.get('url'), 160)}"
            evidence.append(text)
        if r.attestation:
            at = r.attestation.get("at")
            at_text = t.date(at) if isinstance(at, datetime) else clip(at, 40)
            evidence.append(t("report.req.attested_by", by=clip(r.attestation.get("by"), 100), at=at_text)
                            + ": " + clip(r.attestation.get("evidence"), 400))
        if not evidence and getattr(r, "detail", ""):
            evidence.append(clip(r.detail, 400))
        judged = str(r.judged_by or "")
        key = f"report.req.judged.{judged}"
        rows.append(RequirementRow(r.id, title, r.state, str(r.source or ""), bool(r.verified), evidence,
                                   t(key) if t.has(key) else clip(judged, 100)))
    return rows


def build_report(session: Session, target: str, *, lang: str = "vi", policy_dir: Any = None,
                 now: datetime | None = None) -> ReportData:
    """Report data for an inventoried system (by name) or for one site (by URL)."""
    t = Messages(lang)
    pol = policies.load_policy(policy_dir)
    catalogue = registry.finding_catalogue()
    system = session.exec(select(InformationSystem).where(InformationSystem.name == target)).first()
    sites: list[Site]
    if system is not None:
        sites = _sites_of_system(session, system)
        kind = "system"
    else:
        from certificates.rules import find_site

        try:
            site = find_site(session, target)
        except AuditorError:
            raise AuditorError(f"{target!r} is neither an inventoried system nor a scanned site") from None
        sites = [site]
        kind = "site"
        if site.system_id is not None:
            system = session.get(InformationSystem, site.system_id)
    data = ReportData(kind=kind, lang=t.lang, generated_at=now or utcnow(), tool_version=__version__,
                      policy=pol, sites=[_site_view(session, s, catalogue, t, pol) for s in sites], system=system)
    if system is not None:
        result = _compliance(session, system, pol, t)
        if result is not None:
            cls = result.classification
            data.level = result.level
            data.declared_level = getattr(cls, "declared_level", None)
            data.mismatch = bool(getattr(cls, "mismatch", False))
            data.rules = str(getattr(result, "rules", "") or getattr(cls, "rules", ""))
            data.rules_title = str(getattr(cls, "rules_title", "") or "")
            data.level_reasons = [
                {"level": r.level, "article": r.article,
                 "text": (getattr(r, "text_vi", "") if t.lang == "vi" else "") or r.text,
                 "verified": bool(getattr(r, "verified", True))}
                for r in cls.reasons
            ]
            data.requirements = _requirement_rows(result, t)
            data.compliant = bool(result.compliant)
        else:
            data.level = system.declared_level or system.computed_level
    if kind == "site" and not data.requirements:
        rules = certificate_rules(session, sites[0].url, policy=pol)
        data.criteria = rules
        data.requirements = []
        data.compliant = all(r.ok for r in rules)
    _aggregate(data, t)
    return data


def criteria_rows(data: ReportData, t: Messages) -> list[RequirementRow]:
    return _criteria_rows(data.criteria, t, data.policy, data.system is not None)
