"""An incomplete assessment is never a clean grade (issue 12).

A site whose only finding-free check passed but whose other requested check errored still
gets a letter grade; every output must mark that grade incomplete. The scans are real
(``Auditor.scan`` into a real SQLite file) with two server-less checks, so no lab is needed;
the lab run of a site whose HTTP check errors is in ``tests/auditor/test_scan_lab.py``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from project_paths import TESTS

from auditor import storage
from auditor.check import Check, CheckContext, CheckOutcome
from auditor.models import Scan
from auditor.results import assessment, result_hash, scan_assessment
from auditor.scanning import Auditor, ScanRequest
from auditor.targets import Target
from reports import exports
from reports.registry_site import build_registry
from reports.render import report_html
from reports.table import render_table

SITE = "https://half.example.test/"
CLEAN = "https://whole.example.test/"


class QuietCheck(Check):
    """Passes without a finding: on its own it would give grade A."""

    id = "quiet"
    title = "finds nothing"

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        return CheckOutcome()


class BrokenCheck(Check):
    """Cannot test half.example.test (as an HTTP check whose response never came)."""

    id = "broken"
    title = "cannot test one site"

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        if target.host == "half.example.test":
            return CheckOutcome(error="no response within the timeout")
        return CheckOutcome()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory, cli) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Both sites scanned once into a fresh database, inventoried in one system."""
    db = str(tmp_path_factory.mktemp("incomplete") / "audit.db")
    request = ScanRequest(targets=[SITE, CLEAN], checks=[QuietCheck(), BrokenCheck()],
                          resolve=["half.example.test:*:127.0.0.40", "whole.example.test:*:127.0.0.41"],
                          allow_dns=False)
    results = Auditor(db=db).scan(request)
    r = cli("systems", "add", "cong-mot-nua", "--owner", "Sở Thử nghiệm", "--category", "citizen_business",
            "--info-types", "public", "--site", SITE, "--site", CLEAN, "--db", db)
    assert r.code == 0, r
    return {"db": db, "results": results, "by_url": {x["url"]: x for x in results}}


def test_json_result_says_the_grade_is_incomplete(scanned: dict[str, Any]) -> None:
    half, whole = scanned["by_url"][SITE], scanned["by_url"][CLEAN]
    assert half["grade"] == "A" and half["checks"]["broken"]["status"] == "error"
    assert half["assessment"] == {"complete": False, "incomplete_checks": ["broken"]}
    assert whole["assessment"] == {"complete": True, "incomplete_checks": []}


def test_the_seal_does_not_cover_the_derived_assessment(scanned: dict[str, Any]) -> None:
    """``assessment`` derives from ``checks`` (sealed): older stored hashes stay reproducible."""
    half = scanned["by_url"][SITE]
    with storage.session_scope(scanned["db"]) as session:
        stored = storage.get_scan(session, half["scan_id"])
        assert stored is not None and stored.result_hash == result_hash(half)
    assert result_hash(half) == result_hash({k: v for k, v in half.items() if k != "assessment"})


def test_table_marks_the_grade(scanned: dict[str, Any]) -> None:
    out = render_table(scanned["results"], io.StringIO())
    assert "grade A (incomplete: broken)" in out
    assert "grade A  score" in out  # the complete site keeps a clean grade
    assert "grade incomplete: 1" in out


def test_csv_has_the_assessment_columns(scanned: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(exports.to_csv(scanned["results"]))))
    by_url = {row["url"]: row for row in rows}
    assert list(rows[0])[-2:] == ["assessment_complete", "incomplete_checks"]
    assert (by_url[SITE]["assessment_complete"], by_url[SITE]["incomplete_checks"]) == ("no", "broken")
    assert (by_url[CLEAN]["assessment_complete"], by_url[CLEAN]["incomplete_checks"]) == ("yes", "")


def test_sarif_sites_carry_the_assessment(scanned: dict[str, Any]) -> None:
    run = json.loads(exports.to_sarif(scanned["results"]))["runs"][0]
    sites = {s["url"]: s for s in run["properties"]["sites"]}
    assert sites[SITE]["assessment"] == {"complete": False, "incomplete_checks": ["broken"]}
    assert sites[CLEAN]["assessment"]["complete"] is True
    assert run["invocations"][0]["executionSuccessful"] is False


def test_history_stars_the_grade(scanned: dict[str, Any], cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("history", SITE, "--db", scanned["db"])
    assert r.code == 0, r
    line = next(x for x in r.out.splitlines() if x.split()[:1] == [str(scanned["by_url"][SITE]["scan_id"])])
    assert " A* " in line and line.endswith("completed (incomplete: broken)")
    assert "* grade incomplete" in r.out
    r = cli("history", SITE, "--db", scanned["db"], "--format", "json")
    assert json.loads(r.out)["scans"][0]["assessment"] == {"complete": False, "incomplete_checks": ["broken"]}
    clean = cli("history", CLEAN, "--db", scanned["db"])
    assert "*" not in clean.out and "incomplete" not in clean.out


def test_registry_flags_the_entry_and_the_page(scanned: dict[str, Any], tmp_path: Path) -> None:
    build_registry(scanned["db"], tmp_path / "reg")
    doc = json.loads((tmp_path / "reg" / "registry.json").read_text(encoding="utf-8"))
    by_url = {e["url"]: e for e in doc["sites"]}
    assert by_url[SITE]["assessment"] == {"complete": False, "incomplete_checks": ["broken"]}
    assert by_url[CLEAN]["assessment"] == {"complete": True, "incomplete_checks": []}
    page = (tmp_path / "reg" / "index.html").read_text(encoding="utf-8")
    assert page.count('class="badge incomplete"') == 1 and "incomplete: broken" in page
    rows = list(csv.reader(io.StringIO((tmp_path / "reg" / "registry.csv").read_text(encoding="utf-8-sig"))))
    assert rows[0][-1] == "incomplete_checks" and {r[0]: r[-1] for r in rows[1:]}[SITE] == "broken"


@pytest.mark.parametrize(("lang", "mark", "note"), [
    ("vi", "chưa đầy đủ: broken", "Đánh giá chưa đầy đủ"), ("en", "incomplete: broken", "Incomplete assessment"),
])
def test_report_marks_the_grade(scanned: dict[str, Any], lang: str, mark: str, note: str) -> None:
    with storage.session_scope(scanned["db"]) as session:
        html = report_html(session, "cong-mot-nua", lang=lang)
    assert note in html and f"{SITE} (broken)" in html
    assert html.count(f"({mark})") >= 3  # summary table, findings head, history row
    with storage.session_scope(scanned["db"]) as session:
        whole = report_html(session, CLEAN, lang=lang)
    assert mark.split(":")[0] + ":" not in whole


def test_a_requested_check_that_never_reported_is_incomplete() -> None:
    scan = Scan(site_id=1, url=CLEAN, host="whole.example.test", port=443, grade="B", status="completed",
                checks={"http": {"status": "ok", "error": None, "duration_s": 0.1}},
                options={"checks": ["tls", "http"]})
    assert scan_assessment(scan) == {"complete": False, "incomplete_checks": ["tls"]}
    assert assessment({}, ["tls"], graded=False) == {"complete": False, "incomplete_checks": ["tls"]}


def test_scans_stored_before_the_field_get_it(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """No migration: the pre-move database's scans show the assessment from their statuses."""
    db = tmp_path / "pre-move.db"
    shutil.copyfile(TESTS / "data" / "pre-move.db", db)
    r = cli("export", "--format", "json", "--db", str(db))
    assert r.code == 0, r
    results = json.loads(r.out)["results"]
    assert results and all(x["assessment"]["complete"] is (x["grade"] is not None) for x in results)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_report_pdf_text_says_incomplete(scanned: dict[str, Any], tmp_path: Path) -> None:
    from reports.render import render_report

    pdf = tmp_path / "report.pdf"
    with storage.session_scope(scanned["db"]) as session:
        render_report(session, SITE, pdf, lang="en")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "INCOMPLETE" in text and "Grade A (incomplete: broken)" in " ".join(text.split())
