"""Terminal output: the graded table, safe against hostile strings from sites."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from auditor.results import grade_label, result_assessment
from auditor.text import clean

SEVERITY_COLOUR = {
    "critical": "\x1b[1;97;41m", "high": "\x1b[1;31m", "medium": "\x1b[33m", "low": "\x1b[36m", "info": "\x1b[2m",
}
GRADE_COLOUR = {"A": "\x1b[1;32m", "B": "\x1b[32m", "C": "\x1b[33m", "D": "\x1b[31m", "F": "\x1b[1;31m"}
RESET = "\x1b[0m"


class Painter:
    def __init__(self, stream: TextIO) -> None:
        self.on = bool(getattr(stream, "isatty", lambda: False)()) and not _no_color()

    def __call__(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.on and code else text


def _no_color() -> bool:
    import os

    return bool(os.environ.get("NO_COLOR"))


def render_result(r: dict[str, Any], paint: Painter) -> list[str]:
    lines: list[str] = []
    where = f"{r.get('address')}:{r.get('port')}" if r.get("address") else ""
    if r.get("grade") is None:
        head = f"{clean(r['url'])}  {where}  " + paint(SEVERITY_COLOUR["high"], "NOT SCANNED")
        lines.append(head.replace("    ", "  "))
        lines.append(f"  error: {clean(r.get('error'), 500)}")
        if r.get("scan_id"):
            lines.append(f"  scan #{r['scan_id']}")
        return lines
    grade = paint(GRADE_COLOUR.get(r["grade"], ""), f"grade {r['grade']}")
    missing = result_assessment(r)["incomplete_checks"]
    if missing:
        # An incomplete assessment is never a clean grade: say so beside the letter itself.
        grade = paint(GRADE_COLOUR.get(r["grade"], ""), f"grade {clean(grade_label(r))}")
    lines.append(f"{clean(r['url'])}  {where}  {grade}  score {r['score']}  scan #{r.get('scan_id')}")
    checks = r.get("checks") or {}
    parts = []
    for name, st in checks.items():
        mark = "ok" if st.get("status") == "ok" else paint(SEVERITY_COLOUR["high"], "ERROR")
        parts.append(f"{name} {mark} {st.get('duration_s', 0):.1f}s")
    if parts:
        lines.append("  checks: " + " · ".join(parts))
    for name, st in checks.items():
        if st.get("status") != "ok":
            lines.append(f"  ! {name} could not test everything: {clean(st.get('error'), 400)}")
    findings = r.get("findings") or []
    if not findings:
        lines.append("  no findings")
    width = max((len(f["id"]) for f in findings), default=0)
    for f in findings:
        sev = f["severity"]
        label = paint(SEVERITY_COLOUR.get(sev, ""), f"{sev.upper():<8}")
        lines.append(f"  {label}  {f['id']:<{width}}  {clean(f.get('evidence'), 160)}")
    return lines


def render_table(results: list[dict[str, Any]], stream: TextIO = sys.stdout) -> str:
    paint = Painter(stream)
    blocks = ["\n".join(render_result(r, paint)) for r in results]
    summary = summarise(results)
    return "\n\n".join(blocks) + ("\n\n" + summary if len(results) > 1 else "") + "\n"


def summarise(results: list[dict[str, Any]]) -> str:
    grades: dict[str, int] = {}
    failed = incomplete = 0
    for r in results:
        if r.get("grade") is None:
            failed += 1
        else:
            grades[r["grade"]] = grades.get(r["grade"], 0) + 1
            incomplete += bool(result_assessment(r)["incomplete_checks"])
    parts = [f"{g}: {n}" for g, n in sorted(grades.items())]
    if incomplete:
        parts.append(f"grade incomplete: {incomplete}")
    if failed:
        parts.append(f"not scanned: {failed}")
    return f"{len(results)} site(s) — " + ", ".join(parts)
