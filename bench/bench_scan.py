"""Benchmark: time ``auditor scan`` over N loopback sites, beside sslyze's own CLI.

    python bench/bench_scan.py                 # 50 sites, tls+http, concurrency 16
    python bench/bench_scan.py --sites 200 --concurrency 32 --checks tls,http

Starts N copies of the lab's well-configured site on 127.0.6.10 upwards (real TLS and HTTP
servers, a private CA made on the spot; nothing leaves this machine), then runs each scanner
as a child process and prints wall time, sites per second, CPU seconds per site (user+sys of
the child) and the child's peak resident memory. Lab servers run in this process, so their
CPU is not counted against the scanners.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_measured(cmd: list[str], env: dict[str, str], out_path: Path) -> tuple[float, float, float, int]:
    """Run a child with stdout+stderr to a file; return (wall s, CPU s, peak RSS MiB, exit code).

    ``os.wait4`` gives this one child's own resource usage (not the running maximum over all
    children that RUSAGE_CHILDREN would give).
    """
    t0 = time.perf_counter()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--checks", default="tls,http")
    ap.add_argument("--first-address", default="127.0.6.10")
    ap.add_argument("--skip-sslyze", action="store_true", help="do not run sslyze's CLI for comparison")
    args = ap.parse_args()
    if not ipaddress.ip_address(args.first_address).is_loopback:
        ap.error("the benchmark only runs on loopback addresses")

    from auditor.lab.sites import LAB_SITES, Lab

    good = next(s for s in LAB_SITES if s.name == "good")
    specs = [dataclasses.replace(good, name=f"bench{i:04d}") for i in range(args.sites)]
    with tempfile.TemporaryDirectory(prefix="auditor-bench-") as tmp:
        t0 = time.perf_counter()
        lab = Lab(Path(tmp) / "lab", specs, first_address=args.first_address).start()
        lab_start = time.perf_counter() - t0
        try:
            listfile = Path(tmp) / "sites.txt"
            listfile.write_text("\n".join(s.url for s in lab.sites) + "\n")
            env = dict(os.environ, AUDITOR_NO_DNS="1")
            cmd = [sys.executable, "-m", "auditor", "scan", "--list", str(listfile), "--format", "json",
                   "--checks", args.checks, "--ca-file", str(lab.ca_file), "--no-dns",
                   "--concurrency", str(args.concurrency), "--db", str(Path(tmp) / "bench.db")]
            for r in lab.resolve_args:
                cmd += ["--resolve", r]
            rows = []
            wall, cpu, rss, code = run_measured(cmd, env, Path(tmp) / "auditor.out")
            graded = 0
            try:
                out = (Path(tmp) / "auditor.out").read_text()
                graded = sum(1 for r in json.loads(out[out.index("{"): out.rfind("}") + 1])["results"]
                             if r.get("grade"))
            except ValueError:
                pass
            rows.append((f"auditor scan ({args.checks})", wall, cpu, rss, code, graded))
            if not args.skip_sslyze:
                targets = [f"{s.host}:{s.https_port}{{{s.address}}}" for s in lab.sites]
                sjson = Path(tmp) / "s.json"
                # The same scan commands as our tls check (naming --certinfo_ca_file alone schedules nothing).
                scmd = [sys.executable, "-m", "sslyze", "--quiet", "--mozilla_config", "disable",
                        "--json_out", str(sjson), "--certinfo", "--certinfo_ca_file", str(lab.ca_file),
                        "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3", "--heartbleed",
                        "--openssl_ccs", "--robot", "--reneg", "--compression", "--fallback", *targets]
                wall, cpu, rss, code = run_measured(scmd, env, Path(tmp) / "sslyze.out")
                completed = 0
                if sjson.exists():
                    doc = json.loads(sjson.read_text())
                    completed = sum(1 for r in doc.get("server_scan_results", [])
                                    if r.get("scan_status") == "COMPLETED")
                rows.append(("sslyze CLI (same commands)", wall, cpu, rss, code, completed))
        finally:
            lab.stop()
    print(f"{args.sites} loopback sites (lab started in {lab_start:.1f} s), concurrency {args.concurrency}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'scanner':<32} {'wall s':>8} {'sites/s':>8} {'CPU s/site':>11} {'peak MiB':>9} {'exit':>5} {'done':>5}")
    for name, wall, cpu, rss, code, done in rows:
        print(f"{name:<32} {wall:>8.1f} {args.sites / wall:>8.2f} {cpu / args.sites:>11.3f} {rss:>9.0f} "
              f"{code:>5} {done:>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
