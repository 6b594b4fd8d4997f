"""Editing the schedule from a shell: ``auditor schedule list|add|pause|resume|remove``.

Each command writes ``ScheduleSetting`` rows, then brings the job store in line at once
(a paused scheduler on the same store: nothing runs in this process). A running
``auditor schedule run`` elsewhere sees the change at its next wake-up, within its
``--sync-interval``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from sqlalchemy import inspect
from sqlmodel import Session, select

from auditor import storage
from auditor.errors import AuditorError
from auditor.models import InformationSystem, utcnow
from auditor.targets import parse_target
from scheduler import runs
from scheduler.jobs import EditingScheduler, SiteJobStore, SitePlan, job_id, plan_sites, reconcile
from scheduler.store import JOBS_TABLE, ScheduleSetting, scheduler_engine


@contextmanager
def paused_scheduler(db: str | None) -> Iterator[EditingScheduler]:
    """A scheduler on the tool's job store that never runs anything (for editing jobs)."""
    engine = scheduler_engine(db)
    scheduler = EditingScheduler(
        jobstores={"default": SiteJobStore(engine=engine, tablename=JOBS_TABLE)},
        executors={"default": ThreadPoolExecutor(1)},
        timezone=UTC,
    )
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def _sync_with(scheduler: EditingScheduler, db: str | None) -> list[SitePlan]:
    """Bring ``scheduler``'s job store in line with the inventory and the settings."""
    with storage.session_scope(db) as session:
        plans = plan_sites(session)
    reconcile(scheduler, plans, utcnow(), lambda *a, **k: None)
    return plans


def sync(db: str | None) -> None:
    """Bring the job store in line with the inventory and the settings."""
    with paused_scheduler(db) as scheduler:
        _sync_with(scheduler, db)


def enrolled_sites(session: Session) -> list[str]:
    """URLs enrolled by hand (``auditor schedule add URL``) and not removed, sorted.

    Sites of an information system are enrolled through their system; these are the others,
    which the public registry lists as well. A database the scheduler never touched has none.
    """
    if not inspect(session.get_bind()).has_table(ScheduleSetting.__tablename__):
        return []
    rows = session.exec(
        select(ScheduleSetting.key).where(ScheduleSetting.scope == "site", ScheduleSetting.state != "removed")
    )
    return sorted(set(rows))


def enrolled_in(db: str | None) -> list[str]:
    """:func:`enrolled_sites` of the database ``db`` (for callers without a session)."""
    with storage.session_scope(db) as session:
        return enrolled_sites(session)


def normalise_url(url: str) -> str:
    return parse_target(url)[0]


def _setting(session: Session, scope: str, key: str) -> ScheduleSetting | None:
    return session.exec(
        select(ScheduleSetting).where(ScheduleSetting.scope == scope, ScheduleSetting.key == key)
    ).first()


def _upsert(session: Session, scope: str, key: str, **values: Any) -> ScheduleSetting:
    row = _setting(session, scope, key) or ScheduleSetting(scope=scope, key=key)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return row


def find_system(session: Session, name: str) -> InformationSystem:
    system = session.exec(select(InformationSystem).where(InformationSystem.name == name)).first()
    if system is None and name.isdigit():
        system = session.get(InformationSystem, int(name))
    if system is None:
        raise AuditorError(f"no information system named {name!r} (see `auditor systems list`)")
    return system


def add_site(db: str | None, url: str, spec: str | None) -> str:
    """Enrol a site (creating its Site row if needed) with its own spec, or the inherited one."""
    scheduler_engine(db)
    full, host, port, _, _ = parse_target(url)
    with storage.session_scope(db) as session:
        storage.get_or_create_site(session, full, host, port)
        _upsert(session, "site", full, spec=spec, state="active")
    sync(db)
    return full


def add_system(db: str | None, name: str, spec: str | None) -> InformationSystem:
    """Set the schedule every site of a system inherits (a site's own setting still wins)."""
    scheduler_engine(db)
    with storage.session_scope(db) as session:
        system = find_system(session, name)
        _upsert(session, "system", str(system.id), spec=spec, state="active")
    sync(db)
    return system


def set_state(db: str | None, url: str, state: str) -> str:
    """``paused``, ``active`` (resume) or ``removed`` for one enrolled site."""
    assert state in ("active", "paused", "removed")
    scheduler_engine(db)
    full = normalise_url(url)
    with storage.session_scope(db) as session:
        plans = {p.url: p for p in plan_sites(session)}
        if full not in plans:
            raise AuditorError(f"{full} is not in the schedule (enrol it with `auditor schedule add {full}`)")
        row = _setting(session, "site", full)
        if state == "removed" and row is not None and row.state == "removed":
            raise AuditorError(f"{full} is already removed from the schedule")
        _upsert(session, "site", full, spec=row.spec if row else None, state=state)
    sync(db)
    return full


@dataclass
class ScheduleRow:
    url: str
    system: str | None
    schedule: str
    source: str
    state: str
    assessed: bool
    next_run: datetime | None
    last_status: str | None
    last_at: datetime | None
    last_error: str | None


def list_schedule(db: str | None) -> list[ScheduleRow]:
    """Every enrolled site (the job store synced first), with its next and latest run."""
    with paused_scheduler(db) as scheduler:
        plans = _sync_with(scheduler, db)
        jobs = {job.id: job for job in scheduler.get_jobs()}
    latest = runs.latest_by_site(scheduler_engine(db))
    out = []
    for plan in plans:
        last = latest.get(plan.url)
        job = jobs.get(job_id(plan.url))
        out.append(ScheduleRow(
            url=plan.url, system=plan.system_name, schedule=plan.spec, source=plan.source, state=plan.state,
            assessed=plan.assessed, next_run=job.next_run_time if job else None,
            last_status=last.status if last else None,
            last_at=(last.finished_at or last.started_at or last.queued_at) if last else None,
            last_error=last.error if last else None,
        ))
    return out

