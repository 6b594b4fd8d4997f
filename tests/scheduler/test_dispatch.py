"""The job function reaches the running service without importing it, and stored jobs still load.

``tests/data/pre-move.db`` (made before the structural move, see
tests/auditor/test_storage_compat.py) holds three APScheduler jobs pickled with the reference
``scheduler.jobs:rerun_site``; they must load with today's code.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from project_paths import PROJECT, TESTS

from auditor import storage
from auditor.errors import AuditorError
from scheduler import dispatch
from scheduler.admin import enrolled_in, enrolled_sites, paused_scheduler
from scheduler.jobs import job_id, rerun_site

PRE_MOVE_DB = TESTS / "data" / "pre-move.db"
HAND_ENROLLED = "https://priv-preticked.lab.auditor.test/"
SYSTEM_SITES = ["https://cookie-no-secure.lab.auditor.test/", "https://priv-tracker.lab.auditor.test/"]


def test_the_job_module_does_not_import_the_service() -> None:
    code = "import sys, scheduler.jobs; sys.exit('scheduler.service' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_rerun_site_hands_the_run_to_the_registered_service() -> None:
    slot = datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(RuntimeError, match="only under the scheduler service"):
        rerun_site("https://a.test/", slot=slot, run_id=1)
    calls: list[tuple[str, datetime, int]] = []

    def execute(url: str, at: datetime, run_id: int) -> dict[str, Any]:
        calls.append((url, at, run_id))
        return {"ok": True}

    with dispatch.registered(execute):
        with pytest.raises(AuditorError, match="already running"), dispatch.registered(execute):
            pass
        assert rerun_site("https://a.test/", slot=slot, run_id=7, spec="interval:60") == {"ok": True}
        with pytest.raises(RuntimeError):
            rerun_site("https://a.test/")  # not from the slot executor: no slot, no run
    assert calls == [("https://a.test/", slot, 7)]
    assert dispatch.current() is None


def test_jobs_stored_before_the_move_still_load(tmp_path: Path) -> None:
    db = tmp_path / "pre-move.db"
    shutil.copyfile(PRE_MOVE_DB, db)
    with paused_scheduler(str(db)) as scheduler:
        jobs = {job.id: job for job in scheduler.get_jobs()}
    urls = sorted([HAND_ENROLLED, *SYSTEM_SITES])
    assert sorted(jobs) == sorted(job_id(u) for u in urls)
    for url in urls:
        job = jobs[job_id(url)]
        assert job.func is rerun_site and job.func_ref == "scheduler.jobs:rerun_site"
        assert job.args == (url,) and job.kwargs["spec"]


def test_enrolled_sites_are_the_hand_enrolled_ones(tmp_path: Path, db_url: str) -> None:
    db = tmp_path / "pre-move.db"
    shutil.copyfile(PRE_MOVE_DB, db)
    assert enrolled_in(str(db)) == [HAND_ENROLLED]
    with storage.session_scope(db_url) as session:  # the scheduler never ran on this one
        assert enrolled_sites(session) == []


def test_registry_build_lists_system_and_hand_enrolled_sites(tmp_path: Path, cli: Any) -> None:
    db = tmp_path / "pre-move.db"
    shutil.copyfile(PRE_MOVE_DB, db)
    r = cli("registry", "build", str(tmp_path / "site"), "--db", str(db), "--key", str(tmp_path / "no-key.pem"))
    assert r.code == 0, r
    assert "registry: 3 site(s), 3 assessed" in r.out


def test_schedule_list_shows_each_sites_latest_run(db_url: str) -> None:
    from scheduler import runs
    from scheduler.admin import add_site, list_schedule
    from scheduler.store import scheduler_engine

    url = add_site(db_url, "https://a.test/", "interval:3600")
    engine = scheduler_engine(db_url)
    first = runs.claim(engine, url, datetime(2026, 12, 1, tzinfo=UTC), "w1").run_id
    assert first is not None and runs.mark_started(engine, first)
    assert runs.mark_done(engine, first, "failed", scan_id=None, error="boom")
    second = runs.claim(engine, url, datetime(2026, 12, 2, tzinfo=UTC), "w1").run_id
    assert second is not None and runs.mark_started(engine, second)
    assert runs.mark_done(engine, second, "finished", scan_id=None, error=None)
    assert set(runs.latest_by_site(engine)) == {url}
    (row,) = list_schedule(db_url)
    assert row.url == url and row.last_status == "finished" and row.last_error is None
    assert row.last_at is not None
