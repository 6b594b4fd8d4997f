"""``ScheduleRun`` bookkeeping: claim, start, finish, interrupt, reap and retry.

Every state change is one short statement with a condition on the current state, so two
processes racing for the same row cannot both win:

- *claim*: INSERT a ``queued`` row. ``UNIQUE(site_url, slot)`` lets one process per slot
  win; the partial unique index on active rows (see :mod:`scheduler.store`) refuses a second
  active run of a site whatever its slot.
- *start* / *finish*: UPDATE ... WHERE id = ? AND status = <expected>.
- *reap*: a ``queued``/``started`` row whose worker process is gone becomes ``interrupted``
  (and so does the scan it left ``running``).
- *retry*: an interrupted run is retried by claiming the slot ``interrupted.slot + 1 µs``:
  deterministic, so however many processes notice the interruption, one retry is claimed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from auditor.models import Scan, ScheduleRun, utcnow
from auditor.process_identity import ProcessId, alive_on_this_host
from scheduler.store import ACTIVE_STATES

RUNS = ScheduleRun.__table__  # type: ignore[attr-defined]
SCANS = Scan.__table__  # type: ignore[attr-defined]
RETRY_STEP = timedelta(microseconds=1)


# -- worker identity ----------------------------------------------------------------------


# A scheduler process is named like a scanning one: ``host:pid:start-token``.
Worker = ProcessId


def worker_alive(text: str, *, me: Worker, started: datetime | None, stale_after: timedelta,
                 now: datetime) -> bool:
    """Whether the process that wrote ``worker`` may still be running the run.

    On this host it is exact (pid and start time). A worker on another host cannot be
    probed: its run counts as alive until ``stale_after`` has passed since it started.
    ``me`` is this process.
    """
    other = ProcessId.parse(text)
    alive = alive_on_this_host(other, me) if other is not None else None
    if alive is None:
        return started is not None and now - started < stale_after
    return alive


# -- state changes ------------------------------------------------------------------------


@dataclass
class Claim:
    """The outcome of trying to claim a site for a slot."""

    run_id: int | None
    reason: str = ""  # when run_id is None: "slot-taken" or "site-busy"


def claim(engine: Engine, site_url: str, slot: datetime, worker: str) -> Claim:
    """Insert a ``queued`` run for (site, slot); None when another process has it."""
    try:
        with engine.begin() as conn:
            result = conn.execute(
                insert(RUNS).values(
                    site_url=site_url, slot=slot, status="queued", queued_at=utcnow(), worker=worker
                )
            )
            return Claim(int(result.inserted_primary_key[0]))
    except IntegrityError:
        pass
    with engine.connect() as conn:
        taken = conn.execute(
            select(RUNS.c.id).where(RUNS.c.site_url == site_url, RUNS.c.slot == slot)
        ).first()
    return Claim(None, "slot-taken" if taken else "site-busy")


def mark_started(engine: Engine, run_id: int) -> bool:
    with engine.begin() as conn:
        result = conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id, RUNS.c.status == "queued")
            .values(status="started", started_at=utcnow())
        )
        return result.rowcount == 1


def link_scan(engine: Engine, run_id: int, scan_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(scan_id=scan_id))


def mark_done(engine: Engine, run_id: int, status: str, *, scan_id: int | None, error: str | None) -> bool:
    """``finished`` or ``failed``; only a run this process still holds as ``started``."""
    assert status in ("finished", "failed")
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
    if scan_id is not None:
        values["scan_id"] = scan_id
    with engine.begin() as conn:
        result = conn.execute(
            update(RUNS).where(RUNS.c.id == run_id, RUNS.c.status == "started").values(**values)
        )
        return result.rowcount == 1


def interrupt(engine: Engine, run_id: int, reason: str) -> bool:
    """Mark an active run ``interrupted`` and its still-running scan likewise."""
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(
            select(RUNS.c.site_url, RUNS.c.scan_id, RUNS.c.queued_at, RUNS.c.status).where(RUNS.c.id == run_id)
        ).first()
        if row is None or row.status not in ACTIVE_STATES:
            return False
        result = conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id, RUNS.c.status.in_(ACTIVE_STATES))
            .values(status="interrupted", finished_at=now, error=reason)
        )
        if result.rowcount != 1:
            return False
        scan_filter = (
            SCANS.c.id == row.scan_id
            if row.scan_id is not None
            # Killed between the scan's start and the link: the scan of this URL that
            # started after the run was queued and is still running.
            else and_(SCANS.c.url == row.site_url, SCANS.c.started_at >= row.queued_at)
        )
        conn.execute(
            update(SCANS)
            .where(scan_filter, SCANS.c.status == "running")
            .values(status="interrupted", finished_at=now, error=f"scheduled run interrupted: {reason}")
        )
        if row.scan_id is None:
            linked = conn.execute(
                select(SCANS.c.id).where(scan_filter).order_by(SCANS.c.id.desc()).limit(1)
            ).scalar()
            if linked is not None:
                conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(scan_id=linked))
        return True


@dataclass
class Reaped:
    run_id: int
    site_url: str
    worker: str
    status: str


def reap_dead(engine: Engine, *, stale_after: timedelta) -> list[Reaped]:
    """Interrupt every active run whose worker process is gone (from any process)."""
    now = utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            select(RUNS.c.id, RUNS.c.site_url, RUNS.c.worker, RUNS.c.status, RUNS.c.started_at, RUNS.c.queued_at)
            .where(RUNS.c.status.in_(ACTIVE_STATES))
        ).all()
    me = Worker.current()
    reaped = []
    for row in rows:
        started = row.started_at or row.queued_at
        if worker_alive(row.worker, me=me, started=started, stale_after=stale_after, now=now):
            continue
        reason = f"worker {row.worker} stopped during the run"
        if interrupt(engine, row.id, reason):
            reaped.append(Reaped(row.id, row.site_url, row.worker, row.status))
    return reaped


def latest_by_site(engine: Engine) -> dict[str, Any]:
    """Each site's newest run (a row with the ``schedule_run`` columns), by site URL."""
    latest_ids = select(func.max(RUNS.c.id)).group_by(RUNS.c.site_url)
    with engine.connect() as conn:
        return {r.site_url: r for r in conn.execute(select(RUNS).where(RUNS.c.id.in_(latest_ids))).all()}


@dataclass
class RetryCandidate:
    interrupted_run_id: int
    site_url: str
    slot: datetime


MAX_RETRIES = 3


def retry_candidates(engine: Engine) -> list[RetryCandidate]:
    """Sites whose latest run is ``interrupted`` (nothing was claimed for them since).

    A slot interrupted :data:`MAX_RETRIES` times in a row (retries are one microsecond
    apart) is not retried again, so a site whose scan brings the process down cannot keep a
    restarted scheduler in a crash loop; its next regular slot still runs.
    """
    later = aliased(RUNS)
    stmt = select(RUNS.c.id, RUNS.c.site_url, RUNS.c.slot).where(
        RUNS.c.status == "interrupted",
        ~exists().where(later.c.site_url == RUNS.c.site_url, later.c.id > RUNS.c.id),
    )
    out = []
    with engine.connect() as conn:
        for r in conn.execute(stmt).all():
            earlier = conn.execute(
                select(RUNS.c.id).where(
                    RUNS.c.site_url == r.site_url, RUNS.c.status == "interrupted",
                    RUNS.c.slot >= r.slot - RETRY_STEP * MAX_RETRIES, RUNS.c.slot <= r.slot,
                )
            ).all()
            if len(earlier) < MAX_RETRIES:
                out.append(RetryCandidate(r.id, r.site_url, r.slot + RETRY_STEP))
    return out


class RunGuard:
    """This process's active runs, so SIGTERM can interrupt exactly those."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[int, str] = {}

    def add(self, run_id: int, site_url: str) -> None:
        with self._lock:
            self._active[run_id] = site_url

    def discard(self, run_id: int) -> None:
        with self._lock:
            self._active.pop(run_id, None)

    def snapshot(self) -> dict[int, str]:
        with self._lock:
            return dict(self._active)
