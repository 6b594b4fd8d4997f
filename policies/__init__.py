"""Policies: data files plus a small typed loader.

A policy directory holds ``policy.yaml`` (scoring, grades, caps, parameters, certificate
rules) and, as later parts need them, rule sets and requirement catalogues. ``--policy DIR``
points at a user's own copy of ``policies/default``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.check import Finding, Severity
from auditor.datafiles import load_yaml
from auditor.errors import AuditorError

DEFAULT_DIR = Path(__file__).resolve().parent / "default"
SAMPLE_FEEDS_DIR = Path(__file__).resolve().parent / "feeds" / "sample"
GRADE_ORDER = ("A", "B", "C", "D", "E", "F")


@dataclass(frozen=True)
class Verdict:
    score: int
    grade: str


@dataclass
class Policy:
    name: str
    version: str
    directory: Path
    start: int
    floor: int
    weights: dict[Severity, int]
    grades: list[tuple[str, int]]
    caps: dict[Severity, str]
    severity_overrides: dict[str, Severity] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    certificate: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def ref(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}

    def apply_severity(self, finding: Finding) -> Finding:
        """Return the finding with this policy's severity override applied (if any)."""
        override = self.severity_overrides.get(finding.id)
        if override is not None:
            finding.severity = override
        return finding

    def evaluate(self, findings: list[Finding]) -> Verdict:
        """Score and grade a site's findings: each distinct id counts once."""
        by_id: dict[str, Severity] = {}
        for f in findings:
            sev = self.severity_overrides.get(f.id, f.severity)
            if f.id not in by_id or sev.rank > by_id[f.id].rank:
                by_id[f.id] = sev
        score = self.start - sum(self.weights.get(s, 0) for s in by_id.values())
        score = max(self.floor, score)
        grade = self.grades[-1][0]
        for name, minimum in self.grades:
            if score >= minimum:
                grade = name
                break
        for sev in by_id.values():
            cap = self.caps.get(sev)
            if cap is not None and _grade_index(cap) > _grade_index(grade):
                grade = cap
        return Verdict(score=score, grade=grade)


def _grade_index(grade: str) -> int:
    return GRADE_ORDER.index(grade) if grade in GRADE_ORDER else len(GRADE_ORDER)


def policy_dir(directory: str | Path | None) -> Path:
    if directory is None:
        return DEFAULT_DIR
    path = Path(directory)
    if not path.is_dir():
        raise AuditorError(f"policy directory not found: {path}")
    return path


@dataclass(frozen=True)
class PolicyFiles:
    """The one resolver of policy files: the policy in force (``--policy DIR`` or the bundled one).

    The engine builds one per scan and hands it to every check through its context, so no check
    imports this package or computes a data path of its own. Two kinds of file:

    - replaced by the policy in force: ``policy.yaml``, ``rulesets/*.yaml``,
      ``requirements/*.yaml`` (:meth:`file`; a user's copy of the directory has them all);
    - extended by it: ``privacy.yaml``, ``trackers.yaml`` (:meth:`layers`: the bundled file,
      then the policy's own file of that name merged over it when there is one).

    The built-in sample blocklist lives beside the policies (:attr:`sample_feeds`).
    """

    directory: Path = DEFAULT_DIR

    @classmethod
    def at(cls, directory: str | Path | None) -> PolicyFiles:
        """The files of a policy directory (None: the bundled one); a missing directory is an error."""
        return cls(policy_dir(directory))

    @property
    def is_default(self) -> bool:
        return self.directory.resolve() == DEFAULT_DIR.resolve()

    def file(self, name: str) -> Path:
        """A file the policy in force replaces whole (it may not exist: the reader says so)."""
        return self.directory / name

    def layers(self, name: str) -> list[Path]:
        """The bundled file, then the policy's own one of that name when it exists and differs."""
        out = [DEFAULT_DIR / name]
        own = self.directory / name
        if own.is_file() and own.resolve() != out[0].resolve():
            out.append(own)
        return out

    def load(self, name: str, what: str = "policy file") -> Any:
        return load_yaml(self.file(name), what)

    @property
    def sample_feeds(self) -> Path:
        return SAMPLE_FEEDS_DIR


def load_policy(directory: str | Path | None = None) -> Policy:
    """Load ``policy.yaml`` from a policy directory (default: the bundled one)."""
    files = PolicyFiles.at(directory)
    base = files.directory
    path = files.file("policy.yaml")
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise AuditorError(f"{path}: expected a mapping at top level")
    try:
        score = data.get("score") or {}
        weights = {Severity.parse(k): int(v) for k, v in (score.get("weights") or {}).items()}
        grades = [(str(g["grade"]), int(g["min"])) for g in data["grades"]]
        grades.sort(key=lambda g: -g[1])
        caps = {Severity.parse(c["severity"]): str(c["max_grade"]) for c in data.get("caps") or []}
        overrides = {str(k): Severity.parse(v) for k, v in (data.get("severity_overrides") or {}).items()}
        return Policy(
            name=str(data["name"]),
            version=str(data["version"]),
            directory=base,
            start=int(score.get("start", 100)),
            floor=int(score.get("floor", 0)),
            weights=weights,
            grades=grades,
            caps=caps,
            severity_overrides=overrides,
            parameters=dict(data.get("parameters") or {}),
            certificate=dict(data.get("certificate") or {}),
            description=str(data.get("description") or "").strip(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditorError(f"{path}: invalid policy ({type(exc).__name__}: {exc})") from None
