"""Faults with real parts: a worker killed with SIGKILL mid-scan, a broker that is down or goes
away, an unreachable database, malformed task messages, a job that keeps failing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cluster_parts import ROOT, RedisServer, Worker, free_port, fresh_database, start_workers, stop_workers
from sqlmodel import select

from auditor import storage
from auditor.cluster import app as cluster_app
from auditor.cluster import jobs as cluster_jobs
from auditor.models import ClusterJob, Scan


def client_cmd(targets: list[tuple[str, str]], broker: str, db: str, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "auditor", "scan", *[u for u, _ in targets], "--broker", broker, "--db", db,
           "--checks", "tls,http", "--timeout", "2", "--site-timeout", "5", "--format", "json", *extra]
    for _, r in targets:
        cmd += ["--resolve", r]
    return cmd


def env() -> dict[str, str]:
    return dict(os.environ, AUDITOR_NO_DNS="1")


def test_kill_9_a_worker_mid_scan(silent_targets, pg_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = fresh_database(pg_url, "auditor_kill")
    redis = RedisServer(tmp_path / "redis").start()
    workers: list[Worker] = []
    try:
        # A short visibility timeout (>= site time bound 5 s + margin) so redelivery comes soon.
        workers = start_workers(3, redis.url, db, tmp_path / "logs", "--concurrency", "2",
                                "--visibility-timeout", "16")
        victim = workers[0]
        targets = silent_targets[:9]
        client = subprocess.Popen(client_cmd(targets, redis.url, db), cwd=ROOT, env=env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        killed: list[ClusterJob] = []
        while time.monotonic() < deadline and not killed:
            with storage.session_scope(db) as session:
                killed = [j for j in session.exec(select(ClusterJob).where(ClusterJob.status == "running"))
                          if j.worker.endswith(f":{victim.pid}") and j.scan_id is not None]
            time.sleep(0.1)
        assert killed, "the victim never started a scan"
        os.kill(victim.pid, signal.SIGKILL)
        victim.proc.wait(timeout=10)
        out, err = client.communicate(timeout=120)
        assert client.returncode == 2, err  # silent sites are check errors
        results = json.loads(out)["results"]
        assert [r["url"] for r in results] == [u for u, _ in targets]
        assert all(r["scan_id"] for r in results)

        with storage.session_scope(db) as session:
            scans = session.exec(select(Scan)).all()
            job_rows = {j.position: j for j in session.exec(select(ClusterJob))}
        finished = [s for s in scans if s.status in ("completed", "failed")]
        assert sorted(s.url for s in finished) == sorted(u for u, _ in targets)  # exactly one each
        assert not [s for s in scans if s.status == "running"]
        interrupted = [s for s in scans if s.status == "interrupted"]
        assert {j.scan_id for j in killed} <= {s.id for s in interrupted}
        assert all("redelivered" in (s.error or "") for s in interrupted)
        for job in killed:
            again = job_rows[job.position]
            assert again.status == "done" and again.attempts == 2
            assert not again.worker.endswith(f":{victim.pid}")  # finished on another worker
            assert again.scan_id == results[job.position]["scan_id"]
    finally:
        stop_workers(workers)
        redis.stop()


def test_broker_that_goes_away_mid_batch_fails_the_client(silent_targets, pg_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = fresh_database(pg_url, "auditor_brokerdown")
    redis = RedisServer(tmp_path / "redis").start()
    worker = None
    try:
        worker = start_workers(1, redis.url, db, tmp_path / "logs", "--concurrency", "2")[0]
        client = subprocess.Popen(client_cmd(silent_targets[:8], redis.url, db), cwd=ROOT, env=env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with storage.session_scope(db) as session:
                if session.exec(select(ClusterJob).where(ClusterJob.status == "running")).first():
                    break
            time.sleep(0.1)
        redis.stop()
        t0 = time.monotonic()
        out, err = client.communicate(timeout=60)
        assert time.monotonic() - t0 < 30
        assert client.returncode == 2 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "lost the broker mid-batch" in lines[0] and "batch status" in lines[0], err
    finally:
        if worker is not None:  # its broker is gone: no warm shutdown to wait for
            worker.proc.kill()
            worker.stop()
        redis.stop()


def test_unreachable_broker_or_database_is_a_one_line_error(cluster_db, cli, pg_url) -> None:  # type: ignore[no-untyped-def]
    dead_broker = f"redis://127.0.7.1:{free_port('127.0.7.1')}/0"
    with storage.session_scope(cluster_db) as session:
        before = len(session.exec(select(ClusterJob)).all())
    r = cli("scan", "https://a.example.test/", "--broker", dead_broker, "--db", cluster_db)
    assert r.code == 2 and r.out == ""
    assert len(r.err.strip().splitlines()) == 1 and "cannot reach the broker" in r.err, r
    with storage.session_scope(cluster_db) as session:
        assert len(session.exec(select(ClusterJob)).all()) == before  # nothing enqueued or written

    dead_db = pg_url.rsplit("@", 1)[0] + f"@127.0.7.1:{free_port('127.0.7.1')}/nothing"
    r = cli("scan", "https://a.example.test/", "--broker", dead_broker, "--db", dead_db)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "database" in r.err, r

    r = cli("scan", "https://a.example.test/", "--broker", dead_broker, "--db", cluster_db, "--ca-file", "/no/ca.pem")
    assert r.code == 2 and "CA file not found" in r.err, r  # refused before any site is sent, as in-process

    r = cli("scan", "https://a.example.test/", "--broker", "nonsense", "--db", cluster_db)
    assert r.code == 2 and "invalid broker URL" in r.err, r

    worker = subprocess.run([sys.executable, "-m", "auditor", "worker", "--broker", dead_broker, "--db", cluster_db],
                            cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert worker.returncode == 2 and len(worker.stderr.strip().splitlines()) == 1, worker.stderr
    assert "cannot reach the broker" in worker.stderr


def test_malformed_messages_and_a_job_that_keeps_failing(workers, redis_server, cluster_db) -> None:  # type: ignore[no-untyped-def]
    import redis as redis_py

    app = cluster_app.make_app(redis_server.url)
    app.send_task(cluster_app.TASK_NAME, args=[1, "x"])
    app.send_task(cluster_app.TASK_NAME, args=["x" * 500, 0])
    app.send_task(cluster_app.TASK_NAME, kwargs={"evil": True})
    app.send_task("auditor.no_such_task", args=[])
    raw = redis_py.Redis(host=redis_server.address, port=redis_server.port)
    raw.lpush(cluster_app.QUEUE, b"\x00not json at all")
    raw.lpush(cluster_app.QUEUE, json.dumps({"body": "e30=", "content-type": "application/x-python-serialize",
                                             "properties": {}, "headers": {}}))

    # A job whose earlier deliveries all lost their worker: the next delivery records it failed.
    batch_id = "keepsfailing"
    cluster_jobs.create_batch(cluster_db, batch_id, ["https://x.example.test/"], {"checks": "tls"},
                              policy_name="vn-network-trust", policy_version="x", rate=None, origin="test",
                              submitted_by="test")
    with storage.session_scope(cluster_db) as session:
        job = cluster_jobs.find_job(session, batch_id, 0)
        assert job is not None
        job.status, job.attempts = "running", cluster_jobs_max()
        session.add(job)
    app.send_task(cluster_app.TASK_NAME, args=[batch_id, 0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with storage.session_scope(cluster_db) as session:
            job = cluster_jobs.find_job(session, batch_id, 0)
        if job is not None and job.status == "failed":
            break
        time.sleep(0.2)
    assert job is not None and job.status == "failed" and "gave up after" in (job.error or ""), job
    logs = "".join(w.text() for w in workers)
    assert "rejected a malformed task message" in logs
    assert all(w.proc.poll() is None for w in workers)  # nothing crashed a worker


def cluster_jobs_max() -> int:
    from auditor.cluster.worker import MAX_ATTEMPTS

    return MAX_ATTEMPTS
