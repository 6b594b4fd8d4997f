"""``auditor demo``: start the loopback lab, scan it, print the graded table. No network needed."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from auditor.cli.common import add_db, emit, positive_int
from auditor.errors import AuditorError
from auditor.scanning import Auditor, ScanRequest

DEMO_SITES = ["good", "cert-expired", "tls1-0", "cert-self-signed", "hsts-missing", "http-content", "cookie-no-secure",
              "priv-preticked", "priv-tracker"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="start a loopback lab of planted flaws, scan it and print the table",
        description="Start real TLS/HTTP servers on 127.0.3.x (a private test CA made on the spot), "
                    "scan them with --resolve overrides and print the graded table. Sends no traffic off this machine.",
    )
    p.add_argument("--all", action="store_true", help="scan every TLS, HTTP and privacy lab site (one per planted flaw), not a sample")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--address", default="127.0.3.10", help="first loopback address of the lab (default 127.0.3.10)")
    p.add_argument("--keep", type=positive_int, metavar="SECONDS",
                   help="keep the lab running this long after the scan (prints the --resolve options to use)")
    p.add_argument("--concurrency", type=positive_int, default=8)
    add_db(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from auditor.lab.privacy_sites import PRIVACY_SITES
    from auditor.lab.sites import LAB_SITES, Lab

    if not args.address.startswith("127."):
        raise AuditorError("the demo lab only runs on 127.0.0.0/8 addresses")
    every = [*LAB_SITES, *PRIVACY_SITES]
    specs = every if args.all else [s for s in every if s.name in DEMO_SITES]
    with tempfile.TemporaryDirectory(prefix="auditor-demo-") as tmp, \
            Lab(Path(tmp), specs, first_address=args.address) as lab:
        request = ScanRequest(
            targets=[s.url for s in lab.sites],
            resolve=lab.resolve_args,
            ca_file=str(lab.ca_file),
            timeout=5.0,
            site_timeout=120.0,
            concurrency=args.concurrency,
            allow_dns=False,
        )
        results = Auditor(db=args.db).scan(request)
        emit(results, args.format)
        if args.keep:
            print(f"\nlab running for {args.keep} s; CA file: {lab.ca_file}")
            print("scan it yourself with: auditor scan " + " ".join(f"--resolve {r}" for r in lab.resolve_args[:4])
                  + f" --ca-file {lab.ca_file} {lab.sites[0].url}")
            time.sleep(args.keep)
    return 0
