"""The ``tls`` check: protocols, cipher suites, certificate and known TLS vulnerabilities.

Collection and analysis are split:

- :func:`collect` runs sslyze (the library) against the pinned address and returns a
  normalised, JSON-able evidence dict of our own shape (see :mod:`checks.tls.analysis`);
- :func:`checks.tls.analysis.analyse` derives the findings from that dict alone.

:class:`TLSCheck` glues the two. Everything sslyze could not test is reported as a check
error ("could not test: heartbleed (...)"), never as a pass or a finding.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import queue
import socket
import ssl
import threading
import time
import warnings
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from auditor.catalogue import catalogue_of
from auditor.check import Check, CheckContext, CheckOutcome
from checks.tls.analysis import (
    DEFAULT_PARAMS,
    PROTOCOLS,
    SCHEMA,
    analyse,
    is_self_issued,
)

if TYPE_CHECKING:
    from auditor.targets import Target

__all__ = ["TLSCheck", "analyse", "collect"]

# sslyze parses its bundled Mozilla store in a worker thread on first use; two roots there
# have non-positive serial numbers, which makes cryptography warn on every process start.
warnings.filterwarnings(
    "ignore", message="Parsed a serial number which wasn't positive", category=CryptographyDeprecationWarning
)

_CA_FILE_MAX_BYTES = 20 * 1024 * 1024
_DEADLINE_MARGIN_S = 0.3
_PER_SERVER_CONNECTIONS = 5
_NETWORK_RETRIES = 2

# --------------------------------------------------------------------------- catalogue

CATALOGUE = catalogue_of("checks.tls")  # findings.yaml beside this file


# --------------------------------------------------------------------------- the check


class TLSCheck(Check):
    """sslyze-based audit of the HTTPS port."""

    id = "tls"
    title = "TLS configuration and certificate"
    description = (
        "Scans the HTTPS port with sslyze: SSL/TLS versions and cipher suites, key exchange "
        "strength, the certificate chain (validity dates, host name, trust, completeness, key "
        "and signature strength) and known TLS vulnerabilities (Heartbleed, CCS injection, "
        "ROBOT, insecure renegotiation, compression, missing fallback SCSV)."
    )
    catalogue = CATALOGUE
    parameters = dict(DEFAULT_PARAMS)

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        try:
            evidence = collect(target, ctx)
        except Exception as exc:  # sslyze bug or unexpected environment: a check error, not a crash
            return CheckOutcome.failed(f"TLS scan failed: {type(exc).__name__}: {exc}")
        params = {name: ctx.param(name, default) for name, default in self.parameters.items()}
        found, errors = analyse(evidence, host=target.host, params=params, now=datetime.now(UTC))
        findings = [self.finding(fid, line, url=target.url, **details) for fid, line, details in found]
        return CheckOutcome(findings=findings, evidence=evidence, error="; ".join(errors) or None)


# --------------------------------------------------------------------------- collection


def collect(target: Target, ctx: CheckContext) -> dict[str, Any]:
    """Run sslyze against ``target.address`` and return normalised, JSON-able evidence.

    A raw-socket :func:`preprobe` comes first: a refused port, or one that answers a
    ClientHello in plain text, is settled without sslyze (its TLS probing can otherwise
    spend a network timeout per protocol version on a line-oriented plain-text server).

    One :class:`sslyze.Scanner` carries two scan requests for the same server: everything
    but ROBOT, and ROBOT alone. They run side by side, and because sslyze only hands back a
    request's results when all of its commands are done, the split lets a ROBOT test that
    overruns the site deadline cost only the ROBOT result. When ``ctx.deadline`` passes, the
    evidence holds what finished and an error for every command that did not. (sslyze
    cannot be cancelled: its daemon worker threads finish their current handshakes, each
    bounded by the network timeout, in the background.)
    """
    from sslyze import (
        CertificateInfoExtraArgument,
        ScanCommand,
        ScanCommandsExtraArguments,
        Scanner,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
    )
    from sslyze.__version__ import __version__ as sslyze_version

    started = time.monotonic()
    bare_host = target.host.strip("[]")
    sni = bare_host
    evidence: dict[str, Any] = {
        "schema": SCHEMA,
        "scanner": {"name": "sslyze", "version": sslyze_version},
        "target": {"host": target.host, "port": target.port, "address": target.address, "sni": sni},
        "started_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "connectivity": {"status": "unknown", "error": None, "highest_protocol": None},
        "protocols": {},
        "certificate": None,
        "vulnerabilities": {},
        "errors": {},
        "timings": {},
    }
    errors: dict[str, str] = evidence["errors"]

    # A cheap first look: one ClientHello over a raw socket. A port that answers in plain
    # text (an HTTP server on the HTTPS port) or refuses TCP needs no sslyze run, whose
    # probes can each wait a full network timeout on a server that waits for a newline.
    pre = preprobe(target.address, target.port, sni, timeout=min(ctx.bounded_timeout(), 4.0))
    evidence["preprobe"] = pre
    conn = evidence["connectivity"]
    if pre["result"] == "plaintext":
        conn["status"] = "no_tls"
        conn["error"] = f"the port answered in plain text: {pre['first_line']!r}"
    elif pre["result"] == "unreachable":
        conn["status"] = "unreachable"
        conn["error"] = pre["error"]
    if conn["status"] != "unknown":
        evidence["timings"]["total_s"] = round(time.monotonic() - started, 3)
        return evidence

    main_commands = {
        ScanCommand.SSL_2_0_CIPHER_SUITES,
        ScanCommand.SSL_3_0_CIPHER_SUITES,
        ScanCommand.TLS_1_0_CIPHER_SUITES,
        ScanCommand.TLS_1_1_CIPHER_SUITES,
        ScanCommand.TLS_1_2_CIPHER_SUITES,
        ScanCommand.TLS_1_3_CIPHER_SUITES,
        ScanCommand.HEARTBLEED,
        ScanCommand.OPENSSL_CCS_INJECTION,
        ScanCommand.SESSION_RENEGOTIATION,
        ScanCommand.TLS_COMPRESSION,
        ScanCommand.TLS_FALLBACK_SCSV,
    }
    custom_store: _Store | None = None
    extra_args = ScanCommandsExtraArguments()
    if ctx.ca_file:
        try:
            custom_store = _load_ca_file(Path(ctx.ca_file))
        except (OSError, ValueError) as exc:
            errors["certificate_info"] = f"cannot use CA file {ctx.ca_file}: {exc}"
    if not (ctx.ca_file and custom_store is None):
        main_commands.add(ScanCommand.CERTIFICATE_INFO)
        if custom_store is not None:
            extra_args = ScanCommandsExtraArguments(
                certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(str(ctx.ca_file)))
            )

    location = ServerNetworkLocation(hostname=bare_host, port=target.port, ip_address=target.address)
    network = ServerNetworkConfiguration(
        tls_server_name_indication=sni,
        network_timeout=max(1, math.ceil(ctx.bounded_timeout())),
        network_max_retries=_NETWORK_RETRIES,
    )
    main_request = ServerScanRequest(
        server_location=location,
        network_configuration=network,
        scan_commands=main_commands,
        scan_commands_extra_arguments=extra_args,
    )
    robot_request = ServerScanRequest(
        server_location=location, network_configuration=network, scan_commands={ScanCommand.ROBOT}
    )
    requests = {main_request.uuid: main_request, robot_request.uuid: robot_request}

    observer = _ConnectivityObserver(started)
    scanner = Scanner(
        per_server_concurrent_connections_limit=_PER_SERVER_CONNECTIONS,
        concurrent_server_scans_limit=len(requests),
        observers=[observer],
    )
    scanner.queue_scans(list(requests.values()))
    labels = {main_request.uuid: "scan_s", robot_request.uuid: "robot_s"}
    results, failure = _wait_for_results(scanner, labels, ctx, started, evidence["timings"])
    if failure:
        errors["scan"] = failure

    # Connectivity, from the main request (the observer sees it even if the scan overran).
    conn_error = observer.errors.get(main_request.uuid)
    probe = observer.probes.get(main_request.uuid)
    if conn_error is not None:
        conn["status"], conn["error"] = _classify_connectivity_error(conn_error)
        conn["error_type"] = type(conn_error).__name__
    elif probe is not None:
        conn["status"] = "ok"
        conn["highest_protocol"] = _tls_version_label(probe.highest_tls_version_supported.name)
        conn["probe_cipher_suite"] = probe.cipher_suite_supported
        conn["client_auth"] = probe.client_auth_requirement.value
    else:
        conn["status"] = "unknown"
        conn["error"] = failure or "the TLS probe did not finish before the site deadline"
    evidence["timings"]["connectivity_s"] = observer.connectivity_s.get(main_request.uuid)

    if conn["status"] == "ok":
        for uuid, request in requests.items():
            result = results.get(uuid)
            for command in request.scan_commands:
                if result is None:
                    errors.setdefault(command.value, failure or "the site deadline was reached first")
                    continue
                if result.scan_result is None:
                    reason = observer.errors.get(uuid)
                    errors.setdefault(command.value, f"no connectivity: {reason}" if reason else "no result")
                    continue
                attempt = getattr(result.scan_result, command.value)
                _record_attempt(evidence, command.value, attempt, custom_store)

    evidence["timings"]["total_s"] = round(time.monotonic() - started, 3)
    return evidence


def preprobe(address: str, port: int, sni: str, *, timeout: float) -> dict[str, Any]:
    """Send one TLS ClientHello and classify the first bytes that come back.

    Results: "tls" (a TLS or SSL 2.0 record), "plaintext" (anything else: the port speaks
    another protocol), "closed" (connection closed without a byte), "silent" (nothing within
    the timeout, even after a CRLF nudge), "unreachable" (TCP connect refused / timed out).
    Only "plaintext" and "unreachable" are conclusive; the rest is left to sslyze.
    """
    started = time.monotonic()
    out: dict[str, Any] = {"result": "silent", "first_line": None, "error": None}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = ctx.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname=_sni_or_none(sni))
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except TimeoutError:
        out.update(result="unreachable", error="connection timed out")
        return out
    except ConnectionRefusedError:
        out.update(result="unreachable", error="connection refused")
        return out
    except OSError as exc:
        out.update(result="unreachable", error=exc.strerror or str(exc))
        return out
    data = b""
    answered = False
    try:
        with sock:
            sock.sendall(hello)
            # A TLS server answers a ClientHello at once; a line-oriented plain-text server may
            # wait for an end of line, so give it one if nothing came back within a second.
            for nudge in (b"\r\n\r\n", None):
                wait = min(1.0, timeout) if nudge else timeout - (time.monotonic() - started)
                sock.settimeout(max(0.1, wait))
                try:
                    data = sock.recv(256)
                    answered = True
                    break
                except TimeoutError:
                    if nudge is None:
                        break
                    sock.sendall(nudge)
    except OSError as exc:  # reset while talking: inconclusive, sslyze decides
        out.update(result="closed", error=exc.strerror or str(exc))
        return out
    out["elapsed_s"] = round(time.monotonic() - started, 3)
    if not data:
        out["result"] = "closed" if answered else "silent"
        return out
    first = data[0]
    if 0x14 <= first <= 0x18 or first & 0x80:
        out["result"] = "tls"
    else:
        out["result"] = "plaintext"
        line = data.split(b"\n", 1)[0].decode("latin-1")
        out["first_line"] = "".join(ch if ch.isprintable() else "?" for ch in line.strip())[:80]
    return out


def _sni_or_none(name: str) -> str | None:
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        return name or None


class _ConnectivityObserver:
    """Records sslyze's connectivity outcome per request (the exception object itself, which
    tells a refused port from a port that speaks no TLS)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.errors: dict[Any, Exception] = {}
        self.probes: dict[Any, Any] = {}
        self.connectivity_s: dict[Any, float] = {}

    def server_connectivity_test_error(self, server_scan_request: Any, connectivity_error: Exception) -> None:
        self.errors[server_scan_request.uuid] = connectivity_error
        self.connectivity_s[server_scan_request.uuid] = round(time.monotonic() - self.started, 3)

    def server_connectivity_test_completed(self, server_scan_request: Any, connectivity_result: Any) -> None:
        self.probes[server_scan_request.uuid] = connectivity_result
        self.connectivity_s[server_scan_request.uuid] = round(time.monotonic() - self.started, 3)

    def server_scan_completed(self, server_scan_result: Any) -> None:
        pass

    def all_server_scans_completed(self) -> None:
        pass


_DONE = object()


def _wait_for_results(
    scanner: Any, labels: dict[Any, str], ctx: CheckContext, started: float, timings: dict[str, Any]
) -> tuple[dict[Any, Any], str | None]:
    """Drain ``scanner.get_results()`` from a daemon thread until done or the deadline."""
    q: queue.Queue[Any] = queue.Queue()

    def pump() -> None:
        try:
            for result in scanner.get_results():
                q.put(result)
        except Exception as exc:  # surfaced to the caller as a check error
            q.put(exc)
        finally:
            q.put(_DONE)

    threading.Thread(target=pump, name="tls-sslyze", daemon=True).start()
    results: dict[Any, Any] = {}
    while len(results) < len(labels):
        remaining = ctx.remaining() - _DEADLINE_MARGIN_S
        if remaining <= 0:
            return (
                results,
                f"site deadline reached after {time.monotonic() - started:.1f} s; TLS scan incomplete",
            )
        try:
            item = q.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        if item is _DONE:
            break
        if isinstance(item, Exception):
            return results, f"sslyze failed: {type(item).__name__}: {item}"
        results[item.uuid] = item
        timings[labels.get(item.uuid, str(item.uuid))] = round(time.monotonic() - started, 3)
    return results, None


def _classify_connectivity_error(exc: Exception) -> tuple[str, str]:
    """("unreachable" | "no_tls" | "sslv2_only" | "probe_error", human text)."""
    from sslyze.errors import (
        ConnectionToServerTimedOut,
        ServerRejectedConnection,
        TlsHandshakeFailed,
    )

    message = str(getattr(exc, "error_message", "") or exc)
    if isinstance(exc, ServerRejectedConnection):
        return "unreachable", "connection refused"
    if isinstance(exc, ConnectionToServerTimedOut):
        return "unreachable", "connection timed out"
    if isinstance(exc, TlsHandshakeFailed):
        if "SSL 2.0" in message:
            return "sslv2_only", message
        return "no_tls", message
    if message.startswith("Unexpected connection error"):
        return "probe_error", message
    return "unreachable", message


def _tls_version_label(enum_name: str) -> str:
    # TlsVersionEnum names: SSL_2_0 ... TLS_1_3
    proto, major, minor = enum_name.split("_")
    return f"{proto} {major}.{minor}"


def _attempt_error(attempt: Any) -> str:
    reason = attempt.error_reason.value.lower().replace("_", " ") if attempt.error_reason else "error"
    trace = attempt.error_trace
    detail = ""
    if trace is not None:
        lines = "".join(trace.format_exception_only()).strip().splitlines()
        detail = lines[-1] if lines else ""
        # "sslyze.errors.ServerRejectedTlsHandshake: ..." -> "ServerRejectedTlsHandshake: ..."
        head, sep, tail = detail.partition(":")
        detail = head.rsplit(".", 1)[-1] + sep + tail
    return f"{reason}: {detail}" if detail else reason


_PROTOCOL_BY_COMMAND = {command: key for key, (_, _, command) in PROTOCOLS.items()}


def _record_attempt(
    evidence: dict[str, Any], command: str, attempt: Any, custom_store: _Store | None
) -> None:
    """Copy one scan-command attempt into the evidence in our own shape."""
    status = getattr(attempt.status, "value", str(attempt.status))
    if status == "NOT_SCHEDULED":
        return
    if status != "COMPLETED" or attempt.result is None:
        evidence["errors"][command] = _attempt_error(attempt)
        return
    result = attempt.result
    vulns = evidence["vulnerabilities"]
    if command in _PROTOCOL_BY_COMMAND:
        evidence["protocols"][_PROTOCOL_BY_COMMAND[command]] = {
            "accepted": [_suite(a) for a in result.accepted_cipher_suites],
            "rejected_count": len(result.rejected_cipher_suites),
        }
    elif command == "certificate_info":
        evidence["certificate"] = _certificate_evidence(result, custom_store)
    elif command == "heartbleed":
        vulns["heartbleed"] = bool(result.is_vulnerable_to_heartbleed)
    elif command == "openssl_ccs_injection":
        vulns["ccs_injection"] = bool(result.is_vulnerable_to_ccs_injection)
    elif command == "robot":
        vulns["robot"] = result.robot_result.name
    elif command == "session_renegotiation":
        vulns["secure_renegotiation"] = bool(result.supports_secure_renegotiation)
        vulns["client_renegotiation"] = bool(result.is_vulnerable_to_client_renegotiation_dos)
        vulns["client_renegotiation_count"] = int(result.client_renegotiations_success_count)
    elif command == "tls_compression":
        vulns["compression"] = bool(result.supports_compression)
    elif command == "tls_fallback_scsv":
        vulns["fallback_scsv"] = bool(result.supports_fallback_scsv)


def _suite(accepted: Any) -> dict[str, Any]:
    suite = accepted.cipher_suite
    key = accepted.ephemeral_key
    kx = None
    if key is not None:
        kx = {"type": key.type_name, "size": int(key.size), "curve": getattr(key, "curve_name", None)}
    return {
        "name": suite.name,
        "openssl_name": suite.openssl_name,
        "key_size": int(suite.key_size),
        "anonymous": bool(suite.is_anonymous),
        "kx": kx,
    }


# --------------------------------------------------------------------------- trust stores


class _Store:
    """A trust store split into anchors (self-issued roots) and known intermediates."""

    def __init__(
        self, name: str, path: str, version: str, certs: list[x509.Certificate], custom: bool
    ) -> None:
        self.name = name
        self.path = path
        self.version = version
        self.custom = custom
        roots = [c for c in certs if is_self_issued(c)]
        if custom and roots:
            # A CA file is meant to hold roots; any other CA certificate in it is treated as
            # a known intermediate (like a browser's intermediate cache), not as an anchor, so
            # that a server omitting that intermediate is still reported as incomplete.
            self.anchors = roots
            self.intermediates = [c for c in certs if not is_self_issued(c)]
        else:
            self.anchors = list(certs)
            self.intermediates = []


def _load_ca_file(path: Path) -> _Store:
    size = path.stat().st_size
    if size > _CA_FILE_MAX_BYTES:
        raise ValueError(f"larger than {_CA_FILE_MAX_BYTES // (1024 * 1024)} MB")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    if not certs:
        raise ValueError("no PEM certificate in it")
    return _Store(f"CA file {path.name}", str(path), "n/a", certs, custom=True)


@lru_cache(maxsize=1)
def _mozilla_store() -> _Store:
    from sslyze.plugins.certificate_info.trust_stores.trust_store_repository import TrustStoresRepository

    store = TrustStoresRepository.get_default().get_main_store()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few Mozilla roots have non-positive serials
        certs = x509.load_pem_x509_certificates(Path(store.path).read_bytes())
    return _Store(f"{store.name} trust store", str(store.path), str(store.version), certs, custom=False)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def _relevant(
    store: _Store, chains: list[list[x509.Certificate]]
) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """The store's anchors and intermediates that could issue something in ``chains``.

    Only those go into the evidence: path building only ever uses a certificate whose
    subject is some certificate's issuer, so the analysis gives the same answer as with the
    whole store, and the evidence stays small and self-contained.
    """
    needed = {c.issuer for chain in chains for c in chain}
    intermediates: list[x509.Certificate] = []
    changed = True
    while changed:
        changed = False
        for c in store.intermediates:
            if c.subject in needed and c not in intermediates:
                intermediates.append(c)
                needed.add(c.issuer)
                changed = True
    anchors = [a for a in store.anchors if a.subject in needed]
    return anchors, intermediates


def _certificate_evidence(result: Any, custom_store: _Store | None) -> dict[str, Any]:
    deployments = []
    chains: list[list[x509.Certificate]] = []
    for dep in result.certificate_deployments:
        chains.append(list(dep.received_certificate_chain))
        deployments.append(
            {
                "chain_pem": list(dep.received_certificate_chain_as_pem),
                "received_chain_has_valid_order": dep.received_chain_has_valid_order,
                "sslyze_path_validation": [
                    {
                        "trust_store": pv.trust_store.name,
                        "version": str(pv.trust_store.version),
                        "ok": bool(pv.was_validation_successful),
                        "error": pv.validation_error,
                    }
                    for pv in dep.path_validation_results
                ],
            }
        )
    sni_disabled = result.certificate_deployment_with_sni_disabled
    sni_disabled_pem = list(sni_disabled.received_certificate_chain_as_pem) if sni_disabled else None
    if sni_disabled is not None:
        chains.append(list(sni_disabled.received_certificate_chain))
    store = custom_store or _mozilla_store()
    anchors, intermediates = _relevant(store, chains)
    return {
        "sni_hostname": result.hostname_used_for_server_name_indication,
        "trust_store": {
            "name": store.name,
            "custom": store.custom,
            "path": store.path,
            "version": store.version,
            "anchors_pem": [_pem(c) for c in anchors],
            "intermediates_pem": [_pem(c) for c in intermediates],
        },
        "deployments": deployments,
        "sni_disabled_chain_pem": sni_disabled_pem,
        "no_certificate": not deployments,
    }
