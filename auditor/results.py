"""The results as the outside sees them: the JSON output contract built from stored rows.

Every output (terminal table, JSON/CSV/SARIF, PDF reports, registry, scheduler logs) is built
from these dicts, so ``auditor show`` prints exactly what ``auditor scan`` printed. Time stamps
are UTC ISO 8601 with a Z (:func:`iso`); raw evidence is made JSON-safe by :func:`jsonable`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from auditor.check import Severity
from auditor.models import FindingRecord, Scan
from auditor.version import __version__


def jsonable(value: Any) -> Any:
    """Make raw evidence JSON-safe (datetimes, bytes, sets, paths, dataclasses...)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return jsonable(to_dict() if callable(to_dict) else asdict(value))
    return str(value)


def iso(dt: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, second precision, as the JSON contract shows."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.replace(microsecond=0).isoformat() + "Z"


def sort_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(findings, key=lambda f: (-Severity.parse(f["severity"]).rank, f["id"], f.get("url") or ""))


def assessment(checks: dict[str, Any] | None, requested: list[str] | None, *, graded: bool) -> dict[str, Any]:
    """Whether the grade rests on every check the scan asked for.

    A requested check that errored (or never reported) could not test its properties, so the
    grade is incomplete; a site that could not be scanned (no grade) is never complete.
    Derived from stored statuses only, so scans stored before this field existed get it too.
    """
    checks = dict(checks or {})
    names = [str(n) for n in (requested or [])] or list(checks)
    names += [n for n in checks if n not in names]
    missing = [n for n in names if ((checks.get(n) or {}).get("status")) != "ok"]
    return {"complete": graded and not missing, "incomplete_checks": missing}


def scan_assessment(scan: Scan) -> dict[str, Any]:
    """The :func:`assessment` of a stored scan (requested checks from its recorded options)."""
    requested = (scan.options or {}).get("checks")
    return assessment(scan.checks, requested if isinstance(requested, list) else None,
                      graded=scan.grade is not None)


def result_assessment(result: dict[str, Any]) -> dict[str, Any]:
    """The ``assessment`` of a result dict; derived from its checks when the dict has none."""
    given = result.get("assessment")
    if isinstance(given, dict) and "complete" in given:
        return given
    return assessment(result.get("checks"), None, graded=result.get("grade") is not None)


def grade_label(result: dict[str, Any]) -> str:
    """``A`` or ``A (incomplete: http)``: the grade as every output prints it; ``-`` for none."""
    grade = result.get("grade")
    if grade is None:
        return "-"
    missing = result_assessment(result)["incomplete_checks"]
    return f"{grade} (incomplete: {', '.join(missing)})" if missing else str(grade)


def scan_dict(scan: Scan, findings: list[FindingRecord]) -> dict[str, Any]:
    """Build the JSON-contract dict (see findings.md) from stored rows."""
    items = [
        {
            "id": f.finding_id, "check": f.check, "severity": f.severity, "title": f.title,
            "evidence": f.evidence, "references": list(f.references or []),
            **({"url": f.url} if f.url else {}),
        }
        for f in findings
    ]
    return {
        "url": scan.url,
        "host": scan.host,
        "port": scan.port,
        "address": scan.address,
        "scan_id": scan.id,
        "started_at": iso(scan.started_at),
        "finished_at": iso(scan.finished_at),
        "score": scan.score,
        "grade": scan.grade,
        "policy": {"name": scan.policy_name, "version": scan.policy_version},
        "checks": dict(scan.checks or {}),
        "assessment": scan_assessment(scan),
        "findings": sort_findings(items),
        "error": scan.error,
    }


# Keys left out of the seal: the database id, and ``assessment``, which is derived from
# ``checks`` (sealed) so that hashes stored before it existed still match ``auditor show``.
UNSEALED_KEYS = frozenset({"scan_id", "assessment"})


def result_hash(result: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a result (without its database id or derived keys)."""
    body = {k: v for k, v in result.items() if k not in UNSEALED_KEYS}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def envelope(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tool": {"name": "auditor", "version": __version__}, "results": results}
