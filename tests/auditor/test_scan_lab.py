"""End to end: ``auditor scan`` against the loopback lab, one site per planted flaw.

The whole lab is scanned once (through the CLI, JSON output, a real SQLite file); each test
then asserts on that result: every planted flaw yields exactly its finding id beyond what the
well-configured site yields, and the good site has nothing critical, high or medium.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from auditor.lab.sites import LAB_SITES

RESULT_KEYS = {"url", "host", "port", "address", "scan_id", "started_at", "finished_at", "score", "grade",
               "policy", "checks", "assessment", "findings", "error"}
FINDING_KEYS = {"id", "check", "severity", "title", "evidence", "references"}
CHECKS = "tls,http"


@pytest.fixture(scope="module")
def lab_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("scanlab") / "lab.db")


@pytest.fixture(scope="module")
def scanned(lab, lab_db: str, cli, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    listfile = tmp_path_factory.mktemp("lists") / "sites.txt"
    listfile.write_text("# the lab\n" + "\n".join(s.url + "   # " + s.spec.name for s in lab.sites) + "\n\n")
    args = ["scan", "--list", str(listfile), "--checks", CHECKS, "--format", "json", "--db", lab_db,
            "--ca-file", str(lab.ca_file), "--timeout", "10", "--concurrency", "8"]
    for r in lab.resolve_args:
        args += ["--resolve", r]
    res = cli(*args)
    doc = json.loads(res.out)
    by_name = {}
    for site in lab.sites:
        by_name[site.spec.name] = next(r for r in doc["results"] if r["url"] == site.url)
    return {"code": res.code, "err": res.err, "doc": doc, "by_name": by_name}


def _ids(result: dict[str, Any]) -> set[str]:
    return {f["id"] for f in result["findings"]}


def test_json_contract(scanned: dict[str, Any], lab) -> None:  # type: ignore[no-untyped-def]
    doc = scanned["doc"]
    assert doc["tool"]["name"] == "auditor" and doc["tool"]["version"]
    assert len(doc["results"]) == len(lab.sites)
    for r in doc["results"]:
        assert set(r) == RESULT_KEYS, r["url"]
        assert r["policy"] == {"name": "vn-network-trust", "version": "2026.1"}
        assert r["started_at"].endswith("Z") and r["finished_at"].endswith("Z")
        assert set(r["checks"]) == {"tls", "http"}
        for st in r["checks"].values():
            assert set(st) == {"status", "error", "duration_s"}
        errored = [name for name in ("tls", "http") if r["checks"][name]["status"] != "ok"]
        assert r["assessment"] == {"complete": not errored, "incomplete_checks": errored}, r["url"]
        for f in r["findings"]:
            assert set(f) >= FINDING_KEYS
            assert f["check"] == f["id"].split(".")[0]
    good = scanned["by_name"]["good"]
    site = lab.site("good")
    assert (good["host"], good["port"], good["address"]) == (site.host, site.https_port, site.address)


def test_good_site_has_no_serious_finding(scanned: dict[str, Any]) -> None:
    good = scanned["by_name"]["good"]
    assert good["checks"]["tls"]["status"] == "ok", good["checks"]
    assert good["checks"]["http"]["status"] == "ok", good["checks"]
    serious = [f for f in good["findings"] if f["severity"] in ("critical", "high", "medium")]
    assert serious == []
    assert good["grade"] == "A"


@pytest.mark.parametrize("spec", [s for s in LAB_SITES if s.name != "good"], ids=lambda s: s.name)
def test_each_planted_flaw_yields_exactly_its_id(scanned: dict[str, Any], spec) -> None:  # type: ignore[no-untyped-def]
    result = scanned["by_name"][spec.name]
    baseline = _ids(scanned["by_name"]["good"])
    assert _ids(result) - baseline == set(spec.expect), (result["findings"], result["checks"])


def test_grades_follow_the_policy(scanned: dict[str, Any]) -> None:
    by = scanned["by_name"]
    assert by["cert-expired"]["grade"] == "F"  # critical caps at F
    assert by["tls1-0"]["grade"] in ("C", "D", "F")  # high caps at C
    assert by["hsts-missing"]["score"] == by["good"]["score"] - 5


def test_scans_are_stored_and_history_lists_them(scanned: dict[str, Any], lab_db: str, cli) -> None:  # type: ignore[no-untyped-def]
    good = scanned["by_name"]["good"]
    shown = cli("show", str(good["scan_id"]), "--format", "json", "--db", lab_db)
    assert shown.code == 0
    assert json.loads(shown.out)["results"][0] == good
    hist = cli("history", good["url"], "--db", lab_db, "--format", "json")
    scans = json.loads(hist.out)["scans"]
    assert scans[0]["scan_id"] == good["scan_id"] and scans[0]["grade"] == "A"
    table = cli("history", good["url"], "--db", lab_db)
    assert f"{good['scan_id']:>6}" in table.out and " A " in table.out
    from auditor import storage

    with storage.session_scope(lab_db) as s:
        runs = storage.check_runs_of(s, good["scan_id"])
        assert {r.check for r in runs} == {"tls", "http"}
        assert all(r.evidence for r in runs), "raw evidence is stored"


def test_table_output_and_fail_on(lab, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    site = lab.site("hsts-missing")
    common = [site.url, "--checks", CHECKS, "--ca-file", str(lab.ca_file), "--db", str(tmp_path / "t.db"),
              *sum((["--resolve", r] for r in site.resolve), [])]
    res = cli("scan", *common)
    assert res.code == 0, res
    assert "grade" in res.out and "http.hsts.missing" in res.out and "MEDIUM" in res.out
    assert cli("scan", *common, "--fail-on", "medium").code == 1
    assert cli("scan", *common, "--fail-on", "high").code == 0


def test_input_errors_do_not_stop_the_list(lab, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    good, plain = lab.site("good"), lab.site("no-tls")
    listfile = tmp_path / "mixed.txt"
    listfile.write_text("\n".join([
        "https://unresolvable.lab.auditor.test/",  # no override, DNS disabled
        "https://closed.lab.auditor.test/",  # resolves to an address where nothing listens
        plain.url,  # a port that speaks plain HTTP, no TLS
        "gopher://bad.scheme.test/",
        good.url,
    ]) + "\n")
    db = str(tmp_path / "m.db")
    args = ["scan", "--list", str(listfile), "--checks", CHECKS, "--format", "json", "--db", db,
            "--ca-file", str(lab.ca_file), "--resolve", "closed.lab.auditor.test:443:127.0.0.9", "--timeout", "3"]
    for r in good.resolve + plain.resolve:
        args += ["--resolve", r]
    res = cli(*args)
    assert res.code == 2, res
    results = {r["url"]: r for r in json.loads(res.out)["results"]}
    assert "cannot resolve unresolvable.lab.auditor.test" in results["https://unresolvable.lab.auditor.test/"]["error"]
    closed = results["https://closed.lab.auditor.test/"]
    assert closed["grade"] is None and "refused" in closed["error"].lower()
    assert "tls.not_offered" in _ids(results[plain.url])
    assert "unsupported URL scheme" in results["gopher://bad.scheme.test/"]["error"]
    assert results[good.url]["grade"] == "A"
    # Every site that names a host was stored, the failures too.
    assert all(r["scan_id"] for u, r in results.items() if not u.startswith("gopher"))
    table = cli(*[a for a in args if a not in ("--format", "json")])
    assert "NOT SCANNED" in table.out and "error: cannot resolve" in table.out
