"""The inventory of information systems: import (YAML, CSV), validation, add/list/show/remove.

A system record has the fields below; the level attributes are those of
:data:`policies.levels.ATTRIBUTES`. In CSV the column names are the same and list values are
joined with ``;`` (``info_types: public;personal``, ``sites: https://a/;https://b/``).
Every validation error names where it is (YAML: entry number and line; CSV: spreadsheet
row) and the field, and an import with any error writes nothing.

A system's site URLs become :class:`~auditor.models.Site` rows linked by ``system_id``, so
scans of those URLs are linked to the system. Removing a system, or dropping a URL from it,
unlinks sites and scans but never deletes them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import Session, select

from auditor import storage
from auditor.errors import AuditorError
from auditor.models import Certificate, InformationSystem, Site, utcnow
from auditor.targets import parse_target
from auditor.text import brief, clean
from policies.levels import ATTRIBUTES, Classification, classify, normalize_value

MAX_FILE_BYTES = 10_000_000
MAX_SYSTEMS = 10_000
MAX_SITES_PER_SYSTEM = 500

# PyYAML's pure-Python scanner is quadratic in flow nesting ("[[[[" * 3000 takes seconds) and
# its composer recursive: deeper nesting is refused before parsing.
_MAX_FLOW_DEPTH = 100
_FLOW_RE = re.compile(r"[\[\]{}]")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_EMAIL_RE = re.compile(r"[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+")

# Fields a record may carry besides the level attributes (category is both: a column of
# InformationSystem and an attribute the rules read).
BASE_FIELDS = ("name", "owner", "contact", "declared_level", "allowed_ports", "sites")
LEVEL_FIELDS = tuple(ATTRIBUTES)
REQUIRED = ("name", "owner", "category")
ALL_FIELDS = BASE_FIELDS + LEVEL_FIELDS + ("components",)


class InventoryError(AuditorError):
    """Validation failed; ``errors`` lists every problem, one line each."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        super().__init__(errors[0] + more)


@dataclass
class SystemRecord:
    """One validated system, ready to store."""

    name: str
    owner: str
    category: str
    contact: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    declared_level: int | None = None
    allowed_ports: list[int] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    where: str = ""

    def level_attrs(self) -> dict[str, Any]:
        return {**self.attributes, "category": self.category, "declared_level": self.declared_level}


@dataclass
class Stored:
    """What happened to one system on import or add."""

    name: str
    action: str  # created | updated
    classification: Classification
    sites: list[str]
    unlinked: list[str] = field(default_factory=list)


# --- validation -----------------------------------------------------------------------------


def _str_field(value: Any, what: str, *, limit: int = 300) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {type(value).__name__}")
    text = str(value).strip()
    if any(ord(c) < 32 for c in text):
        raise ValueError(f"{what} contains control characters")
    if len(text) > limit:
        raise ValueError(f"longer than {limit} characters")
    return text


def _list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(";") if p.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _whole(value: Any, complaint: str) -> int:
    """A whole number from an int or its text; ``complaint`` is the error (true/false are not numbers)."""
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError  # and never str() a list or mapping: an alias bomb's str never ends
        return int(str(value).strip())
    except ValueError:
        raise ValueError(complaint) from None


def _ports(value: Any) -> list[int]:
    out: list[int] = []
    for item in _list(value):
        port = _whole(item, f"{brief(item)} is not a port number")
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is out of range 1..65535")
        if port not in out:
            out.append(port)
    return out


def _sites(value: Any) -> list[str]:
    out: list[str] = []
    items = _list(value)
    if len(items) > MAX_SITES_PER_SYSTEM:
        raise ValueError(f"more than {MAX_SITES_PER_SYSTEM} sites")
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{brief(item)} is not a URL")
        try:
            url = parse_target(item)[0]
        except AuditorError as exc:
            raise ValueError(str(exc)) from None
        if url not in out:
            out.append(url)
    return out


def _level(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    level = _whole(value, f"expected a level 1..5, got {brief(value)}")
    if not 1 <= level <= 5:
        raise ValueError(f"expected a level 1..5, got {level}")
    return level


def _components(value: Any, where: str, errors: list[str]) -> list[dict[str, Any]]:
    """Components of a composite system: each a mapping of level attributes plus a name."""
    if not isinstance(value, list):
        errors.append(f"{where}, field 'components': expected a list of mappings")
        return []
    out: list[dict[str, Any]] = []
    for i, comp in enumerate(value, 1):
        cwhere = f"{where}, field 'components[{i}]'"
        if not isinstance(comp, dict):
            errors.append(f"{cwhere}: expected a mapping of attributes")
            continue
        attrs: dict[str, Any] = {"name": f"#{i}"}
        if comp.get("name") not in (None, ""):
            try:
                attrs["name"] = _str_field(comp["name"], "name", limit=100)
            except ValueError as exc:
                errors.append(f"{cwhere}.name: {exc}")
        for key, val in comp.items():
            if key == "name":
                continue
            spec = ATTRIBUTES.get(str(key))
            if spec is None:
                errors.append(f"{cwhere}.{clean(key, 100)}: unknown attribute (known: {', '.join(ATTRIBUTES)})")
                continue
            if val is None or (isinstance(val, str) and not val.strip()):
                continue
            try:
                attrs[spec.name] = normalize_value(spec, val)
            except ValueError as exc:
                errors.append(f"{cwhere}.{key}: {exc}")
        out.append(attrs)
    return out


def _present(data: dict[str, Any], key: str) -> bool:
    v = data.get(key)
    return v is not None and not (isinstance(v, str) and not v.strip()) and v != []


def _name_field(value: Any) -> str:
    name = _str_field(value, "name", limit=100)
    if not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid name (letters, digits, '.', '_', '-'; "
            "starting with a letter or digit; at most 100)"
        )
    return name


def _contact_field(value: Any) -> str:
    contact = _str_field(value, "contact", limit=254)
    if not _EMAIL_RE.fullmatch(contact):
        raise ValueError(f"{contact!r} is not an e-mail address")
    return contact


# Record fields that are not level attributes: (field, parser, SystemRecord attribute).
_RECORD_FIELDS: tuple[tuple[str, Callable[[Any], Any], str], ...] = (
    ("name", _name_field, "name"),
    ("owner", lambda v: _str_field(v, "owner"), "owner"),
    ("contact", _contact_field, "contact"),
    ("declared_level", _level, "declared_level"),
    ("allowed_ports", _ports, "allowed_ports"),
    ("sites", _sites, "sites"),
)


def validate_record(raw: Any, where: str) -> tuple[SystemRecord | None, list[str]]:
    """Validate one raw record (a mapping); returns the record or the errors, each naming
    ``where`` and the field."""
    if not isinstance(raw, dict):
        return None, [f"{where}: expected a mapping of fields, got {type(raw).__name__}"]
    data = {str(k).strip(): v for k, v in raw.items() if k is not None}
    name_val = data.get("name")
    if isinstance(name_val, str) and name_val.strip():
        where = f"{where} ({clean(name_val.strip(), 60)})"
    errors = [f"{where}, field '{clean(key, 100)}': unknown field (known: {', '.join(ALL_FIELDS)})"
              for key in data if key not in ALL_FIELDS]
    errors += [f"{where}, field '{key}': required" for key in REQUIRED if not _present(data, key)]
    rec = SystemRecord(name="", owner="", category="other", where=where)
    for key, parse, attr in _RECORD_FIELDS:
        if _present(data, key):
            try:
                setattr(rec, attr, parse(data[key]))
            except ValueError as exc:
                errors.append(f"{where}, field '{key}': {exc}")
    errors += _read_attributes(rec, data, where)
    if _present(data, "components"):
        rec.attributes["components"] = _components(data["components"], where, errors)
    errors += _subject_count_errors(rec.attributes, where)
    return (None if errors else rec), errors


def _read_attributes(rec: SystemRecord, data: dict[str, Any], where: str) -> list[str]:
    """Set the record's level attributes (and category) from ``data``; the errors."""
    errors: list[str] = []
    for key, spec in ATTRIBUTES.items():
        if not _present(data, key):
            continue
        try:
            value = normalize_value(spec, data[key])
        except ValueError as exc:
            errors.append(f"{where}, field '{key}': {exc}")
            continue
        if key == "category":
            rec.category = value
        else:
            rec.attributes[key] = value
    return errors


def _subject_count_errors(a: dict[str, Any], where: str) -> list[str]:
    if "personal_data_subjects" in a and a.get("sensitive_data_subjects", 0) > a["personal_data_subjects"]:
        return [
            f"{where}, field 'sensitive_data_subjects': {a['sensitive_data_subjects']} exceeds "
            f"personal_data_subjects ({a['personal_data_subjects']}); every sensitive-data subject is "
            "also a personal-data subject"
        ]
    return []


def _check_unique(records: list[SystemRecord]) -> list[str]:
    errors: list[str] = []
    names: dict[str, str] = {}
    urls: dict[str, str] = {}
    for rec in records:
        if rec.name in names:
            errors.append(f"{rec.where}, field 'name': {rec.name!r} is already used by {names[rec.name]}")
        names.setdefault(rec.name, rec.where)
        for url in rec.sites:
            if url in urls and urls[url] != rec.where:
                errors.append(f"{rec.where}, field 'sites': {url} is also listed by {urls[url]}")
            urls.setdefault(url, rec.where)
    return errors


# --- file formats -----------------------------------------------------------------------------


def _read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise AuditorError(f"{p}: file larger than {MAX_FILE_BYTES} bytes")
        return p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AuditorError(f"inventory file not found: {p}") from None
    except IsADirectoryError:
        raise AuditorError(f"{p} is a directory, not an inventory file") from None
    except UnicodeDecodeError as exc:
        raise AuditorError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise AuditorError(f"cannot read {p}: {exc.strerror or exc}") from None


def _flow_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` (brackets inside quotes count too: an upper bound)."""
    depth = peak = 0
    for ch in _FLOW_RE.findall(text):
        depth = depth + 1 if ch in "[{" else max(depth - 1, 0)
        peak = max(peak, depth)
    return peak


def parse_yaml(text: str, label: str = "<yaml>") -> list[SystemRecord]:
    """``systems: [ {...}, ... ]`` (or a bare list) → validated records."""
    if _flow_depth(text) > _MAX_FLOW_DEPTH:
        raise AuditorError(f"{label}: invalid YAML: lists or mappings nested more than {_MAX_FLOW_DEPTH} deep")
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters before any parsing
        raise AuditorError(f"{label}: invalid YAML: {str(exc).splitlines()[0]}") from None
    try:
        # One parse: the node tree gives each entry's line, the data is built from it.
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    # RecursionError: "[[[[..." nested too deep; ValueError: an int of more than 4300 digits
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise AuditorError(f"{label}: invalid YAML{at}: {problem}") from None
    finally:
        loader.dispose()
    items_node: Any = root
    if isinstance(data, dict):
        if "systems" not in data:
            raise AuditorError(f"{label}: expected a top-level 'systems:' list")
        unknown = [k for k in data if k != "systems"]
        if unknown:
            raise AuditorError(f"{label}: unknown top-level key(s): {clean(', '.join(map(str, unknown)))}")
        items = data["systems"]
        items_node = next(v for k, v in root.value if k.value == "systems")
    elif data is None:
        items = []
    else:
        items = data
    if not isinstance(items, list):
        raise AuditorError(f"{label}: 'systems' must be a list of systems")
    if len(items) > MAX_SYSTEMS:
        raise AuditorError(f"{label}: more than {MAX_SYSTEMS} systems")
    # A null document ("NULL", "~") has a scalar node whose value is text, not entries.
    lines = [n.start_mark.line + 1 for n in items_node.value] if isinstance(items_node, yaml.SequenceNode) else []
    records: list[SystemRecord] = []
    errors: list[str] = []
    for i, raw in enumerate(items, 1):
        line = f", line {lines[i - 1]}" if i - 1 < len(lines) else ""
        rec, errs = validate_record(raw, f"{label}: row {i}{line}")
        errors += errs
        if rec is not None:
            records.append(rec)
    errors += _check_unique(records)
    if errors:
        raise InventoryError(errors)
    return records


def parse_csv(text: str, label: str = "<csv>") -> list[SystemRecord]:
    """A header row of field names, one system per row; lists joined with ``;``.

    Rows are numbered as a spreadsheet shows them (the header is row 1).
    """
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    if delimiter == "," and ";" in first and "," not in first:
        # ';' joins list values; a ';'-delimited file would be ambiguous.
        raise AuditorError(f"{label}: use ',' (or tab) between columns; ';' separates list items")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise AuditorError(f"{label}: invalid CSV at row {reader.line_num}: {exc}") from None
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    errors = [f"{label}: row 1, field '{clean(h, 100)}': unknown column (known: {', '.join(ALL_FIELDS)})"
              for h in header if h and h not in ALL_FIELDS]
    if "components" in header:
        errors.append(f"{label}: row 1, field 'components': composite systems need the YAML format")
    dupes = {h for h in header if header.count(h) > 1 and h}
    errors += [f"{label}: row 1, field '{clean(h, 100)}': column appears twice" for h in sorted(dupes)]
    if errors:
        raise InventoryError(errors)
    if len(rows) - 1 > MAX_SYSTEMS:
        raise AuditorError(f"{label}: more than {MAX_SYSTEMS} systems")
    records: list[SystemRecord] = []
    for rownum, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{label}: row {rownum}"
        if len(row) > len(header):
            errors.append(f"{where}: {len(row)} cells but only {len(header)} columns in the header")
            continue
        raw = {h: cell for h, cell in zip(header, row, strict=False) if h}
        rec, errs = validate_record(raw, where)
        errors += errs
        if rec is not None:
            records.append(rec)
    errors += _check_unique(records)
    if errors:
        raise InventoryError(errors)
    return records


def parse_file(path: str | Path) -> list[SystemRecord]:
    """Read an inventory file: ``.csv`` as CSV, ``.yaml``/``.yml`` (or anything else) as YAML."""
    p = Path(path)
    text = _read_text(p)
    if p.suffix.lower() in (".csv", ".tsv"):
        return parse_csv(text, p.name)
    return parse_yaml(text, p.name)


# --- storage ------------------------------------------------------------------------------------


def find_system(session: Session, name: str) -> InformationSystem | None:
    return session.exec(select(InformationSystem).where(InformationSystem.name == name)).first()


def get_system(session: Session, name: str) -> InformationSystem:
    system = find_system(session, name)
    if system is None:
        raise AuditorError(f"no information system named {name!r} (see `auditor systems list`)")
    return system


def sites_of(session: Session, system: InformationSystem) -> list[Site]:
    return list(session.exec(select(Site).where(Site.system_id == system.id).order_by(Site.url)))


def level_attrs(system: InformationSystem) -> dict[str, Any]:
    """What :func:`policies.levels.classify` reads for a stored system."""
    return {**dict(system.attributes or {}), "category": system.category,
            "declared_level": system.declared_level}


_Plan = tuple[SystemRecord, InformationSystem | None, Classification]


def store_records(
    session: Session,
    records: list[SystemRecord],
    *,
    replace: bool = True,
    on: date | None = None,
    policy_dir: str | Path | None = None,
) -> list[Stored]:
    """Create or (with ``replace``) update systems; link their sites; classify them.

    All or nothing: any conflict raises :class:`InventoryError` before the caller's session
    commits, so nothing is written.
    """
    plans = _plan_records(session, records, replace=replace, on=on, policy_dir=policy_dir)
    # Unlink first, so that URLs moving between systems of the same file never collide.
    unlinked = _unlink_dropped_sites(session, plans)
    out = [_store_one(session, rec, existing, cls, unlinked.get(rec.name, [])) for rec, existing, cls in plans]
    session.flush()
    return out


def _plan_records(session: Session, records: list[SystemRecord], *, replace: bool, on: date | None,
                  policy_dir: str | Path | None) -> list[_Plan]:
    """Each record with its existing system and classification; every conflict at once."""
    errors: list[str] = []
    plans: list[_Plan] = []
    names = {r.name for r in records}
    for rec in records:
        existing = find_system(session, rec.name)
        if existing is not None and not replace:
            errors.append(f"{rec.where}, field 'name': a system named {rec.name!r} already exists")
            continue
        errors += _site_conflicts(session, rec, existing, names)
        try:
            cls = classify(rec.level_attrs(), name=rec.name, on=on, policy_dir=policy_dir)
        except AuditorError as exc:
            errors.append(f"{rec.where}: {exc}")
            continue
        plans.append((rec, existing, cls))
    if errors:
        raise InventoryError(errors)
    return plans


def _site_conflicts(session: Session, rec: SystemRecord, existing: InformationSystem | None,
                    names: set[str]) -> list[str]:
    """The record's sites that belong to a system this import does not also (re)define."""
    errors: list[str] = []
    for url in rec.sites:
        site = storage.find_site(session, url)
        if site is None or site.system_id is None:
            continue
        if existing is not None and site.system_id == existing.id:
            continue
        owner = session.get(InformationSystem, site.system_id)
        if owner is not None and owner.name not in names:
            errors.append(f"{rec.where}, field 'sites': {url} already belongs to system {owner.name!r}")
    return errors


def _unlink_dropped_sites(session: Session, plans: list[_Plan]) -> dict[str, list[str]]:
    """Unlink the sites that updated systems no longer list; their URLs by system name."""
    unlinked: dict[str, list[str]] = {}
    for rec, existing, _ in plans:
        if existing is None:
            continue
        for site in sites_of(session, existing):
            if site.url not in rec.sites:
                site.system_id = None
                session.add(site)
                unlinked.setdefault(rec.name, []).append(site.url)
    session.flush()
    return unlinked


def _store_one(session: Session, rec: SystemRecord, existing: InformationSystem | None,
               cls: Classification, unlinked: list[str]) -> Stored:
    system = existing or InformationSystem(name=rec.name)
    system.owner = rec.owner
    system.contact = rec.contact
    system.category = rec.category
    system.attributes = dict(rec.attributes)
    system.declared_level = rec.declared_level
    system.allowed_ports = list(rec.allowed_ports)
    system.computed_level = cls.level or None
    system.level_rules = cls.rules
    system.updated_at = utcnow()
    session.add(system)
    session.flush()
    for url in rec.sites:
        _, host, port, _, _ = parse_target(url)
        site = storage.get_or_create_site(session, url, host, port)
        if site.system_id != system.id:
            site.system_id = system.id
            session.add(site)
    return Stored(rec.name, "updated" if existing else "created", cls, list(rec.sites), unlinked)


def import_file(
    session: Session, path: str | Path, *, on: date | None = None, policy_dir: str | Path | None = None
) -> list[Stored]:
    """Validate a whole file, then create or update every system in it."""
    return store_records(session, parse_file(path), replace=True, on=on, policy_dir=policy_dir)


def remove_system(session: Session, name: str) -> dict[str, int]:
    """Delete a system and its attestations; its sites, scans and certificates stay, unlinked."""
    system = get_system(session, name)
    counts = {"sites": 0, "scans": 0, "certificates": 0, "attestations": 0}
    for site in sites_of(session, system):
        site.system_id = None
        session.add(site)
        counts["sites"] += 1
    counts["scans"] = storage.unlink_scans_of_system(session, system.id or 0)
    for cert in session.exec(select(Certificate).where(Certificate.system_id == system.id)):
        cert.system_id = None
        session.add(cert)
        counts["certificates"] += 1
    counts["attestations"] = storage.delete_attestations_of_system(session, system.id or 0)
    session.flush()
    session.delete(system)
    session.flush()
    return counts


def system_dict(session: Session, system: InformationSystem) -> dict[str, Any]:
    """A stored system as a plain dict (``systems show --format json``)."""
    declared = dict(system.attributes or {})
    attrs: dict[str, Any] = {}
    for key, spec in ATTRIBUTES.items():
        if key == "category":
            continue
        attrs[key] = declared.get(key, spec.default)
    return {
        "name": system.name,
        "owner": system.owner,
        "contact": system.contact,
        "category": system.category,
        "attributes": attrs,
        "declared_attributes": sorted(k for k in declared if k != "components"),
        "components": list(declared.get("components") or []),
        "declared_level": system.declared_level,
        "computed_level": system.computed_level,
        "level_rules": system.level_rules,
        "allowed_ports": list(system.allowed_ports or []),
        "sites": [s.url for s in sites_of(session, system)],
        "created_at": system.created_at.isoformat() if system.created_at else None,
        "updated_at": system.updated_at.isoformat() if system.updated_at else None,
    }


def list_systems(session: Session) -> list[InformationSystem]:
    return list(session.exec(select(InformationSystem).order_by(InformationSystem.name)))
