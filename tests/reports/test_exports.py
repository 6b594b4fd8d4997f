"""CSV and SARIF exports of real scans of loopback sites (lab on 127.0.4.30+).

SARIF is validated against the official SARIF 2.1.0 JSON schema shipped in tests/data.
"""

from __future__ import annotations

import csv
import io
import json

import jsonschema
import pytest
from project_paths import TESTS

from auditor import storage
from auditor.models import FindingRecord
from reports import exports

SCHEMA = json.loads((TESTS / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


def validate_sarif(doc: dict) -> None:  # type: ignore[type-arg]
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from auditor.lab.sites import LAB_SITES, Lab

    specs = [s for s in LAB_SITES if s.name in ("good", "cert-expired", "hsts-missing")]
    lab = Lab(tmp_path_factory.mktemp("lab-exports"), specs, first_address="127.0.4.30")
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, lab):  # type: ignore[no-untyped-def]
    """``auditor scan --format sarif`` and ``--format csv`` output of the same lab, plus the db."""
    from tests.conftest import run_cli

    db = f"sqlite:///{tmp_path_factory.mktemp('exports') / 'exports.db'}"
    urls = [s.url for s in lab.sites]
    common = ["--checks", "tls,http", "--ca-file", str(lab.ca_file), "--db", db, "--no-dns"]
    for r in lab.resolve_args:
        common += ["--resolve", r]
    sarif = run_cli("scan", *urls, *common, "--format", "sarif")
    assert sarif.code == 0, sarif
    return {"db": db, "urls": urls, "sarif": json.loads(sarif.out), "common": common}


def test_scan_sarif_is_valid_with_one_rule_per_finding_id(scanned) -> None:  # type: ignore[no-untyped-def]
    doc = scanned["sarif"]
    validate_sarif(doc)
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    rule_ids = [r["id"] for r in rules]
    assert len(rule_ids) == len(set(rule_ids))
    result_ids = {r["ruleId"] for r in run["results"]}
    assert set(rule_ids) == result_ids
    assert {"tls.cert.expired", "http.hsts.missing"} <= result_ids
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
    expired = next(r for r in run["results"] if r["ruleId"] == "tls.cert.expired")
    assert expired["level"] == "error" and expired["properties"]["severity"] == "critical"
    assert expired["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("https://cert-expired.")
    rule = rules[rule_ids.index("tls.cert.expired")]
    assert rule["properties"]["security-severity"] == "9.5" and rule["help"]["text"]
    assert run["invocations"][0]["executionSuccessful"] is True
    assert [s["grade"] for s in run["properties"]["sites"]] == ["A", "F", "A"]


def test_scan_csv_one_row_per_finding(scanned, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("show", "1", "--db", scanned["db"])  # the stored scan exists
    assert r.code == 0
    from reports.cli import select_results

    with storage.session_scope(scanned["db"]) as s:
        results = select_results(s)
    rows = list(csv.DictReader(io.StringIO(exports.to_csv(results))))
    findings = sum(len(x["findings"]) for x in results)
    with_finding = [row for row in rows if row["finding_id"]]
    assert len(with_finding) == findings
    good = [row for row in rows if row["url"] == scanned["urls"][0]]
    assert len(good) == 1 and good[0]["finding_id"] == "" and good[0]["grade"] == "A"
    expired = [row for row in rows if row["finding_id"] == "tls.cert.expired"]
    assert expired and expired[0]["severity"] == "critical" and expired[0]["grade"] == "F"
    assert list(rows[0]) == list(exports.CSV_COLUMNS)


def test_scan_format_csv_from_the_cli(lab, tmp_path, cli) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'one.db'}"
    site = lab.site("hsts-missing")
    args = ["scan", site.url, "--checks", "tls,http", "--ca-file", str(lab.ca_file), "--db", db, "--no-dns"]
    for r in site.resolve:
        args += ["--resolve", r]
    r = cli(*args, "--format", "csv")
    assert r.code == 0, r
    rows = list(csv.DictReader(io.StringIO(r.out)))
    assert [row["finding_id"] for row in rows] == ["http.hsts.missing"]


def test_export_command_formats_and_filters(scanned, cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = scanned["db"]
    r = cli("export", "--format", "json", "--db", db)
    assert r.code == 0
    doc = json.loads(r.out)
    assert [x["url"] for x in doc["results"]] == sorted(scanned["urls"])
    r = cli("export", "--format", "sarif", "--url", scanned["urls"][1], "--db", db)
    sarif = json.loads(r.out)
    validate_sarif(sarif)
    assert {x["ruleId"] for x in sarif["runs"][0]["results"]} == {"tls.cert.expired"}
    r = cli("export", "--format", "csv", "--since", "2000-01-01", "--db", db, "-o", str(tmp_path / "all.csv"))
    assert r.code == 0 and "exported" in r.err
    assert (tmp_path / "all.csv").read_text(encoding="utf-8").startswith("scan_id,url,")
    r = cli("export", "--format", "json", "--since", "2999-01-01", "--db", db)
    assert json.loads(r.out)["results"] == []
    r = cli("export", "--since", "yesterday", "--db", db)
    assert r.code == 2 and "--since" in r.err and r.err.count("\n") == 1


def test_hostile_and_failed_sites_stay_valid(scanned) -> None:  # type: ignore[no-untyped-def]
    """Spreadsheet formulas are defused; odd URLs and unscannable sites keep SARIF valid."""
    from reports.cli import select_results

    with storage.session_scope(scanned["db"]) as s:
        results = select_results(s, url=scanned["urls"][1])
        s.add(FindingRecord(scan_id=results[0]["scan_id"], finding_id="http.version_disclosure", check="http",
                            severity="low", title="=HYPERLINK(\"http://evil\")", evidence="+cmd|' /C calc'!A0",
                            url="https://cert-expired.lab.auditor.test/a b\"<x>"))
        s.flush()
        results = select_results(s, url=scanned["urls"][1])
    results.append({"url": "https://127.0.4.99:9/", "host": "127.0.4.99", "port": 9, "address": None,
                    "scan_id": None, "started_at": None, "finished_at": None, "score": None, "grade": None,
                    "policy": None, "checks": {"tls": {"status": "error", "error": "connection refused"}},
                    "findings": [], "error": "connection refused"})
    rows = list(csv.DictReader(io.StringIO(exports.to_csv(results))))
    hostile = next(row for row in rows if row["finding_id"] == "http.version_disclosure")
    assert hostile["title"].startswith("'=") and hostile["evidence"].startswith("'+")
    assert rows[-1]["site_error"] == "connection refused" and rows[-1]["finding_id"] == ""
    doc = exports.to_sarif_dict(results)
    validate_sarif(doc)
    inv = doc["runs"][0]["invocations"][0]
    assert inv["executionSuccessful"] is False
    assert any("connection refused" in n["message"]["text"] for n in inv["toolExecutionNotifications"])
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in doc["runs"][0]["results"]]
    assert all(" " not in u and '"' not in u and "<" not in u for u in uris)
