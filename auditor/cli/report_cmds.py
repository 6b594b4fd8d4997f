"""``auditor report``, ``certify``, ``verify``, ``certificates``, ``revoke`` and ``export``.

Exit codes: ``certify`` 1 when the rules refuse the certificate (each failed rule listed);
``verify`` 0 only for VALID, 1 for SUSPENDED / REVOKED / EXPIRED / FORGED / UNKNOWN; 2 for
bad input, as everywhere.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlmodel import select

import certificates
from auditor import storage
from auditor.cli.common import add_db, add_policy, print_json
from auditor.errors import AuditorError
from auditor.models import Scan, Site
from auditor.results import iso, scan_dict
from auditor.text import clean
from reports import exports

EXIT_OK, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2


def _add_key(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", metavar="PATH",
                   help="issuer Ed25519 key (default: $AUDITOR_ISSUER_KEY, else issuer-ed25519.pem next to "
                        "the default database); generated with mode 0600 on first use")


def _add_lang(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lang", choices=["vi", "en"], default="vi", help="document language (default vi)")
    p.add_argument("--issuer", metavar="NAME",
                   help="name of the assessment unit printed on the documents (default: $AUDITOR_ISSUER_NAME)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the PDF compliance report of a system or a site",
                       description="Write the PDF compliance report of an inventoried system (by name) or of one "
                                   "scanned site (by URL), from stored results.")
    p.add_argument("target", metavar="NAME|URL")
    p.add_argument("--pdf", required=True, metavar="FILE", help="output PDF file")
    _add_lang(p)
    add_db(p)
    add_policy(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("certify", help="issue a network-trust certificate when the policy's rules hold",
                       description="Evaluate the certificate rules on the site's latest completed scan; issue and "
                                   "store a signed certificate if they all hold, else list each failed rule and exit 1.")
    p.add_argument("url", metavar="URL")
    p.add_argument("--pdf", metavar="FILE", help="also write the one-page certificate PDF")
    _add_lang(p)
    _add_key(p)
    p.add_argument("--format", choices=["text", "json"], default="text")
    add_db(p)
    add_policy(p)
    p.set_defaults(func=cmd_certify)

    p = sub.add_parser("verify", help="verify a certificate: PDF file, serial or QR token",
                       description="Check the signature and the stored status. Prints VALID, SUSPENDED, REVOKED, "
                                   "EXPIRED, FORGED or UNKNOWN; exits 0 only for VALID.")
    p.add_argument("subject", metavar="FILE|SERIAL|TOKEN")
    _add_key(p)
    p.add_argument("--format", choices=["text", "json"], default="text")
    add_db(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("certificates", help="list issued certificates, or print the issuer public key")
    p.add_argument("action", nargs="?", choices=["list", "public-key"], default="list")
    p.add_argument("--status", choices=list(certificates.STATUSES))
    p.add_argument("--url", metavar="URL", help="only this site's certificates")
    p.add_argument("--format", choices=["table", "json"], default="table")
    _add_key(p)
    add_db(p)
    p.set_defaults(func=cmd_certificates)

    p = sub.add_parser("revoke", help="revoke a certificate for good")
    p.add_argument("serial", metavar="SERIAL")
    p.add_argument("--reason", required=True, metavar="TEXT")
    add_db(p)
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("export", help="export stored results as JSON, CSV or SARIF 2.1.0",
                       description="Export the latest scan of every site (or of --url); with --since, every scan "
                                   "started on or after DATE.")
    p.add_argument("--format", choices=list(exports.FORMATS), default="json")
    p.add_argument("--url", metavar="URL", help="only this site")
    p.add_argument("--since", metavar="DATE", help="every scan started on or after DATE (YYYY-MM-DD or ISO 8601; UTC)")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    add_db(p)
    p.set_defaults(func=cmd_export)


# --- report / certify --------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from reports.render import render_report

    with storage.session_scope(args.db) as session:
        path = render_report(session, args.target, args.pdf, lang=args.lang, policy_dir=args.policy,
                             issuer=args.issuer)
    print(f"report written to {path}")
    return EXIT_OK


def cmd_certify(args: argparse.Namespace) -> int:
    with storage.session_scope(args.db) as session:
        site = certificates.find_site(session, args.url)
        try:
            cert = certificates.issue_certificate(session, site.url, key_path=args.key, policy=args.policy)
        except certificates.CertificationRefused as refused:
            if args.format == "json":
                print_json({"url": site.url, "issued": False,
                           "failed": [{"rule": r.rule, "detail": r.detail} for r in refused.failed]})
            else:
                print(f"certificate refused for {clean(site.url)}: {len(refused.failed)} rule(s) failed")
                for r in refused.failed:
                    print(f"  FAILED {r.rule}: {clean(r.detail, 500)}")
            return EXIT_REFUSED
        pdf = None
        if args.pdf:
            from reports.render import render_certificate

            pdf = render_certificate(session, cert, args.pdf, lang=args.lang, policy_dir=args.policy,
                                     issuer=args.issuer)
        info = certificates.certificate_dict(cert)
    if args.format == "json":
        print_json({**info, "issued": True, "pdf": str(pdf) if pdf else None})
    else:
        print(f"certificate {info['serial']} issued for {clean(info['site'])}: grade {info['grade']}, "
              f"valid until {info['expires_at']} (scan #{info['scan_id']})")
        if pdf:
            print(f"PDF written to {pdf}")
        print(f"token: {info['token']}")
    return EXIT_OK


# --- verify --------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    subject = args.subject
    source = "serial or token"
    if len(subject) < 4096 and os.path.isfile(subject):
        source = f"PDF {subject}"
        subject = certificates.read_pdf_token(subject)
    with storage.session_scope(args.db) as session:
        result = certificates.verify(subject, session, key_path=args.key)
    if args.format == "json":
        print_json({**result.to_dict(), "source": source})
    else:
        p = result.payload or {}
        print(f"{result.status}  {clean(result.serial or '-')}  {clean(p.get('site') or '')}"
              + (f"  grade {clean(p.get('grade'))}" if p.get("grade") else "")
              + (f"  expires {clean(p.get('expires'))}" if p.get("expires") else ""))
        print(f"  {clean(result.detail, 600)}")
    return EXIT_OK if result.ok else EXIT_REFUSED


# --- certificates list / revoke -----------------------------------------------------------


def cmd_certificates(args: argparse.Namespace) -> int:
    if args.action == "public-key":
        sys.stdout.write(certificates.public_key_pem(args.key))
        return EXIT_OK
    with storage.session_scope(args.db) as session:
        rows = [certificates.certificate_dict(c) for c in
                certificates.list_certificates(session, status=args.status, site_url=args.url)]
    if args.format == "json":
        print_json({"certificates": rows})
        return EXIT_OK
    if not rows:
        print("no certificates")
        return EXIT_OK
    print(f"{'serial':<20}  {'status':<9}  {'grade':<5}  {'issued (UTC)':<20}  {'expires (UTC)':<20}  site")
    for r in rows:
        print(f"{r['serial']:<20}  {r['status']:<9}  {r['grade']:<5}  {r['issued_at']:<20}  {r['expires_at']:<20}  "
              f"{clean(r['site'])}" + (f"  [{clean(r['status_reason'], 120)}]" if r["status"] != "valid" else ""))
    return EXIT_OK


def cmd_revoke(args: argparse.Namespace) -> int:
    with storage.session_scope(args.db) as session:
        cert = certificates.revoke(session, args.serial, args.reason)
        print(f"certificate {cert.serial} revoked: {clean(cert.status_reason, 300)}")
    return EXIT_OK


# --- export -------------------------------------------------------------------------------


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
    sites: list[Site]
    if url:
        sites = [certificates.find_site(session, url)]
    else:
        sites = list(session.exec(select(Site).order_by(Site.url)))
    out: list[dict[str, Any]] = []
    for site in sites:
        if since is not None:
            stmt = select(Scan).where(Scan.site_id == site.id, Scan.status != "running", Scan.started_at >= since)
            scans = list(session.exec(stmt.order_by(Scan.started_at, Scan.id)))
        else:
            latest = certificates.latest_finished_scan(session, site)
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
