"""Benchmark: the same lab sites scanned in-process and by 1, 2 and 4 Celery workers.

    python bench/bench_cluster.py                    # 60 lab sites, tls,http, workers 1 2 4
    python bench/bench_cluster.py --sites 20 --workers 1 2   # a quick run

Starts, all on loopback: N copies of the lab's site specs on ``--first-address`` upwards
(127.0.7.130, inside this feature's range), a throwaway PostgreSQL (``tests/pg_server.py``:
Debian's ``initdb``), and ``redis-server`` (no persistence). Then, each against a fresh
database: ``auditor scan`` in-process (``--concurrency 8``), and for each ``--workers`` count
that many ``auditor worker --concurrency 8`` processes with one ``auditor scan --broker``
client. Per run it prints the wall time of the client (submission to the last result),
sites per minute and whether the output matched the in-process one (ids and times aside).
The lab's servers run in this process and share the machine's cores with the scanners.
Nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def run_client(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    return time.perf_counter() - t0, proc.returncode, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=60)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--concurrency", type=int, default=8, help="threads per worker, and of the in-process scan")
    ap.add_argument("--checks", default="tls,http")
    ap.add_argument("--first-address", default="127.0.7.130")
    args = ap.parse_args()

    from cluster.cluster_parts import RedisServer, fresh_database, normalised, start_workers, stop_workers
    from pg_server import PostgresServer

    from auditor.lab.sites import LAB_SITES, Lab

    tmp = Path(tempfile.mkdtemp(prefix="auditor-bench-cluster-"))
    pool = list(LAB_SITES)
    specs = [dataclasses.replace(pool[i % len(pool)], name=f"b{i:04d}-{pool[i % len(pool)].name}")
             for i in range(args.sites)]
    lab = Lab(tmp / "lab", specs, first_address=args.first_address, standard_ports=False).start()
    pg = PostgresServer(Path(tempfile.mkdtemp(prefix="auditor-bench-pg-")))  # its own dir: chowned to postgres
    pg_url = pg.start()
    redis = RedisServer(tmp / "redis").start()
    broker = redis.url
    env = dict(os.environ, AUDITOR_NO_DNS="1")
    scan = [sys.executable, "-m", "auditor", "scan", *[s.url for s in lab.sites], "--ca-file", str(lab.ca_file),
            "--checks", args.checks, "--format", "json", "--concurrency", str(args.concurrency)]
    for r in lab.resolve_args:
        scan += ["--resolve", r]
    rows: list[tuple[str, float, int, str]] = []
    try:
        wall, code, out = run_client([*scan, "--db", fresh_database(pg_url, "bench_local")], env)
        reference = normalised(json.loads(out)["results"])
        rows.append(("in-process scan", wall, code, "reference"))
        print(f"in-process: {wall:.1f} s", flush=True)
        for n in args.workers:
            db = fresh_database(pg_url, f"bench_w{n}")
            # start-up (imports, broker connection) is waited out and not measured
            workers = start_workers(n, broker, db, tmp / f"workers-{n}", "--concurrency", str(args.concurrency))
            try:
                wall, code, out = run_client([*scan, "--db", db, "--broker", broker], env)
                same = "same" if normalised(json.loads(out)["results"]) == reference else "DIFFERENT"
                rows.append((f"{n} worker(s) x {args.concurrency}", wall, code, same))
                print(f"{n} worker(s): {wall:.1f} s", flush=True)
            finally:
                stop_workers(workers)
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(pg.base, ignore_errors=True)
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.sites} lab sites, checks {args.checks}, {os.cpu_count()} cores, PostgreSQL + Redis on loopback")
    print(f"{'run':<24} {'wall s':>7} {'sites/min':>10} {'exit':>5}  output")
    for name, wall, code, same in rows:
        print(f"{name:<24} {wall:>7.1f} {60 * args.sites / wall:>10.1f} {code:>5}  {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
