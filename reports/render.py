"""Render the compliance report and the certificate to PDF with Jinja2 and WeasyPrint.

Safety: the Jinja environment autoescapes everything; charts and the QR code are SVG made
by our own code; and WeasyPrint gets a URL fetcher that refuses every URL (the documents
embed all they need), so nothing a site sent can make the renderer touch the network or
the file system. The PDF is written to a temporary file next to the target and renamed,
so a failed render never leaves half a document behind.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from sqlmodel import Session

import certificates
import policies
from auditor.errors import AuditorError
from auditor.models import Certificate, InformationSystem, Scan, utcnow
from auditor.results import iso
from auditor.version import __version__
from reports.charts import GRADE_COLOURS
from reports.context import build_report, clip, criteria_rows, grade_colour, incomplete_checks, rule_title
from reports.i18n import Messages, check_lang

TEMPLATES = Path(__file__).resolve().parent / "templates"
ISSUER_ENV = "AUDITOR_ISSUER_NAME"


def _css_string(text: str) -> Markup:
    """A CSS string literal (for generated content in @page rules)."""
    body = "".join(c if c.isalnum() or c in " -_./:,()" else f"\\{ord(c):x} " for c in str(text))
    return Markup(f'"{body}"')


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clip"] = clip
    env.globals.update(grade_colour=grade_colour, iso=iso, css_string=_css_string, GRADE_COLOURS=GRADE_COLOURS,
                       incomplete_checks=incomplete_checks)
    return env


def html_to_pdf(html: str, out: str | os.PathLike[str]) -> Path:
    """Render HTML to a PDF file atomically (temporary file, then rename)."""
    import weasyprint

    target = Path(out)
    if target.is_dir():
        raise AuditorError(f"{target} is a directory")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise AuditorError(f"directory {directory} does not exist")

    class NoFetch(weasyprint.URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> Any:
            raise ValueError(f"external resources are disabled in reports: {url[:80]}")

    fetcher = NoFetch(allowed_protocols=())
    doc = weasyprint.HTML(string=html, base_url=str(TEMPLATES), url_fetcher=fetcher)
    fd, tmp = tempfile.mkstemp(prefix=".auditor-", suffix=".pdf", dir=str(directory))
    os.close(fd)
    try:
        doc.write_pdf(tmp, custom_metadata=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise AuditorError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def issuer_name(t: Messages, issuer: str | None = None) -> str:
    return (issuer or os.environ.get(ISSUER_ENV) or t("cert.issuer_default")).strip()[:200]


def report_html(session: Session, target: str, *, lang: str = "vi", policy_dir: Any = None,
                issuer: str | None = None, now: datetime | None = None) -> str:
    t = Messages(check_lang(lang))
    data = build_report(session, target, lang=t.lang, policy_dir=policy_dir, now=now)
    subject = data.system.name if data.kind == "system" and data.system else data.sites[0].url
    ids = sorted({f.id for s in data.sites for f in s.findings})
    return environment().get_template("report.html").render(
        r=data, t=t, subject=subject, issuer=issuer_name(t, issuer), criteria=criteria_rows(data, t),
        created=iso(data.generated_at), keywords=", ".join(["auditor", subject, *ids])[:1000],
        footer=f"{t('doc.generated_by', version=data.tool_version)} · {t.datetime(data.generated_at)} "
               f"{t('doc.time_zone')}",
    )


def render_report(session: Session, target: str, out: str | os.PathLike[str], *, lang: str = "vi",
                  policy_dir: Any = None, issuer: str | None = None, now: datetime | None = None) -> Path:
    """``auditor report NAME|URL --pdf FILE``: the compliance report of a system or a site."""
    return html_to_pdf(report_html(session, target, lang=lang, policy_dir=policy_dir, issuer=issuer, now=now), out)


# --- certificate ------------------------------------------------------------------------


def qr_svg(text: str) -> str:
    """The QR code of ``text`` as SVG squares (error correction M, 4-module quiet zone)."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4, box_size=1)
    qr.add_data(text.encode("utf-8"))
    qr.make(fit=True)
    matrix = qr.get_matrix()
    n = len(matrix)
    rects = []
    for y, row in enumerate(matrix):
        x = 0
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                rects.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n} {n}" shape-rendering="crispEdges">'
            f'<rect width="{n}" height="{n}" fill="#fff"/><path fill="#000" d="{escape("".join(rects))}"/></svg>')


def _criteria_texts(cert: Certificate, t: Messages, pol: policies.Policy) -> list[str]:
    """What the certificate says it met: the certificate rules of the policy, in words."""
    rules = [r for r in certificates.RULE_IDS
             if (r != "findings.severity" or certificates.forbidden_severities(pol))
             and (r != "reputation.feeds" or certificates.feeds_rule_applies(pol))]
    return [rule_title(r, t, pol, system=cert.system_id is not None) for r in rules]


def certificate_html(session: Session, cert: Certificate, *, lang: str = "vi", policy_dir: Any = None,
                     issuer: str | None = None) -> str:
    t = Messages(check_lang(lang))
    pol = policies.load_policy(policy_dir)
    payload = dict(cert.payload or {})
    scan = session.get(Scan, cert.scan_id)
    system = session.get(InformationSystem, cert.system_id) if cert.system_id else None
    view = {
        "serial": cert.serial, "site": payload.get("site", ""), "system": payload.get("system"),
        "level": payload.get("level"), "grade": cert.grade, "issued_at": cert.issued_at,
        "expires_at": cert.expires_at, "scan_id": cert.scan_id, "scan_hash": payload.get("scan_hash") or "",
        "kid": payload.get("kid") or "",
    }
    token = certificates.certificate_token(cert)
    other = Messages("en" if t.lang == "vi" else "vi")
    days = max(1, round((cert.expires_at - cert.issued_at).total_seconds() / 86400))
    return environment().get_template("certificate.html").render(
        c=view, t=t, lang=t.lang, issuer=issuer_name(t, issuer), owner=system.owner if system else None,
        score=scan.score if scan else None, scan_date=scan.started_at if scan else None,
        criteria=_criteria_texts(cert, t, pol), qr_svg=Markup(qr_svg(token)), token=token,
        payload_json=certificates.canonical_json(payload).decode("utf-8"), signature=cert.signature,
        meta={"token": certificates.PDF_META_TOKEN, "payload": certificates.PDF_META_PAYLOAD,
              "signature": certificates.PDF_META_SIGNATURE},
        alt_title=other("cert.title") if t.lang == "vi" else "", validity_days=days,
        tool_version=__version__, created=iso(utcnow()),
    )


def render_certificate(session: Session, cert: Certificate, out: str | os.PathLike[str], *, lang: str = "vi",
                       policy_dir: Any = None, issuer: str | None = None) -> Path:
    """The one-page certificate PDF, carrying the token in its QR code and metadata."""
    return html_to_pdf(certificate_html(session, cert, lang=lang, policy_dir=policy_dir, issuer=issuer), out)
