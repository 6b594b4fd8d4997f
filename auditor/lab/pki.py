"""A private test PKI for the loopback lab: root CA -> intermediate CA -> leaf certificates.

Everything is built with ``cryptography`` because ``openssl x509`` cannot back-date a
certificate (needed for the expired case). The extensions follow what strict modern
validators (``cryptography``'s verifier, which sslyze uses) demand: every non-root
certificate carries an Authority Key Identifier, leaves carry SAN, key usage and
extended key usage. Without them a "good" lab site would fail validation and every
test built on it would be measuring the lab instead of the auditor.

A second, unrelated root ("rogue" CA) signs the leaves that must chain to something
that is *not* in ``lab-ca.pem`` (the untrusted-certificate case).

Besides the files the lab serves, :class:`LabPKI` hands out plain certificate objects for
tests that judge certificates without a server: on a fixed clock (``now``), from extra
roots and intermediates with chosen names, dates, keys and signature hashes
(:meth:`LabPKI.new_root`, :meth:`LabPKI.new_intermediate`), and leaves with or without SAN
(:meth:`LabPKI.leaf_certificate`). So the tests and the lab share one certificate builder.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
# A key type name from KEY_TYPES, or a key to use as it is (e.g. an odd size, or a key
# shared by two certificates on purpose).
KeySpec = str | PrivateKey

KEY_TYPES = ("rsa2048", "rsa1024", "ec256", "ec384")
HASH_NAMES = ("sha256", "sha1", "md5")
# DER of the AlgorithmIdentifier OIDs sha256WithRSAEncryption and the legacy ones
# (sha1WithRSAEncryption, md5WithRSAEncryption): all the same length, so one can be swapped
# for another without re-encoding anything around it.
_OID_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
_LEGACY_RSA_OIDS = {
    "sha1": (bytes.fromhex("06092a864886f70d010105"), hashes.SHA1()),
    "md5": (bytes.fromhex("06092a864886f70d010104"), hashes.MD5()),
}
_ORG = "Auditor Lab"
_ROOT_DAYS = 3650
_INTERMEDIATE_DAYS = 1825
_LEAF_DAYS = 365


@dataclass(frozen=True)
class LeafFiles:
    """PEM files of one issued certificate: ``cert`` is the chain to serve, ``key`` its key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Authority:
    """A CA certificate and the key that signs with it."""

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


def _ca_key(key: KeySpec) -> PrivateKey:
    """A CA's key: a fresh one of type ``key``, or ``key`` itself when it is a key."""
    return _new_key(key) if isinstance(key, str) else key


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

    ``now`` fixes the clock every default validity is counted from (tests that analyse
    certificates at a given instant); without it the real clock is read at each use.
    """

    def __init__(self, directory: Path, *, now: datetime | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fixed_now = now
        self._keys: dict[str, PrivateKey] = {}
        self._root = self.new_root("Auditor Lab Root CA")
        self._intermediate = self.new_intermediate("Auditor Lab Intermediate CA")
        self._rogue: Authority | None = None
        self.ca_file = self.directory / "lab-ca.pem"
        self.ca_file.write_bytes(_pem(self._root.cert))
        self.intermediate_file = self.directory / "lab-intermediate.pem"
        self.intermediate_file.write_bytes(_pem(self._intermediate.cert))

    @property
    def now(self) -> datetime:
        """The instant default validity periods are counted from."""
        return self._fixed_now or datetime.now(UTC)

    @property
    def root(self) -> Authority:
        """The lab root CA, the only certificate in ``ca_file``."""
        return self._root

    @property
    def intermediate(self) -> Authority:
        """The lab intermediate CA, which signs leaves unless told otherwise."""
        return self._intermediate

    @property
    def root_cert(self) -> x509.Certificate:
        return self._root.cert

    @property
    def intermediate_cert(self) -> x509.Certificate:
        return self._intermediate.cert

    def leaf_key(self, key: KeySpec = "rsa2048") -> PrivateKey:
        """The shared leaf key of one type, or ``key`` itself when it is a key.

        CA keys are never shared with leaves, nor between CAs."""
        if not isinstance(key, str):
            return key
        if key not in self._keys:
            self._keys[key] = _new_key(key)
        return self._keys[key]

    def new_root(
        self,
        common_name: str,
        *,
        key: KeySpec = "rsa2048",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        hash_name: str = "sha256",
    ) -> Authority:
        """A self-signed root CA, not written anywhere and not in ``ca_file``.

        Another root with the lab's name but another key makes an impostor; ``key`` may be
        a type from KEY_TYPES (a fresh key) or a key object. Default validity: one day ago
        to ten years ahead of :attr:`now`."""
        ca_key = _ca_key(key)
        name = _name(common_name)
        builder = self._ca_builder(
            name, name, ca_key, not_before, not_after or self.now + timedelta(days=_ROOT_DAYS)
        )
        return Authority(_sign(builder, ca_key, hash_name), ca_key)

    def new_intermediate(
        self,
        common_name: str,
        *,
        issuer: Authority | None = None,
        key: KeySpec = "rsa2048",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        hash_name: str = "sha256",
    ) -> Authority:
        """An intermediate CA signed by ``issuer`` (default: the lab root) that may sign
        leaves only (path length 0). Expired, small-key or SHA-1 intermediates are made by
        passing dates, ``key`` or ``hash_name``. Default validity: one day ago to five years
        ahead of :attr:`now`."""
        issuer = issuer or self._root
        ca_key = _ca_key(key)
        not_after = not_after or self.now + timedelta(days=_INTERMEDIATE_DAYS)
        builder = self._ca_builder(
            _name(common_name), issuer.cert.subject, ca_key, not_before, not_after, path_length=0
        ).add_extension(_aki(issuer.cert), critical=False)
        return Authority(_sign(builder, issuer.key, hash_name), ca_key)

    def _ca_builder(
        self,
        subject: x509.Name,
        issuer_name: x509.Name,
        key: PrivateKey,
        not_before: datetime | None,
        not_after: datetime,
        path_length: int | None = None,
    ) -> x509.CertificateBuilder:
        """The fields and extensions every lab CA certificate carries."""
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or self.now - timedelta(days=1))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )

    def _rogue_authority(self) -> Authority:
        """A second root CA that is not in ``lab-ca.pem`` (created on first use)."""
        if self._rogue is None:
            self._rogue = self.new_root("Auditor Lab Rogue CA (untrusted)")
        return self._rogue

    def leaf_certificate(
        self,
        hostnames: list[str],
        *,
        key: KeySpec = "rsa2048",
        issuer: Authority | None = None,
        self_signed: bool = False,
        common_name: str | None = None,
        with_san: bool = True,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        hash_name: str = "sha256",
    ) -> x509.Certificate:
        """A server certificate for ``hostnames`` (nothing is written).

        Signed by ``issuer`` (default: the lab intermediate), or by its own key when
        ``self_signed``. The subject's common name is ``common_name`` or the first host
        name; ``with_san=False`` leaves the SAN extension out, so only that name identifies
        the server. Default validity: one day ago to a year ahead of :attr:`now`."""
        if not hostnames:
            raise ValueError("a leaf certificate needs at least one host name")
        if self_signed and issuer is not None:
            raise ValueError("a self-signed certificate has no issuer")
        leaf_key = self.leaf_key(key)
        public_key = leaf_key.public_key()
        subject = _name(common_name or hostnames[0])
        if self_signed:
            issuer_name, signing_key = subject, leaf_key
            issuer_aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
        else:
            authority = issuer or self._intermediate
            issuer_name, signing_key, issuer_aki = authority.cert.subject, authority.key, _aki(authority.cert)
        builder = _leaf_builder(
            subject,
            issuer_name,
            leaf_key,
            not_before or self.now - timedelta(days=1),
            not_after or self.now + timedelta(days=_LEAF_DAYS),
        ).add_extension(issuer_aki, critical=False)
        if with_san:
            san = x509.SubjectAlternativeName([_general_name(h) for h in hostnames])
            builder = builder.add_extension(san, critical=False)
        return _sign(builder, signing_key, hash_name)

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
        issuer = None if self_signed else (self._rogue_authority() if untrusted else self._intermediate)
        leaf_key = self.leaf_key(key)
        cert = self.leaf_certificate(
            hostnames,
            key=leaf_key,
            issuer=issuer,
            self_signed=self_signed,
            not_before=not_before,
            not_after=not_after,
            hash_name=hash_name,
        )
        chain = [cert] + ([issuer.cert] if include_intermediate and issuer is not None else [])
        return self._write(name, chain, leaf_key)

    def _write(self, name: str, chain: list[x509.Certificate], key: PrivateKey) -> LeafFiles:
        """Write the chain to ``<name>.pem`` and its key (owner-only) to ``<name>.key``."""
        cert_path = self.directory / f"{name}.pem"
        key_path = self.directory / f"{name}.key"
        cert_path.write_bytes(b"".join(_pem(c) for c in chain))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return LeafFiles(cert=cert_path, key=key_path)


def _leaf_builder(
    subject: x509.Name, issuer_name: x509.Name, key: PrivateKey, not_before: datetime, not_after: datetime
) -> x509.CertificateBuilder:
    """The fields and extensions every lab server certificate carries (SAN and AKI aside)."""
    public_key = key.public_key()
    return (
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _sign(builder: x509.CertificateBuilder, key: PrivateKey, hash_name: str) -> x509.Certificate:
    """Sign with SHA-256 (Ed25519 keys: their own scheme), or re-sign with a legacy hash."""
    if hash_name not in HASH_NAMES:
        raise ValueError(f"unknown hash {hash_name!r} (one of {', '.join(HASH_NAMES)})")
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = builder.sign(key, algorithm)
    return cert if hash_name == "sha256" else _resign_legacy(cert, key, hash_name)


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


def _resign_legacy(cert: x509.Certificate, key: PrivateKey, hash_name: str) -> x509.Certificate:
    """The same certificate, signed with SHA-1 or MD5 instead of SHA-256.

    ``cryptography`` refuses to create such signatures in certificates, but the lab needs
    them for the weak-signature case. The RSA signature has a fixed length, so the DER can be
    patched in place: swap the algorithm OID (inside tbsCertificate and outside it), sign the
    patched tbsCertificate with RSA PKCS#1 v1.5 over the legacy hash and replace the
    signature bytes.
    """
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{hash_name} signatures are only supported with an RSA issuer key")
    oid, digest = _LEGACY_RSA_OIDS[hash_name]
    der = cert.public_bytes(serialization.Encoding.DER)
    if der.count(_OID_SHA256_RSA) != 2:
        raise RuntimeError("unexpected certificate encoding: cannot swap the signature algorithm")
    der = der.replace(_OID_SHA256_RSA, oid)
    outer_header, _ = _der_header(der, 0)
    tbs_header, tbs_length = _der_header(der, outer_header)
    tbs = der[outer_header : outer_header + tbs_header + tbs_length]
    signature = key.sign(tbs, padding.PKCS1v15(), digest)
    if len(signature) != len(cert.signature):
        raise RuntimeError(f"{hash_name} signature length differs from the original signature")
    return x509.load_der_x509_certificate(der[: -len(signature)] + signature)
