"""Batches the client does not wait for, the per-address politeness limit and the per-run rate
limit, on the session's three worker processes."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from sqlmodel import select

from auditor import storage
from auditor.cluster import jobs as cluster_jobs
from auditor.models import ClusterBatch, ClusterJob, Scan


def test_no_wait_then_batch_status_and_results(cluster_lab, workers, cluster_db, cli) -> None:  # type: ignore[no-untyped-def]
    sites = cluster_lab.sites[:4]
    args = [s.url for s in sites] + ["--ca-file", str(cluster_lab.ca_file), "--checks", "tls,http",
                                     "--timeout", "3", "--db", cluster_db]
    for s in sites:
        for r in s.resolve:
            args += ["--resolve", r]
    sent = cli("scan", *args, "--broker", workers[0].broker, "--no-wait")
    assert sent.code == 0, sent
    batch_id = sent.out.strip()
    assert len(batch_id) == 32 and sent.out.count("\n") == 1

    status = json.loads(cli("batch", "status", batch_id, "--format", "json", "--db", cluster_db).out)
    assert status["total"] == 4 and sum(status["counts"].values()) == 4
    assert [j["target"] for j in status["jobs"]] == [s.url for s in sites]

    waited = cli("batch", "results", batch_id, "--wait", "--format", "json", "--db", cluster_db)
    results = json.loads(waited.out)["results"]
    assert [r["url"] for r in results] == [s.url for s in sites] and all(r["scan_id"] for r in results)
    again = cli("batch", "results", batch_id, "--format", "json", "--db", cluster_db)
    assert again.out == waited.out and again.code == waited.code
    shown = cli("show", str(results[0]["scan_id"]), "--format", "json", "--db", cluster_db)
    assert json.loads(shown.out)["results"][0] == results[0]

    table = cli("batch", "status", batch_id, "--db", cluster_db)
    assert "4 site(s) — 0 queued, 0 running, 4 done, 0 failed" in table.out
    unknown = cli("batch", "status", "nosuchbatch", "--db", cluster_db)
    assert unknown.code == 2 and "no batch" in unknown.err


def _overlap(scans: list[Scan]) -> int:
    """The most scans running at one moment."""
    events = sorted([(s.started_at, 1) for s in scans] + [(s.finished_at, -1) for s in scans],
                    key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, delta in events:
        now += delta
        most = max(most, now)
    return most


def test_politeness_limits_scans_per_address_across_workers(workers, cluster_db, cli) -> None:  # type: ignore[no-untyped-def]
    # Six sites on one address (shared hosting); the policy allows two scans of it at a time,
    # while the three workers have twelve threads free.
    with socket.socket() as silent:
        silent.bind(("127.0.7.120", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        hosts = [f"shared{i}.example.test" for i in range(6)]
        args = [f"https://{h}:{port}/" for h in hosts]
        for h in hosts:
            args += ["--resolve", f"{h}:{port}:127.0.7.120"]
        t0 = time.monotonic()
        r = cli("scan", *args, "--checks", "tls,http", "--timeout", "1", "--site-timeout", "5",
                "--format", "json", "--db", cluster_db, "--broker", workers[0].broker)
        elapsed = time.monotonic() - t0
    assert r.code == 2, r  # nothing answers: check errors
    ids = [x["scan_id"] for x in json.loads(r.out)["results"]]
    with storage.session_scope(cluster_db) as session:
        scans = [session.get(Scan, i) for i in ids]
    assert all(s is not None and s.finished_at for s in scans)
    assert _overlap(scans) == 2  # type: ignore[arg-type]
    assert elapsed < 60


def test_rate_limit_spaces_the_starts_of_a_run(cluster_lab, workers, cluster_db, cli) -> None:  # type: ignore[no-untyped-def]
    sites = cluster_lab.sites[4:8]
    args = [s.url for s in sites] + ["--ca-file", str(cluster_lab.ca_file), "--checks", "http",
                                     "--timeout", "3", "--db", cluster_db, "--format", "json"]
    for s in sites:
        for r in s.resolve:
            args += ["--resolve", r]
    r = cli("scan", *args, "--broker", workers[0].broker, "--rate", "2")
    assert r.code in (0, 2), r
    with storage.session_scope(cluster_db) as session:
        batch = session.exec(select(ClusterBatch).order_by(ClusterBatch.created_at.desc())).first()  # type: ignore[attr-defined]
        assert batch is not None and batch.rate == 2
        job_rows: list[Any] = list(session.exec(select(ClusterJob).where(ClusterJob.batch_id == batch.id)
                                                .order_by(ClusterJob.position)))
    assert cluster_jobs.counts(job_rows)["done"] == 4
    for job in job_rows:  # position i starts no earlier than i / rate seconds after submission
        assert (job.started_at - batch.created_at).total_seconds() >= job.position / 2 - 0.05
