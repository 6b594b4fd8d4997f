"""Requirement catalogues: what each security level requires, as data (``requirements/<rules>.yaml``).

Each requirement names the levels it applies to, its legal source (with ``verified: false`` for
sources known only from secondary write-ups) and how it is judged: by finding ids (the check
families' public ids) or by the owner's attestation. The judging itself, against stored scans,
is :mod:`auditor.compliance`; this module only reads and validates the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.datafiles import load_yaml
from auditor.errors import AuditorError
from policies import PolicyFiles
from policies.levels import _check_condition, available_rulesets, matches, with_defaults


@dataclass(frozen=True)
class Requirement:
    """One row of a requirement catalogue."""

    id: str
    title_vi: str
    title_en: str
    source: str
    levels: tuple[int, ...]
    judged_by: str  # "findings" | "attestation"
    finding_ids: tuple[str, ...]
    verified: bool
    rules: str
    attestation_valid_days: int | None = None
    # A condition over the system's declared attributes (the rule sets' condition language):
    # the requirement concerns only the systems it matches (e.g. state portals). None: every one.
    applies_if: dict[str, Any] | None = None

    def concerns(self, attrs: dict[str, Any]) -> bool:
        """Whether this requirement concerns a system with these declared attributes."""
        return self.applies_if is None or matches(self.applies_if, with_defaults(attrs))

    @property
    def checks(self) -> tuple[str, ...]:
        """The check families that raise this requirement's finding ids."""
        return tuple(dict.fromkeys(check_of(fid) for fid in self.finding_ids))


def check_of(finding_id: str) -> str:
    """Finding ids are namespaced by the check family that raises them (findings.md)."""
    return finding_id.split(".", 1)[0]


def _catalogue_path(rules: str, directory: str | Path | None) -> Path:
    return PolicyFiles.at(directory).file(f"requirements/{rules}.yaml")


def load_requirements(rules: str, directory: str | Path | None = None) -> list[Requirement]:
    """Load and validate the requirement catalogue of one rule set."""
    path = _catalogue_path(rules, directory)
    if not path.is_file():
        raise AuditorError(f"no requirement catalogue for rule set {rules!r} ({path})")
    data = load_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("requirements"), list):
        raise AuditorError(f"{path}: expected a mapping with a 'requirements' list")
    if data.get("rules", rules) != rules:
        raise AuditorError(f"{path}: 'rules: {data.get('rules')}' does not match the file name")
    out: list[Requirement] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["requirements"], 1):
        where = f"{path.name}: requirement {raw.get('id') if isinstance(raw, dict) else '#' + str(i)}"
        try:
            rid = str(raw["id"])
            if rid in seen:
                raise AuditorError(f"{where}: duplicate id")
            seen.add(rid)
            levels = tuple(sorted({int(v) for v in raw["levels"]}))
            if not levels or not all(1 <= v <= 5 for v in levels):
                raise AuditorError(f"{where}: levels must be a non-empty list of 1..5")
            judged = raw["judged_by"]
            if judged == "attestation":
                kind, ids = "attestation", ()
            elif isinstance(judged, dict) and set(judged) == {"findings"} and judged["findings"]:
                kind, ids = "findings", tuple(str(f) for f in judged["findings"])
                bad = [f for f in ids if "." not in f]
                if bad:
                    raise AuditorError(f"{where}: {bad[0]!r} is not a finding id (family.name)")
            else:
                raise AuditorError(f"{where}: judged_by must be 'attestation' or {{findings: [ids]}}")
            valid_days = raw.get("attestation_valid_days")
            if valid_days is not None and not (isinstance(valid_days, int) and valid_days >= 1):
                raise AuditorError(f"{where}: attestation_valid_days must be a whole number of days, at least 1")
            applies_if = raw.get("applies_if")
            if applies_if is not None:
                _check_condition(applies_if, f"{where}: applies_if")
            out.append(Requirement(
                id=rid, title_vi=str(raw["title_vi"]), title_en=str(raw["title_en"]),
                source=str(raw["source"]), levels=levels, judged_by=kind, finding_ids=ids,
                verified=bool(raw.get("verified", False)), rules=rules,
                attestation_valid_days=valid_days, applies_if=applies_if,
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditorError(f"{where}: invalid ({type(exc).__name__}: {exc})") from None
    return out


def find_requirement(req_id: str, directory: str | Path | None = None) -> Requirement:
    """A requirement by id, from any rule set's catalogue (ids are unique across them).

    A rule set without a catalogue is skipped; an invalid catalogue is an error, not a
    requirement that silently does not exist."""
    for rules in available_rulesets(directory):
        if not _catalogue_path(rules, directory).is_file():
            continue
        for req in load_requirements(rules, directory):
            if req.id == req_id:
                return req
    raise AuditorError(f"unknown requirement {req_id!r} (see `auditor comply NAME` for the ids)")
