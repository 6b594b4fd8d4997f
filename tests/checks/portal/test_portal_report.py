"""The portal checklist reaches the PDF compliance report from the stored scan (CLI end to end)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from auditor.lab.sites import Lab

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")


def _policy_without_a11y(tmp_path: Path) -> Path:
    from policies import DEFAULT_DIR

    policy = tmp_path / "policy"
    shutil.copytree(DEFAULT_DIR, policy)
    text = (policy / "policy.yaml").read_text(encoding="utf-8")
    assert "\nparameters:\n" in text
    (policy / "policy.yaml").write_text(
        text.replace("\nparameters:\n", "\nparameters:\n  portal.accessibility: false\n", 1), encoding="utf-8")
    return policy


def test_report_shows_the_portal_checklist(portal_lab: Lab, cli: Any, tmp_path: Path, db_url: str) -> None:
    site = portal_lab.site("portal-no-leaders")
    policy = _policy_without_a11y(tmp_path)
    resolve = [a for r in portal_lab.resolve_args for a in ("--resolve", r)]
    scan = cli("scan", site.url, "--checks", "portal", "--format", "json", "--db", db_url, "--policy", str(policy),
               "--timeout", "5", *resolve)
    assert scan.code == 0, scan  # a medium finding, nothing failed
    result = json.loads(scan.out)["results"][0]
    assert [f["id"] for f in result["findings"]] == ["portal.section.missing"]
    pdf = tmp_path / "report.pdf"
    for lang, words in (("vi", ("Danh mục nội dung cổng thông tin", "Thiếu", "Có", "Lãnh đạo cơ quan")),
                        ("en", ("State portal checklist", "Missing", "Present", "Agency leaders"))):
        out = cli("report", site.url, "--pdf", str(pdf), "--lang", lang, "--db", db_url, "--policy", str(policy))
        assert out.code == 0, out
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        flat = " ".join(text.split())
        for word in words:
            assert word in flat, (lang, word)
        assert "decree-224-2026" in flat
        # the evidence URL of a present item (pdftotext drops the hyphen where a URL wraps)
        assert "labtinh.gov.vn/vanban" in flat.replace("-", "").replace(" ", "")


def test_comply_judges_portal_rows_of_a_state_portal_only(portal_lab: Lab, cli: Any, tmp_path: Path,
                                                          db_url: str) -> None:
    # the bundled policy: accessibility is tested too (axe-core in Chromium), so its row is judged
    pytest.importorskip("checks.web.browser")
    from checks.portal.a11y import axe_path

    if shutil.which("chromium") is None or axe_path() is None:
        pytest.skip("chromium or axe-core not installed (scripts/install.sh)")
    site = portal_lab.site("portal-no-english")
    common = ("--db", db_url)
    added = cli("systems", "add", "so-lab", "--owner", "UBND tỉnh Lab", "--category", "citizen_business",
                "--site", site.url, "--state-portal", "province_agency", "--declared-level", "2", *common)
    assert added.code == 0, added
    cli("systems", "add", "other", "--owner", "Lab", "--category", "citizen_business", "--declared-level", "2",
        *common)
    resolve = [a for r in portal_lab.resolve_args for a in ("--resolve", r)]
    scan = cli("scan", site.url, "--checks", "portal", "--format", "json", "--timeout", "5",
               "--ca-file", str(portal_lab.ca_file), *resolve, *common)
    assert scan.code == 0, scan
    assert [f["id"] for f in json.loads(scan.out)["results"][0]["findings"]] == ["portal.english.missing"]
    doc = json.loads(cli("comply", "so-lab", "--rules", "decree-331-2026", "--format", "json", *common).out)
    states = {r["id"]: r["state"] for r in doc["requirements"] if ".portal." in r["id"]}
    assert states == {"d331.portal.content": "pass", "d331.portal.functions": "pass", "d331.portal.english": "fail",
                      "d331.portal.domain": "pass", "d331.portal.accessibility": "pass"}
    other = json.loads(cli("comply", "other", "--rules", "decree-331-2026", "--format", "json", *common).out)
    assert not [r for r in other["requirements"] if ".portal." in r["id"]]
