"""Answering a stranger: is this certificate (PDF, serial or token) genuine, and is it valid now?

The signature is checked against the issuer's public key first, then the register's stored
status (revoked, suspended, expired) decides. Anything that does not check out is FORGED;
a genuine signature on a serial this register does not know is UNKNOWN.
"""

from __future__ import annotations

import binascii
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlmodel import Session

from auditor.errors import AuditorError
from auditor.models import Certificate, utcnow
from auditor.results import iso
from certificates.lifecycle import get_certificate, refresh_expired
from certificates.signing import (
    TOKEN_PREFIX,
    b64url,
    canonical_json,
    load_issuer_key,
    looks_like_token,
    parse_token,
    signature_ok,
    unb64url,
)

VERIFY_STATUSES = ("VALID", "SUSPENDED", "REVOKED", "EXPIRED", "FORGED", "UNKNOWN")

# Document-information keys. WeasyPrint lower-cases <meta> names and keeps only letters and
# digits, so these are what a PDF reader shows.
PDF_META_TOKEN = "networktrusttoken"
PDF_META_PAYLOAD = "networktrustpayload"
PDF_META_SIGNATURE = "networktrustsignature"


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
        return _verify_token(text, session, public, now)
    if len(text) > 100 or any(c.isspace() for c in text):
        raise AuditorError("not a serial, a token or an existing file")
    return _verify_serial(text, session, public, now)


def _verify_token(text: str, session: Session, public: Ed25519PublicKey, now: datetime) -> VerifyResult:
    """A token is genuine when its signature holds, its payload is canonical and it matches the register."""
    parsed = parse_token(text)
    if parsed.payload is None:
        return VerifyResult("FORGED", f"malformed token: {parsed.error}")
    payload = parsed.payload
    serial = str(payload.get("serial") or "")
    if not signature_ok(public, parsed.payload_bytes, parsed.signature):
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


def _verify_serial(serial: str, session: Session, public: Ed25519PublicKey, now: datetime) -> VerifyResult:
    """A serial is looked up; the stored record must still carry the issuer's signature."""
    refresh_expired(session, now)
    cert = get_certificate(session, serial)
    if cert is None:
        return VerifyResult("UNKNOWN", "no certificate with this serial in the register", serial)
    payload = dict(cert.payload or {})
    try:
        sig = unb64url(cert.signature)
    except (binascii.Error, ValueError):
        sig = b""
    if not signature_ok(public, canonical_json(payload), sig) or payload.get("serial") != cert.serial:
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
        return f"{TOKEN_PREFIX}.{b64url(str(payload).encode('utf-8'))}.{sig}"
    raise AuditorError(f"{p} carries no network-trust certificate metadata")
