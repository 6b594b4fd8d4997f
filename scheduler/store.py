"""The scheduler's own storage: schedule settings, the job store table, the run guard index.

``ScheduleSetting`` is the one table this package adds (in its own module, created on first
use): the configured schedule of a site or of a whole system, and whether a site is paused or
removed from the schedule. It is the source of truth for configuration; the APScheduler job
store holds runtime state (each job's next fire time) and is reconciled from it.

The run guard is a partial unique index on ``schedule_run(site_url)`` over the rows that are
``queued`` or ``started``: at most one active run per site, enforced by the database itself,
across every process that shares it (SQLite and PostgreSQL both support partial indexes).
Together with ``UNIQUE(site_url, slot)`` it makes "claim this site for this slot" a single
INSERT that either succeeds or fails.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import UniqueConstraint, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, SQLModel

from auditor import storage
from auditor.errors import AuditorError
from auditor.models import utcnow

JOBS_TABLE = "apscheduler_jobs"
ACTIVE_STATES = ("queued", "started")


class ScheduleSetting(SQLModel, table=True):
    """A configured schedule. ``scope`` is ``site`` (key: the site URL) or ``system`` (key:
    the system id as text). ``spec`` is ``interval:SECONDS`` / ``cron:EXPR`` or None (inherit:
    a site inherits its system's spec, a system the weekly default). ``state`` applies to
    sites: ``active``, ``paused`` or ``removed``."""

    __tablename__ = "schedule_setting"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_schedule_setting_scope_key"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str
    key: str = Field(index=True)
    spec: str | None = None
    state: str = "active"
    updated_at: datetime = Field(default_factory=utcnow)


# Same DDL on SQLite and PostgreSQL. Not declared on the model, so that no other command
# creates it on a database that would treat it as a plain (non-partial) unique index.
ACTIVE_RUN_INDEX_DDL = (
    "CREATE UNIQUE INDEX IF NOT EXISTS uq_schedule_run_active_site "
    "ON schedule_run (site_url) WHERE status IN ('queued', 'started')"
)

_READY: set[str] = set()
_READY_LOCK = threading.Lock()


def scheduler_engine(db: str | None) -> Engine:
    """The tool's engine with the scheduler's tables and run guard in place (once per process)."""
    engine = storage.get_engine(db)
    key = str(engine.url)
    with _READY_LOCK:
        if key in _READY:
            return engine
        backend = engine.url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise AuditorError(f"the scheduler needs SQLite or PostgreSQL (partial unique index); got {backend}")
        for attempt in range(3):
            # Two processes starting at once may both find a table missing; the loser retries.
            try:
                ScheduleSetting.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
                # APScheduler's job store creates its table on start without this retry.
                SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE).jobs_t.create(engine, checkfirst=True)
                with engine.begin() as conn:
                    conn.execute(text(ACTIVE_RUN_INDEX_DDL))
                break
            except SQLAlchemyError as exc:
                if attempt == 2:
                    msg = str(exc).splitlines()[0]
                    raise AuditorError(f"cannot prepare the scheduler tables: {msg}") from None
                time.sleep(0.2)
        _READY.add(key)
    return engine
