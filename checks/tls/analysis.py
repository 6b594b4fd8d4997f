"""Pure analysis of TLS evidence: :class:`~checks.tls.evidence.TLSEvidence` in, ``tls.*`` findings out.

Nothing here touches the network or sslyze. :func:`analyse` receives the evidence that
:func:`checks.tls.collect.collect` records, or its stored JSON (or a hand-made one in tests,
read with :meth:`TLSEvidence.from_dict`), and derives every finding from it, so a stored
scan can be re-analysed later with other parameters or another ``now``, and findings the local OpenSSL cannot plant (SSL 2.0, RC4, Heartbleed, ...)
can be tested by feeding evidence.

The keys the analysis reads, in the stored JSON (``schema`` 1, :meth:`TLSEvidence.to_dict`;
:mod:`checks.tls.evidence` describes every key, including the scanner, preprobe and timings
kept for the record)::

    {
      "schema": 1,
      "target": {"host", "port", "address", "sni"},
      "connectivity": {"status": "ok" | "no_tls" | "unreachable" | "sslv2_only" | "unknown",
                       "error": str | None, "highest_protocol": "TLS 1.3" | None},
      "protocols": {"ssl2" | "ssl3" | "tls1_0" | "tls1_1" | "tls1_2" | "tls1_3":
                    {"accepted": [{"name", "openssl_name", "key_size", "anonymous",
                                   "kx": {"type": "DH" | "ECDH" | ..., "size": int,
                                          "curve": str | None} | None}]}},
      "certificate": {"trust_store": {"name", "custom": bool, "anchors_pem": [...],
                                      "intermediates_pem": [...]},
                      "deployments": [{"chain_pem": [...], "sslyze_path_validation": [...]}],
                      "sni_disabled_chain_pem": [...] | None, "no_certificate": bool},
      "vulnerabilities": {"heartbleed": bool, "ccs_injection": bool, "robot": "<enum name>",
                          "compression": bool, "fallback_scsv": bool,
                          "secure_renegotiation": bool, "client_renegotiation": bool},
      "errors": {"<scan command>": "reason", ...}
    }

A protocol, the certificate block or a vulnerability key that is *absent* was not tested:
it yields an error ("could not test: ..."), never a pass and never a finding. The typed
evidence keeps that distinction (a missing protocol entry, ``certificate=None``, a ``None``
vulnerability field).

Certificate trust is attributed to its real cause (see :func:`_trust_findings`): sslyze only
says "path validation failed", so the chain is rebuilt here from signatures, and the strict
(``cryptography`` web-PKI) validation is re-run at a time inside the leaf's validity window
and for a name the leaf actually carries, which factors out expiry and host-name mismatch.
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, Subject, VerificationError

from checks.tls.evidence import (
    CertificateEvidence,
    CipherSuite,
    ProtocolResult,
    TLSEvidence,
    Vulnerabilities,
)

# Evidence key -> (display name, finding id raised when accepted, sslyze scan command).
PROTOCOLS: dict[str, tuple[str, str | None, str]] = {
    "ssl2": ("SSL 2.0", "tls.protocol.sslv2", "ssl_2_0_cipher_suites"),
    "ssl3": ("SSL 3.0", "tls.protocol.sslv3", "ssl_3_0_cipher_suites"),
    "tls1_0": ("TLS 1.0", "tls.protocol.tls1_0", "tls_1_0_cipher_suites"),
    "tls1_1": ("TLS 1.1", "tls.protocol.tls1_1", "tls_1_1_cipher_suites"),
    "tls1_2": ("TLS 1.2", None, "tls_1_2_cipher_suites"),
    "tls1_3": ("TLS 1.3", None, "tls_1_3_cipher_suites"),
}
PROTOCOL_ORDER = list(PROTOCOLS)

# Vulnerability evidence key -> sslyze scan command that produces it.
VULN_COMMANDS: dict[str, str] = {
    "heartbleed": "heartbleed",
    "ccs_injection": "openssl_ccs_injection",
    "robot": "robot",
    "compression": "tls_compression",
    "fallback_scsv": "tls_fallback_scsv",
    "secure_renegotiation": "session_renegotiation",
    "client_renegotiation": "session_renegotiation",
}

# Human names of scan commands, for "could not test: <name> (<reason>)".
COMMAND_LABELS: dict[str, str] = {
    "certificate_info": "certificate",
    "ssl_2_0_cipher_suites": "SSL 2.0 cipher suites",
    "ssl_3_0_cipher_suites": "SSL 3.0 cipher suites",
    "tls_1_0_cipher_suites": "TLS 1.0 cipher suites",
    "tls_1_1_cipher_suites": "TLS 1.1 cipher suites",
    "tls_1_2_cipher_suites": "TLS 1.2 cipher suites",
    "tls_1_3_cipher_suites": "TLS 1.3 cipher suites",
    "heartbleed": "heartbleed",
    "openssl_ccs_injection": "CCS injection",
    "robot": "ROBOT",
    "session_renegotiation": "renegotiation",
    "tls_compression": "compression",
    "tls_fallback_scsv": "fallback SCSV",
}

DEFAULT_PARAMS: dict[str, Any] = {
    "tls.min_rsa_bits": 2048,
    "tls.min_ec_bits": 256,
    "tls.min_dh_bits": 2048,
    "tls.cert_expiry_warning_days": 30,
}

_ROBOT_VULNERABLE = {"VULNERABLE_WEAK_ORACLE", "VULNERABLE_STRONG_ORACLE"}
_ROBOT_NOT_VULNERABLE = {"NOT_VULNERABLE_NO_ORACLE", "NOT_VULNERABLE_RSA_NOT_SUPPORTED"}
_WEAK_HASHES = (hashes.SHA1, hashes.MD5)
_MAX_CHAIN_DEPTH = 8
# What reading a parsed certificate's key, algorithms or extensions may raise.
_UNREADABLE_CERT = (
    ValueError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)
_MAX_LISTED = 8

Finding3 = tuple[str, str, dict[str, Any]]


# --------------------------------------------------------------------------- entry point


def analyse(
    evidence: TLSEvidence | dict[str, Any], *, host: str, params: dict[str, Any], now: datetime
) -> tuple[list[Finding3], list[str]]:
    """Derive ``(finding_id, evidence_line, details)`` triples and error strings.

    ``evidence`` is what :func:`checks.tls.collect.collect` returned, or its stored JSON
    (``TLSEvidence.to_dict()``, read back with :meth:`TLSEvidence.from_dict`) when a stored
    scan is re-judged. ``params`` are merged over :data:`DEFAULT_PARAMS`. ``now`` must be
    timezone-aware (a naive value is taken as UTC). Errors say what could not be tested; the
    findings derived from everything else are still returned.
    """
    ev = evidence if isinstance(evidence, TLSEvidence) else TLSEvidence.from_dict(evidence)
    p = {**DEFAULT_PARAMS, **(params or {})}
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    settled = _connectivity_verdict(ev)
    if settled is not None:
        return settled

    command_errors = dict(ev.errors)
    errors = [command_errors.pop(key) for key in ("scan", "deadline") if key in command_errors]
    protocol_findings, protocol_errors = _protocol_findings(ev.protocols, command_errors)
    vuln_findings, vuln_errors = _vuln_findings(ev.vulnerabilities, ev.protocols, command_errors)
    findings = protocol_findings + _cipher_findings(ev.protocols, p) + vuln_findings
    errors += protocol_errors + vuln_errors

    if ev.certificate is None:
        errors.append(_could_not_test("certificate_info", command_errors))
    else:
        cert_findings, cert_errors = _certificate_findings(ev.certificate, host=host, params=p, now=now)
        findings += cert_findings
        errors += cert_errors
    return _dedupe(findings), errors


def _connectivity_verdict(ev: TLSEvidence) -> tuple[list[Finding3], list[str]] | None:
    """The whole answer when no TLS scan could run (no TCP, no TLS, SSL 2.0 only, unknown);
    None when the handshake worked and the scan results are to be judged."""
    conn = ev.connectivity
    where = f"{ev.target.address or '?'}:{ev.target.port or '?'}"
    if conn.status == "unreachable":
        return [], [f"cannot connect to {where}: {conn.error or 'connection failed'}"]
    if conn.status == "no_tls":
        line = f"{where} accepts TCP connections but no SSL/TLS handshake completed"
        if conn.error:
            line += f" ({conn.error})"
        return [("tls.not_offered", line, {"error": conn.error})], []
    if conn.status == "sslv2_only":
        finding = ("tls.protocol.sslv2", "only SSL 2.0 completes a handshake", {"error": conn.error})
        return [finding], ["could not test anything beyond SSL 2.0: the server speaks nothing else"]
    if conn.status != "ok":
        return [], [f"TLS scan of {where} did not complete: {conn.error or 'unknown state'}"]
    return None


def _could_not_test(command: str, command_errors: dict[str, str]) -> str:
    label = COMMAND_LABELS.get(command, command)
    reason = command_errors.get(command) or "no result"
    return f"could not test: {label} ({reason})"


def _dedupe(findings: list[Finding3]) -> list[Finding3]:
    """One finding per id: the first evidence line wins, details of later ones are kept."""
    out: dict[str, Finding3] = {}
    for fid, line, details in findings:
        if fid not in out:
            out[fid] = (fid, line, details)
        else:
            out[fid][2].setdefault("also", []).append({"evidence": line, **details})
    return list(out.values())


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


# --------------------------------------------------------------------------- protocols


def _accepted(protocols: dict[str, ProtocolResult], key: str) -> list[CipherSuite] | None:
    """Accepted suites of one protocol, or None when that protocol was not tested."""
    entry = protocols.get(key)
    return None if entry is None else list(entry.accepted)


def _protocol_findings(
    protocols: dict[str, ProtocolResult], command_errors: dict[str, str]
) -> tuple[list[Finding3], list[str]]:
    out: list[Finding3] = []
    errors: list[str] = []
    for key, (label, finding_id, command) in PROTOCOLS.items():
        suites = _accepted(protocols, key)
        if suites is None:
            errors.append(_could_not_test(command, command_errors))
            continue
        if suites and finding_id:
            details = {"protocol": label, "cipher_suites": [s.name for s in suites]}
            out.append((finding_id, f"{label} accepted with {_plural(len(suites), 'cipher suite')}", details))
    tls13 = _accepted(protocols, "tls1_3")
    if tls13 is not None and not tls13:
        highest = _highest_accepted(protocols)
        label = PROTOCOLS[highest][0] if highest else None
        line = "TLS 1.3 not accepted" + (f" (highest accepted: {label})" if label else "")
        out.append(("tls.protocol.no_tls1_3", line, {"highest_protocol": label}))
    return out, errors


def _highest_accepted(protocols: dict[str, ProtocolResult]) -> str | None:
    best = None
    for key in PROTOCOL_ORDER:
        if _accepted(protocols, key):
            best = key
    return best


# --------------------------------------------------------------------------- cipher suites

_INSECURE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("NULL", re.compile(r"NULL")),
    ("anonymous", re.compile(r"_ANON_|^ADH-|^AECDH-|^TLS_(EC)?DH_ANON")),
    ("EXPORT", re.compile(r"EXPORT|^EXP-|^EXP1024-")),
    ("RC4", re.compile(r"RC4")),
    ("3DES", re.compile(r"3DES|DES-CBC3|DES_192_EDE3|EDE3")),
    ("DES", re.compile(r"(?<![3])DES(?!-CBC3|_192_EDE3)")),
    ("MD5", re.compile(r"MD5")),
)


def insecure_reasons(suite: CipherSuite) -> list[str]:
    """Why a suite is insecure (NULL, anonymous, EXPORT, RC4, DES/3DES, MD5), or []."""
    names = [suite.name.upper(), str(suite.openssl_name or "").upper()]
    reasons = []
    for reason, pattern in _INSECURE_PATTERNS:
        if any(pattern.search(n) for n in names if n):
            reasons.append(reason)
    if suite.anonymous and "anonymous" not in reasons:
        reasons.append("anonymous")
    if "3DES" in reasons and "DES" in reasons:
        reasons.remove("DES")
    return reasons


def has_forward_secrecy(suite: CipherSuite, protocol: str) -> bool:
    """TLS 1.3 suites always are; below, only ephemeral (EC)DH key exchange is."""
    if protocol == "tls1_3":
        return True
    name = suite.name.upper()
    ossl = str(suite.openssl_name or "").upper()
    if re.match(r"^TLS_(ECDHE|DHE)_|^TLS_(EC)?DH_ANON_", name):
        return True
    return bool(re.match(r"^(ECDHE|DHE|EDH|ADH|AECDH)-", ossl))


def _is_dhe(suite: CipherSuite) -> bool:
    name = suite.name.upper()
    ossl = str(suite.openssl_name or "").upper()
    return bool(re.match(r"^TLS_DHE_|^TLS_DH_ANON_", name) or re.match(r"^(DHE|EDH|ADH)-", ossl))


def _is_weak_dh(suite: CipherSuite, min_dh: int) -> bool:
    """A DHE suite whose group is below ``min_dh`` bits.

    No key info for an accepted DHE suite means sslyze's own OpenSSL refused the server's
    group as too small ("dh key too small") yet the suite was accepted: weak as well.
    """
    kx = suite.kx
    return kx is None or (kx.type == "DH" and int(kx.size or 0) < min_dh)


def _dh_bits(suite: CipherSuite) -> int | None:
    return suite.kx.size if suite.kx else None


def _suite_list(items: list[tuple[str, CipherSuite]]) -> str:
    shown = [f"{s.name} ({PROTOCOLS[k][0]})" for k, s in items[:_MAX_LISTED]]
    more = len(items) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _cipher_findings(protocols: dict[str, ProtocolResult], p: dict[str, Any]) -> list[Finding3]:
    min_dh = int(p["tls.min_dh_bits"])
    accepted = [(key, suite) for key in PROTOCOL_ORDER for suite in _accepted(protocols, key) or []]
    insecure = [(k, s, reasons) for k, s in accepted if (reasons := insecure_reasons(s))]
    no_fs = [(k, s) for k, s in accepted if not has_forward_secrecy(s, k)]
    weak_dh = [(k, s) for k, s in accepted if k != "tls1_3" and _is_dhe(s) and _is_weak_dh(s, min_dh)]
    out: list[Finding3] = []
    if insecure:
        line = f"{_plural(len(insecure), 'insecure cipher suite')} accepted: " + _suite_list(
            [(k, s) for k, s, _ in insecure]
        )
        suites = [{"protocol": PROTOCOLS[k][0], "name": s.name, "reasons": r} for k, s, r in insecure]
        out.append(("tls.cipher.insecure", line, {"suites": suites}))
    if no_fs:
        line = f"{_plural(len(no_fs), 'cipher suite')} without forward secrecy accepted: " + _suite_list(
            no_fs
        )
        suites = [{"protocol": PROTOCOLS[k][0], "name": s.name} for k, s in no_fs]
        out.append(("tls.cipher.no_forward_secrecy", line, {"suites": suites}))
    if weak_dh:
        out.append(_weak_dh_finding(weak_dh, min_dh))
    return out


def _weak_dh_finding(weak_dh: list[tuple[str, CipherSuite]], min_dh: int) -> Finding3:
    sizes = sorted({int(_dh_bits(s) or 0) for _, s in weak_dh})
    size_txt = ", ".join(f"{b}-bit" for b in sizes if b) or "too small for the scanner to accept"
    suites = [{"protocol": PROTOCOLS[k][0], "name": s.name, "dh_bits": _dh_bits(s)} for k, s in weak_dh]
    return (
        "tls.cipher.weak_dh",
        f"DHE with a {size_txt} group (minimum {min_dh}) accepted: " + _suite_list(weak_dh),
        {"min_dh_bits": min_dh, "suites": suites},
    )


# --------------------------------------------------------------------------- vulnerabilities


def _could_not_test_vulns(
    keys: list[str], vulns: Vulnerabilities, command_errors: dict[str, str]
) -> list[str]:
    """One "could not test" per scan command whose vulnerability keys (of ``keys``) lack a result."""
    commands = [VULN_COMMANDS[key] for key in keys if vulns.get(key) is None]
    return [_could_not_test(command, command_errors) for command in dict.fromkeys(commands)]


def _vuln_findings(
    vulns: Vulnerabilities, protocols: dict[str, ProtocolResult], command_errors: dict[str, str]
) -> tuple[list[Finding3], list[str]]:
    missing = {key for key in VULN_COMMANDS if vulns.get(key) is None}
    # Errors in the order the results are judged: the ROBOT verdict comes after the first three.
    errors = _could_not_test_vulns(["heartbleed", "ccs_injection", "robot"], vulns, command_errors)
    out: list[Finding3] = []
    if "heartbleed" not in missing and vulns.heartbleed:
        out.append(("tls.vuln.heartbleed", "server leaks memory in Heartbeat responses (CVE-2014-0160)", {}))
    if "ccs_injection" not in missing and vulns.ccs_injection:
        out.append(("tls.vuln.ccs_injection", "server accepts an early ChangeCipherSpec (CVE-2014-0224)", {}))
    if "robot" not in missing:
        robot = str(vulns.robot)
        if robot in _ROBOT_VULNERABLE:
            kind = "strong" if "STRONG" in robot else "weak"
            line = f"RSA key exchange acts as a {kind} Bleichenbacher padding oracle (ROBOT)"
            out.append(("tls.vuln.robot", line, {"robot_result": robot}))
        elif robot not in _ROBOT_NOT_VULNERABLE:
            errors.append(f"could not test: ROBOT (inconclusive result {robot})")
    errors += _could_not_test_vulns(
        ["secure_renegotiation", "client_renegotiation", "compression", "fallback_scsv"],
        vulns,
        command_errors,
    )
    if not missing & {"secure_renegotiation", "client_renegotiation"}:
        out += _renegotiation_findings(vulns)
    if "compression" not in missing and vulns.compression:
        out.append(("tls.vuln.compression", "TLS-level compression is enabled (CRIME)", {}))
    if "fallback_scsv" not in missing and not vulns.fallback_scsv:
        out += _fallback_scsv_findings(protocols)
    return out, errors


def _renegotiation_findings(vulns: Vulnerabilities) -> list[Finding3]:
    problems = []
    if not vulns.secure_renegotiation:
        problems.append("secure renegotiation (RFC 5746) not supported")
    if vulns.client_renegotiation:
        problems.append("client-initiated renegotiation accepted")
    if not problems:
        return []
    details = {
        "secure_renegotiation": bool(vulns.secure_renegotiation),
        "client_renegotiation": bool(vulns.client_renegotiation),
    }
    return [("tls.vuln.insecure_renegotiation", "; ".join(problems), details)]


def _fallback_scsv_findings(protocols: dict[str, ProtocolResult]) -> list[Finding3]:
    """No fallback SCSV only matters when a downgrade is possible: two versions accepted."""
    accepted = [k for k in PROTOCOL_ORDER if _accepted(protocols, k)]
    if len(accepted) < 2:
        return []
    older = [PROTOCOLS[k][0] for k in accepted[:-1]]
    highest = PROTOCOLS[accepted[-1]][0]
    line = (
        f"TLS_FALLBACK_SCSV not honoured while {', '.join(older)} "
        f"{'is' if len(older) == 1 else 'are'} accepted below {highest}"
    )
    return [("tls.vuln.no_fallback_scsv", line, {"older_protocols": older, "highest_protocol": highest})]


# --------------------------------------------------------------------------- certificates


def load_pem_list(pems: Iterable[str]) -> tuple[list[x509.Certificate], list[str]]:
    """Parse PEM strings; unparsable ones are reported, not fatal."""
    certs: list[x509.Certificate] = []
    problems: list[str] = []
    for i, pem in enumerate(pems):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                certs.append(x509.load_pem_x509_certificate(pem.encode("ascii")))
        except (ValueError, UnicodeError, x509.InvalidVersion) as exc:
            problems.append(f"certificate #{i} could not be parsed: {exc}")
    return certs, problems


def describe_name(name: x509.Name) -> str:
    """The CN if there is one, else the RFC 4514 string."""
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        return str(cns[0].value)
    return name.rfc4514_string() or "(empty name)"


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Does ``issuer``'s key verify ``cert``'s signature? Accepts SHA-1 and MD5 on purpose.

    ``Certificate.verify_directly_issued_by`` refuses legacy algorithms such as
    ecdsa-with-SHA1, and ``cryptography``'s path validator rejects SHA-1 outright; here we
    need to know who signed a certificate independently of whether the algorithm is weak,
    so that a SHA-1 chain is reported as tls.cert.weak_signature and not as untrusted.
    """
    if cert.issuer != issuer.subject:
        return False
    try:
        key = issuer.public_key()
        algo = cert.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey):
            pad = cert.signature_algorithm_parameters
            if pad is None:  # cryptography maps no parameters for legacy md5WithRSAEncryption
                pad = padding.PKCS1v15()
            if not isinstance(pad, padding.PSS | padding.PKCS1v15) or algo is None:
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes, pad, algo)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if algo is None:
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algo))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        elif isinstance(key, dsa.DSAPublicKey):
            if algo is None:
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes, algo)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def is_self_issued(cert: x509.Certificate) -> bool:
    """Subject equals issuer and the certificate's own key verifies its signature."""
    return cert.subject == cert.issuer and signed_by(cert, cert)


def key_description(cert: x509.Certificate) -> tuple[str, int | None]:
    """("RSA", 2048), ("EC", 256), ("DSA", 1024), ("Ed25519", 256) ..."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return type(key).__name__, None


def _dns_sans(cert: x509.Certificate) -> tuple[list[str], list[str], bool]:
    """(DNS names, IP addresses, whether a SAN extension is present)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], [], False
    dns = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    return dns, ips, True


def _match_dns(host: str, pattern: str) -> bool:
    """RFC 6125 matching: case-insensitive; a wildcard is a whole left-most label ``*`` and
    covers exactly one label (never the bare parent, never an IP address)."""
    host = host.lower().rstrip(".")
    pattern = pattern.lower().rstrip(".")
    if not pattern:
        return False
    if pattern.startswith("*."):
        suffix = pattern[2:]
        if "*" in suffix or suffix.count(".") < 1:
            return False
        head, _, rest = host.partition(".")
        return bool(head) and rest == suffix
    if "*" in pattern:
        return False
    return host == pattern


def hostname_matches(host: str, cert: x509.Certificate) -> tuple[bool, list[str]]:
    """Is ``host`` covered by the leaf's SAN (or its CN when it has no SAN extension)?

    Returns the decision and the names that were considered.
    """
    bare = host.strip("[]").lower().rstrip(".")
    dns, ips, has_san = _dns_sans(cert)
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        ip = None
    if has_san:
        if ip is not None:
            return any(ipaddress.ip_address(a) == ip for a in ips), dns + ips
        return any(_match_dns(bare, d) for d in dns), dns + ips
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if ip is not None:
        return any(c.strip() == str(ip) for c in cns), cns
    return any(_match_dns(bare, c) for c in cns), cns


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cert_summary(cert: x509.Certificate) -> dict[str, Any]:
    kind, bits = key_description(cert)
    algo = cert.signature_hash_algorithm
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
        "key": f"{kind}-{bits}" if bits else kind,
        "signature_hash": algo.name if algo else None,
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


@dataclass
class _Walk:
    """The chain rebuilt from signatures, ignoring time, names and algorithm policy."""

    kind: str  # "anchored" | "untrusted_root" | "open" | "wrong_key" | "too_long"
    path: list[x509.Certificate]
    used_extra: list[x509.Certificate] = field(default_factory=list)
    missing_issuer: x509.Name | None = None


def _same_cert(a: x509.Certificate, b: x509.Certificate) -> bool:
    return a == b or (a.subject == b.subject and a.public_key() == b.public_key())


def _walk_chain(
    leaf: x509.Certificate,
    served: list[x509.Certificate],
    anchors: list[x509.Certificate],
    extra: list[x509.Certificate],
) -> _Walk:
    """Follow issuer links from the leaf: served certificates first, then known extras.

    Stops at a trust anchor (by identity, or by an anchor's key verifying the signature),
    at a self-issued certificate that is not an anchor, or where no issuer can be found.
    """
    path = [leaf]
    used_extra: list[x509.Certificate] = []
    cur = leaf
    for _ in range(_MAX_CHAIN_DEPTH):
        if any(_same_cert(cur, a) for a in anchors):
            return _Walk("anchored", path, used_extra)
        anchor = next((a for a in anchors if signed_by(cur, a)), None)
        if anchor is not None:
            path.append(anchor)
            return _Walk("anchored", path, used_extra)
        if is_self_issued(cur):
            return _Walk("untrusted_root", path, used_extra)
        nxt = next((c for c in served if not any(c == q for q in path) and signed_by(cur, c)), None)
        if nxt is None:
            nxt = next((c for c in extra if not any(c == q for q in path) and signed_by(cur, c)), None)
            if nxt is not None:
                used_extra.append(nxt)
        if nxt is None:
            named = any(a.subject == cur.issuer for a in anchors) or any(
                c.subject == cur.issuer for c in served + extra if c != cur
            )
            return _Walk("wrong_key" if named else "open", path, used_extra, cur.issuer)
        path.append(nxt)
        cur = nxt
    return _Walk("too_long", path, used_extra)


def _clamp(t: datetime, lo: datetime, hi: datetime) -> datetime:
    return min(max(t, lo), hi)


def _validation_times(path: list[x509.Certificate], now: datetime) -> list[datetime]:
    """Times at which to run the strict validation so that the *leaf's* dates drop out.

    ``now`` when the leaf is valid now (then intermediates are checked at ``now`` too).
    Otherwise ``now`` clamped into the leaf's window, then into the window where every
    certificate of the path is valid, when there is one: an expired leaf is often served
    next to a re-issued intermediate whose validity starts after the leaf's ended.
    """
    leaf = path[0]
    nb, na = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if nb <= now <= na:
        return [now]
    times = [_clamp(now, nb, na)]
    lo = max(c.not_valid_before_utc for c in path)
    hi = min(c.not_valid_after_utc for c in path)
    if lo <= hi and _clamp(now, lo, hi) not in times:
        times.append(_clamp(now, lo, hi))
    return times


def _subject_for_validation(host: str, leaf: x509.Certificate) -> Subject | None:
    """A name the leaf really carries (the audited host when it matches): factors out a
    host-name mismatch, which is reported on its own."""
    bare = host.strip("[]").lower().rstrip(".")
    dns, ips, _ = _dns_sans(leaf)
    if hostname_matches(host, leaf)[0]:
        try:
            return x509.IPAddress(ipaddress.ip_address(bare))
        except ValueError:
            return x509.DNSName(bare)
    for d in dns:
        candidate = "wildcard-name." + d[2:] if d.startswith("*.") else d
        if "*" not in candidate:
            return x509.DNSName(candidate.lower())
    for a in ips:
        return x509.IPAddress(ipaddress.ip_address(a))
    try:
        return x509.IPAddress(ipaddress.ip_address(bare))
    except ValueError:
        return x509.DNSName(bare) if bare else None


def _strict_validate(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    anchors: list[x509.Certificate],
    *,
    host: str,
    at: datetime,
) -> str | None:
    """Web-PKI validation with ``cryptography`` at ``at`` for a name the leaf carries.
    Returns None when valid, else the validator's reason."""
    if not anchors:
        return "the trust store is empty"
    subject = _subject_for_validation(host, leaf)
    if subject is None:
        return "no name to validate the leaf for"
    try:
        verifier = PolicyBuilder().store(Store(anchors)).time(at).build_server_verifier(subject)
        verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        return str(exc.args[0] if exc.args else exc)
    except ValueError as exc:
        return f"validation impossible: {exc}"
    return None


def _issuer_dates_problem(path: list[x509.Certificate], now: datetime) -> str | None:
    """The first certificate above the leaf that is not valid *now*, as a reason, or None."""
    for cert in path[1:]:
        if cert.not_valid_after_utc < now:
            return f"'{describe_name(cert.subject)}' expired on {_iso(cert.not_valid_after_utc)}"
        if cert.not_valid_before_utc > now:
            return f"'{describe_name(cert.subject)}' is not valid before {_iso(cert.not_valid_before_utc)}"
    return None


def _strict_problem(
    path: list[x509.Certificate],
    intermediates: list[x509.Certificate],
    anchors: list[x509.Certificate],
    *,
    host: str,
    now: datetime,
) -> str | None:
    """Why the rebuilt chain fails strict validation once the leaf's own dates and name are
    set aside, or None. Call it once :func:`_issuer_dates_problem` found nothing."""
    leaf = path[0]
    reason: str | None = None
    for at in _validation_times(path, now):
        reason = _strict_validate(leaf, intermediates, anchors, host=host, at=at)
        if reason is None:
            return None
    leaf_dated_out = not (leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc)
    if reason and leaf_dated_out and "not valid at validation time" in reason:
        # The leaf's window and its issuers' windows do not overlap, so no single validation
        # time isolates the leaf's dates; the issuers were checked against ``now`` above and
        # the leaf's dates are reported on their own.
        return None
    return reason


def _weak_key(cert: x509.Certificate, p: dict[str, Any]) -> str | None:
    kind, bits = key_description(cert)
    if bits is None:
        return None
    if kind in ("RSA", "DSA") and bits < int(p["tls.min_rsa_bits"]):
        return f"{kind} {bits} bits (minimum {int(p['tls.min_rsa_bits'])})"
    if kind == "EC" and bits < int(p["tls.min_ec_bits"]):
        return f"EC {bits} bits (minimum {int(p['tls.min_ec_bits'])})"
    return None


def _weak_signature(cert: x509.Certificate) -> str | None:
    try:
        algo = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if isinstance(algo, _WEAK_HASHES):
        return algo.name.upper().replace("SHA1", "SHA-1")
    return None


def _certificate_findings(
    block: CertificateEvidence, *, host: str, params: dict[str, Any], now: datetime
) -> tuple[list[Finding3], list[str]]:
    deployments = block.deployments
    if block.no_certificate and not deployments:
        line = "the server presented no certificate (anonymous cipher suites only)"
        return [("tls.cert.untrusted", line, {"reason": "no certificate"})], []
    if not deployments:
        return [], ["could not test: certificate (no certificate chain was retrieved)"]

    anchors, extra, errors = _known_certificates(block)
    store_name = block.trust_store.name or "trust store"
    findings: list[Finding3] = []
    for dep in deployments:
        chain, problems = load_pem_list(dep.chain_pem)
        if problems or not chain:
            errors.append("could not analyse a certificate chain: " + ("; ".join(problems) or "empty chain"))
            continue
        try:
            findings += _deployment_findings(
                chain, anchors=anchors, extra=extra, store_name=store_name, host=host, p=params, now=now
            )
        except _UNREADABLE_CERT as exc:
            # Parsing is lazy: a key type, algorithm or extension cryptography cannot read
            # only fails when it is used. That chain is untested; the rest still counts.
            errors.append(f"could not analyse a certificate chain: {type(exc).__name__}: {exc}")
    return findings, errors


def _known_certificates(
    block: CertificateEvidence,
) -> tuple[list[x509.Certificate], list[x509.Certificate], list[str]]:
    """The store's anchors, every known intermediate, and what could not be parsed.

    Known intermediates are the store's own and those of other chains the same server sent
    (another key type, or without SNI): they may carry the intermediate a deployment omits,
    which is knowledge of the server, not a guess.
    """
    anchors, anchor_problems = load_pem_list(block.trust_store.anchors_pem)
    extra, extra_problems = load_pem_list(block.trust_store.intermediates_pem)
    errors = [f"trust store: {m}" for m in anchor_problems + extra_problems]
    others = [d.chain_pem for d in block.deployments] + [block.sni_disabled_chain_pem or ()]
    for other in others:
        certs, _ = load_pem_list(other[1:])
        extra += [c for c in certs if not any(c == e for e in extra)]
    return anchors, extra, errors


def _deployment_findings(
    chain: list[x509.Certificate],
    *,
    anchors: list[x509.Certificate],
    extra: list[x509.Certificate],
    store_name: str,
    host: str,
    p: dict[str, Any],
    now: datetime,
) -> list[Finding3]:
    leaf, served = chain[0], chain[1:]
    out = _date_findings(leaf, p, now) + _hostname_findings(leaf, host)
    # Keys and signatures of what the server sends (not a self-signed root's own signature).
    checked = [leaf] + [c for c in served if not is_self_issued(c)]
    weak_keys = [(c, why) for c in checked if (why := _weak_key(c, p))]
    if weak_keys:
        line = "; ".join(f"{describe_name(c.subject)}: {why}" for c, why in weak_keys)
        out.append(("tls.cert.weak_key", line, {"certificates": [cert_summary(c) for c, _ in weak_keys]}))
    weak_sigs = [(c, algo) for c in checked if not is_self_issued(c) and (algo := _weak_signature(c))]
    if weak_sigs:
        line = "; ".join(f"{describe_name(c.subject)} signed with {algo}" for c, algo in weak_sigs)
        out.append(
            ("tls.cert.weak_signature", line, {"certificates": [cert_summary(c) for c, _ in weak_sigs]})
        )
    trust = _TrustQuestion(
        leaf=leaf,
        served=served,
        anchors=anchors,
        extra=extra,
        store_name=store_name,
        host=host,
        now=now,
        weak=frozenset(c.fingerprint(hashes.SHA256()) for c, _ in weak_keys + weak_sigs),
    )
    return out + _trust_findings(trust)


def _date_findings(leaf: x509.Certificate, p: dict[str, Any], now: datetime) -> list[Finding3]:
    """Expired, expiring within the warning window, or not yet valid: the leaf's dates."""
    out: list[Finding3] = []
    leaf_name = describe_name(leaf.subject)
    leaf_info = cert_summary(leaf)
    nb, na = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    window = int(p["tls.cert_expiry_warning_days"])
    if na < now:
        ago = _plural((now - na).days, "day")
        line = f"certificate for {leaf_name} expired on {_iso(na)} ({ago} ago)"
        out.append(("tls.cert.expired", line, {"leaf": leaf_info}))
    elif na - now <= timedelta(days=window):
        left = na - now
        line = f"certificate for {leaf_name} expires on {_iso(na)} (in {left.days} days; warning window {window} days)"
        out.append(
            ("tls.cert.expiring_soon", line, {"leaf": leaf_info, "seconds_left": int(left.total_seconds())})
        )
    if nb > now:
        line = f"certificate for {leaf_name} is not valid before {_iso(nb)}"
        out.append(("tls.cert.not_yet_valid", line, {"leaf": leaf_info}))
    return out


def _hostname_findings(leaf: x509.Certificate, host: str) -> list[Finding3]:
    matched, names = hostname_matches(host, leaf)
    if matched:
        return []
    shown = ", ".join(names[:_MAX_LISTED]) or "no names"
    line = f"{host} is not among the certificate's names ({shown})"
    return [("tls.cert.hostname_mismatch", line, {"host": host, "names": names})]


# --------------------------------------------------------------------------- trust


@dataclass(frozen=True)
class _TrustQuestion:
    """Everything needed to decide whether one served chain is trusted, and if not, why."""

    leaf: x509.Certificate
    served: list[x509.Certificate]
    anchors: list[x509.Certificate]
    extra: list[x509.Certificate]
    store_name: str
    host: str
    now: datetime
    weak: frozenset[bytes]  # SHA-256 fingerprints of certificates already reported as weak


def _trust_findings(q: _TrustQuestion) -> list[Finding3]:
    """Attribute a chain that does not validate to exactly one cause.

    Rules, in order:

    1. Rebuild the chain by signatures (:func:`_walk_chain`) from what the server sent, then
       from *known* intermediates (non-root certificates of the CA file, and certificates the
       same server sends in its other deployments). No AIA fetching: no network.
    2. The leaf is self-issued and not itself in the store -> ``tls.cert.self_signed``
       (instead of untrusted). A leaf that *is* in the store is trusted directly (pinned).
    3. The chain reaches an anchor with served certificates only -> an issuer (intermediate
       or anchor) outside its dates now is ``tls.cert.untrusted``. Otherwise strict validation
       at a time inside the leaf's window and for a name the leaf carries; it is skipped when
       a weak signature/key already reported is in the path (its verdict would repeat that).
       Valid: nothing. Invalid: ``tls.cert.untrusted`` with the validator's reason (e.g.
       missing extensions, a CA certificate without CA rights).
    4. The chain reaches an anchor only with a known intermediate the server omitted ->
       ``tls.cert.incomplete_chain`` (plus untrusted only if the completed chain is still
       invalid for another reason).
    5. The chain ends at a self-signed root that is not in the store -> untrusted.
    6. The issuer of the last certificate is nowhere (not sent, not in the store, not
       known): if the server sent *only the leaf* (nothing usable above it), the omission is
       the observable fault -> ``tls.cert.incomplete_chain``, flagged
       ``anchor_verified: false`` (public and private CAs issue server certificates from
       intermediates, so a lone leaf almost always means a missing intermediate; whether that
       intermediate leads to the store cannot be checked offline). If the server did send
       intermediates and the top one's issuer is unknown, the missing certificate is a root
       (servers rightly omit roots), so the root is not in the store -> untrusted.
    7. An issuer *name* is present but its key does not verify the signature -> untrusted.
    """
    walk = _walk_chain(q.leaf, q.served, q.anchors, q.extra)
    details: dict[str, Any] = {
        "trust_store": q.store_name,
        "path": [describe_name(c.subject) for c in walk.path],
    }
    if walk.kind == "anchored":
        return _anchored_findings(q, walk, details)
    if is_self_issued(q.leaf):
        line = f"certificate for {describe_name(q.leaf.subject)} is self-signed and not in the {q.store_name}"
        return [("tls.cert.self_signed", line, {**details, "leaf": cert_summary(q.leaf)})]
    return _unanchored_findings(q, walk, details)


def _anchored_findings(q: _TrustQuestion, walk: _Walk, details: dict[str, Any]) -> list[Finding3]:
    """Rules 3 and 4: the chain reaches an anchor, perhaps through an omitted intermediate."""
    if len(walk.path) == 1:
        # The leaf itself is in the store (a pinned certificate): trusted directly, as
        # OpenSSL and browsers do; web-PKI extension rules are for chains, not pins.
        return []
    # An issuer outside its dates is a cause of its own. The strict validator refuses weak
    # signatures and keys too, so with a weak certificate in the path its verdict would only
    # repeat tls.cert.weak_key / weak_signature: it is not asked then.
    reason = _issuer_dates_problem(walk.path, q.now)
    if reason is None and not any(c.fingerprint(hashes.SHA256()) in q.weak for c in walk.path):
        reason = _strict_problem(walk.path, q.served + walk.used_extra, q.anchors, host=q.host, now=q.now)
    out: list[Finding3] = []
    if walk.used_extra:
        missing = [describe_name(c.subject) for c in walk.used_extra]
        line = (
            f"the server does not send intermediate certificate {', '.join(missing)} needed to "
            f"reach the {q.store_name}"
        )
        out.append(
            ("tls.cert.incomplete_chain", line, {**details, "missing": missing, "anchor_verified": True})
        )
    if reason is not None:
        line = (
            f"chain of {describe_name(q.leaf.subject)} does not validate against the {q.store_name}: {reason}"
        )
        out.append(("tls.cert.untrusted", line, {**details, "reason": reason}))
    return out


def _unanchored_findings(q: _TrustQuestion, walk: _Walk, details: dict[str, Any]) -> list[Finding3]:
    """Rules 5 to 7: the chain reaches no anchor, and the leaf is not self-issued."""
    leaf_name = describe_name(q.leaf.subject)
    if walk.kind == "untrusted_root":
        root = walk.path[-1]
        line = (
            f"chain of {leaf_name} ends at root '{describe_name(root.subject)}', which is not in the "
            f"{q.store_name}"
        )
        return [
            ("tls.cert.untrusted", line, {**details, "reason": "unknown root", "root": cert_summary(root)})
        ]
    if walk.kind == "open" and len(walk.path) == 1:
        issuer = describe_name(q.leaf.issuer)
        line = (
            f"the server sends only the leaf; its issuer '{issuer}' is neither sent nor in the "
            f"{q.store_name} (missing intermediate; not fetched: no AIA retrieval)"
        )
        return [
            ("tls.cert.incomplete_chain", line, {**details, "missing": [issuer], "anchor_verified": False})
        ]
    reason = _broken_chain_reason(walk, q.store_name)
    line = f"chain of {leaf_name} does not validate against the {q.store_name}: {reason}"
    return [("tls.cert.untrusted", line, {**details, "reason": reason})]


def _broken_chain_reason(walk: _Walk, store_name: str) -> str:
    last = walk.path[-1]
    if walk.kind == "open":
        return (
            f"'{describe_name(last.subject)}' is issued by '{describe_name(last.issuer)}', which is neither "
            f"sent nor in the {store_name}"
        )
    if walk.kind == "wrong_key":
        return (
            f"'{describe_name(last.subject)}' names issuer '{describe_name(last.issuer)}' but no certificate "
            "of that name verifies its signature"
        )
    return "certificate chain too long or looping"
