"""The portal check against the lab portals (real HTTPS servers on 127.0.11.x).

Every lab portal must yield exactly its planted finding ids and the complete ones none; the
precision and recall over the whole set are computed and held to 1.0. Content is judged with
accessibility off here (axe-core runs in test_portal_browser.py, on fewer sites, to stay fast).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from auditor.check import CheckContext, CheckOutcome
from auditor.lab.portal_sites import MISSING_ITEM, PORTAL_SITES, PortalSiteSpec
from auditor.lab.sites import Lab
from auditor.targets import Resolver, make_target
from checks.portal.analyse import Observed
from checks.portal.check import PortalCheck, judge
from checks.portal.rules import decree_for
from policies import PolicyFiles

CONTENT_SITES = [s for s in PORTAL_SITES if s.name not in ("portal-script", "portal-a11y")]


def run_portal(lab: Lab, name: str, **params: Any) -> CheckOutcome:
    resolver = Resolver(lab.resolve_args, allow_dns=False)
    target = make_target(lab.site(name).url, resolver)
    ctx = CheckContext(timeout=5, deadline=time.monotonic() + 90, resolver=resolver,
                       params={"portal.accessibility": False, **params})
    return PortalCheck().run(target, ctx)


@pytest.fixture(scope="module")
def outcomes(portal_lab: Lab) -> dict[str, CheckOutcome]:
    with ThreadPoolExecutor(4) as pool:
        results = pool.map(lambda s: (s.name, run_portal(portal_lab, s.name)), CONTENT_SITES)
        return dict(results)


def test_lab_uses_standard_https_port(portal_lab: Lab) -> None:
    # The lab portals link to https://chinhphu.vn/ and https://dichvucong.gov.vn/ (port 443).
    assert all(site.https_port == 443 for site in portal_lab.sites)


@pytest.mark.parametrize("spec", CONTENT_SITES, ids=[s.name for s in CONTENT_SITES])
def test_each_portal_yields_exactly_its_ids(outcomes: dict[str, CheckOutcome], spec: PortalSiteSpec) -> None:
    outcome = outcomes[spec.name]
    assert outcome.error is None, outcome.error
    assert {f.id for f in outcome.findings} == set(spec.expect), [f.evidence for f in outcome.findings]
    assert len(outcome.findings) == len(spec.expect)  # one finding each, never one per page


def test_precision_and_recall(outcomes: dict[str, CheckOutcome]) -> None:
    expected = {(name, fid) for name in outcomes for fid in next(s for s in CONTENT_SITES if s.name == name).expect}
    expected |= {(name, f"item:{item}") for name, item in MISSING_ITEM.items()}
    got = {(name, f.id) for name, o in outcomes.items() for f in o.findings}
    got |= {(name, f"item:{f.details['item']}") for name, o in outcomes.items() for f in o.findings
            if f.id == "portal.section.missing"}
    tp = len(expected & got)
    precision = tp / len(got) if got else 1.0
    recall = tp / len(expected)
    print(f"\nportal lab: {len(outcomes)} portals, {len(expected)} expected, {len(got)} raised, "
          f"precision {precision:.2f}, recall {recall:.2f}")
    assert (precision, recall) == (1.0, 1.0), (expected ^ got)


@pytest.mark.parametrize("name", sorted(MISSING_ITEM))
def test_missing_item_is_named_with_its_article(outcomes: dict[str, CheckOutcome], name: str) -> None:
    [finding] = outcomes[name].findings
    assert finding.details["item"] == MISSING_ITEM[name]
    assert finding.details["article"] and "Decree 42/2022" in finding.details["article"]
    assert finding.details["verified"] is False  # the decree in force (224/2026) is unverified
    rows = {r["key"]: r for r in outcomes[name].evidence["checklist"]}
    assert rows[MISSING_ITEM[name]]["state"] == "missing"


@pytest.mark.parametrize("name", ["portal-good", "portal-plain", "portal-cp1258"])
def test_complete_portal_checklist_has_evidence_urls(outcomes: dict[str, CheckOutcome], name: str) -> None:
    evidence = outcomes[name].evidence
    assert evidence["decree"] == "decree-224-2026"
    rows = {r["key"]: r for r in evidence["checklist"]}
    host = f"{name}.labtinh.gov.vn"
    sections = [r for r in rows.values() if r["group"] == "section"]
    assert len(sections) == 10
    for row in sections:
        assert row["state"] == "present", row
        assert row["url"].startswith(f"https://{host}/") and row["url"] != f"https://{host}/", row
    assert rows["legal_documents"]["url"].endswith("/van-ban")
    assert rows["procedures"]["url"].endswith("/thu-tuc-hanh-chinh")
    for key in ("search", "print", "state_portal_links", "english", "english.organisation",
                "english.officials_contacts", "domain"):
        assert rows[key]["state"] == "present", rows[key]
    assert rows["english.officials_contacts"]["url"].endswith("/en/contacts")
    assert rows["accessibility"]["state"] == "unjudged"  # turned off in this run: never a pass
    assert "turned off by the policy" in rows["accessibility"]["reason"]


def test_stored_evidence_is_judged_again_offline(outcomes: dict[str, CheckOutcome]) -> None:
    decree = decree_for(PolicyFiles().file("portal"), __import__("datetime").date(2026, 12, 4))
    for name in ("portal-good", "portal-no-leaders", "portal-search-broken"):
        original = outcomes[name]
        import json

        stored = json.loads(json.dumps(original.evidence))  # what storage keeps
        again = judge(PortalCheck(), Observed.from_dict(stored["observed"]), decree, {}, accessibility=False)
        assert again.evidence["checklist"] == original.evidence["checklist"]
        assert [f.id for f in again.findings] == [f.id for f in original.findings]


def test_decree_42_before_its_repeal(portal_lab: Lab) -> None:
    outcome = run_portal(portal_lab, "portal-no-statistics", **{"portal.date": "2025-03-01"})
    assert outcome.evidence["decree"] == "decree-42-2022"
    [finding] = outcome.findings
    assert finding.details["item"] == "statistics" and finding.details["verified"] is True
    assert finding.details["article"].startswith("Art. 4")


def test_script_menu_without_browser_is_never_a_pass(portal_lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    from checks.portal import a11y

    monkeypatch.setattr(a11y, "browser_or_reason", lambda *a, **k: a11y.Browser(None, None, ok=False, reason="no browser in this test"))
    outcome = run_portal(portal_lab, "portal-script")
    assert outcome.error and "could not judge" in outcome.error and "no browser in this test" in outcome.error
    assert outcome.findings == []
    rows = {r["key"]: r for r in outcome.evidence["checklist"]}
    assert rows["portal_contacts"]["state"] == "present"  # the footer link needs no script
    assert all(rows[item]["state"] == "unjudged" for item in MISSING_ITEM.values() if item != "portal_contacts")


def test_english_and_search_details(outcomes: dict[str, CheckOutcome]) -> None:
    [partial] = outcomes["portal-english-partial"].findings
    assert partial.details["missing"] == ["officials_contacts"] and partial.url.endswith("/en/")
    [error] = outcomes["portal-search-error"].findings
    assert "500" in error.evidence and error.details["attempts"][0]["status"] == 500
    [no_results] = outcomes["portal-search-broken"].findings
    assert "không tìm thấy" in no_results.evidence
