"""Benchmark: ``auditor scan`` over N loopback lab sites, beside sslyze's own CLI, at several
added round-trip times, and the memory of a long list of dead targets.

    python bench/bench_scan.py --sites 50 --concurrency 16            # the README's figures
    python bench/bench_scan.py                                        # 200 sites, 0 and 50 ms, 10,000 dead
    python bench/bench_scan.py --sites 20 --dead 500 --blackholes 20  # a quick run

For each round-trip time of ``--rtt-ms`` it starts N copies of the lab's site specs (all of
``LAB_SITES`` in turn, or only the good site with ``--specs good``) on ``--first-address``
upwards; a non-zero time puts every site behind the lab's latency proxy (half of it each
way, on the next N addresses). It then runs, each as a child process, the full default audit
(``--full-checks``: every check but ports), ``auditor scan --checks tls,http`` and sslyze's CLI
with the same commands as the tls check, on the same hosts. Per run it prints wall time,
sites per second and per minute, CPU seconds per site (user+sys of that child and the
children it reaped, from ``os.wait4``) and the child's peak resident memory.

Last, ``--dead`` targets that nothing answers (IP literals on 127.0.16.1 upwards: most refuse
at once, ``--blackholes`` of them sit behind a listener whose accept queue is full, so SYNs
are dropped and connects time out after ``--dead-timeout``) are scanned as one list with the
full audit, for peak memory. With ``--py-spy DIR`` (``pip install py-spy``) every auditor run
is sampled by ``py-spy record --subprocesses`` into DIR as collapsed stacks, and the functions
with the most on-CPU samples of their own are printed after its
figures: what bounds the rate. Profiling slows the runs it samples. Lab servers and proxies run in this process, so their CPU is not
counted against the scanners. Nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

FULL_CHECKS = "tls,http,privacy,reputation"
DEAD_FIRST = "127.0.16.1"
DEAD_PORT = 9  # discard: a closed port on every address this benchmark uses


@dataclasses.dataclass
class Row:
    """One measured child process."""

    name: str
    wall: float
    cpu: float
    rss_mib: float
    code: int
    done: int
    count: int


def run_measured(cmd: list[str], env: dict[str, str], out_path: Path) -> tuple[float, float, float, int]:
    """Run a child with stdout+stderr to a file; return (wall s, CPU s, peak RSS MiB, exit code).

    ``os.wait4`` gives this one child's own resource usage, including the children it reaped
    (not the running maximum over all children that RUSAGE_CHILDREN would give).
    """
    t0 = time.perf_counter()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, proc.returncode


def _results(out_path: Path) -> list[dict[str, Any]]:
    """The ``results`` of an ``auditor scan --format json`` output (progress lines around it ignored)."""
    out = out_path.read_text(errors="replace")
    try:
        return list(json.loads(out[out.index("{"): out.rfind("}") + 1])["results"])
    except (ValueError, KeyError):
        return []


def auditor_row(name: str, targets: list[str], resolve: list[str], ca_file: Path | None,
                checks: str, args: argparse.Namespace, tmp: Path, *, timeout: float | None = None) -> Row:
    """Scan ``targets`` as one list with ``auditor scan``; ``done`` counts graded results."""
    listfile = tmp / f"{name.replace(' ', '_')}.txt"
    listfile.write_text("\n".join(targets) + "\n")
    cmd = [sys.executable, "-m", "auditor", "scan", "--list", str(listfile), "--format", "json",
           "--checks", checks, "--no-dns", "--concurrency", str(args.concurrency),
           "--db", str(tmp / f"{listfile.stem}.db")]
    if ca_file is not None:
        cmd += ["--ca-file", str(ca_file)]
    if timeout is not None:
        cmd += ["--timeout", str(timeout)]
    for r in resolve:
        cmd += ["--resolve", r]
    out = tmp / f"{listfile.stem}.out"
    profile = None
    if args.py_spy is not None:
        profile = args.py_spy / f"{len(list(args.py_spy.glob('*.txt'))):02d}-{listfile.stem}.txt"
        cmd = ["py-spy", "record", "--subprocesses", "--format", "raw", "--rate", "20",
               "-o", str(profile), "--", *cmd]
    wall, cpu, rss, code = run_measured(cmd, dict(os.environ, AUDITOR_NO_DNS="1"), out)
    if profile is not None:
        print_hot_functions(name, profile)
    results = _results(out)
    done = sum(1 for r in results if (r.get("grade") if ca_file is not None else True))
    return Row(name, wall, cpu, rss, code, done, len(targets))


def sslyze_row(lab: Any, tmp: Path, rtt: int) -> Row:
    """sslyze's CLI with the tls check's scan commands on the lab's hosts; ``done`` = COMPLETED."""
    targets = [f"{s.host}:{s.https_port}{{{s.address}}}" for s in lab.sites]
    sjson = tmp / f"sslyze-{rtt}.json"
    # The same scan commands as our tls check (naming --certinfo_ca_file alone schedules nothing).
    cmd = [sys.executable, "-m", "sslyze", "--quiet", "--mozilla_config", "disable",
           "--json_out", str(sjson), "--certinfo", "--certinfo_ca_file", str(lab.ca_file),
           "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3", "--heartbleed",
           "--openssl_ccs", "--robot", "--reneg", "--compression", "--fallback", *targets]
    wall, cpu, rss, code = run_measured(cmd, dict(os.environ), tmp / f"sslyze-{rtt}.out")
    completed = 0
    if sjson.exists():
        doc = json.loads(sjson.read_text())
        completed = sum(1 for r in doc.get("server_scan_results", []) if r.get("scan_status") == "COMPLETED")
    return Row("sslyze CLI (same commands)", wall, cpu, rss, code, completed, len(targets))


IDLE = ("wait (threading.py", "select (selectors.py", "_worker (concurrent", "sleep", "acquire", "poll")


def print_hot_functions(name: str, profile: Path, top: int = 12) -> None:
    """Functions by samples in which they were the innermost frame (collapsed stacks),
    leaving out waiting and sleeping: where the CPU of an auditor run went."""
    own: dict[str, int] = {}
    total = 0
    for line in profile.read_text(errors="replace").splitlines() if profile.exists() else []:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        total += int(count)
        if not any(word in leaf for word in IDLE):
            own[leaf] = own.get(leaf, 0) + int(count)
    busy = sum(own.values())
    print(f"  py-spy, {name}: {busy} of {total} samples busy; top functions by own samples ({profile.name}):")
    for leaf, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {100 * count / max(1, busy):5.1f}%  {leaf[:110]}")


def lab_specs(count: int, which: str) -> list[Any]:
    """``count`` renamed copies of the lab's specs, in turn (or of the good site only)."""
    from auditor.lab.sites import GOOD_SITE, LAB_SITES

    pool = [GOOD_SITE] if which == "good" else list(LAB_SITES)
    return [dataclasses.replace(pool[i % len(pool)], name=f"bench{i:04d}-{pool[i % len(pool)].name}")
            for i in range(count)]


def bench_rtt(rtt: int, args: argparse.Namespace, tmp: Path) -> tuple[float, list[Row]]:
    """Start the lab (behind the proxy when ``rtt`` > 0) and measure every scanner on it."""
    from auditor.lab.sites import Lab

    t0 = time.perf_counter()
    latency = {"latency_ms": rtt / 2, "jitter_ms": args.jitter_ms} if rtt else {}
    lab = Lab(tmp / f"lab-{rtt}", lab_specs(args.sites, args.specs), first_address=args.first_address,
              **latency).start()  # type: ignore[arg-type]
    lab_start = time.perf_counter() - t0
    try:
        urls = [s.url for s in lab.sites]
        rows = [auditor_row(f"auditor scan ({args.full_checks})", urls, lab.resolve_args, lab.ca_file,
                            args.full_checks, args, tmp)]
        if args.checks != args.full_checks:
            rows.append(auditor_row(f"auditor scan ({args.checks})", urls, lab.resolve_args, lab.ca_file,
                                    args.checks, args, tmp))
        if not args.skip_sslyze:
            rows.append(sslyze_row(lab, tmp, rtt))
    finally:
        lab.stop()
    return lab_start, rows


@contextmanager
def blackholes(addresses: list[str]) -> Iterator[None]:
    """A listener on each address whose accept queue is full, so further SYNs are dropped
    (a host that does not answer) until the context ends."""
    with ExitStack() as stack:
        for addr in addresses:
            listener = stack.enter_context(socket.socket())
            listener.bind((addr, DEAD_PORT))
            listener.listen(0)
            for _ in range(2):  # backlog 0 still queues one; fill it
                filler = stack.enter_context(socket.socket())
                filler.setblocking(False)
                filler.connect_ex((addr, DEAD_PORT))
        time.sleep(0.2)
        yield


def bench_dead(args: argparse.Namespace, tmp: Path) -> Row:
    """One list of ``--dead`` targets that refuse or never answer, scanned with the full audit."""
    first = ipaddress.ip_address(DEAD_FIRST)
    addresses = [str(first + i) for i in range(args.dead)]
    probe = socket.socket()
    probe.settimeout(1)
    if probe.connect_ex((addresses[-1], DEAD_PORT)) == 0:
        raise SystemExit(f"port {DEAD_PORT} answers on {addresses[-1]}: cannot build a dead list")
    probe.close()
    targets = [f"https://{a}:{DEAD_PORT}/" for a in addresses]
    step = max(1, args.dead // max(1, args.blackholes)) if args.blackholes else 0
    holes = addresses[::step][: args.blackholes] if step else []
    with blackholes(holes):
        return auditor_row(f"auditor scan ({args.full_checks})", targets, [], None, args.full_checks, args, tmp,
                           timeout=args.dead_timeout)


def print_rows(rows: list[Row]) -> None:
    print(f"{'scanner':<42} {'wall s':>8} {'sites/s':>8} {'sites/min':>9} {'CPU s/site':>11} {'peak MiB':>9} "
          f"{'exit':>5} {'done':>5}")
    for r in rows:
        print(f"{r.name:<42} {r.wall:>8.1f} {r.count / r.wall:>8.2f} {60 * r.count / r.wall:>9.1f} "
              f"{r.cpu / r.count:>11.3f} {r.rss_mib:>9.0f} {r.code:>5} {r.done:>5}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=200, help="lab sites per run (default 200)")
    ap.add_argument("--specs", choices=("lab", "good"), default="lab",
                    help="copies of every lab site spec in turn (default), or of the good site only")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--checks", default="tls,http", help="the checks compared with sslyze (default tls,http)")
    ap.add_argument("--full-checks", default=FULL_CHECKS, help=f"the full default audit (default {FULL_CHECKS})")
    ap.add_argument("--rtt-ms", default="0,50", help="added round-trip times, comma-separated (default 0,50)")
    ap.add_argument("--jitter-ms", type=float, default=0.0, help="jitter of each one-way delay")
    ap.add_argument("--dead", type=int, default=10000, help="dead targets in the memory run (0: skip it)")
    ap.add_argument("--blackholes", type=int, default=100, help="of the dead targets, how many never answer")
    ap.add_argument("--dead-timeout", type=float, default=2.0, help="--timeout of the dead-list scan")
    ap.add_argument("--first-address", default="127.0.6.10")
    ap.add_argument("--py-spy", type=Path, metavar="DIR", help="profile each auditor run with py-spy into DIR")
    ap.add_argument("--skip-sslyze", action="store_true", help="do not run sslyze's CLI for comparison")
    args = ap.parse_args()
    if args.py_spy is not None:
        if shutil.which("py-spy") is None:
            ap.error("--py-spy: py-spy is not installed (pip install py-spy)")
        args.py_spy.mkdir(parents=True, exist_ok=True)
    try:
        args.rtts = [int(x) for x in args.rtt_ms.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--rtt-ms {args.rtt_ms!r}: expected comma-separated whole milliseconds")
    if args.sites < 1 or args.dead < 0 or args.blackholes < 0 or args.dead > 60000 or min(args.rtts, default=0) < 0:
        ap.error("--sites must be >= 1; --dead 0..60000; --blackholes and --rtt-ms >= 0")
    last_site = ipaddress.ip_address(args.first_address) + 2 * args.sites
    if not (ipaddress.ip_address(args.first_address).is_loopback and last_site.is_loopback):
        ap.error("the benchmark only runs on loopback addresses")
    if last_site >= ipaddress.ip_address(DEAD_FIRST) and args.dead:
        ap.error(f"lab sites and their proxies would reach the dead list's {DEAD_FIRST}")
    return args


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="auditor-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for rtt in args.rtts:
            lab_start, rows = bench_rtt(rtt, args, tmp)
            print(f"{args.sites} loopback sites ({args.specs} specs, lab started in {lab_start:.1f} s), "
                  f"+{rtt} ms round trip, concurrency {args.concurrency}, {os.cpu_count()} CPUs")
            print_rows(rows)
            print(flush=True)
        if args.dead:
            row = bench_dead(args, tmp)
            print(f"{args.dead} dead targets ({args.blackholes} never answer, --timeout {args.dead_timeout:g}), "
                  f"concurrency {args.concurrency}; 'done' = results printed")
            print_rows([row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
