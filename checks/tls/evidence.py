"""Typed TLS evidence: what :func:`checks.tls.collect.collect` observed, as dataclasses.

The evidence is stored as JSON with every scan (``CheckOutcome.evidence``) so that a stored
scan can be re-judged offline later. :meth:`TLSEvidence.to_dict` therefore produces exactly
the JSON shape stored since ``schema`` 1, and :meth:`TLSEvidence.from_dict` reads that shape
back, tolerating older or hand-made evidence: a missing optional key becomes its default.

Absence carries meaning and is kept: a protocol missing from :attr:`TLSEvidence.protocols`,
a ``None`` certificate block or a ``None`` vulnerability field was *not tested* (the
analysis reports "could not test: ..."), which is different from tested-and-clean. Keys the
collector only writes in some cases (``rejected_count``, ``error_type``, vulnerability
results, ...) are left out of :meth:`to_dict` when they are ``None``, as the collector
always did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = 1

Json = dict[str, Any]


def _without_none(pairs: dict[str, Any]) -> Json:
    return {k: v for k, v in pairs.items() if v is not None}


@dataclass(frozen=True)
class Target:
    """Where the scan went: the audited host name, the pinned address, the SNI sent."""

    host: str | None = None
    port: int | None = None
    address: str | None = None
    sni: str | None = None

    def to_dict(self) -> Json:
        return {"host": self.host, "port": self.port, "address": self.address, "sni": self.sni}

    @classmethod
    def from_dict(cls, data: Json | None) -> Target:
        d = data or {}
        return cls(host=d.get("host"), port=d.get("port"), address=d.get("address"), sni=d.get("sni"))


@dataclass(frozen=True)
class Preprobe:
    """The raw-socket ClientHello probe (see :func:`checks.tls.collect.preprobe`)."""

    result: str = "silent"  # "tls" | "plaintext" | "closed" | "silent" | "unreachable"
    first_line: str | None = None
    error: str | None = None
    elapsed_s: float | None = None  # absent when the TCP connect itself failed

    def to_dict(self) -> Json:
        out: Json = {"result": self.result, "first_line": self.first_line, "error": self.error}
        if self.elapsed_s is not None:
            out["elapsed_s"] = self.elapsed_s
        return out

    @classmethod
    def from_dict(cls, data: Json) -> Preprobe:
        return cls(
            result=data.get("result") or "silent",
            first_line=data.get("first_line"),
            error=data.get("error"),
            elapsed_s=data.get("elapsed_s"),
        )


@dataclass(frozen=True)
class Connectivity:
    """Whether a TLS handshake was possible at all, and with what."""

    status: str = "unknown"  # "ok" | "no_tls" | "unreachable" | "sslv2_only" | "probe_error" | "unknown"
    error: str | None = None
    highest_protocol: str | None = None
    error_type: str | None = None
    probe_cipher_suite: str | None = None
    client_auth: str | None = None

    def to_dict(self) -> Json:
        out: Json = {"status": self.status, "error": self.error, "highest_protocol": self.highest_protocol}
        out.update(
            _without_none(
                {
                    "error_type": self.error_type,
                    "probe_cipher_suite": self.probe_cipher_suite,
                    "client_auth": self.client_auth,
                }
            )
        )
        return out

    @classmethod
    def from_dict(cls, data: Json | None) -> Connectivity:
        d = data or {}
        return cls(
            status=d.get("status") or "unknown",
            error=d.get("error"),
            highest_protocol=d.get("highest_protocol"),
            error_type=d.get("error_type"),
            probe_cipher_suite=d.get("probe_cipher_suite"),
            client_auth=d.get("client_auth"),
        )


@dataclass(frozen=True)
class KeyExchange:
    """The ephemeral key the server chose for one accepted suite."""

    type: str | None  # "DH" | "ECDH" | ...
    size: int | None
    curve: str | None = None

    def to_dict(self) -> Json:
        return {"type": self.type, "size": self.size, "curve": self.curve}

    @classmethod
    def from_dict(cls, data: Json | None) -> KeyExchange | None:
        if data is None:
            return None
        return cls(type=data.get("type"), size=data.get("size"), curve=data.get("curve"))


@dataclass(frozen=True)
class CipherSuite:
    """One accepted cipher suite, by its IANA and OpenSSL names."""

    name: str
    openssl_name: str | None = None
    key_size: int | None = None
    anonymous: bool = False
    kx: KeyExchange | None = None  # None: no key information (RSA key exchange, or refused group)

    def to_dict(self) -> Json:
        return {
            "name": self.name,
            "openssl_name": self.openssl_name,
            "key_size": self.key_size,
            "anonymous": self.anonymous,
            "kx": self.kx.to_dict() if self.kx else None,
        }

    @classmethod
    def from_dict(cls, data: Json) -> CipherSuite:
        return cls(
            name=str(data.get("name") or ""),
            openssl_name=data.get("openssl_name"),
            key_size=data.get("key_size"),
            anonymous=bool(data.get("anonymous")),
            kx=KeyExchange.from_dict(data.get("kx")),
        )


@dataclass(frozen=True)
class ProtocolResult:
    """The suites one protocol version accepted (empty: the version is refused)."""

    accepted: tuple[CipherSuite, ...] = ()
    rejected_count: int | None = None

    def to_dict(self) -> Json:
        out: Json = {"accepted": [s.to_dict() for s in self.accepted]}
        if self.rejected_count is not None:
            out["rejected_count"] = self.rejected_count
        return out

    @classmethod
    def from_dict(cls, data: Json) -> ProtocolResult:
        return cls(
            accepted=tuple(CipherSuite.from_dict(s) for s in data.get("accepted") or []),
            rejected_count=data.get("rejected_count"),
        )


@dataclass(frozen=True)
class TrustStore:
    """The trust store judged against, cut down to the certificates that matter here."""

    name: str | None = None
    custom: bool = False
    path: str | None = None
    version: str | None = None
    anchors_pem: tuple[str, ...] = ()
    intermediates_pem: tuple[str, ...] = ()

    def to_dict(self) -> Json:
        return {
            "name": self.name,
            "custom": self.custom,
            "path": self.path,
            "version": self.version,
            "anchors_pem": list(self.anchors_pem),
            "intermediates_pem": list(self.intermediates_pem),
        }

    @classmethod
    def from_dict(cls, data: Json | None) -> TrustStore:
        d = data or {}
        return cls(
            name=d.get("name"),
            custom=bool(d.get("custom")),
            path=d.get("path"),
            version=d.get("version"),
            anchors_pem=tuple(d.get("anchors_pem") or ()),
            intermediates_pem=tuple(d.get("intermediates_pem") or ()),
        )


@dataclass(frozen=True)
class PathValidation:
    """sslyze's own verdict against one of its trust stores (kept for the record)."""

    trust_store: str
    version: str
    ok: bool
    error: str | None = None

    def to_dict(self) -> Json:
        return {"trust_store": self.trust_store, "version": self.version, "ok": self.ok, "error": self.error}

    @classmethod
    def from_dict(cls, data: Json) -> PathValidation:
        return cls(
            trust_store=str(data.get("trust_store") or ""),
            version=str(data.get("version") or ""),
            ok=bool(data.get("ok")),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class Deployment:
    """One certificate chain the server sent (one per key type it serves)."""

    chain_pem: tuple[str, ...] = ()
    received_chain_has_valid_order: bool | None = None
    sslyze_path_validation: tuple[PathValidation, ...] = ()

    def to_dict(self) -> Json:
        return {
            "chain_pem": list(self.chain_pem),
            "received_chain_has_valid_order": self.received_chain_has_valid_order,
            "sslyze_path_validation": [pv.to_dict() for pv in self.sslyze_path_validation],
        }

    @classmethod
    def from_dict(cls, data: Json) -> Deployment:
        return cls(
            chain_pem=tuple(data.get("chain_pem") or ()),
            received_chain_has_valid_order=data.get("received_chain_has_valid_order"),
            sslyze_path_validation=tuple(
                PathValidation.from_dict(pv) for pv in data.get("sslyze_path_validation") or []
            ),
        )


@dataclass(frozen=True)
class CertificateEvidence:
    """The certificate block: the chains served and the trust store to judge them by."""

    trust_store: TrustStore = field(default_factory=TrustStore)
    deployments: tuple[Deployment, ...] = ()
    sni_disabled_chain_pem: tuple[str, ...] | None = None
    no_certificate: bool = False
    sni_hostname: str | None = None

    def to_dict(self) -> Json:
        return {
            "sni_hostname": self.sni_hostname,
            "trust_store": self.trust_store.to_dict(),
            "deployments": [d.to_dict() for d in self.deployments],
            "sni_disabled_chain_pem": None
            if self.sni_disabled_chain_pem is None
            else list(self.sni_disabled_chain_pem),
            "no_certificate": self.no_certificate,
        }

    @classmethod
    def from_dict(cls, data: Json) -> CertificateEvidence:
        sni_disabled = data.get("sni_disabled_chain_pem")
        return cls(
            trust_store=TrustStore.from_dict(data.get("trust_store")),
            deployments=tuple(Deployment.from_dict(d) for d in data.get("deployments") or []),
            sni_disabled_chain_pem=None if sni_disabled is None else tuple(sni_disabled),
            no_certificate=bool(data.get("no_certificate")),
            sni_hostname=data.get("sni_hostname"),
        )


@dataclass(frozen=True)
class Vulnerabilities:
    """Known-vulnerability results; ``None`` means that test did not produce a result."""

    heartbleed: bool | None = None
    ccs_injection: bool | None = None
    robot: str | None = None  # sslyze's RobotScanResultEnum name
    compression: bool | None = None
    fallback_scsv: bool | None = None
    secure_renegotiation: bool | None = None
    client_renegotiation: bool | None = None
    client_renegotiation_count: int | None = None

    def get(self, key: str) -> Any:
        """The result stored under evidence key ``key`` (None: not tested)."""
        return getattr(self, key)

    def to_dict(self) -> Json:
        return _without_none(
            {
                "heartbleed": self.heartbleed,
                "ccs_injection": self.ccs_injection,
                "robot": self.robot,
                "compression": self.compression,
                "fallback_scsv": self.fallback_scsv,
                "secure_renegotiation": self.secure_renegotiation,
                "client_renegotiation": self.client_renegotiation,
                "client_renegotiation_count": self.client_renegotiation_count,
            }
        )

    @classmethod
    def from_dict(cls, data: Json | None) -> Vulnerabilities:
        d = data or {}
        return cls(**{name: d.get(name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class TLSEvidence:
    """Everything one TLS scan observed; the analysis needs nothing else."""

    target: Target = field(default_factory=Target)
    connectivity: Connectivity = field(default_factory=Connectivity)
    protocols: dict[str, ProtocolResult] = field(default_factory=dict)  # only the tested ones
    certificate: CertificateEvidence | None = None  # None: not tested
    vulnerabilities: Vulnerabilities = field(default_factory=Vulnerabilities)
    errors: dict[str, str] = field(default_factory=dict)  # scan command (or "scan") -> reason
    timings: dict[str, float | None] = field(default_factory=dict)
    scanner: dict[str, str] | None = None  # {"name": "sslyze", "version": ...}
    started_at: str | None = None
    preprobe: Preprobe | None = None
    schema: int = SCHEMA

    def to_dict(self) -> Json:
        """The stored JSON shape (schema 1), key for key."""
        out: Json = {"schema": self.schema}
        if self.scanner is not None:
            out["scanner"] = dict(self.scanner)
        out["target"] = self.target.to_dict()
        if self.started_at is not None:
            out["started_at"] = self.started_at
        out.update(
            connectivity=self.connectivity.to_dict(),
            protocols={key: result.to_dict() for key, result in self.protocols.items()},
            certificate=self.certificate.to_dict() if self.certificate else None,
            vulnerabilities=self.vulnerabilities.to_dict(),
            errors=dict(self.errors),
            timings=dict(self.timings),
        )
        if self.preprobe is not None:
            out["preprobe"] = self.preprobe.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Json) -> TLSEvidence:
        """Read stored (or hand-made) evidence; missing optional keys take their defaults.

        A protocol entry without an ``accepted`` list was not tested and is dropped, as the
        analysis always treated it.
        """
        protocols = {
            key: ProtocolResult.from_dict(entry)
            for key, entry in (data.get("protocols") or {}).items()
            if isinstance(entry, dict) and "accepted" in entry
        }
        cert = data.get("certificate")
        pre = data.get("preprobe")
        return cls(
            target=Target.from_dict(data.get("target")),
            connectivity=Connectivity.from_dict(data.get("connectivity")),
            protocols=protocols,
            certificate=None if cert is None else CertificateEvidence.from_dict(cert),
            vulnerabilities=Vulnerabilities.from_dict(data.get("vulnerabilities")),
            errors={str(k): str(v) for k, v in (data.get("errors") or {}).items()},
            timings=dict(data.get("timings") or {}),
            scanner=None if data.get("scanner") is None else dict(data["scanner"]),
            started_at=data.get("started_at"),
            preprobe=None if pre is None else Preprobe.from_dict(pre),
            schema=int(data.get("schema") or SCHEMA),
        )
