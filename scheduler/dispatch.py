"""Where a site job hands its run: the executor callback of the service running in this process.

APScheduler calls the job function by name (``scheduler.jobs:rerun_site``) with only the
arguments stored with the job, so the function needs a process-wide way to reach the running
service. The service registers its ``execute`` here while it runs and the job function looks
it up here; neither module imports the other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from auditor.errors import AuditorError

Execute = Callable[[str, datetime, int], Any]
"""``execute(site_url, slot, run_id)``: re-audit one site for one claimed run."""

_EXECUTE: Execute | None = None
_LOCK = threading.Lock()


@contextmanager
def registered(execute: Execute) -> Iterator[None]:
    """Make ``execute`` the process's run handler for the duration of the block (only one at a time)."""
    global _EXECUTE
    with _LOCK:
        if _EXECUTE is not None:
            raise AuditorError("a scheduler service is already running in this process")
        _EXECUTE = execute
    try:
        yield
    finally:
        with _LOCK:
            _EXECUTE = None


def current() -> Execute | None:
    """The registered run handler, or None when no service runs in this process."""
    return _EXECUTE
