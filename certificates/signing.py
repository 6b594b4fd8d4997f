"""The issuer key, the canonical payload bytes, signatures and tokens.

A certificate's payload is serialised as canonical JSON and signed with the issuer's Ed25519
key; the *token* ``TNM1.<payload>.<signature>`` (both parts base64url) is what the QR code
and the PDF metadata carry, so anyone holding the issuer's public key can check a printed
certificate offline. Every encoding here has exactly one accepted spelling, so a token
cannot be altered without the signature check noticing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auditor import storage
from auditor.errors import AuditorError
from auditor.models import Certificate

KEY_ENV = "AUDITOR_ISSUER_KEY"
TOKEN_PREFIX = "TNM1"
MAX_TOKEN = 8192


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


# --- payload bytes and signatures ---------------------------------------------------------


def canonical_json(payload: dict[str, Any]) -> bytes:
    """Sorted keys, no white space, UTF-8: the exact bytes that are signed."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def b64url(data: bytes) -> str:
    """Unpadded base64url, the encoding of both halves of a token."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """Strict inverse of :func:`b64url`: any other spelling of the same bytes (characters outside
    the base64url alphabet, padding, stray low bits) raises ``ValueError``, so a token has one
    form only."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(data) != text:
        raise ValueError("not canonical base64url")
    return data


def sign_payload(payload: dict[str, Any], key: Ed25519PrivateKey) -> str:
    return b64url(key.sign(canonical_json(payload)))


def signature_ok(public: Ed25519PublicKey, body: bytes, sig: bytes) -> bool:
    """Whether ``sig`` is the issuer's signature over exactly ``body``."""
    try:
        public.verify(sig, body)
        return True
    except InvalidSignature:
        return False


# --- tokens -------------------------------------------------------------------------------


def make_token(payload: dict[str, Any], signature: str) -> str:
    """``TNM1.<base64url canonical payload>.<base64url signature>``: what the QR code holds."""
    return f"{TOKEN_PREFIX}.{b64url(canonical_json(payload))}.{signature}"


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
    if len(text) > MAX_TOKEN or len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return ParsedToken(b"", b"", None, "not a certificate token")
    try:
        body = unb64url(parts[1])
        sig = unb64url(parts[2])
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
