"""`auditor scan --broker` with three real worker processes: same output as an in-process
scan, every site stored exactly once, nothing left running."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import select

from auditor import storage
from auditor.models import ClusterJob, ClusterJobResult, Scan

COMMON = ["--checks", "tls,http", "--timeout", "3", "--site-timeout", "60", "--format", "json"]


def lab_args(lab: Any) -> list[str]:
    args = [s.url for s in lab.sites] + ["--ca-file", str(lab.ca_file)]
    for r in lab.resolve_args:
        args += ["--resolve", r]
    return args


def normalised(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results without what differs between two runs of the same scan: ids and times."""
    out = []
    for r in results:
        r = dict(r)
        for key in ("scan_id", "started_at", "finished_at"):
            r.pop(key)
        r["checks"] = {k: {**v, "duration_s": None} for k, v in r["checks"].items()}
        out.append(r)
    return out


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
        finished = session.exec(select(Scan).where(Scan.status.in_(("completed", "failed")))).all()
        running = session.exec(select(Scan).where(Scan.status == "running")).all()
        jobs = session.exec(select(ClusterJob)).all()
        keys = session.exec(select(ClusterJobResult)).all()
    by_url: dict[str, int] = {}
    for scan in finished:
        by_url[scan.url] = by_url.get(scan.url, 0) + 1
    assert by_url == {s.url: 1 for s in cluster_lab.sites}  # every site stored exactly once
    assert not running
    assert {j.status for j in jobs} == {"done"} and len(jobs) == len(cluster_lab.sites)
    assert sorted(k.scan_id for k in keys) == sorted(r["scan_id"] for r in theirs)
    # The work was shared: every worker process stored some of the sites.
    assert len({j.worker for j in jobs}) == 3
