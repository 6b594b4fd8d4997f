"""The check plug-in contract.

A check family (``tls``, ``http``, ``privacy``, ...) is a subclass of :class:`Check` that
declares its finding catalogue as data and implements :meth:`Check.run`. Checks are found
through the ``auditor.checks`` entry-point group, so a third-party package adds one without
touching this code.

A check knows nothing of storage, policies or reports: it receives a :class:`~auditor.targets.Target`
and a :class:`CheckContext`, and returns a :class:`CheckOutcome` (findings plus raw evidence,
or an error saying why it could not test). An untested property is never a pass: a check that
could not run returns ``CheckOutcome.failed(reason)``.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from auditor.targets import Resolver, Target
    from policies import PolicyFiles


class Severity(StrEnum):
    """Finding severities, most severe first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """4 for critical down to 0 for info; higher is worse."""
        return _RANK[self]

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        try:
            return cls(str(value.value if isinstance(value, Severity) else value).lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {value!r} (one of {names})") from None


_RANK = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1, Severity.INFO: 0}


@dataclass(frozen=True)
class FindingSpec:
    """One entry of a check's finding catalogue: what the check can raise and why it matters."""

    id: str
    severity: Severity
    title: str
    rationale: str
    remediation: str
    references: tuple[str, ...] = ()
    # Other languages' text: {"vi": {"title": ..., "rationale": ..., "remediation": ...}}.
    translations: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, hash=False)

    def text(self, name: str, lang: str = "en") -> str:
        """``title``, ``rationale`` or ``remediation`` in ``lang``, English when not translated."""
        return self.translations.get(lang, {}).get(name) or str(getattr(self, name))


@dataclass
class Finding:
    """A finding raised for one target.

    ``evidence`` is one line for tables; ``details`` holds structured evidence (JSON-able)
    that is stored and shown in reports.
    """

    id: str
    check: str
    severity: Severity
    title: str
    evidence: str
    references: list[str] = field(default_factory=list)
    url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check,
            "severity": self.severity.value,
            "title": self.title,
            "evidence": self.evidence,
            "references": list(self.references),
        }


@dataclass
class CheckOutcome:
    """What :meth:`Check.run` returns.

    ``evidence`` is the raw, JSON-able material the findings were derived from (stored with
    the scan so a verdict can be re-explained later). ``error`` is set when the check could
    not test what it was asked to; findings raised before the failure are still kept.
    """

    findings: list[Finding] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def status(self) -> str:
        return "error" if self.error else "ok"

    @classmethod
    def failed(cls, reason: str, evidence: dict[str, Any] | None = None) -> CheckOutcome:
        return cls(findings=[], evidence=evidence or {}, error=reason)


class CheckContext:
    """Everything a check may use besides the target.

    - ``timeout``: connect/read timeout in seconds for one network operation.
    - ``deadline``: ``time.monotonic()`` value by which the whole site scan must end;
      use :meth:`remaining` to bound waits.
    - ``ca_file``: PEM trust store to validate chains against (None: the Mozilla store).
    - ``params``: policy parameters (``"tls.min_rsa_bits"`` ...) merged over each check's
      declared defaults; read them with :meth:`param`.
    - ``options``: per-run options that are not policy (crawl bounds, feed directory, ...).
    - ``system``: the inventoried information system the target belongs to, as a plain
      dict (``allowed_ports``, ``level``, ...), or None.
    - ``resolver``: resolves other hosts/ports with the same ``--resolve`` overrides and
      address policy as the target itself.
    - ``policy_files``: the policy in force (``--policy DIR`` or the bundled one), the only way
      a check reaches policy data files (vocabularies, tracker lists, the sample feed).
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        deadline: float | None = None,
        ca_file: str | None = None,
        user_agent: str = "",
        params: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        system: dict[str, Any] | None = None,
        resolver: Resolver | None = None,
        policy_files: PolicyFiles | None = None,
    ) -> None:
        self.timeout = timeout
        self.deadline = deadline if deadline is not None else time.monotonic() + 300.0
        self.ca_file = ca_file
        self.user_agent = user_agent
        self.params = dict(params or {})
        self.options = dict(options or {})
        self.system = system
        self.resolver = resolver
        self._policy_files = policy_files
        self._memo: dict[str, Any] = {}
        self._memo_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def policy_files(self) -> PolicyFiles:
        """The policy files of this scan (the bundled policy when the caller named none)."""
        if self._policy_files is None:
            from policies import PolicyFiles

            self._policy_files = PolicyFiles()
        return self._policy_files

    def remaining(self) -> float:
        """Seconds left before the site deadline (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def bounded_timeout(self) -> float:
        """The per-operation timeout, cut down to what is left of the site deadline."""
        return max(0.5, min(self.timeout, self.remaining()))

    def with_deadline(self, deadline: float) -> CheckContext:
        """The same context with an earlier deadline (never a later one): a sub-task's budget.

        Everything else, the memo included, is shared with this context.
        """
        sub = copy.copy(self)
        sub.deadline = min(self.deadline, deadline)
        return sub

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute a per-target value once and share it between checks (e.g. a crawl).

        Thread-safe: a second caller waits for the first computation instead of repeating it.
        An exception is not cached.
        """
        with self._lock:
            if key in self._memo:
                return self._memo[key]
            lock = self._memo_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._memo:
                    return self._memo[key]
            value = compute()
            with self._lock:
                self._memo[key] = value
            return value


class Check:
    """Base class of a check family.

    Subclasses set ``id``, ``title``, ``description``, ``catalogue`` and optionally
    ``parameters`` (policy parameter names this check reads, with defaults), and implement
    :meth:`run`. Use :meth:`finding` to build findings from the catalogue so that severity,
    title and references always match what ``auditor checks list`` shows.
    """

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    catalogue: ClassVar[tuple[FindingSpec, ...]] = ()
    parameters: ClassVar[dict[str, Any]] = {}

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:  # pragma: no cover
        raise NotImplementedError

    def applies(self, target: Target, ctx: CheckContext) -> bool:
        """Whether this check belongs in a scan of ``target`` that did not name its checks.

        A scan without ``--checks`` runs every installed check whose ``applies`` is true; a
        check named with ``--checks`` always runs (and reports a check error when it cannot).
        So a family that only makes sense for some systems (state-portal content) or needs a
        permission the run did not give (DNS queries under ``--no-dns``) stays out of the
        default set for the rest, instead of filling every result with errors. Must be quick
        and must not touch the network.
        """
        return True

    def spec(self, finding_id: str) -> FindingSpec:
        for spec in self.catalogue:
            if spec.id == finding_id:
                return spec
        raise KeyError(f"{self.id}: finding id {finding_id!r} is not in the catalogue")

    def finding(
        self, finding_id: str, evidence: str, *, url: str | None = None, **details: Any
    ) -> Finding:
        spec = self.spec(finding_id)
        return Finding(
            id=spec.id,
            check=self.id,
            severity=spec.severity,
            title=spec.title,
            evidence=evidence,
            references=list(spec.references),
            url=url,
            details=details,
        )
