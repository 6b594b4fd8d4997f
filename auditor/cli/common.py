"""Options shared by several commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from auditor.check import Severity
from auditor.cli.progress import Progress
from auditor.results import envelope
from reports.table import render_table


def add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL",
                   help="database: an SQLAlchemy URL or an SQLite file path "
                        "(default: $AUDITOR_DB, else ~/.local/share/auditor/auditor.db)")


def add_policy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", metavar="DIR", help="policy directory (default: the bundled policies/default)")


def add_scan_options(p: argparse.ArgumentParser) -> None:
    """The options that ``scan`` and the scheduler share."""
    p.add_argument("--checks", metavar="LIST", help="comma-separated check ids (default: all installed)")
    p.add_argument("--resolve", metavar="HOST:PORT:ADDR", action="append", default=[],
                   help="connect to ADDR for HOST (SNI, Host header and certificate names still use HOST); "
                        "repeatable; PORT may be *; an override also covers the host's other ports")
    p.add_argument("--ca-file", metavar="PEM", help="trust store for chain validation (default: Mozilla store)")
    p.add_argument("--timeout", type=positive_float, default=10.0, metavar="SECONDS",
                   help="connect/read timeout of one network operation (default 10)")
    p.add_argument("--site-timeout", type=positive_float, default=180.0, metavar="SECONDS",
                   help="total time bound per site, all checks (default 180)")
    p.add_argument("--no-dns", action="store_true",
                   help="never query DNS: hosts must be IP literals or have a --resolve override "
                        "(also set by AUDITOR_NO_DNS=1)")
    p.add_argument("--refuse-private", action="store_true",
                   help="refuse targets that resolve to private, loopback or link-local addresses")
    g = p.add_argument_group("privacy crawl and reputation")
    g.add_argument("--crawl-depth", type=int, default=2, metavar="N", help="link depth from the landing page (default 2)")
    g.add_argument("--crawl-pages", type=positive_int, default=30, metavar="N", help="pages per site at most (default 30)")
    g.add_argument("--page-bytes", type=positive_int, default=2_000_000, metavar="BYTES",
                   help="bytes read per page at most (default 2000000)")
    g.add_argument("--feeds", metavar="DIR", help="blocklist feed directory (default: $AUDITOR_FEEDS, else the built-in sample)")
    g = p.add_argument_group("exposed services")
    g.add_argument("--ports", metavar="LIST", help="ports for the ports check, nmap syntax (default: the policy's list)")


def scan_options_dict(args: argparse.Namespace) -> dict[str, object]:
    """Check options that are not policy: crawl bounds, feed directory, port list."""
    import os

    out: dict[str, object] = {
        "crawl_depth": args.crawl_depth,
        "crawl_pages": args.crawl_pages,
        "page_bytes": args.page_bytes,
    }
    feeds = args.feeds or os.environ.get("AUDITOR_FEEDS")
    if feeds:
        out["feeds_dir"] = feeds
    if args.ports:
        out["ports"] = args.ports
    return out


def positive_float(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value!r}")
    return v


def positive_int(value: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value!r}")
    return v


def severity(value: str) -> Severity:
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def print_json(obj: Any) -> None:
    """Pretty JSON on stdout, non-ASCII kept (Vietnamese stays readable), with a final newline."""
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def emit(results: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        print_json(envelope(results))
    elif fmt in ("csv", "sarif"):
        from reports import exports

        sys.stdout.write(exports.render(results, fmt))
    else:
        sys.stdout.write(render_table(results, sys.stdout))


def exit_code(results: list[dict[str, Any]], fail_on: Severity | None) -> int:
    """2 when a site or a check could not be assessed; else 1 when --fail-on is reached; else 0."""
    if any(r.get("error") or any(c.get("status") != "ok" for c in (r.get("checks") or {}).values())
           for r in results):
        return 2
    if fail_on is not None:
        for r in results:
            for f in r.get("findings") or []:
                if Severity.parse(f["severity"]).rank >= fail_on.rank:
                    return 1
    return 0


__all__ = ["Progress", "add_db", "add_policy", "add_scan_options", "emit", "exit_code"]
