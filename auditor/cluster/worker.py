"""The worker side: one Celery task per job, run with the same engine, policy and storage as
``auditor scan``.

A task carries only ``(batch_id, position)``; everything else (the request, the policy, the
target) is read from the database, so a message can neither smuggle options in nor be
anything but a pointer to a job. The steps of a delivery:

1. the job is looked up; one already finished is acknowledged and dropped (a duplicate);
2. the batch's rate limit (``not_before``) and the per-address politeness slot are waited
   for briefly, else the task is re-sent with a countdown (the job stays ``queued``);
3. ``begin_attempt`` moves the job to ``running`` and counts the attempt; a scan left by an
   earlier delivery whose worker died is marked ``interrupted`` now, and a job past
   ``MAX_ATTEMPTS`` ends ``failed`` with its reason instead of being redelivered forever;
4. the scan runs through :class:`ClusterAuditor`, which inserts the job's idempotency row in
   the transaction that stores the finished scan: a second delivery racing the first fails
   on the primary key, its scan is marked ``interrupted`` and nothing else is stored;
5. the task returns and only then is the message acknowledged (late ack, :mod:`.app`).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from typing import Any

from celery import Celery, Task
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from auditor import storage
from auditor.check import Check
from auditor.cluster import app as cluster_app
from auditor.cluster import jobs, politeness
from auditor.engine import SiteResult
from auditor.errors import AuditorError
from auditor.models import Scan, utcnow
from auditor.scanning import Auditor, ScanRequest
from auditor.targets import AddressPolicy, Resolver, make_target

log = logging.getLogger("auditor.cluster.worker")

# Deliveries that start a scan before a job gives up (a site that kills its worker each time).
MAX_ATTEMPTS = 3
# Re-sends of a task whose scan raised something unexpected (database blip, ...), then failed.
MAX_RETRIES = 3
# A rate-limit wait longer than this is not slept in the task: the task is re-sent instead.
SLEEP_AT_MOST_S = 2.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def request_of(batch_request: dict[str, Any], target: str) -> ScanRequest:
    """The one-site :class:`ScanRequest` of a job, from its batch's stored request."""
    policy = batch_request.get("address_policy") or {}
    return ScanRequest(
        targets=[target],
        checks=batch_request.get("checks"),
        resolve=list(batch_request.get("resolve") or []),
        ca_file=batch_request.get("ca_file"),
        timeout=float(batch_request.get("timeout", 10.0)),
        site_timeout=float(batch_request.get("site_timeout", 180.0)),
        concurrency=1,
        allow_dns=bool(batch_request.get("allow_dns", True)),
        address_policy=AddressPolicy(**{k: bool(v) for k, v in policy.items()
                                        if k in ("allow_private", "allow_loopback", "allow_link_local")}),
        options=dict(batch_request.get("options") or {}),
    )


def request_record(request: ScanRequest, policy_dir: str | None) -> dict[str, Any]:
    """What a batch stores of a :class:`ScanRequest` (its targets are the jobs)."""
    return {
        "checks": request.checks if isinstance(request.checks, str | None) else [str(c) for c in request.checks],
        "resolve": list(request.resolve), "ca_file": request.ca_file, "timeout": request.timeout,
        "site_timeout": request.site_timeout, "allow_dns": request.allow_dns,
        "address_policy": {"allow_private": request.address_policy.allow_private,
                           "allow_loopback": request.address_policy.allow_loopback,
                           "allow_link_local": request.address_policy.allow_link_local},
        "options": dict(request.options), "policy_dir": policy_dir,
    }


_CHECKS: dict[str | None, list[Check]] = {}
_CHECKS_LOCK = threading.Lock()


class ClusterAuditor(Auditor):
    """An :class:`Auditor` whose finished scan carries its job's idempotency row."""

    def __init__(self, *, db: str | None, policy_dir: str | None, job_id: int, key: str, worker: str) -> None:
        super().__init__(db=db, policy_dir=policy_dir)
        self.job_id, self.key, self.worker = job_id, key, worker
        self.duplicate_of: str | None = None

    def select_checks(self, names: str | list[str] | list[Check] | None) -> list[Check]:
        # Discovering the plug-ins (entry points, catalogues) costs ~0.25 s: once per worker
        # process and check list, not once per site. An in-process scan shares its check
        # objects among its concurrent sites in the same way.
        key = names if isinstance(names, str | None) else ",".join(str(n) for n in names)
        with _CHECKS_LOCK:
            if key not in _CHECKS:
                _CHECKS[key] = super().select_checks(names)
            return _CHECKS[key]

    def _finishing(self, session: Session, scan: Scan) -> None:
        jobs.finish_in(session, self.job_id, self.key, status="done", scan_id=scan.id, worker=self.worker)

    def _record_finish(self, res: SiteResult, recorded: dict[str, Any]) -> None:
        try:
            super()._record_finish(res, recorded)
        except IntegrityError:
            # Another delivery of this job stored its result first: this scan is not a result.
            self.duplicate_of = self.key
            if res.scan_id is not None:
                with storage.session_scope(self.db) as session:
                    storage.mark_scan_interrupted(
                        session, res.scan_id, f"interrupted: job {self.key} was already stored by another delivery")


def _pre_resolve(request: ScanRequest, target: str) -> str | None:
    """The address the scan will connect to (for the politeness slot); None when it fails
    (the scan then fails the same way and reports it)."""
    try:
        resolver = Resolver(request.resolve, allow_dns=request.allow_dns, policy=request.address_policy)
        return make_target(target, resolver).address
    except AuditorError:
        return None
    except Exception:
        log.debug("pre-resolution of %s failed", target, exc_info=True)
        return None


class Retry(Exception):
    """Hand the job back to the broker for later (``countdown`` seconds)."""

    def __init__(self, countdown: float) -> None:
        super().__init__(f"retry in {countdown:.1f} s")
        self.countdown = countdown


def run_job(db: str | None, batch_id: str, position: int, *, worker: str, visibility_timeout: float,
            retries: int = 0) -> str:
    """Do one job; what happened, in a word (for the log). Raises :class:`Retry`."""
    with storage.session_scope(db) as session:
        batch = jobs.get_batch(session, batch_id)
        job = jobs.find_job(session, batch_id, position) if batch is not None else None
    if batch is None or job is None or job.id is None:
        log.error("job %s:%s not found in database %s: dropped (is this worker on the client's --db?)",
                  batch_id, position, storage.resolve_db_url(db).split("@")[-1])
        return "unknown"
    key = jobs.job_key(batch_id, position)
    if job.status in jobs.FINISHED:
        return "duplicate"
    request = request_of(batch.request, job.target)
    if request.site_timeout + cluster_app.HOLD_MARGIN_S > visibility_timeout:
        jobs.fail(db, job.id, key, f"the worker's visibility timeout ({visibility_timeout:g} s) is shorter than "
                  f"the site time bound plus {cluster_app.HOLD_MARGIN_S:g} s: the broker would hand the "
                  "scan to a second worker while it runs; start workers with a longer --visibility-timeout",
                  worker)
        return "refused"
    if job.not_before is not None:
        wait = (job.not_before - utcnow()).total_seconds()
        if wait > SLEEP_AT_MOST_S:
            raise Retry(wait)
        if wait > 0:
            time.sleep(wait)
    address = _pre_resolve(request, job.target)
    lease = None
    if address is not None:
        limit = politeness.limit_from(_policy_parameters(batch.request.get("policy_dir")))
        lease = politeness.acquire(db, address, limit, worker, key, wait=cluster_app.HOLD_WAIT_S)
        if lease is None:
            return _busy(address)
    try:
        if lease is not None:
            with politeness.Held(db, lease):
                return _scan(db, batch.request, batch.policy_name, batch.policy_version, job.id, key, request, worker)
        return _scan(db, batch.request, batch.policy_name, batch.policy_version, job.id, key, request, worker)
    except Retry:
        raise
    except Exception as exc:  # a database blip and the like: try again a few times, then record it
        first = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"{type(exc).__name__}: {first}"[:500]
        if retries < MAX_RETRIES:
            log.warning("job %s failed (%s); retrying", key, reason)
            raise Retry(2.0 ** retries) from exc
        jobs.fail(db, job.id, key, f"gave up after {retries + 1} tries: {reason}", worker)
        return "failed"


def _busy(address: str) -> str:
    log.info("no politeness slot free for %s; re-sending the task", address)
    raise Retry(1.0 + random.random() * 2)


_POLICY_PARAMS: dict[str | None, dict[str, Any]] = {}


def _policy_parameters(policy_dir: str | None) -> dict[str, Any]:
    if policy_dir not in _POLICY_PARAMS:
        import policies

        _POLICY_PARAMS[policy_dir] = dict(policies.load_policy(policy_dir).parameters)
    return _POLICY_PARAMS[policy_dir]


def _scan(db: str | None, batch_request: dict[str, Any], policy_name: str, policy_version: str,
          job_id: int, key: str, request: ScanRequest, worker: str) -> str:
    attempt = jobs.begin_attempt(db, job_id, worker)
    if attempt is None:
        return "duplicate"
    if attempt.previous_scan_id is not None:
        with storage.session_scope(db) as session:
            storage.mark_scan_interrupted(
                session, attempt.previous_scan_id,
                f"interrupted: the worker running job {key} stopped; redelivered (attempt {attempt.number})")
    if attempt.number > MAX_ATTEMPTS:
        jobs.fail(db, job_id, key, f"gave up after {MAX_ATTEMPTS} deliveries: each worker stopped before the "
                  "scan was stored", worker)
        return "failed"
    try:
        auditor = ClusterAuditor(db=db, policy_dir=batch_request.get("policy_dir"), job_id=job_id, key=key,
                                 worker=worker)
        if (auditor.policy.name, auditor.policy.version) != (policy_name, policy_version):
            raise AuditorError(f"this worker's policy is {auditor.policy.name} {auditor.policy.version}, the batch "
                               f"was submitted under {policy_name} {policy_version}")
        results = auditor.scan(request, on_scan_start=lambda _text, scan_id: jobs.link_scan(db, job_id, scan_id))
    except AuditorError as exc:
        # The same for every worker (a missing CA file, an unknown check): a recorded failure.
        jobs.fail(db, job_id, key, str(exc), worker)
        return "failed"
    result = results[0]
    if auditor.duplicate_of:
        return "duplicate"
    if result.get("scan_id") is None:
        # The input names no site, so nothing was stored as a scan: the job keeps the result.
        jobs.finish(db, job_id, key, status="done", worker=worker, result=result)
    return "done"


def register_task(app: Celery, db: str | None, visibility_timeout: float) -> Task:
    """The scan task on ``app``, bound to this worker's database."""
    me = worker_name()

    # max_retries=None: re-sends while waiting for a politeness or rate slot are not failures;
    # failures are bounded by MAX_RETRIES and MAX_ATTEMPTS, which end in a recorded failed job.
    @app.task(name=cluster_app.TASK_NAME, bind=True, max_retries=None)
    def scan_site(self: Task, *args: Any, **kwargs: Any) -> str:
        if kwargs or len(args) != 2 or not isinstance(args[0], str) or type(args[1]) is not int \
                or not 0 < len(args[0]) <= 64 or args[1] < 0:
            # A malformed message: say so and acknowledge it; it can never succeed.
            log.error("rejected a malformed task message: args=%.200r kwargs=%.200r", args, kwargs)
            return "malformed"
        batch_id, position = args
        retries = int(self.request.retries or 0)
        try:
            outcome = run_job(db, batch_id, position, worker=me, visibility_timeout=visibility_timeout,
                              retries=retries)
        except Retry as again:
            # A new message with a countdown; this one is then acknowledged. Counted apart from
            # attempts: waiting for a slot is not a failure.
            raise self.retry(countdown=again.countdown) from None
        log.info("job %s:%s %s", batch_id, position, outcome)
        return outcome

    return scan_site
