"""The documents' message catalogue (``static/messages.yaml``): Vietnamese by default, English on request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from auditor.errors import AuditorError

LANGS = ("vi", "en")
CATALOGUE = Path(__file__).resolve().parent / "static" / "messages.yaml"
FINDING_FIELDS = ("title", "rationale", "remediation")
# Vietnam keeps UTC+7 all year (no daylight saving), so a fixed offset is exact.
VN_TIME = timezone(timedelta(hours=7), "ICT")

_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December")


@lru_cache(maxsize=1)
def _load() -> dict[str, dict[str, str]]:
    with open(CATALOGUE, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return {str(k): {str(lang): str(text) for lang, text in v.items()} for k, v in data.items()}


def check_lang(lang: str | None) -> str:
    lang = (lang or "vi").lower()
    if lang not in LANGS:
        raise AuditorError(f"unknown language {lang!r} (one of {', '.join(LANGS)})")
    return lang


@lru_cache(maxsize=1)
def _findings_vi() -> dict[str, dict[str, str]]:
    """The Vietnamese text of the installed checks' findings (each family's findings.yaml):
    id -> {title, rationale, remediation}, only the fields that are translated."""
    from auditor import registry

    return {fid: dict(spec.translations["vi"]) for fid, spec in registry.finding_catalogue().items()
            if spec.translations.get("vi")}


class Messages:
    """``t("key", name=value)`` in one language; a missing key shows as the key itself."""

    def __init__(self, lang: str = "vi") -> None:
        self.lang = check_lang(lang)
        self._texts = _load()

    def __call__(self, key: str, **values: Any) -> str:
        entry = self._texts.get(key)
        if entry is None:
            return key
        text = entry.get(self.lang) or entry.get("vi") or key
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self._texts

    def finding_text(self, finding_id: str, field: str, english: str) -> str:
        """A finding's ``title``, ``rationale`` or ``remediation`` in this language.

        ``english`` is the check's own catalogue text: what English documents show, and what
        Vietnamese ones fall back to for an id (or a field) not translated, e.g. a plug-in's.
        """
        if field not in FINDING_FIELDS:
            raise ValueError(f"unknown finding field {field!r}")
        if self.lang == "vi":
            return _findings_vi().get(finding_id, {}).get(field) or english
        return english

    def finding_title(self, finding_id: str, title: str) -> str:
        """The finding's title in this language (the check's own title when not translated)."""
        return self.finding_text(finding_id, "title", title)

    def local(self, dt: datetime | None) -> datetime | None:
        if dt is None:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(VN_TIME)

    def date(self, dt: datetime | None) -> str:
        """23/11/2026 (vi) or 23 Nov 2026 (en), in Vietnam time."""
        d = self.local(dt)
        if d is None:
            return "—"
        return f"{d.day:02d}/{d.month:02d}/{d.year}" if self.lang == "vi" else f"{d.day} {_MONTHS_EN[d.month - 1][:3]} {d.year}"

    def short_date(self, dt: datetime | None) -> str:
        """23/11 (vi) or 23 Nov (en), in Vietnam time: chart labels."""
        d = self.local(dt)
        if d is None:
            return "—"
        return f"{d.day:02d}/{d.month:02d}" if self.lang == "vi" else f"{d.day} {_MONTHS_EN[d.month - 1][:3]}"

    def long_date(self, dt: datetime | None) -> str:
        """ngày 23 tháng 11 năm 2026 (vi) or 23 November 2026 (en)."""
        d = self.local(dt)
        if d is None:
            return "—"
        if self.lang == "vi":
            return f"ngày {d.day:02d} tháng {d.month:02d} năm {d.year}"
        return f"{d.day} {_MONTHS_EN[d.month - 1]} {d.year}"

    def datetime(self, dt: datetime | None) -> str:
        d = self.local(dt)
        if d is None:
            return "—"
        return f"{self.date(dt)} {d.hour:02d}:{d.minute:02d}"
