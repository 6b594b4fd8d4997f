"""An APScheduler executor that claims each run in the database before queueing it.

APScheduler 3 gives an executor the scheduled run time(s) of a job but never passes them to
the job function. This executor does: the scheduled time is the run's *slot*, the value
that every scheduler process sharing the job store computes identically, so a claim on
``(site_url, slot)`` deduplicates runs across processes.

The claim is made here, in the scheduler thread, when the job is submitted: the
``ScheduleRun`` row is ``queued`` before anything runs. Workers are daemon threads reading a
queue, so a backlog of thousands of due sites costs a queue entry each, not a thread each,
and a stopping process is never held up by a scan stuck in a network call.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job

log = logging.getLogger("scheduler.executor")


@dataclass
class WorkItem:
    """One claimed run waiting for a worker. ``job`` is None for a retry submitted directly."""

    site_url: str
    slot: datetime
    run_id: int
    job: Job | None = None


# claim(site_url, slot) -> run id, or None when the run is not ours to do.
ClaimFn = Callable[[str, datetime], int | None]
# execute(site_url, slot, run_id) for a directly submitted run.
ExecuteFn = Callable[[str, datetime, int], Any]
# missed(site_url, slot, lateness) for a run past its misfire grace: True drops the run.
MissedFn = Callable[[str, datetime, timedelta], bool]


class SlotExecutor(BaseExecutor):
    def __init__(self, *, claim: ClaimFn, execute: ExecuteFn, missed: MissedFn, workers: int = 4) -> None:
        super().__init__()
        self._claim = claim
        self._execute = execute
        self._missed = missed
        self._workers = max(1, workers)
        self._queue: queue.Queue[WorkItem | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()

    # -- APScheduler interface ------------------------------------------------------------

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        if not self._threads:
            for i in range(self._workers):
                thread = threading.Thread(target=self._work, name=f"schedule-worker-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        slot = run_times[-1]
        site_url = str(job.args[0]) if job.args else str(job.name)
        if job.misfire_grace_time is not None:
            lateness = datetime.now(UTC) - slot
            if lateness > timedelta(seconds=job.misfire_grace_time) and self._missed(site_url, slot, lateness):
                self._finish_later(job.id, [JobExecutionEvent(EVENT_JOB_MISSED, job.id, job._jobstore_alias, slot)])
                return
        run_id = self._claim(site_url, slot)
        if run_id is None:
            self._finish_later(job.id, [])
            return
        self._queue.put(WorkItem(site_url, slot, run_id, job))

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work. Queued items stay in the queue: :meth:`drain` hands them back."""
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    # -- used by the service --------------------------------------------------------------

    def submit_direct(self, item: WorkItem) -> None:
        """Queue a run claimed outside APScheduler (a retry of an interrupted run)."""
        self._queue.put(item)

    def drain(self) -> list[WorkItem]:
        """Remove and return every queued item that no worker has started."""
        items: list[WorkItem] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is not None:
                if item.job is not None:
                    self._finish_later(item.job.id, [])
                items.append(item)

    @property
    def busy(self) -> int:
        with self._busy_lock:
            return self._busy

    # -- workers --------------------------------------------------------------------------

    def _finish_later(self, job_id: str, events: list[JobExecutionEvent]) -> None:
        """Release the instance count of a submission that will not run (or no longer will).

        Called inside ``submit_job`` (same thread, re-entrant lock) the count goes to -1 and
        ``submit_job`` then brings it back to 0, which is what "not running" means; from
        :meth:`drain` it undoes the count of a queued item.
        """
        self._run_job_success(job_id, events)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            with self._busy_lock:
                self._busy += 1
            try:
                self._run(item)
            finally:
                with self._busy_lock:
                    self._busy -= 1

    def _run(self, item: WorkItem) -> None:
        job = item.job
        if job is None:
            try:
                self._execute(item.site_url, item.slot, item.run_id)
            except Exception:
                log.exception("retry of %s failed", item.site_url)
            return
        try:
            retval = job.func(*job.args, slot=item.slot, run_id=item.run_id, **job.kwargs)
        except BaseException as exc:
            tb = "".join(traceback.format_tb(sys.exc_info()[2]))
            event = JobExecutionEvent(
                EVENT_JOB_ERROR, job.id, job._jobstore_alias, item.slot, exception=exc, traceback=tb
            )
            self._run_job_success(job.id, [event])
            if not isinstance(exc, Exception):
                raise
            return
        self._run_job_success(
            job.id, [JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, job._jobstore_alias, item.slot, retval=retval)]
        )
