"""Benchmark: the privacy check's browser mode over the browser lab, pages per second and peak memory.

    python bench/bench_browser.py                      # 7 lab sites x 2 rounds, 2 browsers at once
    python bench/bench_browser.py --rounds 1 --pages 3 --concurrency 1

Starts ``BROWSER_PRIVACY_SITES`` (script-built forms, tag managers, consent banners, an SPA) on
``--first-address`` upwards (loopback only) and runs the privacy check in browser mode on each
site, ``--concurrency`` at a time, ``--rounds`` times. Prints wall time, pages rendered per
second (every page the browser loaded: the first ``--pages`` crawled pages plus the refuse and
accept visits), sites per minute, the peak proportional memory of one Chromium (the sum over
its process group, sampled by the browser module's watchdog), and the peak resident memory of
this process (the scanner side: Playwright's driver excluded). Nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("AUDITOR_NO_DNS", "1")

from auditor.check import CheckContext  # noqa: E402
from auditor.lab.browser_sites import BROWSER_PRIVACY_SITES  # noqa: E402
from auditor.lab.sites import Lab, RunningSite  # noqa: E402
from auditor.targets import Resolver, make_target  # noqa: E402
from checks.privacy.check import PrivacyCheck  # noqa: E402
from checks.web.browser import set_max_browsers  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pages", type=int, default=5, help="privacy.browser_pages (default 5)")
    ap.add_argument("--concurrency", type=int, default=2, help="sites (and browsers) at once (default 2)")
    ap.add_argument("--first-address", default="127.0.8.100")
    args = ap.parse_args()
    set_max_browsers(args.concurrency)
    with tempfile.TemporaryDirectory() as tmp, Lab(Path(tmp), BROWSER_PRIVACY_SITES,
                                                    first_address=args.first_address) as lab:
        resolver = Resolver(lab.resolve_args, allow_dns=False)
        params = {"privacy.browser_pages": args.pages}

        def one(site: RunningSite) -> tuple[int, float, str | None]:
            ctx = CheckContext(timeout=10, deadline=time.monotonic() + 180, resolver=resolver,
                               ca_file=str(lab.ca_file), params=params, options={"browser": True})
            outcome = PrivacyCheck().run(make_target(site.url, resolver), ctx)
            ev = outcome.evidence.get("browser") or {}
            pages = len(ev.get("pages") or []) + len(ev.get("consent_visits") or [])
            return pages, float((ev.get("session") or {}).get("peak_pss_mib") or 0.0), outcome.error

        jobs = [s for _ in range(args.rounds) for s in lab.sites]
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            results = list(pool.map(one, jobs))
        wall = time.monotonic() - start
    pages = sum(r[0] for r in results)
    errors = [r[2] for r in results if r[2]]
    peak_browser = max(r[1] for r in results)
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()
    print(f"sites {len(jobs)}  pages rendered {pages}  wall {wall:.1f} s  concurrency {args.concurrency}  "
          f"load average {load[0]:.1f} ({os.cpu_count()} CPUs)")
    print(f"pages/s {pages / wall:.2f}  sites/min {len(jobs) / wall * 60:.1f}")
    print(f"peak Chromium (PSS, one browser) {peak_browser:.0f} MiB  peak scanner RSS {peak_self:.0f} MiB")
    if errors:
        print(f"errors: {len(errors)}: {errors[0]}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
