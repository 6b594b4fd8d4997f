"""Network-trust certificates: rules, issue, re-assessment, verification, revocation.

A certificate rests on one completed scan of one site. It is issued only when the
``certificate:`` rules of the policy hold (see :func:`certificate_rules`). Its payload
(serial, site, grade, dates, scan hash, system, level) is serialised as canonical JSON and
signed with the issuer's Ed25519 key; the *token* ``TNM1.<payload>.<signature>`` (both parts
base64url) is what the QR code and the PDF metadata carry, so anyone holding the issuer's
public key can check a printed certificate offline, and ``auditor verify`` also checks the
stored status.

Status lifecycle: ``valid`` → ``suspended`` (a re-audit fails the rules) → ``valid`` again
(``reinstate``: the site passes again) ; ``revoked`` (by hand, final) ; ``expired`` (the
validity period, which is policy data and not a statutory period, has ended).

Renewal (``reassess``): a valid certificate is kept while the re-audits pass; when it is
within ``renew_before_days`` (policy, default 30) of its expiry and the re-audit passes, a
new certificate resting on the new scan is issued. The old one stays valid until its own
expiry, as with any certificate renewal, so a published copy never turns invalid early.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlmodel import Session, select

import policies
from auditor import storage
from auditor.check import Severity
from auditor.errors import AuditorError
from auditor.models import Certificate, CheckRun, FindingRecord, InformationSystem, Scan, Site, utcnow
from auditor.results import iso

KEY_ENV = "AUDITOR_ISSUER_KEY"
TOKEN_PREFIX = "TNM1"
PAYLOAD_VERSION = 1
STATUSES = ("valid", "suspended", "revoked", "expired")
GRADE_ORDER = policies.GRADE_ORDER
_MAX_TOKEN = 8192


# --- rules ------------------------------------------------------------------------------


@dataclass
class RuleCheck:
    """One certificate rule and whether the scan satisfies it. ``rule`` is a stable id."""

    rule: str
    ok: bool
    detail: str


class CertificationRefused(AuditorError):
    """Raised by :func:`issue_certificate` with every rule that failed."""

    def __init__(self, site_url: str, failed: list[RuleCheck]) -> None:
        self.site_url = site_url
        self.failed = failed
        names = ", ".join(r.rule for r in failed)
        super().__init__(f"certificate refused for {site_url}: {len(failed)} rule(s) failed ({names})")


RULE_IDS = (
    "scan.completed",
    "scan.recent",
    "grade.minimum",
    "findings.severity",
    "checks.completed",
    "reputation.feeds",  # only when the policy requires the reputation check
    "level.requirements",
)


def _policy(policy: Any) -> policies.Policy:
    if policy is None:
        return policies.load_policy()
    if isinstance(policy, policies.Policy):
        return policy
    return policies.load_policy(policy)


def find_site(session: Session, site_url: str) -> Site:
    """The stored site for a URL as the user typed it (normalised like ``auditor scan`` does)."""
    from auditor.targets import parse_target

    site = session.exec(select(Site).where(Site.url == site_url)).first()
    if site is None:
        try:
            url = parse_target(site_url)[0]
        except AuditorError:
            url = site_url
        site = session.exec(select(Site).where(Site.url == url)).first()
    if site is None:
        raise AuditorError(f"no scans of {site_url}: run `auditor scan {site_url}` first")
    return site


def latest_finished_scan(session: Session, site: Site) -> Scan | None:
    """The site's newest finished scan (completed or failed; running and interrupted ones are not results)."""
    return storage.latest_scan(session, site.url)


def _scan_for(session: Session, site: Site, scan_id: int | None) -> Scan | None:
    """``scan_id``, else the site's newest finished scan (completed or not).

    A certificate rests on the latest verdict: when the newest scan failed (site
    unreachable), an older completed scan does not stand in for it.
    """
    if scan_id is None:
        return latest_finished_scan(session, site)
    scan = session.get(Scan, scan_id)
    if scan is None or scan.site_id != site.id:
        raise AuditorError(f"scan #{scan_id} is not a scan of {site.url}")
    return scan


def certificate_rules(
    session: Session, site_url: str, *, scan_id: int | None = None, policy: Any = None,
    now: datetime | None = None,
) -> list[RuleCheck]:
    """Evaluate the policy's certificate rules on the latest finished scan (or ``scan_id``).

    Rules (policy ``certificate:`` section): a completed scan exists; its grade is at least
    ``min_grade``; no finding has a severity in ``forbidden_severities``; every check in
    ``require_checks`` ran without error and no check that ran is in error; when the site
    belongs to an inventoried system and ``require_level_requirements`` is set, every
    requirement of the system's level is met or attested. A site of no system is judged on
    the network-trust criteria alone.
    """
    pol = _policy(policy)
    cfg = pol.certificate
    site = find_site(session, site_url)
    scan = _scan_for(session, site, scan_id)
    if scan is None:
        return [RuleCheck("scan.completed", False, f"no completed scan of {site.url}")]
    if scan.status != "completed":
        why = f": {scan.error}" if scan.error else ""
        return [RuleCheck("scan.completed", False, f"scan #{scan.id} is {scan.status}{why}")]
    out = [RuleCheck("scan.completed", True, f"scan #{scan.id} completed {iso(scan.finished_at or scan.started_at)}")]
    max_age = int(cfg.get("max_scan_age_days", 14))
    scanned = scan.finished_at or scan.started_at
    if scanned.tzinfo is None:  # stored times are UTC
        scanned = scanned.replace(tzinfo=UTC)
    age_days = ((now or utcnow()) - scanned).total_seconds() / 86400
    out.append(RuleCheck("scan.recent", age_days <= max_age,
                         f"scan #{scan.id} is {max(0.0, age_days):.1f} days old (at most {max_age})"))

    min_grade = str(cfg.get("min_grade", "B"))
    grade = scan.grade or "F"
    ok = _grade_rank(grade) <= _grade_rank(min_grade)
    out.append(RuleCheck("grade.minimum", ok, f"grade {grade} (minimum {min_grade})"))

    forbidden = forbidden_severities(pol)
    findings = session.exec(select(FindingRecord).where(FindingRecord.scan_id == scan.id)).all()
    bad = sorted({f"{f.finding_id} ({f.severity})" for f in findings if f.severity in forbidden})
    out.append(RuleCheck(
        "findings.severity", not bad,
        ("findings of forbidden severity: " + ", ".join(bad)) if bad
        else f"no {' or '.join(forbidden)} finding",
    ))

    ran = dict(scan.checks or {})
    required = [str(c) for c in cfg.get("require_checks", [])]
    missing = [c for c in required if c not in ran]
    errored = sorted(c for c, st in ran.items() if (st or {}).get("status") != "ok")
    problems = [f"{c} not run" for c in missing] + [f"{c} in error" for c in errored]
    out.append(RuleCheck(
        "checks.completed", not problems,
        "; ".join(problems) if problems else "checks completed: " + ", ".join(sorted(ran)),
    ))

    if feeds_rule_applies(pol):
        feeds_rule = _feeds_rule(session, scan)
        if feeds_rule is not None:
            out.append(feeds_rule)
    out.append(_level_rule(session, site, pol, bool(cfg.get("require_level_requirements", True))))
    return out


def feeds_rule_applies(pol: policies.Policy) -> bool:
    """Whether certificates need the reputation check to have used real feeds (policy default: yes)."""
    cfg = pol.certificate
    return "reputation" in [str(c) for c in cfg.get("require_checks", [])] and bool(cfg.get("require_real_feeds", True))


def _feeds_rule(session: Session, scan: Scan) -> RuleCheck | None:
    """The reputation check must have used real blocklist feeds, not the built-in test sample.

    None when the check did not run: ``checks.completed`` already says so.
    """
    run = session.exec(
        select(CheckRun).where(CheckRun.scan_id == scan.id, CheckRun.check == "reputation")
    ).first()
    if run is None:
        return None
    feeds = (run.evidence or {}).get("feeds") or {}
    if not feeds:
        return RuleCheck("reputation.feeds", False, "no record of the blocklist feeds the reputation check used")
    if feeds.get("builtin_sample"):
        return RuleCheck("reputation.feeds", False,
                         "blocklists checked only against the built-in sample feed: scan with --feeds DIR "
                         "or AUDITOR_FEEDS")
    return RuleCheck("reputation.feeds", True, f"blocklist feeds: {feeds.get('directory') or 'given'}")


def forbidden_severities(pol: policies.Policy) -> list[str]:
    """The severities no finding of a certified scan may have (policy, default critical and high)."""
    return [Severity.parse(s).value for s in pol.certificate.get("forbidden_severities", ["critical", "high"])]


def _level_rule(session: Session, site: Site, pol: policies.Policy, required: bool) -> RuleCheck:
    if site.system_id is None:
        return RuleCheck("level.requirements", True, "no inventoried system: no security level declared; "
                         "judged on the network-trust criteria alone")
    system = session.get(InformationSystem, site.system_id)
    if system is None:
        return RuleCheck("level.requirements", True, "no inventoried system: no security level declared")
    if not required:
        return RuleCheck("level.requirements", True, "not required by the policy")
    try:
        from auditor.compliance import evaluate_compliance
    except ImportError:
        return RuleCheck("level.requirements", False, "compliance evaluation is not available in this installation")
    result = evaluate_compliance(session, system.name, policy_dir=pol.directory)
    unmet = [f"{r.id} ({r.state})" for r in result.requirements if r.state not in ("pass", "attested")]
    level = result.level
    if unmet:
        return RuleCheck("level.requirements", False, f"level {level} requirements not met: " + ", ".join(unmet))
    return RuleCheck("level.requirements", True, f"every level {level} requirement met or attested "
                     f"({len(result.requirements)})")


def _grade_rank(grade: str) -> int:
    return GRADE_ORDER.index(grade) if grade in GRADE_ORDER else len(GRADE_ORDER)


# --- issuer key -------------------------------------------------------------------------


def default_key_path() -> Path:
    """Next to the default database: ``~/.local/share/auditor/issuer-ed25519.pem``."""
    return storage.default_db_path().parent / "issuer-ed25519.pem"


def resolve_key_path(key_path: str | os.PathLike[str] | None = None) -> Path:
    """``--key`` wins, then ``AUDITOR_ISSUER_KEY``, then :func:`default_key_path`."""
    value = key_path or os.environ.get(KEY_ENV)
    return Path(value).expanduser() if value else default_key_path()


def load_issuer_key(key_path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Ed25519PrivateKey:
    """Load the issuer key, generating it (mode 0600) on first use when ``create``.

    A key file that others can read is refused, as ssh does: it could have been copied.
    """
    path = resolve_key_path(key_path)
    if not path.exists():
        if not create:
            raise AuditorError(f"no issuer key at {path}: no certificate was issued with it")
        return _create_key(path)
    if not path.is_file():
        raise AuditorError(f"issuer key {path} is not a file")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AuditorError(f"issuer key {path} has mode {mode:04o}: others can read it; run `chmod 600 {path}`")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise AuditorError(f"cannot read issuer key {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditorError(f"issuer key {path} is not an Ed25519 private key")
    return key


def _create_key(path: Path) -> Ed25519PrivateKey:
    """Write a new key to a private temporary file, then link it into place: the key file
    appears complete or not at all, and a process that loses the race uses the winner's key."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
    except FileExistsError:  # another process made it first: use theirs
        return load_issuer_key(path, create=False)
    except OSError as exc:
        raise AuditorError(f"cannot create issuer key {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return key


def key_id(public: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw public key: names the key in payloads."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(key_path: str | os.PathLike[str] | None = None) -> str:
    """The issuer's public key (PEM), for publishing so that others can verify offline."""
    public = load_issuer_key(key_path, create=False).public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# --- payload, token ---------------------------------------------------------------------


def canonical_json(payload: dict[str, Any]) -> bytes:
    """Sorted keys, no white space, UTF-8: the exact bytes that are signed."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict inverse of :func:`_b64`: any other spelling of the same bytes (characters outside
    the base64url alphabet, padding, stray low bits) raises ``ValueError``, so a token has one
    form only."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def sign_payload(payload: dict[str, Any], key: Ed25519PrivateKey) -> str:
    return _b64(key.sign(canonical_json(payload)))


def make_token(payload: dict[str, Any], signature: str) -> str:
    """``TNM1.<base64url canonical payload>.<base64url signature>``: what the QR code holds."""
    return f"{TOKEN_PREFIX}.{_b64(canonical_json(payload))}.{signature}"


def certificate_token(cert: Certificate) -> str:
    return make_token(dict(cert.payload or {}), cert.signature)


@dataclass
class ParsedToken:
    payload_bytes: bytes
    signature: bytes
    payload: dict[str, Any] | None
    error: str | None = None


def parse_token(token: str) -> ParsedToken:
    """Split a token; ``error`` says why it is malformed (a malformed token is a forgery)."""
    text = "".join(token.split())
    parts = text.split(".")
    if len(text) > _MAX_TOKEN or len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return ParsedToken(b"", b"", None, "not a certificate token")
    try:
        body = _unb64(parts[1])
        sig = _unb64(parts[2])
    except (binascii.Error, ValueError):
        return ParsedToken(b"", b"", None, "token is not valid base64url")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: "[[[[…" nested too deep
        return ParsedToken(body, sig, None, "payload is not JSON")
    if not isinstance(payload, dict):
        return ParsedToken(body, sig, None, "payload is not a JSON object")
    return ParsedToken(body, sig, payload)


def looks_like_token(text: str) -> bool:
    return text.strip().startswith(TOKEN_PREFIX + ".")


# --- issue ------------------------------------------------------------------------------


def _second(dt: datetime) -> datetime:
    return dt.replace(microsecond=0)


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
    pol = _policy(policy)
    site = find_site(session, site_url)
    rules = certificate_rules(session, site.url, scan_id=scan_id, policy=pol, now=now)
    failed = [r for r in rules if not r.ok]
    if failed:
        raise CertificationRefused(site.url, failed)
    scan = _scan_for(session, site, scan_id)
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
    key = load_issuer_key(key_path)
    issued = _second(now or utcnow())
    days = int(pol.certificate.get("validity_days", 365))
    if days < 1:
        raise AuditorError(f"policy certificate.validity_days must be at least 1, not {days}")
    expires = issued + timedelta(days=days)
    system = session.get(InformationSystem, site.system_id) if site.system_id else None
    level = (system.declared_level or system.computed_level) if system else None
    if scan.result_hash is None:
        raise AuditorError(f"scan #{scan.id} has no result hash: it cannot be certified")
    for _ in range(5):
        serial = new_serial(issued)
        if get_certificate(session, serial) is not None:  # 40 random bits: a collision is a freak
            continue
        payload = {
            "v": PAYLOAD_VERSION,
            "serial": serial,
            "site": site.url,
            "grade": scan.grade,
            "issued": iso(issued),
            "expires": iso(expires),
            "scan_hash": scan.result_hash,
            "system": system.name if system else None,
            "level": level,
            "kid": key_id(key.public_key()),
        }
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


# --- lifecycle ----------------------------------------------------------------------------


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
    pol = _policy(policy)
    now = now or utcnow()
    site = find_site(session, site_url)
    refresh_expired(session, now)
    live = live_certificates(session, site)
    if not live:
        return Transition(site.url, None, None, None, [], scan_id, "none")
    cert, others = live[0], live[1:]
    rules = certificate_rules(session, site.url, scan_id=scan_id, policy=pol, now=now)
    failed = [r for r in rules if not r.ok]
    reasons = [f"{r.rule}: {r.detail}" for r in failed]
    old = cert.status
    if failed:
        reason = f"re-audit scan #{scan_id} failed: " + "; ".join(reasons)
        also = _set_status(session, others, "suspended", reason, now)
        _set_status(session, [cert], "suspended", reason, now)
        action = "keep" if old == "suspended" else "suspend"
        return Transition(site.url, cert.serial, old, "suspended", reasons, scan_id, action, also=also)
    suspended = [c for c in others if c.status == "suspended"]
    reason = f"reinstated: re-audit scan #{scan_id} meets every rule"
    also = _set_status(session, suspended, "valid", reason, now)
    if old == "suspended":
        _set_status(session, [cert], "valid", reason, now)
        return Transition(site.url, cert.serial, old, "valid", [reason], scan_id, "reinstate", also=also)
    renew_days = int(pol.certificate.get("renew_before_days", 30))
    if cert.expires_at - now <= timedelta(days=renew_days):
        scan = _scan_for(session, site, scan_id)
        assert scan is not None
        new = _issue(session, site, scan, pol, key_path, now, rules)
        why = f"renewed on scan #{scan_id}: {cert.serial} expires {iso(cert.expires_at)}"
        return Transition(site.url, new.serial, old, "valid", [why], scan_id, "renew", cert.serial, also)
    return Transition(site.url, cert.serial, old, old, [f"re-audit scan #{scan_id} meets every rule"],
                      scan_id, "keep", also=also)


# --- verification -------------------------------------------------------------------------

VERIFY_STATUSES = ("VALID", "SUSPENDED", "REVOKED", "EXPIRED", "FORGED", "UNKNOWN")


@dataclass
class VerifyResult:
    """``status`` is one of VALID, SUSPENDED, REVOKED, EXPIRED, FORGED, UNKNOWN."""

    status: str
    detail: str
    serial: str | None = None
    payload: dict[str, Any] | None = None
    stored_status: str | None = None
    status_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "VALID"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, "serial": self.serial, "payload": self.payload,
                "stored_status": self.stored_status, "status_reason": self.status_reason}


def _signature_ok(public: Ed25519PublicKey, body: bytes, sig: bytes) -> bool:
    try:
        public.verify(sig, body)
        return True
    except InvalidSignature:
        return False


def verify(
    token_or_serial: str,
    session: Session,
    *,
    key_path: str | os.PathLike[str] | None = None,
    now: datetime | None = None,
) -> VerifyResult:
    """Check a token's signature (or a serial's stored signature) and the stored status."""
    now = now or utcnow()
    text = (token_or_serial or "").strip()
    if not text:
        raise AuditorError("nothing to verify: give a certificate PDF, a serial or a token")
    public = load_issuer_key(key_path, create=False).public_key()
    if looks_like_token(text):
        parsed = parse_token(text)
        if parsed.payload is None:
            return VerifyResult("FORGED", f"malformed token: {parsed.error}")
        payload = parsed.payload
        serial = str(payload.get("serial") or "")
        if not _signature_ok(public, parsed.payload_bytes, parsed.signature):
            return VerifyResult("FORGED", "the signature does not match the payload and the issuer key",
                                serial or None, payload)
        if canonical_json(payload) != parsed.payload_bytes:
            return VerifyResult("FORGED", "payload is not in canonical form", serial or None, payload)
        refresh_expired(session, now)
        cert = get_certificate(session, serial)
        if cert is None:
            return VerifyResult("UNKNOWN", "signature is genuine but the serial is not in this register",
                                serial, payload)
        if canonical_json(dict(cert.payload or {})) != parsed.payload_bytes:
            return VerifyResult("FORGED", "payload differs from the registered certificate", serial, payload,
                                cert.status, cert.status_reason)
        return _status_result(cert, payload, now)
    if len(text) > 100 or any(c.isspace() for c in text):
        raise AuditorError("not a serial, a token or an existing file")
    refresh_expired(session, now)
    cert = get_certificate(session, text)
    if cert is None:
        return VerifyResult("UNKNOWN", "no certificate with this serial in the register", text)
    payload = dict(cert.payload or {})
    try:
        sig = _unb64(cert.signature)
    except (binascii.Error, ValueError):
        sig = b""
    if not _signature_ok(public, canonical_json(payload), sig) or payload.get("serial") != cert.serial:
        return VerifyResult("FORGED", "the registered record does not carry a valid signature",
                            cert.serial, payload, cert.status, cert.status_reason)
    return _status_result(cert, payload, now)


def _status_result(cert: Certificate, payload: dict[str, Any], now: datetime) -> VerifyResult:
    if cert.status == "revoked":
        return VerifyResult("REVOKED", f"revoked {iso(cert.status_changed_at)}: {cert.status_reason}",
                            cert.serial, payload, cert.status, cert.status_reason)
    if cert.status == "expired" or cert.expires_at <= now:
        return VerifyResult("EXPIRED", f"expired {iso(cert.expires_at)}", cert.serial, payload,
                            cert.status, cert.status_reason)
    if cert.status == "suspended":
        return VerifyResult("SUSPENDED", f"suspended {iso(cert.status_changed_at)}: {cert.status_reason}",
                            cert.serial, payload, cert.status, cert.status_reason)
    return VerifyResult("VALID", f"genuine and valid until {iso(cert.expires_at)}", cert.serial, payload,
                        cert.status, cert.status_reason)


# --- PDF metadata ------------------------------------------------------------------------

# Document-information keys. WeasyPrint lower-cases <meta> names and keeps only letters and
# digits, so these are what a PDF reader shows.
PDF_META_TOKEN = "networktrusttoken"
PDF_META_PAYLOAD = "networktrustpayload"
PDF_META_SIGNATURE = "networktrustsignature"


def read_pdf_token(path: str | os.PathLike[str]) -> str:
    """The token a certificate PDF carries in its document information (metadata).

    The file may be anything a user was handed: whatever pypdf raises on a broken or hostile
    PDF, and whatever it would log about it, ends as one ``AuditorError`` line.
    """
    from pypdf import PdfReader

    p = Path(path)
    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    try:
        if p.stat().st_size > 50_000_000:
            raise AuditorError(f"{p}: larger than 50 MB, not a certificate")
        pypdf_log.setLevel(logging.CRITICAL)
        info = PdfReader(str(p)).metadata or {}
        token, payload, sig = (info.get("/" + name) for name in (PDF_META_TOKEN, PDF_META_PAYLOAD, PDF_META_SIGNATURE))
    except AuditorError:
        raise
    except Exception as exc:  # pypdf raises many kinds (PdfReadError, AttributeError, RecursionError...)
        raise AuditorError(f"cannot read PDF {p}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    finally:
        pypdf_log.setLevel(level)
    if token and isinstance(token, str):
        return str(token)
    if payload and sig and isinstance(payload, str) and isinstance(sig, str):
        return f"{TOKEN_PREFIX}.{_b64(str(payload).encode('utf-8'))}.{sig}"
    raise AuditorError(f"{p} carries no network-trust certificate metadata")


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
