"""One finding as the analysis sees it, before the catalogue gives it a title and severity.

The analysis modules of the http family return :class:`Hit` values instead of calling
:meth:`auditor.check.Check.finding`, so they stay pure functions of typed inputs; the check
turns each hit into a catalogue :class:`~auditor.check.Finding`. The text helpers keep every
line a hostile site can influence on one line and short.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from checks.web.net import one_line

EVIDENCE_CHARS = 300
MAX_LISTED = 20


class Hit(NamedTuple):
    """A finding id, its one-line evidence, the URL it was seen at and its details."""

    id: str
    evidence: str
    url: str | None
    details: dict[str, Any]


def hit(finding_id: str, evidence: str, *, url: str | None, **details: Any) -> Hit:
    """A :class:`Hit` whose evidence is clipped to one line of at most 300 characters."""
    return Hit(finding_id, clip(evidence), url, details)


def clip(text: str, limit: int = EVIDENCE_CHARS) -> str:
    return one_line(text, limit)


def names(items: list[str], limit: int = MAX_LISTED, total: int | None = None) -> str:
    """The first ``limit`` items, comma-separated, and how many more of ``total`` there are."""
    total = len(items) if total is None else total
    shown = ", ".join(items[:limit])
    return shown + (f" (+{total - limit} more)" if total > limit else "")
