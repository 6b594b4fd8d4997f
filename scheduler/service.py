"""The re-audit service behind ``auditor schedule run``.

One APScheduler ``BackgroundScheduler`` per process, its jobs in the tool's own database
(``apscheduler_jobs``), one job per inventoried site. Several processes may share the
database: APScheduler alone would run a shared job in each of them, so every run is first
claimed in ``schedule_run`` (see :mod:`scheduler.runs`), and only the claimant scans.

A run, step by step (each step one JSON log line):

1. ``run_queued``  — claimed in the scheduler thread: a ``queued`` row before anything runs;
2. ``run_started`` — a worker takes it: ``started``;
3. the scan (``auditor.scanning.Auditor``), linked to the run as soon as it is stored;
4. ``certificate`` — the site's certificate is renewed, kept, suspended or reinstated;
5. ``notify_sent`` — the owner is mailed, with the report PDF, when the status changed;
6. ``registry_built`` — the public registry is rebuilt when ``--registry-out`` is set;
7. ``run_finished`` / ``run_failed``.

Every ``sync_interval`` the service re-reads the inventory and the settings (new sites,
``schedule add/pause/remove`` from other shells), interrupts the runs of dead processes and
retries interrupted runs. On SIGTERM it stops claiming, waits up to ``stop_timeout`` for
the runs under way, marks any still running ``interrupted`` (the next start retries them)
and returns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from sqlalchemy.exc import SQLAlchemyError

from auditor import storage
from auditor.errors import AuditorError
from auditor.models import utcnow
from auditor.results import iso
from auditor.scanning import Auditor, ScanRequest
from scheduler import dispatch, lifecycle, notify, runs
from scheduler.admin import enrolled_in
from scheduler.events import EventLog
from scheduler.executor import SlotExecutor, WorkItem
from scheduler.jobs import SiteJobStore, plan_sites, reconcile
from scheduler.store import JOBS_TABLE, scheduler_engine

CLAIM_ATTEMPTS = 3
CLAIM_RETRY_DELAY_S = 0.5


@dataclass
class ServiceConfig:
    db: str | None = None
    request: ScanRequest = field(default_factory=lambda: ScanRequest(targets=[]))
    policy_dir: str | None = None
    key_path: str | None = None
    registry_out: Path | None = None
    registry_verify_url: str | None = None
    smtp: notify.SMTPSettings | None = None
    lang: str = "vi"
    workers: int = 4
    sync_interval: float = 30.0
    stop_timeout: float = 30.0
    # A Celery broker URL: each claimed run is enqueued for `auditor worker` processes instead
    # of scanned here (the claim in the database still makes it one run per slot).
    broker: str | None = None


class _ServiceScheduler(BackgroundScheduler):
    """Processes due jobs only while running: APScheduler's loop wakes once more after
    ``shutdown`` and would otherwise move due jobs' next run times on without running them,
    taking those slots from any other process sharing the store.

    A job store error while processing (the UPDATE of a job's next run time on a locked or
    unreachable database) would end APScheduler's thread, and with it every later run of this
    process; here it is reported to ``on_error`` and the jobs are processed again after
    ``jobstore_retry_interval``. The job whose update failed is still due then: its slot is
    claimed again (``slot-taken`` if the first claim stood), so it is neither lost nor run twice.
    """

    def __init__(self, *, on_error: Callable[[Exception], None], **options: Any) -> None:
        self._on_error = on_error
        super().__init__(**options)

    def _process_jobs(self) -> float | None:
        if self.state != STATE_RUNNING:
            return None
        try:
            return super()._process_jobs()  # type: ignore[no-any-return]
        except Exception as exc:
            self._on_error(exc)
            return float(self.jobstore_retry_interval)


class Service:
    def __init__(self, config: ServiceConfig, log: EventLog | None = None) -> None:
        self.config = config
        self.worker = str(runs.Worker.current())
        self.log = log or EventLog(worker=self.worker)
        if not self.log.worker:
            self.log.worker = self.worker
        self.engine = scheduler_engine(config.db)
        self.auditor = Auditor(db=config.db, policy_dir=config.policy_dir)
        self.guard = runs.RunGuard()
        self.stale_after = timedelta(seconds=2 * config.request.site_timeout + 600)
        self._stopping = threading.Event()
        self._links: dict[str, int] = {}
        self._links_lock = threading.Lock()
        self._registry_lock = threading.Lock()
        self._registry_dirty = threading.Event()
        self._plans: dict[str, Any] = {}
        self.executor = SlotExecutor(
            claim=self._claim, execute=self.execute, missed=self._missed, workers=config.workers
        )
        self.scheduler = _ServiceScheduler(
            on_error=self._on_scheduler_error,
            jobstores={"default": SiteJobStore(engine=self.engine, tablename=JOBS_TABLE)},
            executors={"default": self.executor},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self.scheduler.add_listener(self._on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)

    # -- lifecycle --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        """Run until ``stop`` is set. Returns how many runs had to be interrupted."""
        with dispatch.registered(self.execute):  # the site jobs hand their runs to this service
            url = self.engine.url.render_as_string(hide_password=True)
            self.log.emit("scheduler_starting", db=url, workers=self.config.workers,
                          registry_out=str(self.config.registry_out) if self.config.registry_out else None,
                          smtp=f"{self.config.smtp.host}:{self.config.smtp.port}" if self.config.smtp else None)
            self.scheduler.start(paused=True)
            try:
                self._maintain(startup=True)
                self.scheduler.resume()
                self.log.emit("scheduler_started", jobs=len(self.scheduler.get_jobs()))
                while not stop.wait(self.config.sync_interval):
                    self._maintain()
            except BaseException:
                with contextlib.suppress(Exception):
                    self._stopping.set()
                    self.scheduler.shutdown(wait=False)
                raise
            return self._stop()

    def _maintain(self, *, startup: bool = False) -> None:
        """Interrupt dead processes' runs, reconcile jobs with the inventory, retry."""
        try:
            for r in runs.reap_dead(self.engine, stale_after=self.stale_after):
                self.log.emit("run_interrupted", run_id=r.run_id, site=r.site_url, dead_worker=r.worker,
                              was=r.status, by="reaper")
            with storage.session_scope(self.config.db) as session:
                plans = plan_sites(session)
            self._plans = {p.url: p for p in plans}
            counts = reconcile(self.scheduler, plans, utcnow(), self.log.emit)
            if startup or any(counts.values()):
                self.log.emit("jobs_synced", sites=len(plans), **counts)
            self._retry_interrupted()
            if not startup:
                self.scheduler.wakeup()
        except Exception as exc:  # the service keeps going; the next tick tries again
            text = str(exc).splitlines()[0] if str(exc) else ""
            self.log.emit("maintenance_failed", error=f"{type(exc).__name__}: {text}")

    def _retry_interrupted(self) -> None:
        if self._stopping.is_set():
            return
        for cand in runs.retry_candidates(self.engine):
            plan = self._plans.get(cand.site_url)
            if plan is None or plan.state != "active":
                continue
            claim = runs.claim(self.engine, cand.site_url, cand.slot, self.worker)
            if claim.run_id is None:
                continue
            self.log.emit("run_queued", site=cand.site_url, slot=iso_ms(cand.slot), run_id=claim.run_id,
                          retry_of=cand.interrupted_run_id)
            self.executor.submit_direct(WorkItem(cand.site_url, cand.slot, claim.run_id))

    def _stop(self) -> int:
        self._stopping.set()
        self.log.emit("scheduler_stopping", running=len(self.guard.snapshot()))
        self.scheduler.pause()
        for item in self.executor.drain():
            if runs.interrupt(self.engine, item.run_id, "scheduler stopped before the run started"):
                self.log.emit("run_interrupted", run_id=item.run_id, site=item.site_url, was="queued", by="stop")
        deadline = time.monotonic() + self.config.stop_timeout
        while self.guard.snapshot() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self.guard.snapshot()
        for run_id, site_url in left.items():
            if runs.interrupt(self.engine, run_id, "scheduler stopped during the run"):
                self.log.emit("run_interrupted", run_id=run_id, site=site_url, was="started", by="stop")
        self.scheduler.shutdown(wait=False)
        self.log.emit("scheduler_stopped", interrupted=len(left))
        return len(left)

    # -- APScheduler callbacks (scheduler thread) ---------------------------------------------

    def _claim(self, site_url: str, slot: datetime) -> int | None:
        # Claimed even while stopping: a slot that APScheduler has consumed must leave a row,
        # which the stop path (or, if we die first, any process's reaper) marks interrupted
        # so that it is retried.
        # A claim that cannot be written loses the slot until the site's next one, so a database
        # that is only briefly unavailable (locked past the busy timeout) is tried again.
        for attempt in range(1, CLAIM_ATTEMPTS + 1):
            try:
                claim = runs.claim(self.engine, site_url, slot, self.worker)
                break
            except SQLAlchemyError as exc:
                error = str(exc).splitlines()[0]
                if attempt == CLAIM_ATTEMPTS:
                    self.log.emit("claim_failed", site=site_url, slot=iso_ms(slot), error=error, attempts=attempt)
                    return None
                self.log.emit("claim_retry", site=site_url, slot=iso_ms(slot), error=error, attempt=attempt)
                time.sleep(CLAIM_RETRY_DELAY_S * attempt)
        if claim.run_id is None:
            self.log.emit("run_skipped", site=site_url, slot=iso_ms(slot), reason=claim.reason)
            return None
        self.log.emit("run_queued", site=site_url, slot=iso_ms(slot), run_id=claim.run_id)
        return claim.run_id

    def _missed(self, site_url: str, slot: datetime, lateness: timedelta) -> bool:
        """Past the misfire grace: dropped, unless the site was never assessed (it runs as
        soon as a scheduler is up, however long ago its first run was due)."""
        plan = self._plans.get(site_url)
        late_s = round(lateness.total_seconds(), 1)
        if plan is not None and not plan.assessed:
            self.log.emit("run_late", site=site_url, slot=iso_ms(slot), late_s=late_s, reason="never assessed")
            return False
        self.log.emit("run_missed", site=site_url, slot=iso_ms(slot), late_s=late_s)
        return True

    def _on_scheduler_error(self, exc: Exception) -> None:
        text = str(exc).splitlines()[0] if str(exc) else ""
        self.log.emit("scheduler_error", error=f"{type(exc).__name__}: {text}",
                      retry_in_s=self.scheduler.jobstore_retry_interval)

    def _on_job_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.log.emit("run_skipped", job=event.job_id, reason="running-here")
        else:
            self.log.emit("job_error", job=event.job_id, error=repr(getattr(event, "exception", None)))

    # -- one run (worker thread) ----------------------------------------------------------------

    def _link(self, site_url: str, scan_id: int) -> None:
        with self._links_lock:
            run_id = self._links.get(site_url)
        if run_id is not None:
            runs.link_scan(self.engine, run_id, scan_id)

    def execute(self, site_url: str, slot: datetime, run_id: int) -> dict[str, Any]:
        """Re-audit one site for one claimed run."""
        # In the guard before the stop flag is read: a stop that begins meanwhile is either
        # seen here or finds this run in the guard (and waits for it, then interrupts it).
        self.guard.add(run_id, site_url)
        try:
            if self._stopping.is_set():
                if runs.interrupt(self.engine, run_id, "scheduler stopped before the run started"):
                    self.log.emit("run_interrupted", run_id=run_id, site=site_url, was="queued", by="stop")
                return {"status": "interrupted"}
            if not runs.mark_started(self.engine, run_id):
                self.log.emit("run_skipped", site=site_url, run_id=run_id, reason="no-longer-queued")
                return {"status": "skipped"}
            return self._scan_and_finish(site_url, slot, run_id)
        finally:
            self.guard.discard(run_id)

    def _scan_and_finish(self, site_url: str, slot: datetime, run_id: int) -> dict[str, Any]:
        """The started run: scan, certificate, registry, then ``finished`` or ``failed``."""
        with self._links_lock:
            self._links[site_url] = run_id
        self.log.emit("run_started", site=site_url, slot=iso_ms(slot), run_id=run_id)
        started = time.monotonic()
        outcome: dict[str, Any] = {"run_id": run_id, "site": site_url}
        try:
            request = dataclasses.replace(self.config.request, targets=[site_url])
            # Link the run to its scan as soon as the scan row exists: a run killed mid-scan
            # then points at the scan it leaves behind.
            result = self._scan(request, site_url, run_id)
            scan_id, error = result.get("scan_id"), result.get("error")
            outcome.update(scan_id=scan_id, grade=result.get("grade"), score=result.get("score"))
            problems = []
            if scan_id is not None:
                cert_problem = self._certificate(site_url, scan_id, outcome)
                if cert_problem:
                    problems.append(cert_problem)
            if self.config.registry_out is not None:
                self._rebuild_registry()
            status = "failed" if (error or problems) else "finished"
            message = "; ".join([p for p in [error, *problems] if p]) or None
            if runs.mark_done(self.engine, run_id, status, scan_id=scan_id, error=message):
                self.log.emit(f"run_{status}", error=message,
                              duration_s=round(time.monotonic() - started, 3), **outcome)
            else:
                self.log.emit("run_done_late", note="the run was interrupted meanwhile", **outcome)
            outcome["status"] = status
            return outcome
        except Exception as exc:
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            outcome["status"] = "failed"
            try:
                recorded = runs.mark_done(self.engine, run_id, "failed", scan_id=outcome.get("scan_id"), error=message)
            except Exception as record_exc:
                # The run stays "started": the next start's reaper marks it interrupted and retries it.
                self.log.emit("run_record_failed", error=message,
                              record_error=f"{type(record_exc).__name__}: {str(record_exc).splitlines()[0]}", **outcome)
                return outcome
            if recorded:
                self.log.emit("run_failed", error=message, duration_s=round(time.monotonic() - started, 3), **outcome)
            else:
                self.log.emit("run_done_late", note="the run was interrupted meanwhile", error=message, **outcome)
            return outcome
        finally:
            with self._links_lock:
                self._links.pop(site_url, None)

    def _scan(self, request: ScanRequest, site_url: str, run_id: int) -> dict[str, Any]:
        """The run's scan: here, or by the cluster's workers when a broker is configured."""
        if self.config.broker is None:
            return self.auditor.scan(request, on_scan_start=self._link)[0]
        from auditor.cluster import client

        # One batch of one job per claimed run: the job's idempotency key lets a redelivered
        # task store no second scan for the run, whichever worker takes it.
        batch = client.submit(self.config.broker, request, db=self.config.db, policy_dir=self.config.policy_dir,
                              origin=f"schedule-run:{run_id}")
        self.log.emit("run_enqueued", site=site_url, run_id=run_id, batch=batch.batch_id)

        def linked(job: Any) -> None:
            if job.scan_id is not None:
                self._link(site_url, int(job.scan_id))

        client.wait(self.config.db, batch.batch_id, self.config.broker, on_finished=linked,
                    should_stop=self._stopping.is_set)
        return client.results(self.config.db, batch.batch_id)[0]

    def _certificate(self, site_url: str, scan_id: int, outcome: dict[str, Any]) -> str | None:
        """Renew/keep/suspend/reinstate, then tell the owner. Returns a problem or None."""
        try:
            result = lifecycle.reassess(self.config.db, site_url, scan_id,
                                        key_path=self.config.key_path, policy=self.auditor.policy)
        except (AuditorError, SQLAlchemyError) as exc:
            msg = f"certificate re-assessment: {str(exc).splitlines()[0]}"
            self.log.emit("certificate_failed", site=site_url, scan_id=scan_id, error=msg)
            return msg
        outcome["certificate"] = result.action
        self.log.emit("certificate", site=site_url, scan_id=scan_id, action=result.action, serial=result.serial,
                      old_status=result.old_status, new_status=result.new_status,
                      previous_serial=result.previous_serial, reasons=result.reasons or None)
        if result.notify:
            self._notify(site_url, scan_id, result)
        return None

    def _notify(self, site_url: str, scan_id: int, result: lifecycle.Outcome) -> None:
        if self.config.smtp is None:
            self.log.emit("notify_skipped", site=site_url, reason="no SMTP host configured")
            return
        owner = lifecycle.owner_of(self.config.db, site_url)
        if not owner.contact:
            self.log.emit("notify_skipped", site=site_url, reason="the site's system has no owner contact")
            return
        change = notify.StatusChange(
            site_url=site_url, system=owner.system, old_status=result.old_status, new_status=result.new_status,
            serial=result.serial, reasons=result.reasons, scan_id=scan_id,
            grade=lifecycle.scan_grade(self.config.db, scan_id), action=result.action,
            previous_serial=result.previous_serial,
        )
        with tempfile.TemporaryDirectory(prefix="auditor-notice-") as tmp:
            pdf: Path | None = None
            try:
                pdf = lifecycle.render_report(
                    self.config.db, owner.system or site_url, Path(tmp) / f"bao-cao-danh-gia-{scan_id}.pdf",
                    lang=self.config.lang, policy_dir=self.config.policy_dir,
                )
            except Exception as exc:  # a report that cannot render must not stop the notice
                self.log.emit("report_failed", site=site_url, error=f"{type(exc).__name__}: {exc}")
            try:
                message_id = notify.send(self.config.smtp, owner.contact, change, pdf)
            except AuditorError as exc:
                self.log.emit("notify_failed", site=site_url, to=owner.contact, error=str(exc))
                return
        self.log.emit("notify_sent", site=site_url, to=owner.contact, action=result.action,
                      new_status=result.new_status, pdf=pdf is not None, message_id=message_id)

    def _rebuild_registry(self) -> None:
        """Rebuild the registry; runs that finish during a rebuild share the next one.

        With thousands of sites due at once, one rebuild per finished run would queue up
        behind each other; instead a run that finds a rebuild under way marks the registry
        dirty and the builder goes round again, so the registry still reflects every run.
        """
        from reports.registry_site import build_registry

        out = self.config.registry_out
        assert out is not None
        self._registry_dirty.set()
        while self._registry_dirty.is_set():
            if not self._registry_lock.acquire(blocking=False):
                return  # the builder under way will see the dirty flag
            try:
                self._registry_dirty.clear()
                try:
                    built = build_registry(self.config.db, out, key_path=self.config.key_path,
                                           verify_url=self.config.registry_verify_url,
                                           enrolled=enrolled_in(self.config.db))
                except (AuditorError, OSError, SQLAlchemyError) as exc:
                    self.log.emit("registry_failed", out=str(out), error=str(exc).splitlines()[0])
                    return
            finally:
                self._registry_lock.release()
            self.log.emit("registry_built", out=str(out), sites=built.sites, assessed=built.assessed)


def iso_ms(dt: datetime | None) -> str | None:
    """UTC ISO 8601 with microseconds (slots are on a seconds grid; a retry is one microsecond later)."""
    if dt is None:
        return None
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}Z"


__all__ = ["Service", "ServiceConfig", "iso", "iso_ms"]
