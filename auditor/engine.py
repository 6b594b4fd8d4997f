"""The engine: runs check plug-ins against many targets concurrently, each within its bounds.

Storage-agnostic: callers pass ``on_start``/``on_finish`` hooks (the CLI and the scheduler use
them to record a scan before it starts and complete it after). Each site gets a hard time
bound: a check still running when its site's deadline passes is reported as a check error
and abandoned (its thread is a daemon and its own network timeouts end it), so one hanging
site never holds up the others beyond its own bound.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from auditor.check import Check, CheckContext, CheckOutcome, Finding, Severity
from auditor.errors import AuditorError
from auditor.models import utcnow
from auditor.targets import Resolver, Target, make_target
from auditor.version import __version__

if TYPE_CHECKING:
    from policies import PolicyFiles

log = logging.getLogger("auditor.engine")

USER_AGENT = f"auditor/{__version__} (network-trust security audit; AGPL-3.0)"


@dataclass
class CheckRunResult:
    check: str
    outcome: CheckOutcome
    duration_s: float

    @property
    def status(self) -> str:
        return self.outcome.status


@dataclass
class SiteResult:
    """Everything one site's scan produced, before any policy is applied."""

    input: str
    target: Target | None
    started_at: datetime
    finished_at: datetime | None = None
    checks: dict[str, CheckRunResult] = field(default_factory=dict)
    error: str | None = None
    scan_id: int | None = None

    @property
    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for run in self.checks.values():
            out.extend(run.outcome.findings)
        return out

    @property
    def url(self) -> str:
        return self.target.url if self.target else self.input


@dataclass
class ScanOptions:
    """What a scan runs and how far it may go."""

    timeout: float = 10.0  # one network operation (connect or read)
    site_timeout: float = 180.0  # the whole site, all checks
    ca_file: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    user_agent: str = USER_AGENT
    system_for: Callable[[Target], dict[str, Any] | None] | None = None
    policy_files: PolicyFiles | None = None  # the policy in force, handed to every check
    # True when the user named the checks (--checks): each runs whatever its ``applies`` says.
    named_checks: bool = False


def _run_check(check: Check, target: Target, ctx: CheckContext) -> CheckOutcome:
    try:
        outcome = check.run(target, ctx)
        if not isinstance(outcome, CheckOutcome):
            return CheckOutcome.failed(f"check {check.id!r} returned {type(outcome).__name__}, not CheckOutcome")
        return outcome
    except AuditorError as exc:
        return CheckOutcome.failed(str(exc))
    except Exception as exc:  # a plug-in's bug must not take the scan down
        log.debug("check %s crashed", check.id, exc_info=True)
        first = str(exc).splitlines()[0] if str(exc) else ""
        return CheckOutcome.failed(f"internal error in check {check.id}: {type(exc).__name__}: {first}"[:500])


def _applies(check: Check, target: Target, ctx: CheckContext) -> bool:
    """``check.applies``, where a plug-in's bug runs the check (its error is then reported)."""
    try:
        return bool(check.applies(target, ctx))
    except Exception:
        log.debug("check %s: applies() crashed; running it", check.id, exc_info=True)
        return True


def merged_params(checks: Iterable[Check], policy_params: dict[str, Any]) -> dict[str, Any]:
    """Each check's declared parameter defaults, overridden by the policy's."""
    params: dict[str, Any] = {}
    for check in checks:
        params.update(check.parameters)
    params.update(policy_params)
    return params


def scan_site(
    text: str, checks: list[Check], resolver: Resolver, opts: ScanOptions,
    on_start: Callable[[SiteResult], None] | None = None,
) -> SiteResult:
    """Scan one site: resolve it, run every check concurrently within the site's time bound."""
    result = SiteResult(input=text, target=None, started_at=utcnow())
    try:
        result.target = make_target(text, resolver)
    except AuditorError as exc:
        result.error = str(exc)
        result.finished_at = utcnow()
        return result
    target = result.target
    if on_start is not None:
        on_start(result)
    deadline = time.monotonic() + opts.site_timeout
    ctx = CheckContext(
        timeout=opts.timeout,
        deadline=deadline,
        ca_file=opts.ca_file,
        user_agent=opts.user_agent,
        params=merged_params(checks, opts.params),
        options=opts.options,
        system=opts.system_for(target) if opts.system_for else None,
        resolver=resolver,
        policy_files=opts.policy_files,
    )
    if not opts.named_checks:
        checks = [c for c in checks if _applies(c, target, ctx)]
    slots: dict[str, list[Any]] = {}
    threads: list[tuple[Check, threading.Thread]] = []
    for check in checks:
        slot: list[Any] = []
        slots[check.id] = slot

        def work(check: Check = check, slot: list[Any] = slot) -> None:
            t0 = time.monotonic()
            outcome = _run_check(check, target, ctx)
            slot.append(CheckRunResult(check.id, outcome, round(time.monotonic() - t0, 3)))

        thread = threading.Thread(target=work, name=f"check-{check.id}-{target.host}", daemon=True)
        thread.start()
        threads.append((check, thread))
    for check, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        slot = slots[check.id]
        if slot:
            result.checks[check.id] = slot[0]
        else:
            result.checks[check.id] = CheckRunResult(
                check.id,
                CheckOutcome.failed(f"did not finish within the site time bound ({opts.site_timeout:g} s)"),
                round(opts.site_timeout, 3),
            )
    if result.checks and all(r.status == "error" for r in result.checks.values()) and not result.findings:
        result.error = "; ".join(f"{r.check}: {r.outcome.error}" for r in result.checks.values())
    result.finished_at = utcnow()
    return result


def scan_many(
    inputs: list[str],
    checks: list[Check],
    resolver: Resolver,
    opts: ScanOptions,
    *,
    concurrency: int = 8,
    on_start: Callable[[SiteResult], None] | None = None,
    on_finish: Callable[[SiteResult], None] | None = None,
) -> Iterator[SiteResult]:
    """Scan sites concurrently and yield each result as it completes (not in input order).

    ``on_start`` runs in the worker once the target resolved, before any check; ``on_finish``
    runs in the worker after the last check. Workers are daemon threads: a hung plug-in can
    never keep the process alive after the caller is done.
    """
    work: queue.Queue[tuple[int, str] | None] = queue.Queue()
    done: queue.Queue[tuple[int, SiteResult]] = queue.Queue()
    for item in enumerate(inputs):
        work.put(item)
    n_workers = max(1, min(concurrency, len(inputs)))
    for _ in range(n_workers):
        work.put(None)

    def worker() -> None:
        while True:
            item = work.get()
            if item is None:
                return
            index, text = item
            res: SiteResult | None = None
            try:
                res = scan_site(text, checks, resolver, opts, on_start)
                if on_finish is not None:
                    on_finish(res)
            except Exception as exc:  # storage failure and the like: report, keep going
                log.debug("site %s failed", text, exc_info=True)
                message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if res is None:
                    res = SiteResult(input=text, target=None, started_at=utcnow(), finished_at=utcnow())
                res.error = message  # the scan id, if any, is kept: the stored row says what happened
            done.put((index, res))

    for i in range(n_workers):
        threading.Thread(target=worker, name=f"site-worker-{i}", daemon=True).start()
    for _ in inputs:
        _, res = done.get()
        yield res


def max_severity(findings: Iterable[Finding]) -> Severity | None:
    worst: Severity | None = None
    for f in findings:
        if worst is None or f.severity.rank > worst.rank:
            worst = f.severity
    return worst
