"""The stored state of certificates: issue, re-assessment, revocation, expiry, listing.

Status lifecycle: ``valid`` → ``suspended`` (a re-audit fails the rules) → ``valid`` again
(``reinstate``: the site passes again) ; ``revoked`` (by hand, final) ; ``expired`` (the
validity period, which is policy data and not a statutory period, has ended).

Renewal (``reassess``): a valid certificate is kept while the re-audits pass; when it is
within ``renew_before_days`` (policy, default 30) of its expiry and the re-audit passes, a
new certificate resting on the new scan is issued. The old one stays valid until its own
expiry, as with any certificate renewal, so a published copy never turns invalid early.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

import policies
from auditor.errors import AuditorError
from auditor.models import Certificate, InformationSystem, Scan, Site, utcnow
from auditor.results import iso
from certificates.rules import (
    CertificationRefused,
    RuleCheck,
    certificate_rules,
    find_site,
    resolve_policy,
    scan_for,
)
from certificates.signing import certificate_token, key_id, load_issuer_key, sign_payload

PAYLOAD_VERSION = 1
STATUSES = ("valid", "suspended", "revoked", "expired")


# --- issue ------------------------------------------------------------------------------


def new_serial(now: datetime) -> str:
    """``TNM-YYYY-XXXXXXXXXX``: year plus 40 random bits in hex (upper case)."""
    return f"TNM-{now.year}-{secrets.token_hex(5).upper()}"


def issue_certificate(
    session: Session,
    site_url: str,
    *,
    key_path: str | os.PathLike[str] | None = None,
    policy: Any = None,
    now: datetime | None = None,
    scan_id: int | None = None,
) -> Certificate:
    """Issue a certificate on the latest completed scan, or raise :class:`CertificationRefused`.

    When a valid certificate already rests on that very scan, it is returned as it is
    (issuing twice on the same evidence would only make two serials for one verdict).
    """
    pol = resolve_policy(policy)
    site = find_site(session, site_url)
    rules = certificate_rules(session, site.url, scan_id=scan_id, policy=pol, now=now)
    failed = [r for r in rules if not r.ok]
    if failed:
        raise CertificationRefused(site.url, failed)
    scan = scan_for(session, site, scan_id)
    assert scan is not None and scan.id is not None
    existing = session.exec(
        select(Certificate).where(Certificate.scan_id == scan.id, Certificate.status == "valid")
    ).first()
    if existing is not None:
        return existing
    return _issue(session, site, scan, pol, key_path, now, rules)


def _issue(
    session: Session, site: Site, scan: Scan, pol: policies.Policy,
    key_path: str | os.PathLike[str] | None, now: datetime | None, rules: list[RuleCheck],
) -> Certificate:
    """Sign and store a new certificate on ``scan``, whose rules (``rules``) all held."""
    key = load_issuer_key(key_path)
    issued = (now or utcnow()).replace(microsecond=0)
    days = int(pol.certificate.get("validity_days", 365))
    if days < 1:
        raise AuditorError(f"policy certificate.validity_days must be at least 1, not {days}")
    expires = issued + timedelta(days=days)
    system = session.get(InformationSystem, site.system_id) if site.system_id else None
    if scan.result_hash is None:
        raise AuditorError(f"scan #{scan.id} has no result hash: it cannot be certified")
    for _ in range(5):
        serial = new_serial(issued)
        if get_certificate(session, serial) is not None:  # 40 random bits: a collision is a freak
            continue
        payload = _payload(serial, site, scan, system, issued, expires, key_id(key.public_key()))
        cert = Certificate(
            serial=serial, site_id=site.id or 0, system_id=system.id if system else None,
            scan_id=scan.id or 0, issued_at=issued, expires_at=expires, grade=scan.grade or "",
            status="valid", payload=payload, signature=sign_payload(payload, key),
            status_reason="criteria met: " + "; ".join(f"{r.rule}: {r.detail}" for r in rules),
            status_changed_at=issued,
        )
        session.add(cert)
        session.flush()
        return cert
    raise AuditorError("could not allocate a unique certificate serial")


def _payload(
    serial: str, site: Site, scan: Scan, system: InformationSystem | None,
    issued: datetime, expires: datetime, kid: str,
) -> dict[str, Any]:
    """What the certificate asserts and the signature covers."""
    level = (system.declared_level or system.computed_level) if system else None
    return {
        "v": PAYLOAD_VERSION,
        "serial": serial,
        "site": site.url,
        "grade": scan.grade,
        "issued": iso(issued),
        "expires": iso(expires),
        "scan_hash": scan.result_hash,
        "system": system.name if system else None,
        "level": level,
        "kid": kid,
    }


# --- stored state -------------------------------------------------------------------------


def refresh_expired(session: Session, now: datetime | None = None) -> int:
    """Mark valid or suspended certificates whose validity ended as ``expired``."""
    now = now or utcnow()
    stmt = select(Certificate).where(Certificate.status.in_(("valid", "suspended")),  # type: ignore[attr-defined]
                                     Certificate.expires_at <= now)
    count = 0
    for cert in session.exec(stmt).all():
        cert.status = "expired"
        cert.status_reason = f"validity period ended {iso(cert.expires_at)}"
        cert.status_changed_at = now
        session.add(cert)
        count += 1
    if count:
        session.flush()
    return count


def get_certificate(session: Session, serial: str) -> Certificate | None:
    return session.exec(select(Certificate).where(Certificate.serial == serial.strip())).first()


def list_certificates(
    session: Session, *, status: str | None = None, site_url: str | None = None, now: datetime | None = None
) -> list[Certificate]:
    refresh_expired(session, now)
    stmt = select(Certificate)
    if status:
        if status not in STATUSES:
            raise AuditorError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
        stmt = stmt.where(Certificate.status == status)
    if site_url:
        site = find_site(session, site_url)
        stmt = stmt.where(Certificate.site_id == site.id)
    return list(session.exec(stmt.order_by(Certificate.issued_at.desc(), Certificate.id.desc())))  # type: ignore[attr-defined]


def certificate_dict(cert: Certificate) -> dict[str, Any]:
    """A JSON-able view of a stored certificate (for ``certificates list --format json``)."""
    payload = cert.payload or {}
    return {
        "serial": cert.serial, "site": payload.get("site"), "system": payload.get("system"),
        "level": payload.get("level"), "grade": cert.grade, "status": cert.status,
        "status_reason": cert.status_reason, "status_changed_at": iso(cert.status_changed_at),
        "issued_at": iso(cert.issued_at), "expires_at": iso(cert.expires_at), "scan_id": cert.scan_id,
        "scan_hash": payload.get("scan_hash"), "token": certificate_token(cert),
    }


def revoke(session: Session, serial: str, reason: str, *, now: datetime | None = None) -> Certificate:
    """Revoke for good. The reason is stored and shown by ``verify``."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise AuditorError("a revocation needs a reason (--reason TEXT)")
    if len(reason) > 2000:
        raise AuditorError("revocation reason longer than 2000 characters")
    cert = get_certificate(session, serial)
    if cert is None:
        raise AuditorError(f"no certificate with serial {serial}")
    if cert.status == "revoked":
        raise AuditorError(f"certificate {cert.serial} is already revoked ({cert.status_reason})")
    cert.status = "revoked"
    cert.status_reason = reason
    cert.status_changed_at = now or utcnow()
    session.add(cert)
    session.flush()
    return cert


# --- re-assessment ------------------------------------------------------------------------


@dataclass
class Transition:
    """What a re-audit did to a site's certificate.

    ``action``: ``renew`` (new certificate ``serial`` issued; ``previous_serial`` stays valid
    until it expires), ``keep``, ``suspend``, ``reinstate`` or ``none`` (no live certificate).
    ``serial`` is the site's newest live certificate; ``also`` lists the site's older live
    certificates (e.g. the one a renewal replaced) that the re-audit suspended or reinstated
    with it.
    """

    site_url: str
    serial: str | None
    old_status: str | None
    new_status: str | None
    reasons: list[str] = field(default_factory=list)
    scan_id: int | None = None
    action: str = "none"
    previous_serial: str | None = None
    also: list[str] = field(default_factory=list)


def live_certificates(session: Session, site: Site) -> list[Certificate]:
    """The site's certificates that are valid or suspended, newest first (re-audits act on them)."""
    stmt = (select(Certificate)
            .where(Certificate.site_id == site.id, Certificate.status.in_(("valid", "suspended")))  # type: ignore[attr-defined]
            .order_by(Certificate.issued_at.desc(), Certificate.id.desc()))  # type: ignore[attr-defined]
    return list(session.exec(stmt))


def _set_status(session: Session, certs: list[Certificate], status: str, reason: str, now: datetime) -> list[str]:
    """Give ``certs`` the status and reason; the time of change moves only when the status does."""
    for cert in certs:
        if cert.status != status:
            cert.status_changed_at = now
        cert.status, cert.status_reason = status, reason
        session.add(cert)
    session.flush()
    return [c.serial for c in certs]


def reassess(
    session: Session,
    site_url: str,
    scan_id: int,
    *,
    key_path: str | os.PathLike[str] | None = None,
    policy: Any = None,
    now: datetime | None = None,
) -> Transition:
    """Apply a re-audit (scan ``scan_id``) to the site's live certificates.

    The action is named after the newest live certificate; a failed re-audit suspends every
    live certificate of the site (an older one kept valid after a renewal must not go on
    verifying as VALID while the site fails), and a passing one reinstates them all.

    - no valid or suspended certificate → ``none``;
    - valid and the rules now fail → ``suspend`` (``status_reason`` names the failed rules and the scan);
    - suspended and the rules fail → ``keep`` (reason updated);
    - suspended and the rules pass → ``reinstate``;
    - valid, rules pass, expiry within ``renew_before_days`` → ``renew`` on the new scan;
    - valid, rules pass otherwise → ``keep``.
    """
    pol = resolve_policy(policy)
    now = now or utcnow()
    site = find_site(session, site_url)
    refresh_expired(session, now)
    live = live_certificates(session, site)
    if not live:
        return Transition(site.url, None, None, None, [], scan_id, "none")
    rules = certificate_rules(session, site.url, scan_id=scan_id, policy=pol, now=now)
    failed = [r for r in rules if not r.ok]
    if failed:
        return _suspend(session, site, live, scan_id, failed, now)
    return _pass(session, site, live, scan_id, rules, pol, key_path, now)


def _suspend(
    session: Session, site: Site, live: list[Certificate], scan_id: int, failed: list[RuleCheck], now: datetime,
) -> Transition:
    """The re-audit failed: every live certificate of the site is suspended, naming the failed rules."""
    cert, others = live[0], live[1:]
    old = cert.status
    reasons = [f"{r.rule}: {r.detail}" for r in failed]
    reason = f"re-audit scan #{scan_id} failed: " + "; ".join(reasons)
    also = _set_status(session, others, "suspended", reason, now)
    _set_status(session, [cert], "suspended", reason, now)
    action = "keep" if old == "suspended" else "suspend"
    return Transition(site.url, cert.serial, old, "suspended", reasons, scan_id, action, also=also)


def _pass(
    session: Session, site: Site, live: list[Certificate], scan_id: int, rules: list[RuleCheck],
    pol: policies.Policy, key_path: str | os.PathLike[str] | None, now: datetime,
) -> Transition:
    """The re-audit passed: suspended certificates are reinstated; a valid one near expiry is renewed."""
    cert, others = live[0], live[1:]
    old = cert.status
    suspended = [c for c in others if c.status == "suspended"]
    reason = f"reinstated: re-audit scan #{scan_id} meets every rule"
    also = _set_status(session, suspended, "valid", reason, now)
    if old == "suspended":
        _set_status(session, [cert], "valid", reason, now)
        return Transition(site.url, cert.serial, old, "valid", [reason], scan_id, "reinstate", also=also)
    renew_days = int(pol.certificate.get("renew_before_days", 30))
    if cert.expires_at - now <= timedelta(days=renew_days):
        scan = scan_for(session, site, scan_id)
        assert scan is not None
        new = _issue(session, site, scan, pol, key_path, now, rules)
        why = f"renewed on scan #{scan_id}: {cert.serial} expires {iso(cert.expires_at)}"
        return Transition(site.url, new.serial, old, "valid", [why], scan_id, "renew", cert.serial, also)
    return Transition(site.url, cert.serial, old, old, [f"re-audit scan #{scan_id} meets every rule"],
                      scan_id, "keep", also=also)
