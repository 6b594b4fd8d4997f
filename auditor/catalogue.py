"""Finding catalogues as data: one ``findings.yaml`` per check family, one references table.

Why data and not Python: a finding is public (its id, severity and text reach stored history,
policies, reports and users' scripts), so everything about it sits in one reviewable file beside
the code that detects it, in both languages the reports are written in. Adding a finding is one
entry in that file plus its detection code.

A family's file::

    check: tls
    findings:
      - id: tls.protocol.tls1_0
        severity: high
        title: {en: TLS 1.0 is accepted, vi: Chấp nhận TLS 1.0}
        rationale: {en: ..., vi: ...}
        remediation: {en: ..., vi: ...}
        references:
          - rfc8996
          - tcvn-11930: (communication confidentiality)

References name a key of the shared table (``checks/references.yaml``), optionally with a
pinpoint (article, clause, section), so each source is spelled once. English text is required;
another language's missing field falls back to English. Third-party plug-ins may read their own
file with :func:`load_findings` (passing their own references table if they like) or still
declare ``FindingSpec`` tuples in Python.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from auditor.check import FindingSpec, Severity
from auditor.datafiles import load_yaml
from auditor.errors import AuditorError

TEXT_FIELDS = ("title", "rationale", "remediation")
LANGUAGES = ("en", "vi")
_FINDING_KEYS = frozenset({"id", "severity", "references", *TEXT_FIELDS})
_REFERENCE_KEYS = frozenset({"title", "kind", "verified", "url", "note"})
# A pinpoint that starts with punctuation joins the title without a space ("..., criterion 5").
_TIGHT = (",", ";", ":", "-")


@dataclass(frozen=True)
class Reference:
    """One cited source: a law, a standard, guidance, an RFC or an advisory."""

    key: str
    title: str
    kind: str = ""
    verified: bool = True
    url: str = ""
    note: str = ""

    def cite(self, pinpoint: str = "") -> str:
        """How a finding cites it: the title, the pinpoint, and [U] when the source is unverified."""
        text = self.title
        if pinpoint:
            text += pinpoint if pinpoint.startswith(_TIGHT) else f" {pinpoint}"
        return text if self.verified else f"{text} [U]"


def _package_file(package: str, name: str) -> Path:
    try:
        return Path(str(resources.files(package).joinpath(name)))
    except ModuleNotFoundError:
        raise AuditorError(f"no package {package!r} to read {name} from") from None


def load_references(path: str | Path | None = None) -> dict[str, Reference]:
    """The references table (default: the one shipped with the built-in checks)."""
    path = Path(path) if path is not None else _package_file("checks", "references.yaml")
    data = load_yaml(path, "references table")
    if not isinstance(data, dict):
        raise AuditorError(f"{path}: expected a mapping of reference keys")
    table: dict[str, Reference] = {}
    for key, entry in data.items():
        if isinstance(entry, str):
            entry = {"title": entry}
        if not isinstance(entry, dict) or not str(entry.get("title") or "").strip():
            raise AuditorError(f"{path}: reference {key!r} needs a title")
        unknown = set(entry) - _REFERENCE_KEYS
        if unknown:
            raise AuditorError(f"{path}: reference {key!r} has unknown field(s) {', '.join(sorted(unknown))}")
        table[str(key)] = Reference(
            key=str(key), title=str(entry["title"]).strip(), kind=str(entry.get("kind") or ""),
            verified=entry.get("verified", True) is not False, url=str(entry.get("url") or ""),
            note=str(entry.get("note") or ""),
        )
    return table


def _texts(entry: dict[str, Any], field: str, where: str) -> dict[str, str]:
    value = entry.get(field)
    if isinstance(value, str):
        value = {"en": value}
    if not isinstance(value, dict):
        raise AuditorError(f"{where}: {field} must be a mapping of language to text")
    texts = {str(lang): " ".join(str(text).split()) for lang, text in value.items() if text}
    unknown = set(texts) - set(LANGUAGES)
    if unknown:
        raise AuditorError(f"{where}: {field} has unknown language(s) {', '.join(sorted(unknown))}")
    if not texts.get("en"):
        raise AuditorError(f"{where}: {field} has no English text")
    return texts


def _citation(item: Any, table: dict[str, Reference], where: str) -> str:
    if isinstance(item, str):
        key, pinpoint = item, ""
    elif isinstance(item, dict) and len(item) == 1:
        key, pinpoint = next(iter(item.items()))
        pinpoint = " ".join(str(pinpoint or "").split())
    else:
        raise AuditorError(f"{where}: a reference is a key or {{key: pinpoint}}, not {item!r}")
    ref = table.get(str(key))
    if ref is None:
        raise AuditorError(f"{where}: unknown reference {key!r} (add it to the references table)")
    return ref.cite(pinpoint)


def load_findings(
    path: str | Path, *, check_id: str | None = None, references: dict[str, Reference] | None = None
) -> tuple[FindingSpec, ...]:
    """Read one family's ``findings.yaml``: every error is one line naming the file and the finding."""
    path = Path(path)
    table = references if references is not None else default_references()
    data = load_yaml(path, "finding catalogue")
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise AuditorError(f"{path}: expected a mapping with a 'findings' list")
    if check_id is not None and data.get("check") != check_id:
        raise AuditorError(f"{path}: catalogue of check {data.get('check')!r}, expected {check_id!r}")
    specs: list[FindingSpec] = []
    seen: set[str] = set()
    for n, entry in enumerate(data["findings"], start=1):
        if not isinstance(entry, dict) or not str(entry.get("id") or "").strip():
            raise AuditorError(f"{path}: finding #{n} needs an id")
        fid = str(entry["id"]).strip()
        where = f"{path}: {fid}"
        if fid in seen:
            raise AuditorError(f"{where}: duplicate finding id")
        seen.add(fid)
        unknown = set(entry) - _FINDING_KEYS
        if unknown:
            raise AuditorError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            severity = Severity.parse(str(entry.get("severity") or ""))
        except ValueError as exc:
            raise AuditorError(f"{where}: {exc}") from None
        texts = {field: _texts(entry, field, where) for field in TEXT_FIELDS}
        refs = entry.get("references") or []
        if not isinstance(refs, list):
            raise AuditorError(f"{where}: references must be a list")
        translations = {
            lang: {field: texts[field][lang] for field in TEXT_FIELDS if lang in texts[field]}
            for lang in LANGUAGES if lang != "en"
        }
        specs.append(FindingSpec(
            id=fid, severity=severity, title=texts["title"]["en"], rationale=texts["rationale"]["en"],
            remediation=texts["remediation"]["en"],
            references=tuple(_citation(item, table, where) for item in refs),
            translations={lang: t for lang, t in translations.items() if t},
        ))
    return tuple(specs)


_lock = threading.Lock()
_references: dict[str, Reference] | None = None


def default_references() -> dict[str, Reference]:
    """The shipped references table, read once per process."""
    global _references
    with _lock:
        if _references is None:
            _references = load_references()
        return _references


def catalogue_of(package: str) -> tuple[FindingSpec, ...]:
    """The ``findings.yaml`` of a check family package (``checks.tls`` ...), for its ``catalogue``.

    The file's ``check`` must be the package's last name part, so a file copied into the wrong
    family is caught at import.
    """
    return load_findings(_package_file(package, "findings.yaml"), check_id=package.rpartition(".")[2])
