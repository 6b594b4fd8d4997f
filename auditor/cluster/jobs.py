"""Batch and job bookkeeping in the database: every state change is one conditional statement.

A *batch* is one ``scan --broker`` run: its request and one *job* per input line. A job is
``queued`` when written, ``running`` while a worker has it, then ``done`` (its scan is
stored: completed, or failed because the site could not be scanned) or ``failed`` (no
result: the job gave up, with the reason). ``attempts`` counts deliveries that started the
scan, so a job whose worker dies each time ends as a recorded failure instead of an endless
redelivery.

The idempotency key of a job is ``<batch>:<position>``. Its row in ``cluster_job_result`` is
inserted in the very transaction that finishes the job (with the stored scan, see
:class:`auditor.cluster.worker.ClusterAuditor`, or with the failure), so the primary key, not
a read-then-write, refuses a second finished scan for one job however the deliveries race.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from auditor import storage
from auditor.models import ClusterBatch, ClusterJob, ClusterJobResult, utcnow

FINISHED = ("done", "failed")
STATES = ("queued", "running", "done", "failed")
BATCHES = ClusterBatch.__table__  # type: ignore[attr-defined]
JOBS = ClusterJob.__table__  # type: ignore[attr-defined]
RESULTS = ClusterJobResult.__table__  # type: ignore[attr-defined]


def job_key(batch_id: str, position: int) -> str:
    return f"{batch_id}:{position}"


def create_batch(
    db: str | None, batch_id: str, targets: Sequence[str], request: dict[str, Any], *,
    policy_name: str, policy_version: str, rate: float | None, origin: str, submitted_by: str,
) -> datetime:
    """Write the batch and its queued jobs in one transaction; when it was created."""
    now = utcnow()
    with storage.session_scope(db) as session:
        session.execute(insert(BATCHES).values(
            id=batch_id, created_at=now, origin=origin, total=len(targets), request=request,
            policy_name=policy_name, policy_version=policy_version, rate=rate, submitted_by=submitted_by,
        ))
        rows = [
            {"batch_id": batch_id, "position": i, "target": text, "status": "queued", "attempts": 0,
             "queued_at": now, "worker": "",
             "not_before": now + timedelta(seconds=i / rate) if rate else None}
            for i, text in enumerate(targets)
        ]
        for start in range(0, len(rows), 1000):
            session.execute(insert(JOBS), rows[start:start + 1000])
    return now


def get_batch(session: Session, batch_id: str) -> ClusterBatch | None:
    return session.get(ClusterBatch, batch_id)


def jobs_of(session: Session, batch_id: str) -> list[ClusterJob]:
    stmt = select(ClusterJob).where(ClusterJob.batch_id == batch_id).order_by(ClusterJob.position)
    return list(session.exec(stmt))


def find_job(session: Session, batch_id: str, position: int) -> ClusterJob | None:
    stmt = select(ClusterJob).where(ClusterJob.batch_id == batch_id, ClusterJob.position == position)
    return session.exec(stmt).first()


def finish_in(session: Session, job_id: int, key: str, *, status: str, scan_id: int | None, worker: str,
              result: dict[str, Any] | None = None, error: str | None = None) -> None:
    """Finish a job inside the caller's transaction: the idempotency row, then the job.

    Raises :class:`IntegrityError` when the job already has its one result (then the caller's
    whole transaction, a stored scan included, rolls back).
    """
    session.execute(insert(RESULTS).values(job_key=key, scan_id=scan_id, stored_at=utcnow(), worker=worker))
    session.execute(
        update(JOBS).where(JOBS.c.id == job_id)
        .values(status=status, scan_id=scan_id, result=result, error=error[:2000] if error else None,
                finished_at=utcnow(), worker=worker)
    )


def finish(db: str | None, job_id: int, key: str, *, status: str, worker: str, scan_id: int | None = None,
           result: dict[str, Any] | None = None, error: str | None = None) -> bool:
    """Finish a job in a transaction of its own; False when it had finished already."""
    try:
        with storage.session_scope(db) as session:
            finish_in(session, job_id, key, status=status, scan_id=scan_id, worker=worker, result=result,
                      error=error)
    except IntegrityError:
        return False
    return True


def fail(db: str | None, job_id: int, key: str, reason: str, worker: str) -> bool:
    """A job that gave up: ``failed`` with its reason and no scan; False when already finished."""
    return finish(db, job_id, key, status="failed", worker=worker, error=reason)


@dataclass(frozen=True)
class Attempt:
    """A delivery that starts the scan: its number and the scan an earlier delivery left."""

    number: int
    previous_scan_id: int | None


def begin_attempt(db: str | None, job_id: int, worker: str) -> Attempt | None:
    """``queued``/``running`` → ``running`` with one more attempt; None when the job is finished.

    A job found ``running`` is one whose earlier delivery was lost with its worker (the broker
    only redelivers a message nobody acknowledged) or a duplicate message; the conditional
    UPDATE makes the state change atomic whatever else runs.
    """
    with storage.session_scope(db) as session:
        job = session.get(ClusterJob, job_id)
        if job is None or job.status in FINISHED:
            return None
        before = job.scan_id
        changed = session.execute(
            update(JOBS).where(JOBS.c.id == job_id, JOBS.c.status.in_(("queued", "running")))
            .values(status="running", attempts=JOBS.c.attempts + 1, worker=worker, started_at=utcnow(),
                    scan_id=None)
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            return None
        session.flush()
        session.refresh(job)
        return Attempt(int(job.attempts), before)


def link_scan(db: str | None, job_id: int, scan_id: int) -> None:
    """Point a running job at its attempt's scan row as soon as that row exists, so a
    redelivery after this worker dies can mark that scan interrupted."""
    with storage.session_scope(db) as session:
        session.execute(update(JOBS).where(JOBS.c.id == job_id, JOBS.c.status == "running").values(scan_id=scan_id))


def counts(jobs: Sequence[ClusterJob]) -> dict[str, int]:
    out = dict.fromkeys(STATES, 0)
    for job in jobs:
        out[job.status] = out.get(job.status, 0) + 1
    return out
