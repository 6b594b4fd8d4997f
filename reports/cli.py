"""``auditor report``, ``export`` and ``registry build``: documents and exports from stored results.

``report`` writes the PDF compliance report; ``export`` the machine-readable results (JSON,
CSV, SARIF); ``registry build`` the public registry of assessed and not-yet-assessed sites.
They only read the database: nothing here scans or signs.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlmodel import select

from auditor import storage
from auditor.cli.common import add_db, add_policy
from auditor.errors import AuditorError
from auditor.models import Scan, Site
from auditor.results import iso, scan_dict
from certificates.rules import find_site, latest_finished_scan
from reports import exports

EXIT_OK = 0


def add_document_options(p: argparse.ArgumentParser) -> None:
    """``--lang`` and ``--issuer``: how a rendered document (report or certificate) reads."""
    p.add_argument("--lang", choices=["vi", "en"], default="vi", help="document language (default vi)")
    p.add_argument("--issuer", metavar="NAME",
                   help="name of the assessment unit printed on the documents (default: $AUDITOR_ISSUER_NAME)")


def register_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the PDF compliance report of a system or a site",
                       description="Write the PDF compliance report of an inventoried system (by name) or of one "
                                   "scanned site (by URL), from stored results.")
    p.add_argument("target", metavar="NAME|URL")
    p.add_argument("--pdf", required=True, metavar="FILE", help="output PDF file")
    add_document_options(p)
    add_db(p)
    add_policy(p)
    p.set_defaults(func=cmd_report)


def register_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export stored results as JSON, CSV or SARIF 2.1.0",
                       description="Export the latest scan of every site (or of --url); with --since, every scan "
                                   "started on or after DATE.")
    p.add_argument("--format", choices=list(exports.FORMATS), default="json")
    p.add_argument("--url", metavar="URL", help="only this site")
    p.add_argument("--since", metavar="DATE", help="every scan started on or after DATE (YYYY-MM-DD or ISO 8601; UTC)")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    add_db(p)
    p.set_defaults(func=cmd_export)


def register(sub: argparse._SubParsersAction) -> None:
    """``registry``. (``report`` and ``export`` come earlier in the help: :func:`register_report`,
    :func:`register_export`.)"""
    p = sub.add_parser(
        "registry", help="publish the registry of inventoried sites (static HTML + JSON + CSV)",
        description="Build a static site listing every inventoried site: assessed or not, last assessment, "
                    "grade, certificate status and serial with a verify link, system level and owner.",
    )
    actions = p.add_subparsers(dest="registry_action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    b = actions.add_parser("build", help="write index.html, registry.json and registry.csv into OUT_DIR")
    b.add_argument("out_dir", metavar="OUT_DIR")
    b.add_argument("--key", metavar="PEM",
                   help="issuer key whose public half is published as issuer.pem (default: as `auditor certify`)")
    b.add_argument("--verify-url", metavar="PREFIX",
                   help="link each serial to PREFIX<serial> (an online verify service) instead of the "
                        "certificate file written next to the registry")
    add_db(b)
    b.set_defaults(func=cmd_build)


# --- report ---------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from reports.render import render_report

    with storage.session_scope(args.db) as session:
        path = render_report(session, args.target, args.pdf, lang=args.lang, policy_dir=args.policy,
                             issuer=args.issuer)
    print(f"report written to {path}")
    return EXIT_OK


# --- export ---------------------------------------------------------------------------------


def parse_since(text: str) -> datetime:
    value = text.strip()
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AuditorError(f"--since {text!r}: expected YYYY-MM-DD or an ISO 8601 time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def select_results(session: Any, *, url: str | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
    """Result dicts to export: every scan since ``since``, else the latest scan of each site."""
    sites: list[Site] = [find_site(session, url)] if url else list(session.exec(select(Site).order_by(Site.url)))
    out: list[dict[str, Any]] = []
    for site in sites:
        if since is not None:
            stmt = select(Scan).where(Scan.site_id == site.id, Scan.status != "running", Scan.started_at >= since)
            scans = list(session.exec(stmt.order_by(Scan.started_at, Scan.id)))
        else:
            latest = latest_finished_scan(session, site)
            scans = [latest] if latest is not None else []
        out += [scan_dict(s, storage.findings_of(session, s.id or 0)) for s in scans]
    return out


def cmd_export(args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    with storage.session_scope(args.db) as session:
        results = select_results(session, url=args.url, since=since)
    text = exports.render(results, args.format)
    if args.output:
        target = Path(args.output)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise AuditorError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(f"{len(results)} scan(s) exported to {target} ({args.format}, since {iso(since) or 'latest only'})",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


# --- registry -------------------------------------------------------------------------------


def cmd_build(args: argparse.Namespace) -> int:
    from reports.registry_site import build_registry
    from scheduler.admin import enrolled_in

    built = build_registry(args.db, args.out_dir, key_path=args.key, verify_url=args.verify_url,
                           enrolled=enrolled_in(args.db))
    print(f"registry: {built.sites} site(s), {built.assessed} assessed, "
          f"{built.sites - built.assessed} not yet assessed -> {built.out_dir / 'index.html'}")
    return 0
