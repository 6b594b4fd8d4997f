"""portal: whether a state agency's portal publishes what the portal decree in force lists.

Runs on systems inventoried as state portals (the ``state_portal`` attribute) and on demand
(``--checks portal``). It reads the site with the shared bounded crawl plus a few bounded fetches
of its own (:mod:`checks.portal.collect`), renders the home page in headless Chromium when its
menu needs scripts, runs axe-core on a sample of pages (:mod:`checks.portal.a11y`), and judges
the stored facts (:mod:`checks.portal.analyse`) against the checklist of the decree in force on
the scan date (``policies/<policy>/portal/*.yaml``, :mod:`checks.portal.rules`).

Every checklist row is stored in the evidence (``checklist``) with its state: present (with the
page URL), missing, or could not judge. A row that could not be judged makes the check an error
naming it, so an untested item never reads as a pass; the findings raised for the rows that
could be judged are kept.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from auditor.catalogue import catalogue_of
from auditor.check import Check, CheckContext, CheckOutcome, Finding
from auditor.errors import AuditorError
from auditor.targets import Target
from checks.portal import a11y
from checks.portal.analyse import MISSING, UNJUDGED, Observed, Row, checklist
from checks.portal.collect import collect
from checks.portal.rules import Decree, decree_for
from checks.web.crawl import shared_crawl

CATALOGUE = catalogue_of("checks.portal")
NOT_A_PORTAL = frozenset({"", "none", "no", "false"})
MAX_A11Y_FINDINGS = 30


def portal_kind(ctx: CheckContext) -> str:
    """The declared ``state_portal`` kind of the target's inventoried system ("" when none)."""
    system = ctx.system or {}
    attrs = system.get("attributes") or {}
    value = str(attrs.get("state_portal") or "").strip().lower()
    return "" if value in NOT_A_PORTAL else value


def scan_date(ctx: CheckContext) -> date:
    """The date whose decree is in force: the ``portal.date`` parameter (tests, re-judging), else today (UTC)."""
    raw = ctx.param("portal.date") or ""
    if raw:
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            raise AuditorError(f"portal.date must be YYYY-MM-DD, got {raw!r}") from None
    return datetime.now(UTC).date()


class PortalCheck(Check):
    id = "portal"
    title = "State portal content (Decree 42/2022 → 224/2026)"
    description = ("Mandatory sections, search, print, links, English pages, .gov.vn naming and "
                   "WCAG 2.0 A/AA (axe-core) of a state agency's portal")
    catalogue = CATALOGUE
    parameters = {
        "portal.decree": "",  # a checklist file name (portal/<name>.yaml); "" = the one in force
        "portal.date": "",
        "portal.extra_pages": 24,
        "portal.min_menu_links": 4,
        "portal.accessibility": True,
    }

    def applies(self, target: Target, ctx: CheckContext) -> bool:
        return bool(portal_kind(ctx))

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        decree = decree_for(ctx.policy_files.file("portal"), scan_date(ctx), str(ctx.param("portal.decree") or "") or None)
        crawl = shared_crawl(target, ctx)
        evidence: dict[str, Any] = {"decree": decree.id, "decree_verified": decree.verified,
                                    "crawl": crawl.evidence(20)}
        if not crawl.ok:
            return CheckOutcome.failed(f"the crawl reached no page of the site: {crawl.failure_reason()}", evidence)
        browser = a11y.browser_or_reason(target, ctx)
        check_a11y = bool(ctx.param("portal.accessibility", True))
        try:
            obs = collect(target, ctx, crawl, decree, kind=portal_kind(ctx),
                          render_home=browser.render_html if browser.ok else None, render_error=browser.reason,
                          extra_pages=int(ctx.param("portal.extra_pages", 24)),
                          min_menu_links=int(ctx.param("portal.min_menu_links", 4)))
            if check_a11y:
                obs.a11y = a11y.audit(target, ctx, obs, decree, browser)
        finally:
            browser.close()
        if browser.used:
            evidence["browser"] = browser.last_evidence
        evidence["observed"] = obs.to_dict()
        return judge(self, obs, decree, evidence, accessibility=check_a11y)


def judge(check: Check, obs: Observed, decree: Decree, evidence: dict[str, Any], *,
          accessibility: bool = True) -> CheckOutcome:
    """Findings and the checklist from collected facts (no network): also used to re-judge stored evidence."""
    rows = checklist(obs, decree, accessibility=accessibility)
    evidence["checklist"] = [r.to_dict() for r in rows]
    findings: list[Finding] = []
    for row in rows:
        if row.state == MISSING:
            findings.extend(_findings(check, row, obs))
    unjudged = [r for r in rows if r.state == UNJUDGED and not r.key.startswith("english.")
                and not r.details.get("disabled")]
    if unjudged:
        by_reason: dict[str, list[str]] = {}
        for r in unjudged:
            by_reason.setdefault(r.reason, []).append(r.key)
        why = "; ".join(f"{', '.join(keys)}: {reason}" for reason, keys in list(by_reason.items())[:3])
        return CheckOutcome(findings=findings, evidence=evidence,
                            error=f"could not judge {len(unjudged)} portal item(s): {why}"[:900])
    return CheckOutcome(findings=findings, evidence=evidence)


def _findings(check: Check, row: Row, obs: Observed) -> list[Finding]:
    url = row.url or obs.home_url
    base = {"item": row.key, "article": row.article, "verified": row.verified}
    if row.group == "section":
        return [check.finding("portal.section.missing", f"{row.title_en} ({row.article}): {row.reason}", url=url,
                              title_vi=row.title_vi, **base, **row.details)]
    if row.key == "search":
        fid = "portal.search.broken" if row.details.get("attempts") else "portal.search.missing"
        return [check.finding(fid, row.reason, url=url, **base, **row.details)]
    if row.key == "print":
        return [check.finding("portal.print.missing", row.reason, url=url, **base, **row.details)]
    if row.key == "state_portal_links":
        fid = "portal.links.broken" if row.details.get("broken") else "portal.links.missing"
        return [check.finding(fid, row.reason, url=url, **base, **row.details)]
    if row.key == "english":
        return [check.finding("portal.english.missing", row.reason, url=url, **base, **row.details)]
    if row.key == "domain":
        return [check.finding("portal.domain.nonstandard", row.reason, url=obs.home_url, **base)]
    if row.key == "accessibility":
        out: list[Finding] = []
        for v in (obs.a11y.get("rules") or [])[:MAX_A11Y_FINDINGS]:
            targets = [str(t) for t in (v.get("targets") or [])][:5]
            out.append(check.finding(
                "portal.a11y.violation",
                f"axe {v.get('id')} ({v.get('impact') or 'unknown'}): {v.get('count')} element(s), "
                f"e.g. {targets[0] if targets else '?'} — {v.get('help', '')}",
                url=str(v.get("url") or url), rule=v.get("id"), impact=v.get("impact"), count=v.get("count"),
                elements=targets, wcag=v.get("tags") or [], pages=v.get("pages") or [], **base))
        return out
    return []
