"""Machine exports of scan results: JSON (the contract), CSV and SARIF 2.1.0.

All three take the result dicts of :func:`auditor.results.scan_dict` (what ``auditor scan``
prints), so ``scan --format``, ``show`` and ``export`` agree.

CSV: one row per finding, with the site's verdict repeated on each row; a site with no
finding (or one that could not be scanned) still gets one row with empty finding columns,
so that no audited site disappears from a spreadsheet. The last two columns,
``assessment_complete`` (yes/no) and ``incomplete_checks``, say whether the grade rests on
every requested check (an errored check makes it incomplete). Cells that a spreadsheet would run
as a formula (starting with ``= + - @``, tab or CR) are prefixed with an apostrophe:
evidence comes from the audited site and is hostile.

SARIF: one run; one rule per finding id (title, rationale, remediation, severity); one
result per finding, located at the affected URL; sites or checks that could not be
assessed become tool execution notifications, so a CI gate sees them; each site in the run's
``properties.sites`` carries its ``assessment`` and each result ``properties.gradeComplete``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any
from urllib.parse import quote, urlsplit

from auditor import registry
from auditor.results import envelope, result_assessment
from auditor.version import __version__

CSV_COLUMNS = (
    "scan_id", "url", "host", "port", "address", "started_at", "finished_at", "score", "grade",
    "policy", "site_error", "finding_id", "check", "severity", "title", "evidence", "finding_url", "references",
    "assessment_complete", "incomplete_checks",
)

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/os/schemas/sarif-schema-2.1.0.json"
SARIF_VERSION = "2.1.0"

# SARIF result levels and the numeric "security-severity" code-scanning tools sort on.
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0", "info": "0.0"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def to_json(results: list[dict[str, Any]]) -> str:
    return json.dumps(envelope(results), indent=2, ensure_ascii=False) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return text


def csv_rows(results: list[dict[str, Any]]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for r in results:
        policy = r.get("policy") or {}
        site = {
            "scan_id": r.get("scan_id"), "url": r.get("url"), "host": r.get("host"), "port": r.get("port"),
            "address": r.get("address"), "started_at": r.get("started_at"), "finished_at": r.get("finished_at"),
            "score": r.get("score"), "grade": r.get("grade"),
            "policy": f"{policy.get('name')} {policy.get('version')}" if policy.get("name") else "",
            "site_error": r.get("error"),
            **_assessment_cells(r),
        }
        findings = r.get("findings") or []
        if not findings:
            rows.append({k: _cell(site.get(k)) for k in CSV_COLUMNS})
            continue
        for f in findings:
            row = dict(site)
            row.update({
                "finding_id": f.get("id"), "check": f.get("check"), "severity": f.get("severity"),
                "title": f.get("title"), "evidence": f.get("evidence"), "finding_url": f.get("url") or r.get("url"),
                "references": "; ".join(f.get("references") or []),
            })
            rows.append({k: _cell(row.get(k)) for k in CSV_COLUMNS})
    return rows


def _assessment_cells(r: dict[str, Any]) -> dict[str, str]:
    """The two CSV columns that say whether the site's grade rests on every requested check."""
    a = result_assessment(r)
    return {"assessment_complete": "yes" if a["complete"] else "no",
            "incomplete_checks": "; ".join(str(c) for c in a["incomplete_checks"])}


def to_csv(results: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(csv_rows(results))
    return buf.getvalue()


def _safe_uri(url: str | None) -> str | None:
    """A URI reference that a strict validator accepts: hostile characters percent-encoded."""
    if not url:
        return None
    text = str(url)[:2048]
    try:
        urlsplit(text)
    except ValueError:
        return None
    return quote(text, safe=":/?#[]@!$&'()*+,;=%-._~")


def to_sarif_dict(results: list[dict[str, Any]]) -> dict[str, Any]:
    catalogue = registry.finding_catalogue()
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    sarif_results: list[dict[str, Any]] = []
    notifications = [n for r in results for n in _notifications(r)]
    for r in results:
        for f in r.get("findings") or []:
            fid = str(f.get("id"))
            if fid not in index:
                index[fid] = len(rules)
                rules.append(_rule(f, catalogue.get(fid)))
            sarif_results.append(_result(r, f, index[fid]))
    run: dict[str, Any] = {
        "tool": {"driver": {
            "name": "auditor",
            "version": __version__,
            "semanticVersion": __version__,
            "rules": rules,
        }},
        "invocations": [{
            "executionSuccessful": not notifications,
            "toolExecutionNotifications": notifications,
        }],
        "results": sarif_results,
        "properties": {
            "sites": [
                {"url": r.get("url"), "scanId": r.get("scan_id"), "grade": r.get("grade"), "score": r.get("score"),
                 "startedAt": r.get("started_at"), "policy": r.get("policy"), "error": r.get("error"),
                 "assessment": result_assessment(r)}
                for r in results
            ],
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def _notifications(r: dict[str, Any]) -> list[dict[str, Any]]:
    """What could not be assessed for one site: the site itself, or a check of it."""
    out: list[dict[str, Any]] = []
    if r.get("error"):
        out.append({
            "level": "error",
            "message": {"text": f"{r.get('url')}: not assessed: {r.get('error')}"},
            **({"locations": [_location(r.get("url"))]} if _safe_uri(r.get("url")) else {}),
        })
    for name, st in (r.get("checks") or {}).items():
        if (st or {}).get("status") != "ok":
            out.append({
                "level": "error",
                "message": {"text": f"{r.get('url')}: check {name} could not test everything: "
                                    f"{(st or {}).get('error')}"},
                "descriptor": {"id": str(name)},
            })
    return out


def _result(r: dict[str, Any], f: dict[str, Any], rule_index: int) -> dict[str, Any]:
    """One finding of one site as a SARIF result, fingerprinted by site, id and location."""
    fid = str(f.get("id"))
    sev = str(f.get("severity"))
    where = f.get("url") or r.get("url")
    fingerprint = hashlib.sha256(f"{r.get('url')}|{fid}|{where}".encode()).hexdigest()
    result: dict[str, Any] = {
        "ruleId": fid,
        "ruleIndex": rule_index,
        "level": _SARIF_LEVEL.get(sev, "warning"),
        "message": {"text": f"{f.get('title')}: {f.get('evidence')}"},
        "partialFingerprints": {"auditorFinding/v1": fingerprint},
        "properties": {
            "severity": sev, "check": f.get("check"), "evidence": f.get("evidence"),
            "site": r.get("url"), "scanId": r.get("scan_id"), "grade": r.get("grade"),
            "score": r.get("score"), "gradeComplete": result_assessment(r)["complete"],
        },
    }
    if _safe_uri(where):
        result["locations"] = [_location(where)]
    return result


def _location(url: str | None) -> dict[str, Any]:
    return {"physicalLocation": {"artifactLocation": {"uri": _safe_uri(url)}}}


def _rule(finding: dict[str, Any], spec: Any) -> dict[str, Any]:
    sev = str(finding.get("severity"))
    title = str(finding.get("title") or finding.get("id"))
    rule: dict[str, Any] = {
        "id": str(finding.get("id")),
        "name": "".join(p.capitalize() for p in str(finding.get("id")).replace("_", ".").split(".")),
        "shortDescription": {"text": title},
        "defaultConfiguration": {"level": _SARIF_LEVEL.get(sev, "warning")},
        "properties": {
            "severity": sev,
            "security-severity": _SECURITY_SEVERITY.get(sev, "5.0"),
            "check": finding.get("check"),
            "references": list(finding.get("references") or []),
            "tags": ["security", str(finding.get("check") or "")],
        },
    }
    if spec is not None:
        if getattr(spec, "rationale", ""):
            rule["fullDescription"] = {"text": spec.rationale}
        if getattr(spec, "remediation", ""):
            rule["help"] = {"text": spec.remediation}
    return rule


def to_sarif(results: list[dict[str, Any]]) -> str:
    return json.dumps(to_sarif_dict(results), indent=2, ensure_ascii=False) + "\n"


FORMATS = {"json": to_json, "csv": to_csv, "sarif": to_sarif}


def render(results: list[dict[str, Any]], fmt: str) -> str:
    try:
        return FORMATS[fmt](results)
    except KeyError:
        from auditor.errors import AuditorError

        raise AuditorError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})") from None
