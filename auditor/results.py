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
        "findings": sort_findings(items),
        "error": scan.error,
    }


def result_hash(result: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a result (without its database id)."""
    body = {k: v for k, v in result.items() if k != "scan_id"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def envelope(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tool": {"name": "auditor", "version": __version__}, "results": results}
