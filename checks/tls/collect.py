"""Collection for the tls check: sslyze against the pinned address, into :class:`TLSEvidence`.

Nothing here judges anything: :func:`collect` records what the server did, in our own shape
(:mod:`checks.tls.evidence`), and :func:`checks.tls.analysis.analyse` derives the findings
from that alone. Everything sslyze could not test is recorded as an error for its scan
command, so the analysis can say "could not test: ..." instead of passing it.
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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.utils import CryptographyDeprecationWarning

from checks.tls.analysis import PROTOCOLS
from checks.tls.evidence import (
    CertificateEvidence,
    CipherSuite,
    Connectivity,
    Deployment,
    KeyExchange,
    PathValidation,
    Preprobe,
    ProtocolResult,
    Target,
    TLSEvidence,
    Vulnerabilities,
)
from checks.tls.trust import Store, load_ca_file, mozilla_store, store_evidence

if TYPE_CHECKING:
    from auditor.check import CheckContext
    from auditor.targets import Target as AuditTarget

__all__ = ["collect", "preprobe"]

# sslyze parses its bundled Mozilla store in a worker thread on first use; two roots there
# have non-positive serial numbers, which makes cryptography warn on every process start.
warnings.filterwarnings(
    "ignore", message="Parsed a serial number which wasn't positive", category=CryptographyDeprecationWarning
)

_DEADLINE_MARGIN_S = 0.3
_PER_SERVER_CONNECTIONS = 5
_NETWORK_RETRIES = 2
# The time bound of one TLS check, in per-operation timeouts T (``--timeout``): the preprobe
# takes at most 2 T (two ClientHellos, each answered within T), sslyze at most
# SSLYZE_BUDGET_FACTOR T after it; whatever sslyze has not finished by then is "could not
# test". The whole check: at most (2 + SSLYZE_BUDGET_FACTOR) T + about a second.
SSLYZE_BUDGET_FACTOR = 6.0

_MAIN_COMMANDS = (
    "ssl_2_0_cipher_suites",
    "ssl_3_0_cipher_suites",
    "tls_1_0_cipher_suites",
    "tls_1_1_cipher_suites",
    "tls_1_2_cipher_suites",
    "tls_1_3_cipher_suites",
    "heartbleed",
    "openssl_ccs_injection",
    "session_renegotiation",
    "tls_compression",
    "tls_fallback_scsv",
)
_PROTOCOL_BY_COMMAND = {command: key for key, (_, _, command) in PROTOCOLS.items()}


# --------------------------------------------------------------------------- entry point


def collect(target: AuditTarget, ctx: CheckContext) -> TLSEvidence:
    """Run sslyze against ``target.address`` and return what it observed.

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
    from sslyze.__version__ import __version__ as sslyze_version

    started = time.monotonic()
    sni = target.host.strip("[]")
    base = TLSEvidence(
        scanner={"name": "sslyze", "version": sslyze_version},
        target=Target(host=target.host, port=target.port, address=target.address, sni=sni),
        started_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    )
    timeout = ctx.bounded_timeout()
    pre = preprobe(target.address, target.port, sni, timeout=timeout)
    if pre.result == "silent" and ctx.remaining() > 1.0:  # a hang on one hello's size: try another
        pre = preprobe(target.address, target.port, sni, timeout=ctx.bounded_timeout(), legacy=True)
    settled = _settled_by_preprobe(pre, timeout)
    if settled is not None:
        return replace(base, preprobe=pre, connectivity=settled, timings={"total_s": _since(started)})

    store, store_error = _custom_store(ctx.ca_file)
    budget = SSLYZE_BUDGET_FACTOR * ctx.bounded_timeout()
    scan_ctx = ctx.with_deadline(time.monotonic() + budget)
    bound = "site deadline"
    if scan_ctx.deadline < ctx.deadline:
        bound = f"TLS time bound ({budget:g} s for sslyze: {SSLYZE_BUDGET_FACTOR:g} x timeout)"
    scan = _scan(target, scan_ctx, sni, store, want_certificate=store_error is None, started=started, bound=bound)
    connectivity = _connectivity_from(scan)
    errors = {"certificate_info": store_error} if store_error else {}
    if scan.failure:
        errors["scan"] = scan.failure
    gathered = _gather(scan, store) if connectivity.status == "ok" else _Gathered()
    timings = {**scan.timings, "connectivity_s": scan.observer.connectivity_s.get(scan.main.uuid)}
    timings["total_s"] = _since(started)
    return replace(
        base,
        preprobe=pre,
        connectivity=connectivity,
        protocols=gathered.protocols,
        certificate=gathered.certificate,
        vulnerabilities=gathered.vulnerabilities,
        # The CA-file and scan-wide errors come first; a command's own never replaces them.
        errors={**errors, **{k: v for k, v in gathered.errors.items() if k not in errors}},
        timings=timings,
    )


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _settled_by_preprobe(pre: Preprobe, timeout: float) -> Connectivity | None:
    """The connectivity when the preprobe alone is conclusive (plain text, no TCP, or a
    server that answered neither of two ClientHellos within the timeout: sslyze would only
    wait for it again, once per protocol version and retry, and could not test anything)."""
    if pre.result == "plaintext":
        return Connectivity(status="no_tls", error=f"the port answered in plain text: {pre.first_line!r}")
    if pre.result == "unreachable":
        return Connectivity(status="unreachable", error=pre.error)
    if pre.result == "silent":
        return Connectivity(
            status="unknown",
            error=f"no ServerHello within {timeout:g} s: the server accepted TCP connections "
            "but answered none of two ClientHellos",
        )
    return None


def _custom_store(ca_file: str | None) -> tuple[Store | None, str | None]:
    """The ``--ca-file`` store, or the reason it cannot be used (then no certificate test)."""
    if not ca_file:
        return None, None
    try:
        return load_ca_file(Path(ca_file)), None
    except (OSError, ValueError) as exc:
        return None, f"cannot use CA file {ca_file}: {exc}"


# --------------------------------------------------------------------------- preprobe


def preprobe(address: str, port: int, sni: str, *, timeout: float, legacy: bool = False) -> Preprobe:
    """Send one TLS ClientHello and classify the first bytes that come back.

    Results: "tls" (a TLS or SSL 2.0 record), "plaintext" (anything else: the port speaks
    another protocol), "closed" (connection closed without a byte), "silent" (nothing within
    the timeout, even after a CRLF nudge), "unreachable" (TCP connect refused / timed out).
    "plaintext" and "unreachable" are conclusive; "silent" is when a ``legacy`` probe (a
    TLS 1.2 ClientHello, another size and shape) is silent too; the rest is left to sslyze.
    The probe takes at most ``timeout`` after the TCP connect (itself bounded by it).
    """
    started = time.monotonic()
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except TimeoutError:
        return Preprobe(result="unreachable", error="connection timed out")
    except ConnectionRefusedError:
        return Preprobe(result="unreachable", error="connection refused")
    except OSError as exc:
        return Preprobe(result="unreachable", error=exc.strerror or str(exc))
    try:
        with sock:
            data, answered = _exchange_hello(sock, _client_hello(sni, legacy=legacy), timeout, started)
    except OSError as exc:  # reset while talking: inconclusive, sslyze decides
        return Preprobe(result="closed", error=exc.strerror or str(exc))
    elapsed = _since(started)
    if not data:
        return Preprobe(result="closed" if answered else "silent", elapsed_s=elapsed)
    first = data[0]
    if 0x14 <= first <= 0x18 or first & 0x80:
        return Preprobe(result="tls", elapsed_s=elapsed)
    line = data.split(b"\n", 1)[0].decode("latin-1")
    shown = "".join(ch if ch.isprintable() else "?" for ch in line.strip())[:80]
    return Preprobe(result="plaintext", first_line=shown, elapsed_s=elapsed)


def _client_hello(sni: str, *, legacy: bool = False) -> bytes:
    """The bytes of a ClientHello from Python's own ssl module (no socket involved);
    ``legacy``: offering TLS 1.2 at most (no TLS 1.3 key shares: a much shorter hello)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if legacy:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    tls = ctx.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname=_sni_or_none(sni))
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _exchange_hello(sock: socket.socket, hello: bytes, timeout: float, started: float) -> tuple[bytes, bool]:
    """Send ``hello``; return the first bytes received and whether the peer answered at all.

    A TLS server answers a ClientHello at once; a line-oriented plain-text server may wait
    for an end of line, so it gets one if nothing came back within a second.
    """
    sock.sendall(hello)
    for nudge in (b"\r\n\r\n", None):
        wait = min(1.0, timeout) if nudge else timeout - (time.monotonic() - started)
        sock.settimeout(max(0.1, wait))
        try:
            return sock.recv(256), True
        except TimeoutError:
            if nudge is None:
                break
            sock.sendall(nudge)
    return b"", False


def _sni_or_none(name: str) -> str | None:
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        return name or None


# --------------------------------------------------------------------------- the sslyze run


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
        self.connectivity_s[server_scan_request.uuid] = _since(self.started)

    def server_connectivity_test_completed(self, server_scan_request: Any, connectivity_result: Any) -> None:
        self.probes[server_scan_request.uuid] = connectivity_result
        self.connectivity_s[server_scan_request.uuid] = _since(self.started)

    def server_scan_completed(self, server_scan_result: Any) -> None:
        pass

    def all_server_scans_completed(self) -> None:
        pass


@dataclass(frozen=True)
class _ScanRun:
    """What one sslyze run left: its requests, the results that came back in time, and why
    the rest did not (``failure``)."""

    main: Any  # ServerScanRequest: everything but ROBOT
    robot: Any  # ServerScanRequest: ROBOT alone
    observer: _ConnectivityObserver
    results: dict[Any, Any]
    failure: str | None
    timings: dict[str, float]

    @property
    def requests(self) -> tuple[Any, ...]:
        return (self.main, self.robot)


def _scan(
    target: AuditTarget,
    ctx: CheckContext,
    sni: str,
    store: Store | None,
    *,
    want_certificate: bool,
    started: float,
    bound: str = "site deadline",
) -> _ScanRun:
    """Queue the two scan requests on one scanner and wait for them until ``ctx.deadline``
    (named ``bound`` in the failure)."""
    from sslyze import Scanner

    main, robot = _scan_requests(target, ctx, sni, store, want_certificate=want_certificate)
    observer = _ConnectivityObserver(started)
    scanner = Scanner(
        per_server_concurrent_connections_limit=_PER_SERVER_CONNECTIONS,
        concurrent_server_scans_limit=2,
        observers=[observer],
    )
    scanner.queue_scans([main, robot])
    labels = {main.uuid: "scan_s", robot.uuid: "robot_s"}
    results, failure, timings = _wait_for_results(scanner, labels, ctx, started, bound)
    return _ScanRun(main, robot, observer, results, failure, timings)


def _scan_requests(
    target: AuditTarget, ctx: CheckContext, sni: str, store: Store | None, *, want_certificate: bool
) -> tuple[Any, Any]:
    """The main request (with certificate_info unless the CA file was unusable) and ROBOT's."""
    from sslyze import (
        CertificateInfoExtraArgument,
        ScanCommand,
        ScanCommandsExtraArguments,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
    )

    commands = {ScanCommand(name) for name in _MAIN_COMMANDS}
    extra_args = ScanCommandsExtraArguments()
    if want_certificate:
        commands.add(ScanCommand.CERTIFICATE_INFO)
        if store is not None:
            extra_args = ScanCommandsExtraArguments(
                certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(str(ctx.ca_file)))
            )
    location = ServerNetworkLocation(hostname=sni, port=target.port, ip_address=target.address)
    network = ServerNetworkConfiguration(
        tls_server_name_indication=sni,
        network_timeout=max(1, math.ceil(ctx.bounded_timeout())),
        network_max_retries=_NETWORK_RETRIES,
    )
    main = ServerScanRequest(
        server_location=location,
        network_configuration=network,
        scan_commands=commands,
        scan_commands_extra_arguments=extra_args,
    )
    robot = ServerScanRequest(
        server_location=location, network_configuration=network, scan_commands={ScanCommand.ROBOT}
    )
    return main, robot


_DONE = object()


def _wait_for_results(
    scanner: Any, labels: dict[Any, str], ctx: CheckContext, started: float, bound: str = "site deadline"
) -> tuple[dict[Any, Any], str | None, dict[str, float]]:
    """Drain ``scanner.get_results()`` from a daemon thread until done or the deadline.

    Returns the results by request uuid, the failure (None when all came back) and when each
    request finished, under its label.
    """
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
    timings: dict[str, float] = {}
    while len(results) < len(labels):
        remaining = ctx.remaining() - _DEADLINE_MARGIN_S
        if remaining <= 0:
            failure = f"{bound} reached after {time.monotonic() - started:.1f} s; TLS scan incomplete"
            return results, failure, timings
        try:
            item = q.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        if item is _DONE:
            break
        if isinstance(item, Exception):
            return results, f"sslyze failed: {type(item).__name__}: {item}", timings
        results[item.uuid] = item
        timings[labels.get(item.uuid, str(item.uuid))] = _since(started)
    return results, None, timings


# --------------------------------------------------------------------------- connectivity


def _connectivity_from(scan: _ScanRun) -> Connectivity:
    """Connectivity, from the main request (the observer sees it even if the scan overran)."""
    conn_error = scan.observer.errors.get(scan.main.uuid)
    probe = scan.observer.probes.get(scan.main.uuid)
    if conn_error is not None:
        status, error = _classify_connectivity_error(conn_error)
        return Connectivity(status=status, error=error, error_type=type(conn_error).__name__)
    if probe is not None:
        return Connectivity(
            status="ok",
            highest_protocol=_tls_version_label(probe.highest_tls_version_supported.name),
            probe_cipher_suite=probe.cipher_suite_supported,
            client_auth=probe.client_auth_requirement.value,
        )
    return Connectivity(
        status="unknown", error=scan.failure or "the TLS probe did not finish before the site deadline"
    )


def _classify_connectivity_error(exc: Exception) -> tuple[str, str]:
    """("unreachable" | "no_tls" | "sslv2_only" | "probe_error" | "unknown", human text)."""
    from sslyze.errors import (
        ConnectionToServerTimedOut,
        ServerRejectedConnection,
        TlsHandshakeFailed,
        TlsHandshakeTimedOut,
    )

    message = str(getattr(exc, "error_message", "") or exc)
    if isinstance(exc, ServerRejectedConnection):
        return "unreachable", "connection refused"
    if isinstance(exc, ConnectionToServerTimedOut):
        return "unreachable", "connection timed out"
    if isinstance(exc, TlsHandshakeTimedOut):
        # Silence is not a refusal: nothing could be tested, "TLS not offered" would be a guess.
        return "unknown", f"no ServerHello within the timeout ({message})"
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


# --------------------------------------------------------------------------- scan results


@dataclass(frozen=True)
class _Gathered:
    """The per-command results of a scan, in evidence form."""

    protocols: dict[str, ProtocolResult] = field(default_factory=dict)
    certificate: CertificateEvidence | None = None
    vulnerabilities: Vulnerabilities = field(default_factory=Vulnerabilities)
    errors: dict[str, str] = field(default_factory=dict)


def _gather(scan: _ScanRun, store: Store | None) -> _Gathered:
    """Turn every scheduled command's attempt into evidence, or into an error for it."""
    protocols: dict[str, ProtocolResult] = {}
    certificate: CertificateEvidence | None = None
    vulnerabilities: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for request in scan.requests:
        result = scan.results.get(request.uuid)
        for command in request.scan_commands:
            name = command.value
            missing = _missing_result(scan, request, result)
            if missing is not None:
                errors.setdefault(name, missing)
                continue
            attempt = getattr(result.scan_result, name)
            status = getattr(attempt.status, "value", str(attempt.status))
            if status == "NOT_SCHEDULED":
                continue
            if status != "COMPLETED" or attempt.result is None:
                errors[name] = _attempt_error(attempt)
            elif name in _PROTOCOL_BY_COMMAND:
                protocols[_PROTOCOL_BY_COMMAND[name]] = _protocol_result(attempt.result)
            elif name == "certificate_info":
                certificate = _certificate_evidence(attempt.result, store)
            else:
                vulnerabilities.update(_vulnerability_fields(name, attempt.result))
    return _Gathered(protocols, certificate, Vulnerabilities(**vulnerabilities), errors)


def _missing_result(scan: _ScanRun, request: Any, result: Any) -> str | None:
    """Why ``request`` has no per-command results, or None when it has them."""
    if result is None:
        return scan.failure or "the site deadline was reached first"
    if result.scan_result is None:
        reason = scan.observer.errors.get(request.uuid)
        return f"no connectivity: {reason}" if reason else "no result"
    return None


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


def _protocol_result(result: Any) -> ProtocolResult:
    return ProtocolResult(
        accepted=tuple(_suite(a) for a in result.accepted_cipher_suites),
        rejected_count=len(result.rejected_cipher_suites),
    )


def _suite(accepted: Any) -> CipherSuite:
    suite = accepted.cipher_suite
    key = accepted.ephemeral_key
    kx = None
    if key is not None:
        kx = KeyExchange(type=key.type_name, size=int(key.size), curve=getattr(key, "curve_name", None))
    return CipherSuite(
        name=suite.name,
        openssl_name=suite.openssl_name,
        key_size=int(suite.key_size),
        anonymous=bool(suite.is_anonymous),
        kx=kx,
    )


def _vulnerability_fields(command: str, result: Any) -> dict[str, Any]:
    """The :class:`Vulnerabilities` fields one vulnerability command settles."""
    if command == "heartbleed":
        return {"heartbleed": bool(result.is_vulnerable_to_heartbleed)}
    if command == "openssl_ccs_injection":
        return {"ccs_injection": bool(result.is_vulnerable_to_ccs_injection)}
    if command == "robot":
        return {"robot": result.robot_result.name}
    if command == "session_renegotiation":
        return {
            "secure_renegotiation": bool(result.supports_secure_renegotiation),
            "client_renegotiation": bool(result.is_vulnerable_to_client_renegotiation_dos),
            "client_renegotiation_count": int(result.client_renegotiations_success_count),
        }
    if command == "tls_compression":
        return {"compression": bool(result.supports_compression)}
    if command == "tls_fallback_scsv":
        return {"fallback_scsv": bool(result.supports_fallback_scsv)}
    return {}


def _certificate_evidence(result: Any, custom_store: Store | None) -> CertificateEvidence:
    """The chains served (with and without SNI) and the store cut down to them."""
    chains = [list(dep.received_certificate_chain) for dep in result.certificate_deployments]
    deployments = tuple(_deployment(dep) for dep in result.certificate_deployments)
    sni_disabled = result.certificate_deployment_with_sni_disabled
    sni_disabled_pem = None
    if sni_disabled is not None:
        sni_disabled_pem = tuple(sni_disabled.received_certificate_chain_as_pem)
        chains.append(list(sni_disabled.received_certificate_chain))
    store = custom_store or mozilla_store()
    return CertificateEvidence(
        sni_hostname=result.hostname_used_for_server_name_indication,
        trust_store=store_evidence(store, chains),
        deployments=deployments,
        sni_disabled_chain_pem=sni_disabled_pem,
        no_certificate=not deployments,
    )


def _deployment(dep: Any) -> Deployment:
    return Deployment(
        chain_pem=tuple(dep.received_certificate_chain_as_pem),
        received_chain_has_valid_order=dep.received_chain_has_valid_order,
        sslyze_path_validation=tuple(
            PathValidation(
                trust_store=pv.trust_store.name,
                version=str(pv.trust_store.version),
                ok=bool(pv.was_validation_successful),
                error=pv.validation_error,
            )
            for pv in dep.path_validation_results
        ),
    )
