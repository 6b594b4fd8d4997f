"""``auditor scan``, ``history``, ``show`` and ``checks list``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from auditor import registry, storage
from auditor.cli.common import (
    Progress,
    add_db,
    add_policy,
    add_scan_options,
    emit,
    exit_code,
    positive_int,
    print_json,
    scan_options_dict,
    severity,
)
from auditor.cluster.cli import add_scan_broker_options, scan_with_broker
from auditor.errors import AuditorError
from auditor.results import grade_label, iso, scan_assessment
from auditor.scanning import Auditor, ScanRequest
from auditor.targets import AddressPolicy, parse_target, read_target_list
from auditor.text import clean


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="audit one or more websites",
                       description="Audit websites: run the check plug-ins, grade, store and print the results.")
    p.add_argument("targets", nargs="*", metavar="TARGET", help="URL (https://host[:port]/path) or bare host name")
    p.add_argument("--list", metavar="FILE", help="file with one target per line (# starts a comment)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of the same --list FILE: skip every target whose site "
                        "has a completed scan started at or after the moment the newest recorded run of "
                        "this file (same absolute path) began, scan the rest (failed or interrupted ones "
                        "again); the skipped targets are printed from their stored scans")
    add_scan_options(p)
    p.add_argument("--dns-server", type=dns_server, metavar="ADDR[:PORT]",
                   help="resolver the dns check asks (default: the system's; with --no-dns only this one)")
    p.add_argument("--browser", action="store_true",
                   help="privacy check in browser mode: render the first pages in headless Chromium (script-built "
                        "forms, runtime trackers and cookies, consent banner refuse/accept visits); the policy's "
                        "privacy.browser makes it the default")
    p.add_argument("--format", choices=["table", "json", "csv", "sarif"], default="table",
                   help="output format (default table)")
    p.add_argument("--concurrency", type=positive_int, default=8, metavar="N",
                   help="sites scanned at once (default 8)")
    p.add_argument("--fail-on", type=severity, metavar="SEVERITY",
                   help="exit 1 when a finding at or above this severity exists (critical|high|medium|low|info)")
    add_db(p)
    add_policy(p)
    add_scan_broker_options(p)
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("history", help="list earlier scans of a site, newest first")
    p.add_argument("url", metavar="URL")
    p.add_argument("--limit", type=positive_int, default=20)
    p.add_argument("--format", choices=["table", "json"], default="table")
    add_db(p)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("show", help="print one stored scan again")
    p.add_argument("scan_id", type=positive_int, metavar="SCAN_ID")
    p.add_argument("--format", choices=["table", "json"], default="table")
    add_db(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("checks", help="list installed check plug-ins and their finding catalogues")
    p.add_argument("action", nargs="?", choices=["list"], default="list")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_checks)


def dns_server(value: str) -> str:
    """``--dns-server``: an IP address with an optional port (``[v6]:port`` for IPv6)."""
    from checks.dns.client import parse_server

    try:
        address, port = parse_server(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def scan_request_from_args(args: argparse.Namespace, targets: list[str]) -> ScanRequest:
    options = scan_options_dict(args)
    if getattr(args, "dns_server", None):
        options["dns_server"] = args.dns_server
    if getattr(args, "browser", False):
        options["browser"] = True
    return ScanRequest(
        targets=targets,
        checks=args.checks,
        resolve=list(args.resolve or []),
        ca_file=args.ca_file,
        timeout=args.timeout,
        site_timeout=args.site_timeout,
        allow_dns=not (args.no_dns or os.environ.get("AUDITOR_NO_DNS", "") not in ("", "0")),
        options=options,
        address_policy=AddressPolicy(
            allow_private=not args.refuse_private,
            allow_loopback=not args.refuse_private,
            allow_link_local=not args.refuse_private,
        ),
    )


def cmd_scan(args: argparse.Namespace) -> int:
    targets = list(args.targets)
    if args.list:
        targets += read_target_list(args.list)
    if not targets:
        raise AuditorError("no targets: give URLs or --list FILE")
    if args.resume and not args.list:
        raise AuditorError("--resume continues a run of a list: give --list FILE")
    request = scan_request_from_args(args, targets)
    request.concurrency = args.concurrency
    if args.list:
        request.list_file = str(Path(args.list).resolve())
        request.resume = args.resume
    if args.broker is not None:  # one task per site, scanned by `auditor worker` processes
        return scan_with_broker(args, request)
    auditor = Auditor(db=args.db, policy_dir=args.policy)
    plan = auditor.plan_resume(request)
    if plan is not None:
        print(f"auditor: resuming the run of {args.list} begun {iso(plan.since)}: {len(plan.done)} of "
              f"{len(targets)} target(s) already completed, scanning {len(targets) - len(plan.done)}",
              file=sys.stderr)
    progress = Progress(len(targets))
    try:
        results = auditor.scan(request, on_result=lambda r: progress.step(r["url"]), plan=plan)
    finally:
        progress.close()
    emit(results, args.format)
    return exit_code(results, args.fail_on)


def cmd_history(args: argparse.Namespace) -> int:
    try:
        url = parse_target(args.url)[0]
    except AuditorError:
        url = args.url
    with storage.session_scope(args.db) as session:
        scans = storage.history(session, url, args.limit)
        rows: list[dict[str, Any]] = [
            {
                "scan_id": s.id, "started_at": iso(s.started_at), "status": s.status,
                "grade": s.grade, "score": s.score, "counts": dict(s.counts or {}),
                "policy": {"name": s.policy_name, "version": s.policy_version}, "error": s.error,
                "assessment": scan_assessment(s),
            }
            for s in scans
        ]
    if args.format == "json":
        print_json({"url": url, "scans": rows})
        return 0
    if not rows:
        print(f"no scans of {clean(url)}")
        return 0
    print(f"{clean(url)} — {len(rows)} scan(s), newest first")
    print(f"  {'scan':>6}  {'started (UTC)':<20}  {'grade':<5}  {'score':>5}  crit high med  low info  status")
    for r in rows:
        print(_history_line(r))
    if any(r["grade"] is not None and not r["assessment"]["complete"] for r in rows):
        print("  * grade incomplete: a requested check could not test (see `auditor show SCAN_ID`)")
    return 0


def _history_line(r: dict[str, Any]) -> str:
    """One scan of ``auditor history``; an incomplete grade is starred and named in the status."""
    c = r["counts"]
    incomplete = r["grade"] is not None and not r["assessment"]["complete"]
    grade = f"{r['grade']}*" if incomplete else (r["grade"] or "-")
    status = r["status"] + (f" {clean(grade_label(r).partition(' ')[2], 80)}" if incomplete else "")
    return (
        f"  {r['scan_id']:>6}  {r['started_at']:<20}  {grade:<5}  "
        f"{r['score'] if r['score'] is not None else '-':>5}  "
        f"{c.get('critical', 0):>4} {c.get('high', 0):>4} {c.get('medium', 0):>3} "
        f"{c.get('low', 0):>4} {c.get('info', 0):>4}  {status}"
        + (f": {clean(r['error'], 80)}" if r["error"] else "")
    )


def cmd_show(args: argparse.Namespace) -> int:
    result = Auditor(db=args.db).result_dict(args.scan_id)
    emit([result], args.format)
    return 0


def cmd_checks(args: argparse.Namespace) -> int:
    checks, broken = registry.discover()
    if args.format == "json":
        out = {
            "checks": [
                {
                    "id": c.id, "title": c.title, "description": c.description,
                    "module": type(c).__module__,
                    "parameters": dict(c.parameters),
                    "findings": [
                        {"id": s.id, "severity": s.severity.value, "title": s.title, "rationale": s.rationale,
                         "remediation": s.remediation, "references": list(s.references)}
                        for s in c.catalogue
                    ],
                }
                for c in checks.values()
            ],
            "broken": [{"name": b.name, "value": b.value, "error": b.error} for b in broken],
        }
        print_json(out)
        return 0
    for c in checks.values():
        print(f"{c.id} — {c.title}  [{type(c).__module__}]  ({len(c.catalogue)} findings)")
        for s in c.catalogue:
            print(f"  {s.severity.value:<8}  {s.id:<36}  {s.title}")
        print()
    for b in broken:
        print(f"! plug-in {b.name} ({b.value}) failed to load: {b.error}")
    return 0
