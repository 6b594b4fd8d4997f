"""``auditor certify``, ``verify``, ``certificates`` and ``revoke``: certificates from the command line.

Exit codes: ``certify`` 1 when the rules refuse the certificate (each failed rule listed);
``verify`` 0 only for VALID, 1 for SUSPENDED / REVOKED / EXPIRED / FORGED / UNKNOWN; 2 for
bad input, as everywhere.
"""

from __future__ import annotations

import argparse
import os
import sys

from auditor import storage
from auditor.cli.common import add_db, add_policy, print_json
from auditor.text import clean
from certificates.lifecycle import STATUSES, certificate_dict, issue_certificate, list_certificates, revoke
from certificates.rules import CertificationRefused, find_site
from certificates.signing import public_key_pem
from certificates.verify import read_pdf_token, verify
from reports.cli import add_document_options

EXIT_OK, EXIT_REFUSED = 0, 1


def add_key_option(p: argparse.ArgumentParser) -> None:
    """``--key PATH``: the issuer key, as every command that signs or verifies finds it."""
    p.add_argument("--key", metavar="PATH",
                   help="issuer Ed25519 key (default: $AUDITOR_ISSUER_KEY, else issuer-ed25519.pem next to "
                        "the default database); generated with mode 0600 on first use")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certify", help="issue a network-trust certificate when the policy's rules hold",
                       description="Evaluate the certificate rules on the site's latest completed scan; issue and "
                                   "store a signed certificate if they all hold, else list each failed rule and exit 1.")
    p.add_argument("url", metavar="URL")
    p.add_argument("--pdf", metavar="FILE", help="also write the one-page certificate PDF")
    add_document_options(p)
    add_key_option(p)
    p.add_argument("--format", choices=["text", "json"], default="text")
    add_db(p)
    add_policy(p)
    p.set_defaults(func=cmd_certify)

    p = sub.add_parser("verify", help="verify a certificate: PDF file, serial or QR token",
                       description="Check the signature and the stored status. Prints VALID, SUSPENDED, REVOKED, "
                                   "EXPIRED, FORGED or UNKNOWN; exits 0 only for VALID.")
    p.add_argument("subject", metavar="FILE|SERIAL|TOKEN")
    add_key_option(p)
    p.add_argument("--format", choices=["text", "json"], default="text")
    add_db(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("certificates", help="list issued certificates, or print the issuer public key")
    p.add_argument("action", nargs="?", choices=["list", "public-key"], default="list")
    p.add_argument("--status", choices=list(STATUSES))
    p.add_argument("--url", metavar="URL", help="only this site's certificates")
    p.add_argument("--format", choices=["table", "json"], default="table")
    add_key_option(p)
    add_db(p)
    p.set_defaults(func=cmd_certificates)

    p = sub.add_parser("revoke", help="revoke a certificate for good")
    p.add_argument("serial", metavar="SERIAL")
    p.add_argument("--reason", required=True, metavar="TEXT")
    add_db(p)
    p.set_defaults(func=cmd_revoke)


def cmd_certify(args: argparse.Namespace) -> int:
    with storage.session_scope(args.db) as session:
        site = find_site(session, args.url)
        try:
            cert = issue_certificate(session, site.url, key_path=args.key, policy=args.policy)
        except CertificationRefused as refused:
            _print_refusal(site.url, refused, args.format)
            return EXIT_REFUSED
        pdf = None
        if args.pdf:
            from reports.render import render_certificate

            pdf = render_certificate(session, cert, args.pdf, lang=args.lang, policy_dir=args.policy,
                                     issuer=args.issuer)
        info = certificate_dict(cert)
    if args.format == "json":
        print_json({**info, "issued": True, "pdf": str(pdf) if pdf else None})
    else:
        print(f"certificate {info['serial']} issued for {clean(info['site'])}: grade {info['grade']}, "
              f"valid until {info['expires_at']} (scan #{info['scan_id']})")
        if pdf:
            print(f"PDF written to {pdf}")
        print(f"token: {info['token']}")
    return EXIT_OK


def _print_refusal(url: str, refused: CertificationRefused, fmt: str) -> None:
    if fmt == "json":
        print_json({"url": url, "issued": False,
                    "failed": [{"rule": r.rule, "detail": r.detail} for r in refused.failed]})
        return
    print(f"certificate refused for {clean(url)}: {len(refused.failed)} rule(s) failed")
    for r in refused.failed:
        print(f"  FAILED {r.rule}: {clean(r.detail, 500)}")


def cmd_verify(args: argparse.Namespace) -> int:
    subject = args.subject
    source = "serial or token"
    if len(subject) < 4096 and os.path.isfile(subject):
        source = f"PDF {subject}"
        subject = read_pdf_token(subject)
    with storage.session_scope(args.db) as session:
        result = verify(subject, session, key_path=args.key)
    if args.format == "json":
        print_json({**result.to_dict(), "source": source})
    else:
        p = result.payload or {}
        print(f"{result.status}  {clean(result.serial or '-')}  {clean(p.get('site') or '')}"
              + (f"  grade {clean(p.get('grade'))}" if p.get("grade") else "")
              + (f"  expires {clean(p.get('expires'))}" if p.get("expires") else ""))
        print(f"  {clean(result.detail, 600)}")
    return EXIT_OK if result.ok else EXIT_REFUSED


def cmd_certificates(args: argparse.Namespace) -> int:
    if args.action == "public-key":
        sys.stdout.write(public_key_pem(args.key))
        return EXIT_OK
    with storage.session_scope(args.db) as session:
        rows = [certificate_dict(c) for c in list_certificates(session, status=args.status, site_url=args.url)]
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
        cert = revoke(session, args.serial, args.reason)
        print(f"certificate {cert.serial} revoked: {clean(cert.status_reason, 300)}")
    return EXIT_OK
