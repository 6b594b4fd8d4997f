"""The portal checklist of each decree, read from the policy (``portal/<decree>.yaml``).

Which items a portal must publish, how each is recognised and which article requires it are
data, one file per decree, so a new decree (or a verified reading of Decree 224/2026) is a new
file, not new code. The file in force on the scan date is chosen by its ``in_force`` dates; a
policy may name one with the parameter ``portal.decree``. A file may be ``based_on`` another:
it then takes the base's items and functions, each marked unverified and its article prefixed
with the file's ``article_note`` (how Decree 224/2026 carries the Decree 42/2022 list).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from auditor.datafiles import load_yaml
from auditor.errors import AuditorError
from checks.portal.text import Phrases

REQUIREMENTS = frozenset({"file_link", "search_form", "link_host", "contact"})
_MAX_PATTERN = 200


@dataclass(frozen=True)
class Item:
    """One thing a portal must publish, and how to recognise its page."""

    id: str
    title_vi: str
    title_en: str
    article: str
    source: str
    verified: bool
    words: Phrases
    not_words: Phrases
    url_patterns: tuple[re.Pattern[str], ...]
    requires: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {"item": self.id, "title_vi": self.title_vi, "title_en": self.title_en,
                "article": self.article, "verified": self.verified}


@dataclass(frozen=True)
class Decree:
    """One decree's checklist."""

    id: str
    title_vi: str
    title_en: str
    reference: str
    valid_from: date | None
    valid_until: date | None
    verified: bool
    items: tuple[Item, ...]
    functions: dict[str, Any]
    english_items: tuple[Item, ...]
    domain: dict[str, Any]
    accessibility: dict[str, Any]
    path: str = ""
    notes: list[str] = field(default_factory=list)

    def in_force(self, on: date) -> bool:
        return (self.valid_from is None or self.valid_from <= on) and (
            self.valid_until is None or on <= self.valid_until)

    def function(self, name: str) -> dict[str, Any]:
        return dict(self.functions.get(name) or {})


def _text(value: Any, lang: str) -> str:
    if isinstance(value, dict):
        return str(value.get(lang) or value.get("en") or "")
    return str(value or "")


def _patterns(raw: Any, where: str) -> tuple[re.Pattern[str], ...]:
    out: list[re.Pattern[str]] = []
    for p in raw or []:
        text = str(p)
        if len(text) > _MAX_PATTERN:
            raise AuditorError(f"{where}: pattern longer than {_MAX_PATTERN} characters")
        try:
            out.append(re.compile(text, re.I))
        except re.error as exc:
            raise AuditorError(f"{where}: bad pattern {text!r}: {exc}") from None
    return tuple(out)


def _item(raw: Any, where: str, *, note: str = "", force_unverified: bool = False) -> Item:
    if not isinstance(raw, dict) or not raw.get("id"):
        raise AuditorError(f"{where}: an item needs an id")
    where = f"{where} item {raw['id']}"
    requires = tuple(str(r) for r in raw.get("requires") or [])
    unknown = [r for r in requires if r not in REQUIREMENTS]
    if unknown:
        raise AuditorError(f"{where}: unknown requirement {unknown[0]!r} (one of {', '.join(sorted(REQUIREMENTS))})")
    words = Phrases(raw.get("words") or [])
    patterns = _patterns(raw.get("url_patterns"), where)
    if not words and not patterns:
        raise AuditorError(f"{where}: needs words or url_patterns to be recognised")
    article = str(raw.get("article") or "")
    return Item(
        id=str(raw["id"]), title_vi=_text(raw.get("title"), "vi"), title_en=_text(raw.get("title"), "en"),
        article=(note + article) if note else article, source=str(raw.get("source") or ""),
        verified=False if force_unverified else bool(raw.get("verified", False)),
        words=words, not_words=Phrases(raw.get("not_words") or []), url_patterns=patterns,
        requires=requires, hosts=tuple(str(h).lower() for h in raw.get("hosts") or []),
    )


def _date(value: Any, where: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise AuditorError(f"{where}: bad date {value!r}") from None


def _raw(directory: Path, name: str, depth: int = 0) -> dict[str, Any]:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise AuditorError(f"no portal checklist {name!r} ({path})")
    data = load_yaml(path, "portal checklist")
    if not isinstance(data, dict):
        raise AuditorError(f"{path}: expected a mapping")
    base = data.get("based_on")
    if base:
        if depth > 3:
            raise AuditorError(f"{path}: based_on chain too long")
        merged = copy.deepcopy(_raw(directory, str(base), depth + 1))
        note = str(data.get("article_note") or "")
        for key in ("items", "functions", "domain", "accessibility"):
            if key in data:
                merged[key] = data[key]
        for key in ("decree", "title", "reference", "in_force", "verified"):
            merged[key] = data.get(key)
        merged["_note"] = note + str(merged.get("_note") or "")
        merged["_force_unverified"] = not bool(data.get("verified", False)) or merged.get("_force_unverified")
        data = merged
    data["_path"] = str(path)
    return data


def load_decree(directory: Path, name: str) -> Decree:
    """The checklist ``name`` (file ``<directory>/<name>.yaml``), validated."""
    data = _raw(directory, name)
    where = Path(data["_path"]).name
    note = str(data.get("_note") or "")
    unverified = bool(data.get("_force_unverified"))
    items = tuple(_item(r, where, note=note, force_unverified=unverified) for r in data.get("items") or [])
    if not items:
        raise AuditorError(f"{where}: no items")
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise AuditorError(f"{where}: duplicate item ids")
    functions = dict(data.get("functions") or {})
    english = dict(functions.get("english") or {})
    english_items = tuple(_item(r, f"{where} english", force_unverified=unverified)
                          for r in english.get("items") or [])
    if unverified:
        for key, value in list(functions.items()):
            if isinstance(value, dict):
                functions[key] = {**value, "verified": False, "article": note + str(value.get("article") or "")}
    window = data.get("in_force") or {}
    return Decree(
        id=str(data.get("decree") or name), title_vi=_text(data.get("title"), "vi"),
        title_en=_text(data.get("title"), "en"), reference=str(data.get("reference") or ""),
        valid_from=_date(window.get("from"), where), valid_until=_date(window.get("until"), where),
        verified=bool(data.get("verified", False)), items=items, functions=functions,
        english_items=english_items, domain=dict(data.get("domain") or {}),
        accessibility=dict(data.get("accessibility") or {}), path=data["_path"],
    )


def decree_for(directory: Path, on: date, name: str | None = None) -> Decree:
    """The checklist named ``name``, else the one in force on ``on`` (the latest start wins)."""
    if name:
        return load_decree(directory, name)
    if not directory.is_dir():
        raise AuditorError(f"no portal checklists in the policy ({directory})")
    candidates = []
    for path in sorted(directory.glob("*.yaml")):
        decree = load_decree(directory, path.stem)
        if decree.in_force(on):
            candidates.append(decree)
    if not candidates:
        raise AuditorError(f"no portal checklist in {directory} is in force on {on.isoformat()}")
    return max(candidates, key=lambda d: d.valid_from or date.min)
