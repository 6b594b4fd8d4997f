"""The public registry: a static site listing every inventoried site, assessed or not.

``build_registry(db, OUT_DIR)`` writes:

- ``registry.json`` — exactly ``{"generated_at", "sites": [{"url", "system", "owner",
  "level", "assessed", "last_assessed_at", "grade", "certificate": {"serial", "status",
  "expires"} | null, "assessment": {"complete", "incomplete_checks"} | null}]}`` (``assessment``
  says whether the grade rests on every requested check; null when not assessed);
- ``registry.csv`` — the same, one row per site;
- ``index.html`` — a filterable table (Vietnamese, English labels), no external resource,
  works from ``file://``; filters live in the URL fragment (``#assessed=no&status=valid&q=...``)
  so a filtered view can be linked to;
- ``certificates/<serial>.json`` — what the table's verify link opens: the certificate's
  public facts and its signed token (``auditor verify TOKEN`` checks it offline);
- ``issuer.pem`` — the issuer's public key, when one exists.

Everything written comes from the database, and some of it (system names, owners, URLs) from
import files or sites: Jinja2 autoescapes every value, the page's CSP allows only its own
inline style and script (by hash), and CSV cells that a spreadsheet would run as a formula
are neutralised. Files are replaced atomically, so a reader never sees half a registry.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import functools
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, Template, select_autoescape
from markupsafe import Markup
from sqlalchemy import func
from sqlmodel import Session, select

from auditor import storage
from auditor.errors import AuditorError
from auditor.models import Certificate, InformationSystem, Scan, Site, utcnow
from auditor.results import iso, scan_assessment
from auditor.version import __version__

TEMPLATES = Path(__file__).parent / "templates" / "registry"
SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CSV_FIELDS = (
    "url", "system", "owner", "level", "assessed", "last_assessed_at", "grade",
    "certificate_serial", "certificate_status", "certificate_expires", "incomplete_checks",
)
STATUS_ORDER = ("valid", "suspended", "revoked", "expired")


@dataclass
class RegistryBuild:
    out_dir: Path
    generated_at: str
    sites: int
    assessed: int


# -- data -------------------------------------------------------------------------------------


def _inventory(session: Session, enrolled: Iterable[str] = ()) -> list[Site]:
    """Sites of systems, plus the ``enrolled`` ones (URLs the caller enrolled without a system)."""
    extra = set(enrolled)
    sites = session.exec(select(Site)).all()
    return [s for s in sites if s.system_id is not None or s.url in extra]


def _certificate_of(certs: list[Certificate]) -> Certificate | None:
    """The live certificate (newest valid or suspended), else the newest of any status."""
    ordered = sorted(certs, key=lambda c: (c.issued_at, c.id or 0), reverse=True)
    live = [c for c in ordered if c.status in ("valid", "suspended")]
    return live[0] if live else (ordered[0] if ordered else None)


def _shown_status(cert: Certificate, now: datetime) -> str:
    """The stored status, or ``expired`` once the validity ended (the store may lag)."""
    if cert.status in ("valid", "suspended") and cert.expires_at <= now:
        return "expired"
    return cert.status


def registry_entries(
    session: Session, now: datetime | None = None, enrolled: Iterable[str] = ()
) -> tuple[list[dict[str, Any]], dict[str, Certificate]]:
    """The ``sites`` list of registry.json, and the certificate behind each serial shown.

    The sites are those of every information system plus ``enrolled`` (site URLs listed
    without a system, e.g. the scheduler's hand-enrolled sites).

    A constant number of queries whatever the number of sites (thousands are expected).
    """
    now = now or utcnow()
    systems = {s.id: s for s in session.exec(select(InformationSystem))}
    latest_ids = (
        select(func.max(Scan.id)).where(Scan.status == "completed").group_by(Scan.url)  # type: ignore[arg-type]
    )
    last_scan = {s.url: s for s in session.exec(select(Scan).where(Scan.id.in_(latest_ids)))}  # type: ignore[union-attr]
    certs_by_site: dict[int, list[Certificate]] = {}
    for cert in session.exec(select(Certificate)):
        certs_by_site.setdefault(cert.site_id, []).append(cert)
    entries: list[dict[str, Any]] = []
    shown: dict[str, Certificate] = {}
    for site in _inventory(session, enrolled):
        system = systems.get(site.system_id) if site.system_id is not None else None
        last = last_scan.get(site.url)
        cert = _certificate_of(certs_by_site.get(site.id or 0, []))
        cert_view = None
        if cert is not None:
            cert_view = {"serial": cert.serial, "status": _shown_status(cert, now), "expires": iso(cert.expires_at)}
            shown[cert.serial] = cert
        entries.append({
            "url": site.url,
            "system": system.name if system else None,
            "owner": (system.owner or None) if system else None,
            "level": (system.declared_level or system.computed_level) if system else None,
            "assessed": last is not None,
            "last_assessed_at": iso(last.finished_at or last.started_at) if last else None,
            "grade": last.grade if last else None,
            "certificate": cert_view,
            "assessment": scan_assessment(last) if last else None,
        })
    entries.sort(key=lambda e: ((e["system"] or "\uffff").casefold(), e["url"]))
    return entries, shown


# -- files -----------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet shows as text: a leading = + - @ (formula) gets a quote."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def render_csv(entries: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for e in entries:
        cert = e["certificate"] or {}
        writer.writerow([csv_safe(v) for v in (
            e["url"], e["system"], e["owner"], e["level"], "yes" if e["assessed"] else "no",
            e["last_assessed_at"], e["grade"], cert.get("serial"), cert.get("status"), cert.get("expires"),
            "; ".join((e.get("assessment") or {}).get("incomplete_checks") or []),
        )])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: spreadsheets then read UTF-8


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["vn_date"] = vn_date
    return env


def vn_date(value: str | None, with_time: bool = True) -> str:
    """``2026-11-22T10:00:05Z`` -> ``22/11/2026 10:00 UTC`` (Vietnamese day/month order)."""
    if not value:
        return "—"
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return dt.strftime("%d/%m/%Y %H:%M UTC" if with_time else "%d/%m/%Y")


def verify_href(serial: str, verify_url: str | None) -> str | None:
    if not SERIAL_RE.fullmatch(serial):
        return None
    if verify_url:
        return verify_url + serial
    return f"certificates/{serial}.json"


@functools.cache
def _page() -> tuple[Template, Markup, Markup, str]:
    """The page template, its inline style and script, and the CSP that allows exactly those.

    Read and compiled once per process: the scheduler rebuilds the registry after every run.
    """
    style = (TEMPLATES / "registry.css").read_text(encoding="utf-8")
    script = (TEMPLATES / "registry.js").read_text(encoding="utf-8")
    csp = (
        "default-src 'none'; "
        f"style-src {_csp_hash(style)}; script-src {_csp_hash(script)}; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )
    return _environment().get_template("index.html"), Markup(style), Markup(script), csp


def render_html(entries: list[dict[str, Any]], generated_at: str, *, verify_url: str | None,
                issuer_key: bool) -> bytes:
    template, style, script, csp = _page()
    rows = []
    for e in entries:
        cert = e["certificate"]
        rows.append({
            **e,
            "is_link": e["url"].startswith(("https://", "http://")),
            "status_key": cert["status"] if cert else "none",
            "incomplete": ", ".join((e.get("assessment") or {}).get("incomplete_checks") or []),
            "verify_href": verify_href(cert["serial"], verify_url) if cert else None,
            "search": " ".join(str(v) for v in (e["url"], e["system"] or "", e["owner"] or "",
                                                cert["serial"] if cert else "")).casefold(),
        })
    counts = {
        "total": len(entries),
        "assessed": sum(1 for e in entries if e["assessed"]),
        "valid": sum(1 for e in entries if e["certificate"] and e["certificate"]["status"] == "valid"),
        "suspended": sum(1 for e in entries if e["certificate"] and e["certificate"]["status"] == "suspended"),
    }
    html = template.render(
        rows=rows, counts=counts, generated_at=generated_at, tool_version=__version__,
        style=style, script=script, csp=csp, issuer_key=issuer_key,
        levels=sorted({e["level"] for e in entries if e["level"] is not None}),
        grades=sorted({e["grade"] for e in entries if e["grade"]}),
    )
    return html.encode("utf-8")


def _certificate_file(cert: Certificate, shown_status: str) -> bytes:
    from certificates.signing import certificate_token

    payload = dict(cert.payload or {})
    body = {
        "serial": cert.serial,
        "site": payload.get("site"),
        "system": payload.get("system"),
        "level": payload.get("level"),
        "grade": cert.grade,
        "status": shown_status,
        "issued": iso(cert.issued_at),
        "expires": iso(cert.expires_at),
        "kid": payload.get("kid"),
        "token": certificate_token(cert),
        "how_to_verify": "auditor verify <token> (checks the Ed25519 signature with issuer.pem)",
    }
    return (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def check_destination(out: Path | None, verify_url: str | None) -> None:
    """Refuse a registry directory or verify-link prefix before anything is written
    (``auditor schedule run`` checks them at start, not after its first run)."""
    if out is not None and out.exists() and not out.is_dir():
        raise AuditorError(f"registry output {out} exists and is not a directory")
    if verify_url is not None and not verify_url.startswith(("https://", "http://")):
        raise AuditorError(f"registry verify URL must start with https:// or http://, not {verify_url!r}")


def build_registry(
    db: str | None,
    out_dir: str | os.PathLike[str],
    *,
    key_path: str | None = None,
    verify_url: str | None = None,
    now: datetime | None = None,
    enrolled: Iterable[str] = (),
) -> RegistryBuild:
    """Write the registry into ``out_dir`` (created if missing).

    ``enrolled``: site URLs to publish besides the sites of information systems (the caller
    knows them, e.g. :func:`scheduler.admin.enrolled_sites`; this module reads no scheduler table).
    """
    out = Path(out_dir)
    check_destination(out, verify_url)
    now = now or utcnow()
    generated_at = iso(now) or ""
    with storage.session_scope(db) as session:
        entries, certs = registry_entries(session, now, enrolled)
        cert_files = {
            serial: _certificate_file(cert, _shown_status(cert, now))
            for serial, cert in certs.items() if SERIAL_RE.fullmatch(serial)
        }
    issuer = _issuer_pem(key_path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        document = {"generated_at": generated_at, "sites": entries}
        _atomic_write(out / "registry.json", (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode())
        _atomic_write(out / "registry.csv", render_csv(entries))
        certs_dir = out / "certificates"
        for serial, data in cert_files.items():
            _atomic_write(certs_dir / f"{serial}.json", data)
        if certs_dir.is_dir():
            for stale in certs_dir.glob("*.json"):
                if stale.stem not in cert_files and SERIAL_RE.fullmatch(stale.stem):
                    stale.unlink(missing_ok=True)
        if issuer:
            _atomic_write(out / "issuer.pem", issuer.encode("ascii"))
        _atomic_write(out / "index.html", render_html(entries, generated_at, verify_url=verify_url,
                                                      issuer_key=bool(issuer)))
    except OSError as exc:
        raise AuditorError(f"cannot write the registry to {out}: {exc.strerror or exc}") from None
    return RegistryBuild(out, generated_at, len(entries), sum(1 for e in entries if e["assessed"]))


def _issuer_pem(key_path: str | None) -> str | None:
    """The issuer's public key; None when there is no key file yet (no certificate was issued
    with one). A key that exists but cannot be used (readable by others, unreadable, not
    Ed25519) is an error, not a registry silently published without its issuer key."""
    from certificates.signing import public_key_pem, resolve_key_path

    if not resolve_key_path(key_path).exists():
        return None
    return public_key_pem(key_path)
