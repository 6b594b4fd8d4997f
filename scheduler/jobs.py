"""Site jobs: what the inventory and the settings ask for, and bringing the job store in line.

The inventory is every ``Site`` of an ``InformationSystem`` plus every site added by hand
with ``auditor schedule add URL``. A site that was only scanned ad hoc (``auditor scan``)
is not enrolled in weekly re-audits.

Each site has one APScheduler job, id ``site:<sha256(url)[:24]>`` (URLs can be longer than
the job store's key column), name and only argument the URL, and ``kwargs["spec"]`` the
schedule spec it was built from, so a changed setting is seen by comparing strings.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from sqlmodel import Session, select

from auditor import storage
from auditor.models import InformationSystem, Site
from scheduler import dispatch
from scheduler.spec import DEFAULT_SPEC, misfire_grace_seconds
from scheduler.store import ScheduleSetting
from scheduler.triggers import trigger_for

JOB_PREFIX = "site:"

Emit = Callable[..., Any]


def job_id(url: str) -> str:
    return JOB_PREFIX + hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]


def rerun_site(url: str, *, slot: datetime | None = None, run_id: int | None = None, spec: str = "") -> Any:
    """The job function (referenced by name from the job store): re-audit one site.

    It hands the run to the service of this process (registered in :mod:`scheduler.dispatch`);
    the executor passes ``slot`` and the ``run_id`` it claimed. Keep its name and signature:
    stored jobs reference ``scheduler.jobs:rerun_site``.
    """
    execute = dispatch.current()
    if execute is None or slot is None or run_id is None:
        raise RuntimeError("site jobs run only under the scheduler service's slot executor")
    return execute(url, slot, run_id)


class SiteJobStore(SQLAlchemyJobStore):
    """The SQLAlchemy job store on the tool's engine, tolerant of other processes sharing it.

    Another scheduler process may remove or replace a job between our read and our write;
    APScheduler would let the ``JobLookupError`` escape its main loop. Here it is ignored:
    the other process's view wins and ours is refreshed on the next wake-up.
    """

    def update_job(self, job: Job) -> None:
        with contextlib.suppress(JobLookupError):
            super().update_job(job)

    def remove_job(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            super().remove_job(job_id)

    def shutdown(self) -> None:
        """Leave the engine alone: it is the tool's shared engine (APScheduler disposes it)."""


class EditingScheduler(BaseScheduler):
    """A scheduler with no main loop: it edits jobs in the store and never runs one.

    (A paused ``BackgroundScheduler`` is not enough: on shutdown its loop wakes once more
    and processes due jobs, moving their next run time on without running them.)
    """

    def shutdown(self, wait: bool = True) -> None:
        """Required: ``BaseScheduler`` declares ``shutdown`` abstract (it has a body to reuse)."""
        super().shutdown(wait)

    def wakeup(self) -> None:
        pass


@dataclass
class SitePlan:
    """What one inventoried site's schedule should be."""

    url: str
    system_id: int | None
    system_name: str | None
    spec: str
    source: str  # site | system | default
    state: str  # active | paused | removed
    assessed: bool


def plan_sites(session: Session) -> list[SitePlan]:
    """Every inventoried site with its effective schedule, URL order."""
    settings = list(session.exec(select(ScheduleSetting)))
    by_site = {s.key: s for s in settings if s.scope == "site"}
    by_system = {s.key: s for s in settings if s.scope == "system"}
    systems = {s.id: s for s in session.exec(select(InformationSystem))}
    sites = [s for s in session.exec(select(Site)) if s.system_id is not None or s.url in by_site]
    assessed = storage.assessed_urls(session)
    plans = []
    for site in sorted(sites, key=lambda s: s.url):
        own = by_site.get(site.url)
        inherited = by_system.get(str(site.system_id)) if site.system_id is not None else None
        if own is not None and own.spec:
            spec, source = own.spec, "site"
        elif inherited is not None and inherited.spec:
            spec, source = inherited.spec, "system"
        else:
            spec, source = DEFAULT_SPEC, "default"
        system = systems.get(site.system_id) if site.system_id is not None else None
        plans.append(SitePlan(
            url=site.url,
            system_id=site.system_id,
            system_name=system.name if system else None,
            spec=spec,
            source=source,
            state=own.state if own is not None else "active",
            assessed=site.url in assessed,
        ))
    return plans


def first_run_time(plan: SitePlan, now: datetime) -> datetime | None:
    """When a job starts (or resumes): at once for a never-assessed site, else on its grid."""
    if plan.state == "paused":
        return None
    if not plan.assessed:
        return now
    return trigger_for(plan.spec, plan.url).get_next_fire_time(None, now)


def reconcile(scheduler: BaseScheduler, plans: list[SitePlan], now: datetime, emit: Emit) -> dict[str, int]:
    """Add, reschedule, pause, resume and remove jobs until the store matches ``plans``.

    Safe to run from several processes at once: an add that loses the race is ignored, and
    every other change writes the same values whichever process makes it (triggers are
    deterministic grids).
    """
    counts = {"added": 0, "rescheduled": 0, "paused": 0, "resumed": 0, "removed": 0}
    jobs = {job.id: job for job in scheduler.get_jobs()}
    wanted: set[str] = set()
    for plan in plans:
        if plan.state == "removed":
            continue
        jid = job_id(plan.url)
        wanted.add(jid)
        trigger = trigger_for(plan.spec, plan.url)
        grace = misfire_grace_seconds(plan.spec)
        job = jobs.get(jid)
        if job is None:
            try:
                scheduler.add_job(
                    rerun_site, trigger=trigger, id=jid, name=plan.url, args=[plan.url],
                    kwargs={"spec": plan.spec}, next_run_time=first_run_time(plan, now),
                    coalesce=True, max_instances=1, misfire_grace_time=grace, replace_existing=False,
                )
            except ConflictingIdError:
                continue
            counts["added"] += 1
            emit("job_added", site=plan.url, schedule=plan.spec, source=plan.source, state=plan.state,
                 first_run="now" if plan.state == "active" and not plan.assessed else None)
            continue
        paused = job.next_run_time is None
        if job.kwargs.get("spec") != plan.spec:
            next_run = first_run_time(plan, now)  # a never-assessed site still runs at once
            _modify(scheduler, jid, trigger=trigger, kwargs={"spec": plan.spec},
                    misfire_grace_time=grace, next_run_time=next_run)
            counts["rescheduled"] += 1
            emit("job_rescheduled", site=plan.url, schedule=plan.spec, source=plan.source, next_run=next_run)
            paused = next_run is None
        if plan.state == "paused" and not paused:
            _modify(scheduler, jid, next_run_time=None)
            counts["paused"] += 1
            emit("job_paused", site=plan.url)
        elif plan.state == "active" and paused:
            next_run = first_run_time(plan, now)
            _modify(scheduler, jid, next_run_time=next_run)
            counts["resumed"] += 1
            emit("job_resumed", site=plan.url, next_run=next_run)
    for jid, job in jobs.items():
        if jid.startswith(JOB_PREFIX) and jid not in wanted:
            scheduler.remove_job(jid)
            counts["removed"] += 1
            emit("job_removed", site=job.name)
    return counts


def _modify(scheduler: BaseScheduler, jid: str, **changes: Any) -> None:
    with contextlib.suppress(JobLookupError):  # removed meanwhile by another process
        scheduler.modify_job(jid, **changes)
