"""Scan and store: the engine plus a policy plus storage, as the CLI and the scheduler use it.

Every scan is written as ``running`` before its checks start and completed after, so a
crash leaves a visible trace. The row names the process running it, so the next process to
open the database marks it ``interrupted`` once that process is gone (see
:func:`auditor.storage.reap_dead_scans`). A run of a ``--list`` file records the file, so
``resume`` can skip what an interrupted run of the same list already completed. Output is
always built from the stored rows, so ``auditor show`` prints exactly what ``auditor scan``
printed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

import policies
from auditor import registry, storage
from auditor.check import Check
from auditor.engine import ScanOptions, SiteResult, scan_many
from auditor.errors import AuditorError, TargetError
from auditor.models import Scan, utcnow
from auditor.results import iso, jsonable
from auditor.targets import AddressPolicy, Resolver, Target, parse_target
from auditor.version import __version__

log = logging.getLogger("auditor.scanning")


@dataclass
class ScanRequest:
    """The parameters of one ``auditor scan`` run."""

    targets: list[str]
    checks: str | list[str] | list[Check] | None = None
    resolve: list[str] = field(default_factory=list)
    ca_file: str | None = None
    timeout: float = 10.0
    site_timeout: float = 180.0
    concurrency: int = 8
    allow_dns: bool = True
    address_policy: AddressPolicy = field(default_factory=AddressPolicy)
    options: dict[str, Any] = field(default_factory=dict)
    # The --list file the targets came from (recorded with each scan, so a resume finds the run).
    list_file: str | None = None
    # Skip targets with a completed scan since the newest earlier run of ``list_file`` began.
    resume: bool = False

    def recorded(self, check_ids: list[str], *, since: datetime | None = None) -> dict[str, Any]:
        """What is stored with each scan as its parameters, its process and its list run.

        ``since`` is when the run of ``list_file`` began (for a resumed run: when the run it
        continues began).
        """
        out: dict[str, Any] = {
            "checks": check_ids,
            "resolve": list(self.resolve),
            "ca_file": self.ca_file,
            "timeout": self.timeout,
            "site_timeout": self.site_timeout,
            "options": jsonable(self.options),
            storage.OWNER_KEY: storage.owner_stamp(),
        }
        if self.list_file:
            out[storage.LIST_KEY] = {"path": self.list_file, "since": (since or utcnow()).isoformat()}
        return out


def _as_ran(recorded: dict[str, Any], res: SiteResult) -> dict[str, Any]:
    """The parameters to store with a finished site of a run that named no checks.

    Such a run asks for every check that fits the site (``Check.applies``), so the checks
    requested of it are those that ran: one that did not apply (a portal check on a shop, dns
    under --no-dns) is not missing from its assessment. A site that never got a target keeps
    the whole list.
    """
    if res.target is None:
        return recorded
    return {**recorded, "checks": [c for c in recorded["checks"] if c in res.checks]}


@dataclass
class ResumePlan:
    """What a resumed list run skips: input positions already completed, and since when."""

    since: datetime
    done: dict[int, int] = field(default_factory=dict)  # target position -> completed scan id


class Auditor:
    """Runs scans with one policy and one database.

    >>> results = Auditor(db="sqlite:///audit.db").scan(ScanRequest(["https://example.test/"]))
    """

    def __init__(self, *, db: str | None = None, policy_dir: str | Path | None = None) -> None:
        self.db = db
        self.policy = policies.load_policy(policy_dir)
        storage.get_engine(db)  # fail early, with a one-line error, on a bad URL

    def select_checks(self, names: str | list[str] | list[Check] | None) -> list[Check]:
        """Installed checks by id (all when None); Check objects are taken as they are."""
        if isinstance(names, list) and names and all(isinstance(n, Check) for n in names):
            return list(names)  # type: ignore[arg-type]
        if isinstance(names, list):
            names = ",".join(str(n) for n in names)
        checks = registry.select(names)
        if not checks:
            raise AuditorError("no checks are installed")
        return checks

    def scan(
        self,
        request: ScanRequest,
        *,
        on_result: Callable[[dict[str, Any]], None] | None = None,
        on_scan_start: Callable[[str, int], None] | None = None,
        plan: ResumePlan | None = None,
    ) -> list[dict[str, Any]]:
        """Scan, store and return one result dict (the JSON contract) per target, input order.

        ``on_result(result)`` runs as each site completes (for a resumed run, first for each
        target skipped, with its stored result); ``on_scan_start(input, scan_id)`` runs in the
        worker as soon as a site's scan row exists (before any check), so a caller can link its
        own bookkeeping to a scan that a crash might interrupt. An exception in
        ``on_scan_start`` is logged and never fails the scan. With ``request.resume``, targets
        in ``plan`` (by default :meth:`plan_resume`'s) are not scanned again.
        """
        if request.ca_file and not Path(request.ca_file).is_file():
            raise AuditorError(f"CA file not found: {request.ca_file}")
        # Bad --resolve values and unknown checks are refused even when nothing is left to scan.
        resolver = Resolver(request.resolve, allow_dns=request.allow_dns, policy=request.address_policy)
        checks = self.select_checks(request.checks)
        if plan is None and request.resume:
            plan = self.plan_resume(request)
        done = plan.done if plan else {}
        by_input: dict[int, dict[str, Any]] = {}
        for index, scan_id in sorted(done.items()):
            by_input[index] = self.result_dict(scan_id)
            if on_result is not None:
                on_result(by_input[index])
        todo = [i for i in range(len(request.targets)) if i not in done]
        scanned = self._scan_targets(request, [request.targets[i] for i in todo], checks, resolver,
                                     since=plan.since if plan else utcnow(),
                                     on_result=on_result, on_scan_start=on_scan_start)
        by_input.update(zip(todo, scanned, strict=True))
        return [by_input[i] for i in range(len(request.targets))]

    def plan_resume(self, request: ScanRequest) -> ResumePlan | None:
        """The targets of ``request`` a resumed run skips; None when nothing is to be resumed.

        The rule: find the newest recorded run of the same list file (by absolute path) and
        when it began (a resumed run keeps the beginning of the run it continued); a target
        is skipped when its site has a *completed* scan started at or after that moment.
        Failed, interrupted and never-started targets are scanned again.
        """
        if not (request.resume and request.list_file):
            return None
        with storage.session_scope(self.db) as session:
            since = storage.latest_list_run(session, request.list_file)
            if since is None:
                return None
            urls: dict[int, str] = {}
            for i, text in enumerate(request.targets):
                try:
                    urls[i] = parse_target(text)[0]
                except TargetError:
                    continue  # scanned again, to report the same error
            completed = storage.completed_since(session, urls.values(), since)
        return ResumePlan(since, {i: completed[url] for i, url in urls.items() if url in completed})

    def _scan_targets(
        self, request: ScanRequest, targets: list[str], checks: list[Check], resolver: Resolver,
        *, since: datetime,
        on_result: Callable[[dict[str, Any]], None] | None,
        on_scan_start: Callable[[str, int], None] | None,
    ) -> list[dict[str, Any]]:
        """Scan and store ``targets``; their results in the same order."""
        if not targets:
            return []
        opts = ScanOptions(
            timeout=request.timeout,
            site_timeout=request.site_timeout,
            ca_file=request.ca_file,
            params=self.policy.parameters,
            options=dict(request.options),
            # Checks read data files (trackers, vocabularies, sample feed) from the policy in use.
            policy_files=policies.PolicyFiles(self.policy.directory),
            system_for=self._system_for,
            named_checks=request.checks is not None,
        )
        recorded = request.recorded([c.id for c in checks], since=since)
        by_input: dict[int, dict[str, Any]] = {}

        under_way: set[int] = set()  # started, not yet stored whole

        def on_start(res: SiteResult) -> None:
            # The id is under way before its row commits: whenever another process (or a test)
            # can see the scan running, an interruption of this run marks it.
            res.scan_id = self._record_start(res, recorded, under_way.add)
            if on_scan_start is not None:
                try:
                    on_scan_start(res.input, res.scan_id)
                except Exception:
                    log.warning("on_scan_start hook failed for %s", res.input, exc_info=True)

        def on_finish(res: SiteResult) -> None:
            try:
                self._record_finish(res, recorded if request.checks is not None else _as_ran(recorded, res))
                under_way.discard(res.scan_id or 0)
            except Exception as exc:
                # Never leave the scan "running": say it failed and why, then let the engine report it.
                if res.scan_id is not None:
                    first = str(exc).splitlines()[0] if str(exc) else ""
                    self._mark_failed(res.scan_id, f"could not store the result: {type(exc).__name__}: {first}")
                raise

        positions: dict[str, list[int]] = {}
        for i, text in enumerate(targets):
            positions.setdefault(text, []).append(i)
        try:
            for res in scan_many(
                targets, checks, resolver, opts,
                concurrency=request.concurrency, on_start=on_start, on_finish=on_finish,
            ):
                out = self.result_dict(res.scan_id) if res.scan_id else self._unstored_dict(res)
                by_input[positions[res.input].pop(0)] = out
                if on_result is not None:
                    on_result(out)
        except BaseException as exc:  # Ctrl-C, a failing on_result: say so now, not at the next open
            self._mark_interrupted(set(under_way), f"interrupted: the scan run stopped ({type(exc).__name__})")
            raise
        return [by_input[i] for i in range(len(targets))]

    # -- storage (every row goes through auditor.storage) --------------------------------

    def _system_for(self, target: Target) -> dict[str, Any] | None:
        with storage.session_scope(self.db) as session:
            system = storage.system_of_site(session, target.url)
            if system is None:
                return None
            return {
                "id": system.id,
                "name": system.name,
                "level": system.declared_level or system.computed_level,
                "allowed_ports": list(system.allowed_ports or []),
                "attributes": dict(system.attributes or {}),
            }

    def _stamp(self, recorded: dict[str, Any]) -> storage.ScanStamp:
        return storage.ScanStamp(policy_name=self.policy.name, policy_version=self.policy.version,
                                 options=recorded, tool_version=__version__)

    def _record_start(self, res: SiteResult, recorded: dict[str, Any],
                      on_id: Callable[[int], None] | None = None) -> int:
        """Store the scan as ``running``; ``on_id`` is told its id before the row commits."""
        assert res.target is not None
        t = res.target
        with storage.session_scope(self.db) as session:
            scan = storage.start_scan(session, t.url, t.host, t.port, self._stamp(recorded),
                                      started_at=res.started_at, address=t.address)
            assert scan.id is not None
            if on_id is not None:
                on_id(scan.id)
            return scan.id

    def _record_finish(self, res: SiteResult, recorded: dict[str, Any]) -> None:
        findings = [self.policy.apply_severity(f) for f in res.findings]
        verdict = None if res.error else self.policy.evaluate(findings)
        with storage.session_scope(self.db) as session:
            if res.scan_id is None:
                # Never started (bad or unresolvable target): store it if it names a site at all.
                try:
                    url, host, port, _, _ = parse_target(res.input)
                except TargetError:
                    return
                scan = storage.start_scan(session, url, host, port, self._stamp(recorded), started_at=res.started_at)
                res.scan_id = scan.id
            else:
                found = storage.get_scan(session, res.scan_id)
                if found is None:
                    return
                scan = found
                scan.options = {**(scan.options or {}), "checks": recorded["checks"]}  # see _as_ran
            storage.record_outcome(
                session, scan, checks=res.checks.values(), findings=findings,
                finished_at=res.finished_at or utcnow(), error=res.error,
                score=verdict.score if verdict else None, grade=verdict.grade if verdict else None,
            )
            self._finishing(session, scan)

    def _finishing(self, session: Session, scan: Scan) -> None:
        """Runs inside the transaction that stores a finished scan, before it commits.

        Nothing here; a subclass adds rows that must exist exactly when the scan is finished
        (the cluster worker's idempotency key, :mod:`auditor.cluster.worker`). An exception
        rolls the whole finish back.
        """

    def _mark_failed(self, scan_id: int, error: str) -> None:
        """Best effort (the database may be what failed): mark a started scan failed."""
        try:
            with storage.session_scope(self.db) as session:
                storage.mark_scan_failed(session, scan_id, error)
        except Exception:
            log.warning("could not mark scan %s failed", scan_id, exc_info=True)

    def _mark_interrupted(self, scan_ids: set[int], reason: str) -> None:
        """Best effort: mark scans still ``running`` interrupted (one that finishes later stays whole)."""
        try:
            with storage.session_scope(self.db) as session:
                for scan_id in sorted(scan_ids):
                    storage.mark_scan_interrupted(session, scan_id, reason)
        except Exception:
            log.warning("could not mark scans %s interrupted", sorted(scan_ids), exc_info=True)

    # -- output --------------------------------------------------------------------------

    def result_dict(self, scan_id: int) -> dict[str, Any]:
        """The JSON-contract dict of a stored scan."""
        with storage.session_scope(self.db) as session:
            result = storage.scan_result(session, scan_id)
        if result is None:
            raise AuditorError(f"no scan with id {scan_id}")
        return result

    @staticmethod
    def _unstored_dict(res: SiteResult) -> dict[str, Any]:
        return {
            "url": res.url, "host": res.target.host if res.target else None,
            "port": res.target.port if res.target else None,
            "address": res.target.address if res.target else None, "scan_id": None,
            "started_at": iso(res.started_at), "finished_at": iso(res.finished_at),
            "score": None, "grade": None, "policy": None, "checks": {}, "findings": [],
            "assessment": {"complete": False, "incomplete_checks": []},
            "error": res.error,
        }
