"""`auditor scan --broker` with three real worker processes: same output as an in-process
scan, every site stored exactly once, nothing left running."""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

from cluster_parts import normalised
from sqlmodel import select

from auditor import storage
from auditor.models import ClusterBatch, ClusterJob, ClusterJobResult, Scan, ScheduleRun

COMMON = ["--checks", "tls,http", "--timeout", "3", "--site-timeout", "60", "--format", "json"]


def lab_args(lab: Any) -> list[str]:
    args = [s.url for s in lab.sites] + ["--ca-file", str(lab.ca_file)]
    for r in lab.resolve_args:
        args += ["--resolve", r]
    return args



def test_three_workers_scan_42_sites_like_an_in_process_scan(cluster_lab, workers, cluster_db, db_url, cli):  # type: ignore[no-untyped-def]
    args = lab_args(cluster_lab)
    local = cli("scan", *args, *COMMON, "--db", db_url)
    assert local.code == 2, local  # the lab's closed-port sites are check errors by design
    remote = cli("scan", *args, *COMMON, "--db", cluster_db, "--broker", workers[0].broker)
    assert remote.code == local.code, remote
    mine, theirs = json.loads(local.out)["results"], json.loads(remote.out)["results"]
    assert len(theirs) == len(cluster_lab.sites) >= 40
    assert normalised(theirs) == normalised(mine)
    assert [r["url"] for r in theirs] == [s.url for s in cluster_lab.sites]

    with storage.session_scope(cluster_db) as session:
        batch = session.exec(select(ClusterBatch).order_by(ClusterBatch.created_at.desc())).first()  # type: ignore[attr-defined]
        assert batch is not None and batch.total == len(cluster_lab.sites)
        finished = session.exec(select(Scan).where(Scan.status.in_(("completed", "failed")),  # type: ignore[attr-defined]
                                                   Scan.started_at >= batch.created_at)).all()
        running = session.exec(select(Scan).where(Scan.status == "running")).all()
        jobs = session.exec(select(ClusterJob).where(ClusterJob.batch_id == batch.id)).all()
        keys = session.exec(select(ClusterJobResult).where(ClusterJobResult.job_key.startswith(batch.id))).all()  # type: ignore[attr-defined]
    by_url: dict[str, int] = {}
    for scan in finished:
        by_url[scan.url] = by_url.get(scan.url, 0) + 1
    assert by_url == {s.url: 1 for s in cluster_lab.sites}  # every site stored exactly once
    assert not running
    assert {j.status for j in jobs} == {"done"} and len(jobs) == len(cluster_lab.sites)
    assert sorted(k.scan_id for k in keys) == sorted(r["scan_id"] for r in theirs)
    # The work was shared: every worker process stored some of the sites.
    assert len({j.worker for j in jobs}) == 3


def test_the_scheduler_enqueues_a_due_run_for_the_workers(cluster_lab, workers, cluster_db, cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from auditor.cli import build_parser
    from auditor.cli.scan_cmds import scan_request_from_args
    from scheduler.events import EventLog
    from scheduler.service import Service, ServiceConfig

    site = cluster_lab.site("c00-good")
    url = site.url.rstrip("/") + "/scheduled"  # never assessed, so due at once
    assert cli("schedule", "add", url, "--interval", "1h", "--db", cluster_db).code == 0
    args = ["--ca-file", str(cluster_lab.ca_file), "--checks", "tls,http", "--timeout", "3", "--db", cluster_db]
    for r in site.resolve:
        args += ["--resolve", r]
    ns = build_parser().parse_args(["schedule", "run", *args])
    log = io.StringIO()
    service = Service(ServiceConfig(db=cluster_db, request=scan_request_from_args(ns, []), sync_interval=0.3,
                                    key_path=str(tmp_path / "issuer.pem"), broker=workers[0].broker), EventLog(log))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and '"run_finished"' not in log.getvalue() \
                and '"run_failed"' not in log.getvalue():
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    kinds = [e["event"] for e in events]
    assert "run_enqueued" in kinds and "run_finished" in kinds, events
    with storage.session_scope(cluster_db) as session:
        run = session.exec(select(ScheduleRun).where(ScheduleRun.site_url == url)).one()
        batch = session.exec(select(ClusterBatch).where(ClusterBatch.origin == f"schedule-run:{run.id}")).one()
        job = session.exec(select(ClusterJob).where(ClusterJob.batch_id == batch.id)).one()
        scans = session.exec(select(Scan).where(Scan.url == url)).all()
    assert run.status == "finished" and run.scan_id == job.scan_id is not None
    assert job.status == "done" and job.worker.split(":")[-1] in {str(w.pid) for w in workers}
    assert [s.id for s in scans if s.status in ("completed", "failed")] == [run.scan_id]
