"""Security-level determination (cấp độ 1–5) from rule-set data.

Each rule set (``policies/<dir>/rulesets/<id>.yaml``) lists the criteria of one legal
instrument — Decree 85/2016 Arts. 7–11, Decree 331/2026 Arts. 11–15 — as rules: the level a
rule grants, the article it encodes, its text, whether the source was verified, and a
condition over the system's declared attributes. This module only evaluates that data; no
legal criterion lives in code.

The result is the highest level of any matching rule (Decree 85 Art. 5, Decree 331 Art. 8.2),
and every matching rule is reported as a reason. A system made of components
(``attributes["components"]``: a list of attribute mappings, each with a ``name``) takes the
highest level of the system and its components. No matching rule gives level 0: the declared
attributes do not place the system anywhere, which the caller reports instead of guessing.

Condition language (YAML mappings)::

    {all: [C, ...]}   {any: [C, ...]}   {not: C}
    {attr: NAME, OP: VALUE}   with OP one of
        eq ne in not_in            (any attribute)
        gte gt lte lt              (numbers)
        contains contains_any contains_none only   (list attributes; ``only``: non-empty and
                                                    every element among VALUE)
"""

from __future__ import annotations

import datetime as _dt
import functools
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from auditor.datafiles import load_yaml
from auditor.errors import AuditorError
from auditor.text import brief
from policies import PolicyFiles

# --- declared attributes the rules may read ----------------------------------------------


@dataclass(frozen=True)
class AttributeSpec:
    """One declared attribute of an information system."""

    name: str
    kind: str  # "enum" | "enum_list" | "int" | "bool"
    default: Any
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    help: str = ""


def _spec(name: str, kind: str, default: Any, help: str, choices: tuple[str, ...] = (),
          minimum: int | None = None, maximum: int | None = None) -> AttributeSpec:
    return AttributeSpec(name, kind, default, choices, minimum, maximum, help)


CATEGORIES = ("internal", "citizen_business", "infrastructure", "industrial_control", "other")
INFO_TYPES = ("public", "private", "personal", "state_secret")
INFRA_SCOPES = ("none", "one_org", "sector_or_provinces", "nationwide_24x7", "international")
CONSTRUCTION_GRADES = ("none", "IV", "III", "II", "I", "special", "national_security")
DEFENCE_HARMS = ("none", "harm", "serious", "especially_serious")
# What kind of state portal a system is (Decree 43/2011 Art. 6 naming; the portal check runs on
# every kind but "none"). No level rule reads it.
STATE_PORTALS = ("none", "government", "ministry", "ministry_unit", "province", "province_agency", "district")

ATTRIBUTES: dict[str, AttributeSpec] = {
    s.name: s
    for s in (
        _spec("category", "enum", "other",
              "system type (Decree 85 Art. 6.2)", CATEGORIES),
        _spec("info_types", "enum_list", [],
              "information types processed (Decree 85 Art. 6.1)", INFO_TYPES),
        _spec("personal_data_subjects", "int", 0,
              "people whose personal (or private) data the system processes; Decree 85's "
              "'users' and Decree 331's basic-data subjects", minimum=0),
        _spec("sensitive_data_subjects", "int", 0,
              "people whose sensitive personal data the system processes", minimum=0),
        _spec("online_public_service_level", "int", 0,
              "highest online public service level offered, 0 (none) to 4", minimum=0, maximum=4),
        _spec("administrative_procedures", "bool", False,
              "handles administrative procedures (thủ tục hành chính)"),
        _spec("conditional_business", "bool", False,
              "online service in a conditional business line (Law on Investment, Appendix IV)"),
        _spec("infrastructure_scope", "enum", "none",
              "whom shared information infrastructure serves", INFRA_SCOPES),
        _spec("national_egov_24x7", "bool", False,
              "national e-Government system that must run 24/7 without unplanned downtime"),
        _spec("construction_grade", "enum", "none",
              "grade of the construction works an industrial control system directly controls",
              CONSTRUCTION_GRADES),
        _spec("defence_harm", "enum", "none",
              "harm to defence or national security if sabotaged (state-secret or defence systems)",
              DEFENCE_HARMS),
        _spec("central_national_data", "bool", False,
              "centralised storage of especially important national data"),
        _spec("pm_list", "bool", False,
              "on the Prime Minister's list of level-5 (national critical) systems"),
        _spec("state_portal", "enum", "none",
              "state-agency portal kind (the portal check's content rules apply to all but none)",
              STATE_PORTALS),
        _spec("risk_assessed_level", "int", 0,
              "level proposed by the mandatory risk assessment (Decree 331 Art. 10), 0: none",
              minimum=0, maximum=5),
    )
}


def normalize_value(spec: AttributeSpec, value: Any) -> Any:
    """Check and normalise one attribute value; raises ValueError with a short reason."""
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"expected true or false, got {brief(value)}")
    if spec.kind == "int":
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got {brief(value)}")
        if isinstance(value, str):
            text = value.strip().replace("_", "").replace(",", "")
            if not text.isdigit():
                raise ValueError(f"expected a whole number, got {brief(value)}")
            value = int(text)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {brief(value)}")
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(f"{value} is below the minimum {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise ValueError(f"{value} is above the maximum {spec.maximum}")
        return value
    if spec.kind == "enum":
        return _choice(spec, value)
    if spec.kind == "enum_list":
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(";")) if v]
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, got {brief(value)}")
        out: list[str] = []
        for item in value:
            item = _choice(spec, item)
            if item not in out:
                out.append(item)
        return out
    raise ValueError(f"unknown attribute kind {spec.kind}")  # pragma: no cover


_TRUE = {"true", "yes", "y", "1", "có", "co"}
_FALSE = {"false", "no", "n", "0", "không", "khong", ""}


def _choice(spec: AttributeSpec, value: Any) -> str:
    if not isinstance(value, str):
        # YAML reads `none` as a string, but `I` / `II` stay strings too; numbers are wrong.
        raise ValueError(f"expected one of {', '.join(spec.choices)}, got {brief(value)}")
    for choice in spec.choices:
        if value.strip().lower() == choice.lower():
            return choice
    raise ValueError(f"{brief(value)} is not one of {', '.join(spec.choices)}")


def with_defaults(attrs: dict[str, Any]) -> dict[str, Any]:
    """Every attribute the rules may read, declared values over defaults (validated)."""
    out: dict[str, Any] = {}
    for name, spec in ATTRIBUTES.items():
        if name in attrs and attrs[name] is not None:
            try:
                out[name] = normalize_value(spec, attrs[name])
            except ValueError as exc:
                raise AuditorError(f"attribute {name!r}: {exc}") from None
        else:
            out[name] = list(spec.default) if isinstance(spec.default, list) else spec.default
    return out


# --- rule sets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    id: str
    level: int
    article: str
    text: str
    text_vi: str
    verified: bool
    when: dict[str, Any]


@dataclass(frozen=True)
class RuleSet:
    id: str
    title: str
    document: str
    effective_from: date
    effective_until: date | None
    verified: bool
    rules: tuple[Rule, ...]
    sources: tuple[str, ...] = ()
    path: Path | None = None

    def in_force(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_until is None or on <= self.effective_until)


@dataclass
class LevelReason:
    level: int
    article: str
    text: str
    text_vi: str = ""
    verified: bool = True
    rule: str = ""
    component: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "article": self.article, "text": self.text}


@dataclass
class Classification:
    system: str
    rules: str
    level: int
    reasons: list[LevelReason]
    declared_level: int | None = None
    mismatch: bool = False
    rules_title: str = ""
    verified: bool = True
    evaluated_on: date | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_level(self) -> int:
        """The level requirements are judged against: the stricter of computed and declared."""
        return max(self.level, self.declared_level or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "rules": self.rules,
            "level": self.level,
            "reasons": [r.to_dict() for r in self.reasons],
            "declared_level": self.declared_level,
            "mismatch": self.mismatch,
            "verified": self.verified,
        }


_OPS = {"eq", "ne", "in", "not_in", "gte", "gt", "lte", "lt", "contains", "contains_any",
        "contains_none", "only"}
_NUMERIC_OPS = {"gte", "gt", "lte", "lt"}
_LIST_OPS = {"contains", "contains_any", "contains_none", "only"}


def _check_condition(cond: Any, where: str) -> None:
    """Validate a condition tree so a typo in policy data fails loudly, not silently false."""
    if not isinstance(cond, dict) or not cond:
        raise AuditorError(f"{where}: a condition must be a non-empty mapping")
    if "all" in cond or "any" in cond:
        key = "all" if "all" in cond else "any"
        if len(cond) != 1 or not isinstance(cond[key], list) or not cond[key]:
            raise AuditorError(f"{where}: '{key}' takes a non-empty list and nothing else")
        for i, sub in enumerate(cond[key]):
            _check_condition(sub, f"{where}.{key}[{i}]")
        return
    if "not" in cond:
        if len(cond) != 1:
            raise AuditorError(f"{where}: 'not' takes one condition and nothing else")
        _check_condition(cond["not"], f"{where}.not")
        return
    name = cond.get("attr")
    ops = [k for k in cond if k != "attr"]
    if name not in ATTRIBUTES:
        raise AuditorError(f"{where}: unknown attribute {name!r}")
    if len(ops) != 1 or ops[0] not in _OPS:
        raise AuditorError(f"{where}: expected exactly one operator of {', '.join(sorted(_OPS))}")
    op, value = ops[0], cond[ops[0]]
    spec = ATTRIBUTES[name]
    if op in _NUMERIC_OPS and spec.kind != "int":
        raise AuditorError(f"{where}: '{op}' needs a numeric attribute, {name} is {spec.kind}")
    if op in _LIST_OPS and spec.kind != "enum_list":
        raise AuditorError(f"{where}: '{op}' needs a list attribute, {name} is {spec.kind}")
    values = value if op in ("in", "not_in", "contains_any", "contains_none", "only") else [value]
    if not isinstance(values, list) or not values:
        raise AuditorError(f"{where}: '{op}' takes a non-empty list")
    item_spec = AttributeSpec(spec.name, "enum", None, spec.choices) if spec.kind == "enum_list" else spec
    for v in values:
        try:
            normalize_value(item_spec, v)
        except ValueError as exc:
            raise AuditorError(f"{where}: {name}: {exc}") from None


def matches(cond: dict[str, Any], attrs: dict[str, Any]) -> bool:
    """Evaluate a (validated) condition against attributes that include every default."""
    if "all" in cond:
        return all(matches(c, attrs) for c in cond["all"])
    if "any" in cond:
        return any(matches(c, attrs) for c in cond["any"])
    if "not" in cond:
        return not matches(cond["not"], attrs)
    name = cond["attr"]
    spec = ATTRIBUTES[name]
    actual = attrs[name]
    op = next(k for k in cond if k != "attr")
    raw = cond[op]
    item_spec = AttributeSpec(spec.name, "enum", None, spec.choices) if spec.kind == "enum_list" else spec
    if isinstance(raw, list):
        value: Any = [normalize_value(item_spec, v) for v in raw]
    else:
        value = normalize_value(item_spec, raw)
    if op == "eq":
        return bool(actual == value)
    if op == "ne":
        return bool(actual != value)
    if op == "in":
        return actual in value
    if op == "not_in":
        return actual not in value
    if op == "gte":
        return bool(actual >= value)
    if op == "gt":
        return bool(actual > value)
    if op == "lte":
        return bool(actual <= value)
    if op == "lt":
        return bool(actual < value)
    if op == "contains":
        return value in actual
    if op == "contains_any":
        return any(v in actual for v in value)
    if op == "contains_none":
        return not any(v in actual for v in value)
    if op == "only":
        return bool(actual) and all(v in value for v in actual)
    raise AuditorError(f"unknown operator {op}")  # pragma: no cover


def _as_date(value: Any, where: str) -> date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise AuditorError(f"{where}: expected a date YYYY-MM-DD, got {value!r}") from None


def rulesets_dir(directory: str | Path | None = None) -> Path:
    return PolicyFiles.at(directory).file("rulesets")


def available_rulesets(directory: str | Path | None = None) -> list[str]:
    base = rulesets_dir(directory)
    return sorted(p.stem for p in base.glob("*.yaml")) if base.is_dir() else []


def load_ruleset(name: str, directory: str | Path | None = None) -> RuleSet:
    """Load and validate one rule set by id (its file name without ``.yaml``)."""
    names = available_rulesets(directory)
    if name not in names:
        raise AuditorError(f"unknown rule set {name!r} (available: {', '.join(names) or 'none'})")
    path = rulesets_dir(directory) / f"{name}.yaml"
    try:
        stat = path.stat()
    except OSError as exc:
        raise AuditorError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
    # Classifying every system of an inventory must not re-parse the YAML each time; an
    # edited file (new mtime or size) is read again.
    return _parse_ruleset(path, name, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _parse_ruleset(path: Path, name: str, _mtime_ns: int, _size: int) -> RuleSet:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise AuditorError(f"{path}: expected a mapping at top level")
    try:
        rules: list[Rule] = []
        seen: set[str] = set()
        for i, raw in enumerate(data["rules"]):
            rid = str(raw.get("id") or f"#{i + 1}")
            where = f"{path.name}: rule {rid}"
            if rid in seen:
                raise AuditorError(f"{where}: duplicate rule id")
            seen.add(rid)
            level = int(raw["level"])
            if not 1 <= level <= 5:
                raise AuditorError(f"{where}: level must be 1..5, got {level}")
            _check_condition(raw.get("when"), f"{where}: when")
            rules.append(Rule(
                id=rid, level=level, article=str(raw["article"]), text=str(raw["text"]).strip(),
                text_vi=str(raw.get("text_vi") or "").strip(),
                verified=bool(raw.get("verified", data.get("verified", True))), when=raw["when"],
            ))
        if data.get("id", name) != name:
            raise AuditorError(f"{path}: id {data.get('id')!r} does not match the file name")
        until = data.get("effective_until")
        return RuleSet(
            id=name,
            title=str(data.get("title") or name),
            document=str(data.get("document") or name),
            effective_from=_as_date(data["effective_from"], f"{path.name}: effective_from"),
            effective_until=_as_date(until, f"{path.name}: effective_until") if until else None,
            verified=bool(data.get("verified", True)),
            rules=tuple(rules),
            sources=tuple(str(s) for s in data.get("sources") or ()),
            path=path,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditorError(f"{path}: invalid rule set ({type(exc).__name__}: {exc})") from None


def ruleset_for(on: date, policy_dir: str | Path | None = None) -> str:
    """The rule set in force on a date, from the rule sets' effective dates.

    With the bundled data: ``decree-85-2016`` until 2026-08-18, ``decree-331-2026`` from
    2026-08-19.
    """
    in_force = [rs for rs in (load_ruleset(n, policy_dir) for n in available_rulesets(policy_dir))
                if rs.in_force(on)]
    if not in_force:
        raise AuditorError(f"no level rule set is in force on {on.isoformat()}")
    # Overlapping windows: the one that took effect last wins.
    return max(in_force, key=lambda rs: rs.effective_from).id


def evaluate_rules(ruleset: RuleSet, attrs: dict[str, Any]) -> list[LevelReason]:
    """Every rule of ``ruleset`` the attributes satisfy, highest level first."""
    full = with_defaults(attrs)
    out = [
        LevelReason(level=r.level, article=r.article, text=r.text, text_vi=r.text_vi,
                    verified=r.verified, rule=r.id)
        for r in ruleset.rules
        if matches(r.when, full)
    ]
    out.sort(key=lambda r: -r.level)
    return out


def classify(
    attrs: dict[str, Any],
    *,
    name: str,
    rules: str | None = None,
    on: date | None = None,
    policy_dir: str | Path | None = None,
) -> Classification:
    """The security level of a system from its declared attributes.

    ``rules`` names the rule set; by default the one in force ``on`` (default: today, UTC).
    ``attrs`` may carry ``declared_level`` (compared, never substituted) and ``components``
    (a list of attribute mappings; the system takes the highest level of them all).
    """
    on = on or _dt.datetime.now(_dt.UTC).date()
    rules = rules or ruleset_for(on, policy_dir)
    ruleset = load_ruleset(rules, policy_dir)
    reasons = evaluate_rules(ruleset, attrs)
    for i, comp in enumerate(attrs.get("components") or []):
        if not isinstance(comp, dict):
            raise AuditorError(f"component #{i + 1} of {name}: expected a mapping of attributes")
        label = str(comp.get("name") or f"#{i + 1}")
        for reason in evaluate_rules(ruleset, comp):
            reason.component = label
            reason.text = f"component {label}: {reason.text}"
            if reason.text_vi:
                reason.text_vi = f"thành phần {label}: {reason.text_vi}"
            reasons.append(reason)
    reasons.sort(key=lambda r: -r.level)
    level = max((r.level for r in reasons), default=0)
    declared = attrs.get("declared_level")
    declared = int(declared) if declared not in (None, "") else None
    return Classification(
        system=name,
        rules=ruleset.id,
        level=level,
        reasons=reasons,
        declared_level=declared,
        mismatch=declared is not None and declared != level,
        rules_title=ruleset.title,
        verified=ruleset.verified and all(r.verified for r in reasons if r.level == level),
        evaluated_on=on,
    )
