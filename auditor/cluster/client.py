"""The client side: write a batch, send one task per site, wait, and collect the results.

Everything the client prints comes from the database (the stored scans, or a job's recorded
failure), through the same result dicts as ``auditor scan``, so a batch's output is the
in-process output apart from ids and times. Both services are checked before anything is
written or sent, so an unreachable broker or database is a one-line error with nothing
enqueued; a broker that goes away while the client waits ends the wait with an error instead
of a hang (the batch stays in the database, where ``auditor batch status`` finds it).
"""

from __future__ import annotations

import getpass
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor import storage
from auditor.cluster import app as cluster_app
from auditor.cluster import jobs
from auditor.cluster.worker import request_record
from auditor.errors import AuditorError, TargetError
from auditor.models import ClusterBatch, ClusterJob
from auditor.results import iso
from auditor.scanning import Auditor, ScanRequest
from auditor.targets import Resolver, parse_target

log = logging.getLogger("auditor.cluster.client")

POLL_S = 0.5
BROKER_CHECK_EVERY_S = 2.0
# How long the broker may stay unreachable while the client waits before it gives up.
BROKER_GRACE_S = 6.0
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}


@dataclass
class Submitted:
    batch_id: str
    total: int


def submit(broker: str, request: ScanRequest, *, db: str | None, policy_dir: str | None,
           rate: float | None = None, origin: str = "scan") -> Submitted:
    """Check both services, write the batch with its jobs, send one task per job."""
    url = cluster_app.broker_url(broker)
    auditor = Auditor(db=db, policy_dir=policy_dir)  # a one-line error for a bad policy or database
    # What an in-process scan refuses before scanning is refused here too, not once per site.
    auditor.select_checks(request.checks)
    Resolver(request.resolve, allow_dns=request.allow_dns, policy=request.address_policy)
    if request.ca_file and not Path(request.ca_file).is_file():
        raise AuditorError(f"CA file not found: {request.ca_file}")
    with storage.session_scope(db) as session:  # the database answers (get_engine alone may be cached)
        storage.count_scans(session)
    cluster_app.check_broker(url)
    batch_id = uuid.uuid4().hex
    try:
        user = getpass.getuser()
    except Exception:
        user = ""
    jobs.create_batch(db, batch_id, request.targets, request_record(request, policy_dir),
                      policy_name=auditor.policy.name, policy_version=auditor.policy.version, rate=rate,
                      origin=origin, submitted_by=user)
    app = cluster_app.make_app(url)
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for position in range(len(request.targets)):
                app.send_task(cluster_app.TASK_NAME, args=[batch_id, position], producer=producer,
                              retry=True, retry_policy=PUBLISH_RETRY)
                sent += 1
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = f"not enqueued: the broker failed while the batch was sent ({first})"
        with storage.session_scope(db) as session:
            unsent = [j for j in jobs.jobs_of(session, batch_id) if j.position >= sent]
        for job in unsent:
            if job.id is not None:
                jobs.fail(db, job.id, jobs.job_key(batch_id, job.position), reason, "client")
        raise AuditorError(f"the broker {cluster_app.shown(url)} failed after {sent} of {len(request.targets)} "
                           f"task(s) of batch {batch_id} were sent: {first}") from None
    return Submitted(batch_id, len(request.targets))


def load(db: str | None, batch_id: str) -> tuple[ClusterBatch, list[ClusterJob]]:
    with storage.session_scope(db) as session:
        batch = jobs.get_batch(session, batch_id)
        if batch is None:
            raise AuditorError(f"no batch {batch_id!r} in this database")
        return batch, jobs.jobs_of(session, batch_id)


def wait(db: str | None, batch_id: str, broker: str | None,
         on_finished: Callable[[ClusterJob], None] | None = None,
         should_stop: Callable[[], bool] | None = None) -> list[ClusterJob]:
    """Poll the batch until every job is finished; its jobs. Raises when the broker is lost
    or ``should_stop()`` says so (a stopping scheduler)."""
    url = cluster_app.broker_url(broker) if broker is not None else None
    seen: set[int] = set()
    next_check = time.monotonic() + BROKER_CHECK_EVERY_S
    down_since: float | None = None
    while True:
        _, job_list = load(db, batch_id)
        for job in job_list:
            if job.status in jobs.FINISHED and job.position not in seen:
                seen.add(job.position)
                if on_finished is not None:
                    on_finished(job)
        if len(seen) == len(job_list):
            return job_list
        if should_stop is not None and should_stop():
            raise AuditorError(f"stopped while waiting for batch {batch_id}")
        if url is not None and time.monotonic() >= next_check:
            next_check = time.monotonic() + BROKER_CHECK_EVERY_S
            try:
                cluster_app.check_broker(url, timeout=2.0)
                down_since = None
            except AuditorError as exc:
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since >= BROKER_GRACE_S:
                    raise AuditorError(
                        f"lost the broker mid-batch ({len(seen)} of {len(job_list)} site(s) finished; the rest "
                        f"stay queued in batch {batch_id}, see `auditor batch status {batch_id}`): {exc}") from None
        time.sleep(POLL_S)


def job_result(session: Any, job: ClusterJob) -> dict[str, Any]:
    """The result dict of one job, as ``auditor scan`` prints a site."""
    if job.status == "done" and job.scan_id is not None:
        stored = storage.scan_result(session, job.scan_id)
        if stored is not None:
            return stored
    if job.status == "done" and job.result:
        return dict(job.result)
    try:
        url, host, port, _, _ = parse_target(job.target)
    except TargetError:
        url, host, port = job.target, None, None
    error = job.error if job.status == "failed" else f"not finished: {job.status}"
    return {
        "url": url, "host": host, "port": port, "address": None, "scan_id": None,
        "started_at": iso(job.started_at), "finished_at": iso(job.finished_at),
        "score": None, "grade": None, "policy": None, "checks": {}, "findings": [],
        "assessment": {"complete": False, "incomplete_checks": []},
        "error": error or "failed",
    }


def results(db: str | None, batch_id: str) -> list[dict[str, Any]]:
    """Every job's result dict, in input order."""
    with storage.session_scope(db) as session:
        if jobs.get_batch(session, batch_id) is None:
            raise AuditorError(f"no batch {batch_id!r} in this database")
        return [job_result(session, job) for job in jobs.jobs_of(session, batch_id)]
