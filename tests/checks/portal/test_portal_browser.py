"""The portal check with the shared headless Chromium: a menu built by a script, and axe-core.

Needs Debian's chromium and axe-core (scripts/install.sh installs both); skipped without them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from auditor.check import CheckContext, CheckOutcome
from auditor.lab.portal_sites import MISSING_ITEM
from auditor.lab.sites import Lab
from auditor.targets import Resolver, make_target
from checks.portal import a11y
from checks.portal.check import PortalCheck

try:
    from checks.web.browser import BrowserUnavailable, find_chromium

    find_chromium()
    HAVE_CHROMIUM = True
except (ImportError, BrowserUnavailable):
    HAVE_CHROMIUM = False

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM or a11y.axe_path() is None,
                                reason="chromium or axe-core not installed (scripts/install.sh)")


def run_portal(lab: Lab, name: str, **params: Any) -> CheckOutcome:
    resolver = Resolver(lab.resolve_args, allow_dns=False)
    target = make_target(lab.site(name).url, resolver)
    ctx = CheckContext(timeout=5, deadline=time.monotonic() + 120, resolver=resolver, ca_file=str(lab.ca_file),
                       params=params)
    return PortalCheck().run(target, ctx)


@pytest.fixture(scope="module")
def outcomes(portal_lab: Lab) -> dict[str, CheckOutcome]:
    return {name: run_portal(portal_lab, name) for name in ("portal-good", "portal-a11y", "portal-script")}


def test_complete_portal_passes_wcag_2_0_a_aa(outcomes: dict[str, CheckOutcome]) -> None:
    outcome = outcomes["portal-good"]
    assert outcome.error is None, outcome.error
    assert outcome.findings == []
    observed = outcome.evidence["observed"]["a11y"]
    assert observed["tags"] == ["wcag2a", "wcag2aa"] and observed["engine"].startswith("axe-core 4.")
    assert len(observed["pages"]) == 3 and observed["rules"] == []
    rows = {r["key"]: r for r in outcome.evidence["checklist"]}
    assert rows["accessibility"]["state"] == "present"
    assert outcome.evidence["browser"]["other_hosts"] == "refused"


def test_planted_violations_are_counted_by_impact_with_elements(outcomes: dict[str, CheckOutcome]) -> None:
    outcome = outcomes["portal-a11y"]
    assert outcome.error is None, outcome.error
    assert {f.id for f in outcome.findings} == {"portal.a11y.violation"}
    by_rule = {f.details["rule"]: f for f in outcome.findings}
    assert set(by_rule) == {"image-alt", "label", "color-contrast"}
    assert by_rule["image-alt"].details["impact"] == "critical"
    assert by_rule["image-alt"].details["elements"] == ["img"]
    assert by_rule["label"].details["elements"] == ['input[type="text"]']
    assert by_rule["color-contrast"].details["impact"] == "serious"
    assert all(f.details["count"] == 1 and f.url.endswith(".labtinh.gov.vn/") for f in outcome.findings)
    row = next(r for r in outcome.evidence["checklist"] if r["key"] == "accessibility")
    assert row["state"] == "missing" and row["details"]["by_impact"] == {"critical": 2, "serious": 1}


def test_script_menu_is_read_through_the_browser(outcomes: dict[str, CheckOutcome]) -> None:
    outcome = outcomes["portal-script"]
    assert outcome.error is None, outcome.error
    assert outcome.findings == []
    home = outcome.evidence["observed"]["pages"][0]
    assert home["via"] == "browser" and len(home["links"]) > 10
    rows = {r["key"]: r for r in outcome.evidence["checklist"]}
    assert all(rows[item]["state"] == "present" for item in MISSING_ITEM.values())


def test_missing_axe_is_a_check_error_that_says_how_to_install(
        portal_lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv(a11y.AXE_ENV, str(tmp_path / "no-axe.min.js"))
    outcome = run_portal(portal_lab, "portal-no-english")
    assert outcome.error and "axe-core not found" in outcome.error and "npm install" in outcome.error
    assert [f.id for f in outcome.findings] == ["portal.english.missing"]  # what could be judged is kept
