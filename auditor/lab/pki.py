"""A private test PKI for the loopback lab: root CA -> intermediate CA -> leaf certificates.

Everything is built with ``cryptography`` because ``openssl x509`` cannot back-date a
certificate (needed for the expired case). The extensions follow what strict modern
validators (``cryptography``'s verifier, which sslyze uses) demand: every non-root
certificate carries an Authority Key Identifier, leaves carry SAN, key usage and
extended key usage. Without them a "good" lab site would fail validation and every
test built on it would be measuring the lab instead of the auditor.

A second, unrelated root ("rogue" CA) signs the leaves that must chain to something
that is *not* in ``lab-ca.pem`` (the untrusted-certificate case).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

KEY_TYPES = ("rsa2048", "rsa1024", "ec256", "ec384")
HASH_NAMES = ("sha256", "sha1")
# DER of the AlgorithmIdentifier OIDs sha256WithRSAEncryption / sha1WithRSAEncryption: the
# same length, so one can be swapped for the other without re-encoding anything around it.
_OID_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
_OID_SHA1_RSA = bytes.fromhex("06092a864886f70d010105")
_ORG = "Auditor Lab"


@dataclass(frozen=True)
class LeafFiles:
    """PEM files of one issued certificate: ``cert`` is the chain to serve, ``key`` its key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class _Authority:
    cert: x509.Certificate
    key: PrivateKey


def _new_key(kind: str) -> PrivateKey:
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError(f"unknown key type {kind!r} (one of {', '.join(KEY_TYPES)})")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _general_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname.strip("[]")))
    except ValueError:
        return x509.DNSName(hostname)


class LabPKI:
    """Root and intermediate CA written under ``directory``; issues leaf certificates.

    ``ca_file`` (``directory / "lab-ca.pem"``) holds only the root: it is the trust store
    to hand to clients. Keys are cached per type, so issuing thirty leaves costs one RSA-2048
    key generation, not thirty.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._keys: dict[str, PrivateKey] = {}
        now = datetime.now(UTC)
        self._root = self._make_root("Auditor Lab Root CA", now)
        self._intermediate = self._make_intermediate(now)
        self._rogue: _Authority | None = None
        self.ca_file = self.directory / "lab-ca.pem"
        self.ca_file.write_bytes(_pem(self._root.cert))
        self.intermediate_file = self.directory / "lab-intermediate.pem"
        self.intermediate_file.write_bytes(_pem(self._intermediate.cert))

    @property
    def root_cert(self) -> x509.Certificate:
        return self._root.cert

    @property
    def intermediate_cert(self) -> x509.Certificate:
        return self._intermediate.cert

    def _leaf_key(self, kind: str) -> PrivateKey:
        """The shared leaf key of one type (CA keys are never shared with leaves)."""
        if kind not in self._keys:
            self._keys[kind] = _new_key(kind)
        return self._keys[kind]

    def _make_root(self, common_name: str, now: datetime) -> _Authority:
        key = _new_key("rsa2048")
        name = _name(common_name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return _Authority(cert, key)

    def _make_intermediate(self, now: datetime) -> _Authority:
        key = _new_key("rsa2048")
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Auditor Lab Intermediate CA"))
            .issuer_name(self._root.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1825))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(_aki(self._root.cert), critical=False)
            .sign(self._root.key, hashes.SHA256())
        )
        return _Authority(cert, key)

    def _rogue_authority(self) -> _Authority:
        """A second root CA that is not in ``lab-ca.pem`` (created on first use)."""
        if self._rogue is None:
            self._rogue = self._make_root("Auditor Lab Rogue CA (untrusted)", datetime.now(UTC))
        return self._rogue

    def issue(
        self,
        name: str,
        hostnames: list[str],
        *,
        key: str = "rsa2048",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        hash_name: str = "sha256",
        self_signed: bool = False,
        include_intermediate: bool = True,
        untrusted: bool = False,
    ) -> LeafFiles:
        """Issue a server certificate for ``hostnames`` and write ``<name>.pem`` / ``<name>.key``.

        The PEM holds the leaf followed by its issuing CA certificate (the intermediate, or
        the rogue root when ``untrusted``) unless ``include_intermediate`` is False or the
        leaf is self-signed. ``untrusted`` signs with the rogue CA instead of the lab
        intermediate. Default validity: one day ago to 365 days ahead.
        """
        if not hostnames:
            raise ValueError("a leaf certificate needs at least one host name")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"certificate name {name!r} is not a safe file name")
        if hash_name not in HASH_NAMES:
            raise ValueError(f"unknown hash {hash_name!r} (one of {', '.join(HASH_NAMES)})")
        if self_signed and untrusted:
            raise ValueError("a certificate is either self-signed or signed by the rogue CA, not both")
        now = datetime.now(UTC)
        not_before = not_before or now - timedelta(days=1)
        not_after = not_after or now + timedelta(days=365)
        leaf_key = self._leaf_key(key)
        public_key = leaf_key.public_key()
        subject = _name(hostnames[0])

        issuer_cert: x509.Certificate | None = None
        if self_signed:
            issuer_name, signing_key = subject, leaf_key
            issuer_aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
        else:
            authority = self._rogue_authority() if untrusted else self._intermediate
            issuer_cert, issuer_name, signing_key = authority.cert, authority.cert.subject, authority.key
            issuer_aki = _aki(authority.cert)

        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_key_usage(public_key), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hostnames]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(issuer_aki, critical=False)
            .sign(signing_key, hashes.SHA256())
        )
        if hash_name == "sha1":
            cert = _resign_sha1(cert, signing_key)

        chain = _pem(cert)
        if include_intermediate and issuer_cert is not None:
            chain += _pem(issuer_cert)
        cert_path = self.directory / f"{name}.pem"
        key_path = self.directory / f"{name}.key"
        cert_path.write_bytes(chain)
        key_path.write_bytes(
            leaf_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return LeafFiles(cert=cert_path, key=key_path)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage(public_key: object) -> x509.KeyUsage:
    """digitalSignature, plus keyEncipherment for RSA (static-RSA key exchange)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _der_header(data: bytes, offset: int) -> tuple[int, int]:
    """(header length, content length) of the DER element starting at ``offset``."""
    first = data[offset + 1]
    if first < 0x80:
        return 2, first
    n = first & 0x7F
    return 2 + n, int.from_bytes(data[offset + 2 : offset + 2 + n], "big")


def _resign_sha1(cert: x509.Certificate, key: PrivateKey) -> x509.Certificate:
    """The same certificate, signed with SHA-1 instead of SHA-256.

    ``cryptography`` refuses to create SHA-1 signatures in certificates, but the lab needs
    one for the weak-signature case. The RSA signature has a fixed length, so the DER can be
    patched in place: swap the algorithm OID (inside tbsCertificate and outside it), sign the
    patched tbsCertificate with RSA PKCS#1 v1.5 over SHA-1 and replace the signature bytes.
    """
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("SHA-1 signatures are only supported with an RSA issuer key")
    der = cert.public_bytes(serialization.Encoding.DER)
    if der.count(_OID_SHA256_RSA) != 2:
        raise RuntimeError("unexpected certificate encoding: cannot swap the signature algorithm")
    der = der.replace(_OID_SHA256_RSA, _OID_SHA1_RSA)
    outer_header, _ = _der_header(der, 0)
    tbs_header, tbs_length = _der_header(der, outer_header)
    tbs = der[outer_header : outer_header + tbs_header + tbs_length]
    signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    if len(signature) != len(cert.signature):
        raise RuntimeError("SHA-1 signature length differs from the original signature")
    return x509.load_der_x509_certificate(der[: -len(signature)] + signature)
