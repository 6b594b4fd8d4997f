"""SVG charts drawn by our own code: no browser, no network, no plotting library.

Every label is XML-escaped here, because check ids and site names may be third-party text.
The charts are inline SVG that WeasyPrint renders as vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

FONT = "Noto Sans, DejaVu Sans, sans-serif"

SEVERITY_COLOURS = {
    "critical": "#8b1a1a", "high": "#d0402b", "medium": "#e79a21", "low": "#3f7cc0", "info": "#8c96a3",
}
STATE_COLOURS = {
    "pass": "#2e7d4f", "attested": "#6aa56f", "needs_attestation": "#e0a526", "fail": "#c0392b",
    "not_assessed": "#9aa3ad",
}
GRADE_COLOURS = {"A": "#2e7d4f", "B": "#5f9e3a", "C": "#d4a017", "D": "#e07b24", "E": "#d0402b", "F": "#b22222"}


@dataclass
class Bar:
    label: str
    value: int
    colour: str = "#3f6f9f"


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def bar_chart(bars: list[Bar], *, width: int = 320, label_width: int = 110, bar_height: int = 16,
              gap: int = 7) -> str:
    """Horizontal bars with the value at the end of each bar."""
    height = max(1, len(bars)) * (bar_height + gap) + gap
    top = max((b.value for b in bars), default=0) or 1
    span = width - label_width - 34
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="10">']
    for i, b in enumerate(bars):
        y = gap + i * (bar_height + gap)
        w = 0 if b.value <= 0 else max(2.0, span * b.value / top)
        out.append(f'<text x="{label_width - 6}" y="{y + bar_height * 0.72:.1f}" text-anchor="end" '
                   f'fill="#1f2a36">{escape(_clip(b.label, 22))}</text>')
        out.append(f'<rect x="{label_width}" y="{y}" width="{span}" height="{bar_height}" fill="#eef1f4"/>')
        if w:
            out.append(f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="{bar_height}" '
                       f'fill="{_attr(b.colour)}"/>')
        out.append(f'<text x="{label_width + w + 4:.1f}" y="{y + bar_height * 0.72:.1f}" fill="#1f2a36" '
                   f'font-weight="bold">{b.value}</text>')
    out.append("</svg>")
    return "".join(out)


def stacked_bar(parts: list[Bar], *, width: int = 320, height: int = 22) -> str:
    """One bar split by parts (e.g. requirement states), with a legend underneath."""
    total = sum(max(0, p.value) for p in parts)
    legend_rows = (len(parts) + 1) // 2
    full = height + 8 + legend_rows * 16
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{full}" '
           f'viewBox="0 0 {width} {full}" font-family="{FONT}" font-size="10">']
    x = 0.0
    if total == 0:
        out.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#eef1f4"/>')
    for p in parts:
        if p.value <= 0 or total == 0:
            continue
        w = width * p.value / total
        out.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{_attr(p.colour)}"/>')
        if w > 16:
            out.append(f'<text x="{x + w / 2:.1f}" y="{height * 0.68:.1f}" text-anchor="middle" fill="#fff" '
                       f'font-weight="bold">{p.value}</text>')
        x += w
    for i, p in enumerate(parts):
        lx = (i % 2) * (width / 2)
        ly = height + 8 + (i // 2) * 16
        out.append(f'<rect x="{lx:.1f}" y="{ly}" width="10" height="10" fill="{_attr(p.colour)}"/>')
        out.append(f'<text x="{lx + 14:.1f}" y="{ly + 9}" fill="#1f2a36">{escape(_clip(p.label, 26))}: {p.value}</text>')
    out.append("</svg>")
    return "".join(out)


@dataclass
class Point:
    label: str
    score: int | None
    grade: str | None


def history_chart(points: list[Point], thresholds: list[tuple[str, int]], *, width: int = 500,
                  height: int = 170) -> str:
    """Score (0–100) over the scans, oldest left, with the grade thresholds as dashed lines."""
    left, right, top, bottom = 34, 14, 10, 30
    pw, ph = width - left - right, height - top - bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="9">']
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafbfc" stroke="#c9d1d9"/>')

    def y_of(score: float) -> float:
        return top + ph * (1 - score / 100)

    for grade, minimum in thresholds:
        if 0 < minimum < 100:
            y = y_of(minimum)
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#b8c2cc" '
                       f'stroke-dasharray="3,3"/>')
            out.append(f'<text x="{left + pw - 2}" y="{y - 2:.1f}" text-anchor="end" fill="#6b7785">'
                       f'{escape(grade)} ≥ {minimum}</text>')
    for s in (0, 50, 100):
        out.append(f'<text x="{left - 4}" y="{y_of(s) + 3:.1f}" text-anchor="end" fill="#6b7785">{s}</text>')
    n = len(points)
    if n == 0:
        out.append("</svg>")
        return "".join(out)
    step = pw / max(1, n - 1) if n > 1 else 0
    coords: list[tuple[float, float, Point]] = []
    for i, p in enumerate(points):
        x = left + (i * step if n > 1 else pw / 2)
        if p.score is not None:
            coords.append((x, y_of(p.score), p))
        if n <= 12 or i % max(1, n // 12) == 0:
            out.append(f'<text x="{x:.1f}" y="{top + ph + 13}" text-anchor="middle" fill="#6b7785">'
                       f'{escape(_clip(p.label, 10))}</text>')
    if len(coords) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
        out.append(f'<polyline points="{path}" fill="none" stroke="#1f4e79" stroke-width="1.8"/>')
    for x, y, p in coords:
        colour = GRADE_COLOURS.get(p.grade or "", "#1f4e79")
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{colour}"/>')
        out.append(f'<text x="{x:.1f}" y="{y + 3.2:.1f}" text-anchor="middle" fill="#fff" font-weight="bold">'
                   f'{escape(p.grade or "?")}</text>')
    out.append("</svg>")
    return "".join(out)
