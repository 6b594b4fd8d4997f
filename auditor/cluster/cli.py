"""``auditor worker``, ``auditor batch status|results`` and the ``scan --broker`` path.

The scan command keeps its own options and output; with ``--broker`` it hands its request
to :func:`scan_with_broker` here instead of scanning in-process.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Any

from auditor import storage
from auditor.cli.common import Progress, add_db, emit, exit_code, positive_int, print_json, severity
from auditor.cluster import app as cluster_app
from auditor.errors import AuditorError
from auditor.results import iso
from auditor.scanning import ScanRequest
from auditor.text import clean


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run a Celery worker that scans the sites of `scan --broker` batches",
                       description="A Celery worker: runs site scans sent by `auditor scan --broker` and the "
                                   "scheduler, with the same engine, policy, bounds and storage as `auditor scan`.")
    p.add_argument("--broker", metavar="URL", help=f"Celery broker URL, e.g. redis://host:6379/0 or "
                   f"amqp://user:pass@host// (default ${cluster_app.BROKER_ENV})")
    add_db(p)
    p.add_argument("--concurrency", type=positive_int, default=8, metavar="N",
                   help="sites this worker scans at once (threads; default 8)")
    p.add_argument("--queues", metavar="Q1,Q2", default=cluster_app.QUEUE,
                   help=f"queues to consume (default {cluster_app.QUEUE})")
    p.add_argument("--visibility-timeout", type=float, default=cluster_app.DEFAULT_VISIBILITY_TIMEOUT_S,
                   metavar="SECONDS",
                   help="Redis: how long a delivered, unacknowledged site may stay with a worker before it is "
                        "redelivered (a dead worker's sites come back after this); must exceed the site time "
                        f"bound + {cluster_app.HOLD_MARGIN_S:g} s (default {cluster_app.DEFAULT_VISIBILITY_TIMEOUT_S:g})")
    p.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="worker log level (default INFO)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("batch", help="progress and results of a `scan --broker` batch")
    bsub = p.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    s = bsub.add_parser("status", help="progress: queued, running, done, failed per site")
    s.add_argument("batch_id", metavar="ID")
    s.add_argument("--format", choices=["table", "json"], default="table")
    add_db(s)
    s.set_defaults(func=cmd_batch_status)
    r = bsub.add_parser("results", help="print the results of a batch as `scan` would")
    r.add_argument("batch_id", metavar="ID")
    r.add_argument("--format", choices=["table", "json", "csv", "sarif"], default="table")
    r.add_argument("--wait", action="store_true", help="wait until every site is finished")
    r.add_argument("--fail-on", type=severity, metavar="SEVERITY",
                   help="exit 1 when a finding at or above this severity exists")
    add_db(r)
    r.set_defaults(func=cmd_batch_results)


def add_scan_broker_options(p: argparse.ArgumentParser) -> None:
    """The options ``scan`` gets for distributed runs."""
    g = p.add_argument_group("distributed scans (Celery workers, see `auditor worker`)")
    g.add_argument("--broker", metavar="URL",
                   help="send one task per site to this Celery broker (redis://... or amqp://...) and print "
                        "the results the workers store, instead of scanning here")
    g.add_argument("--no-wait", action="store_true",
                   help="with --broker: print the batch id and return; see `auditor batch status|results ID`")
    g.add_argument("--rate", type=float, metavar="SITES_PER_S",
                   help="with --broker: start at most this many sites per second across all workers")


def scan_with_broker(args: argparse.Namespace, request: ScanRequest) -> int:
    """``auditor scan --broker``: submit, then wait and print like an in-process scan."""
    if args.rate is not None and not args.rate > 0:
        raise AuditorError("--rate must be positive")
    if getattr(args, "resume", False):
        raise AuditorError("--resume is not available with --broker")
    from auditor.cluster import client

    submitted = client.submit(args.broker, request, db=args.db, policy_dir=args.policy, rate=args.rate)
    if args.no_wait:
        print(submitted.batch_id)
        return 0
    if sys.stderr.isatty():
        print(f"auditor: batch {submitted.batch_id}: {submitted.total} site(s) queued", file=sys.stderr)
    progress = Progress(submitted.total)
    try:
        client.wait(args.db, submitted.batch_id, args.broker,
                    on_finished=lambda job: progress.step(job.target))
    finally:
        progress.close()
    results = client.results(args.db, submitted.batch_id)
    emit(results, args.format)
    return exit_code(results, args.fail_on)


def cmd_worker(args: argparse.Namespace) -> int:
    url = cluster_app.broker_url(args.broker)
    with storage.session_scope(args.db) as session:  # one-line error and exit 2 when unreachable
        storage.count_scans(session)
    cluster_app.check_broker(url)
    if args.visibility_timeout < 1:
        raise AuditorError("--visibility-timeout must be at least 1 second")
    from auditor.cluster.worker import register_task

    if args.db:
        os.environ[storage.ENV_VAR] = args.db
    app = cluster_app.make_app(url, visibility_timeout=args.visibility_timeout)
    register_task(app, args.db, args.visibility_timeout)
    queues = ",".join(q.strip() for q in args.queues.split(",") if q.strip()) or cluster_app.QUEUE
    argv = ["worker", "--pool=threads", f"--concurrency={args.concurrency}", f"--queues={queues}",
            f"--loglevel={args.loglevel}", f"--hostname=auditor-{os.getpid()}@{socket.gethostname()}",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]
    app.worker_main(argv)
    return 0


def _status_rows(batch_id: str, db: str | None) -> dict[str, Any]:
    from auditor.cluster import client, jobs

    batch, job_list = client.load(db, batch_id)
    return {
        "batch": batch.id, "created_at": iso(batch.created_at), "origin": batch.origin, "total": batch.total,
        "policy": {"name": batch.policy_name, "version": batch.policy_version}, "rate": batch.rate,
        "counts": jobs.counts(job_list),
        "jobs": [{"position": j.position, "target": j.target, "status": j.status, "attempts": j.attempts,
                  "scan_id": j.scan_id, "worker": j.worker, "error": j.error,
                  "started_at": iso(j.started_at), "finished_at": iso(j.finished_at)} for j in job_list],
    }


def cmd_batch_status(args: argparse.Namespace) -> int:
    out = _status_rows(args.batch_id, args.db)
    if args.format == "json":
        print_json(out)
        return 0
    c = out["counts"]
    print(f"batch {out['batch']} ({out['origin']}, {out['created_at']}): {out['total']} site(s) — "
          f"{c['queued']} queued, {c['running']} running, {c['done']} done, {c['failed']} failed")
    for j in out["jobs"]:
        extra = f"scan {j['scan_id']}" if j["scan_id"] else ""
        if j["error"]:
            extra = clean(j["error"], 100)
        print(f"  {j['position']:>5}  {j['status']:<8} {j['attempts']:>2}x  {clean(j['target'], 60):<60}  {extra}")
    return 0


def cmd_batch_results(args: argparse.Namespace) -> int:
    from auditor.cluster import client, jobs

    if args.wait:
        client.wait(args.db, args.batch_id, None)
    else:
        _, job_list = client.load(args.db, args.batch_id)
        left = [j for j in job_list if j.status not in jobs.FINISHED]
        if left:
            c = jobs.counts(job_list)
            raise AuditorError(f"batch {args.batch_id} is not finished ({c['queued']} queued, {c['running']} "
                               "running): use --wait, or `auditor batch status`")
    results = client.results(args.db, args.batch_id)
    emit(results, args.format)
    return exit_code(results, args.fail_on)


__all__ = ["add_scan_broker_options", "register", "scan_with_broker"]
