"""Regenerate the sample documents under ``docs/samples/`` from the loopback demo lab.

    python -m reports.samples [DIR]          # default DIR: docs/samples

Starts a few lab sites on 127.0.4.100+ (private test CA made on the spot; no traffic leaves
the machine, no DNS), scans them with every installed check, inventories a demo system,
then writes a compliance report of that system (Vietnamese) and a network-trust
certificate of a site of no system (Vietnamese), plus PNG previews of their first pages
when ``pdftoppm`` is installed. The certificate is signed with a throwaway key made for
the run, never with the user's issuer key; the database is a temporary file.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SYSTEM_YAML = """
- name: cong-dich-vu-cong-demo
  owner: "Sở Thông tin và Truyền thông (bản mẫu)"
  contact: "attt@example.invalid"
  category: citizen_business
  info_types: [public, personal]
  personal_data_subjects: 20000
  online_public_service_level: 3
  sites: ["{a}", "{b}"]
"""
ISSUER = "Đơn vị đánh giá an toàn thông tin (bản mẫu)"


def generate(out: Path, *, first_address: str = "127.0.4.100") -> list[Path]:
    import certificates
    from auditor import storage
    from auditor.inventory import parse_yaml, store_records
    from auditor.lab.sites import LAB_SITES, Lab
    from auditor.scanning import Auditor, ScanRequest
    from policies import SAMPLE_FEEDS_DIR as SAMPLE_DIR
    from reports.render import render_certificate, render_report

    out.mkdir(parents=True, exist_ok=True)
    names = ("good", "hsts-missing", "good-no-http")
    specs = [s for s in LAB_SITES if s.name in names]
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="auditor-samples-") as tmp:
        db = f"sqlite:///{Path(tmp) / 'samples.db'}"
        key = Path(tmp) / "demo-issuer.pem"
        with Lab(Path(tmp) / "lab", specs, first_address=first_address) as lab:
            good, weak, alone = (lab.site(n) for n in names)
            with storage.session_scope(db) as s:
                store_records(s, parse_yaml(SYSTEM_YAML.format(a=good.url, b=weak.url)))
            # The demo's own feed directory (a copy of the sample): certificates refuse the built-in one.
            feeds = Path(tmp) / "feeds"
            shutil.copytree(SAMPLE_DIR, feeds)
            request = ScanRequest(targets=[good.url, weak.url, alone.url], resolve=lab.resolve_args,
                                  ca_file=str(lab.ca_file), allow_dns=False, timeout=5.0,
                                  options={"ports": "80,443", "feeds_dir": str(feeds)})
            auditor = Auditor(db=db)
            auditor.scan(request)
            auditor.scan(request)  # two scans, so that the history chart has a line
        with storage.session_scope(db) as s:
            report = render_report(s, "cong-dich-vu-cong-demo", out / "compliance-report-sample.pdf",
                                   issuer=ISSUER)
            cert = certificates.issue_certificate(s, alone.url, key_path=key)
            pdf = render_certificate(s, cert, out / "network-trust-certificate-sample.pdf", issuer=ISSUER)
        written += [report, pdf]
    if shutil.which("pdftoppm"):
        for pdf in list(written):
            prefix = pdf.with_suffix("")
            subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                            str(prefix)], check=True)
            written.append(prefix.with_suffix(".png"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.samples", description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default="docs/samples")
    parser.add_argument("--address", default="127.0.4.100", help="first loopback address of the lab")
    args = parser.parse_args(argv)
    for path in generate(Path(args.directory), first_address=args.address):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
