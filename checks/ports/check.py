"""The ``ports`` check: exposed services on the site's address, found with nmap (python-nmap).

Two nmap runs against the target's pinned address (``Target.address``, which already
reflects ``--resolve``), never a DNS lookup (``-n``) and no host discovery (``-Pn``):

1. a TCP connect scan of a bounded port list (policy parameter ``ports.list``, overridden by
   the ``--ports`` scan option);
2. service and version detection (``-sV``) on the open ports only — except the site's own
   HTTPS and HTTP ports, which the tls and http checks judge — bounded by
   ``--host-timeout`` and ``--version-intensity`` — a service that waits for the client to
   speak costs nmap about 6 s, so this is the expensive part. When it runs out of time the
   check keeps the names nmap's port table gives and says so in its evidence.

Both runs use :class:`nmap.PortScanner` in the calling thread (its async scanner runs
callbacks in a child process). The XML nmap wrote is parsed for the detail python-nmap's
dictionary drops (how a service name was found: probed or from the port table).
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from auditor.catalogue import catalogue_of
from auditor.check import Check, CheckContext, CheckOutcome, Finding, FindingSpec
from auditor.targets import Target

INSTALL_HINT = "nmap is not installed: apt-get install nmap"

# Common service ports: databases, remote administration, file sharing, mail, web.
DEFAULT_PORTS = (
    "21,22,23,25,53,69,80,110,111,135,139,143,443,445,512,513,514,548,873,1433,1434,1521,"
    "2049,2375,2376,2379,3050,3306,3389,5432,5900,5901,5984,5985,5986,6000,6379,6443,7474,"
    "8080,8086,8443,9042,9200,9300,10000,10250,10255,11211,27017,28017,50000"
)



@dataclass(frozen=True)
class ServiceClass:
    """How a finding category recognises a service: by nmap service name (exact or prefix),
    by the product nmap's probes found, or — when nmap only guessed from its port table or
    saw a generic protocol — by port number."""

    finding_id: str
    label: str
    names: frozenset[str]
    name_prefixes: tuple[str, ...]
    product: re.Pattern[str]
    ports: frozenset[int]


SERVICE_CLASSES: tuple[ServiceClass, ...] = (
    ServiceClass(
        "ports.exposed.database", "database",
        frozenset({"mysql", "postgresql", "ms-sql-s", "ms-sql-m", "oracle", "oracle-tns", "mongod",
                   "mongodb", "redis", "memcache", "memcached", "couchdb", "elasticsearch", "cassandra",
                   "ibm-db2", "db2", "drda", "gds_db", "firebird", "sybase", "neo4j", "influxdb",
                   "rethinkdb", "riak", "clickhouse", "etcd-client", "etcd-server", "mariadb"}),
        ("ms-sql", "oracle", "mongo"),
        re.compile(r"mysql|mariadb|postgres|microsoft sql|ms-sql|oracle|mongodb|redis|memcache|couchdb|"
                   r"elasticsearch|opensearch|cassandra|db2|firebird|sybase|neo4j|influxdb|clickhouse|etcd",
                   re.I),
        frozenset({1433, 1434, 1521, 2379, 3050, 3306, 5432, 5984, 6379, 7474, 7687, 8086, 9042, 9200,
                   9300, 11211, 27017, 27018, 28017, 50000}),
    ),
    ServiceClass(
        "ports.exposed.remote_admin", "remote administration",
        frozenset({"telnet", "ms-wbt-server", "rdp", "vnc", "vnc-http", "docker", "x11", "exec", "login",
                   "shell", "wsman", "wsmans", "kubelet", "kubernetes", "webmin", "ipmi"}),
        ("vnc", "x11"),
        re.compile(r"telnet|remote desktop|rdp|vnc|docker|kubelet|kubernetes|webmin|winrm|rlogind|rshd", re.I),
        frozenset({23, 512, 513, 514, 2375, 2376, 3389, 5800, 5900, 5901, 5985, 5986, 6000, 6443,
                   10000, 10250, 10255}),
    ),
    ServiceClass(
        "ports.exposed.file_sharing", "file sharing",
        frozenset({"ftp", "ftps", "tftp", "microsoft-ds", "netbios-ssn", "smb", "nfs", "rpcbind",
                   "mountd", "afp", "rsync"}),
        ("ftp", "netbios"),
        re.compile(r"\bftpd?\b|vsftpd|proftpd|pure-ftpd|filezilla|samba|\bsmb|\bnfs|rsync|tftp", re.I),
        frozenset({20, 21, 69, 111, 139, 445, 548, 873, 990, 2049}),
    ),
)

# Service names that say nothing about what runs on top.
_GENERIC = {"", "unknown", "tcpwrapped", "http", "https", "http-proxy", "http-alt", "ssl"}
# Ports whose service *is* an HTTP API (Docker, kubelet, Kubernetes, WinRM, Elasticsearch,
# CouchDB, InfluxDB, Neo4j): there a generic "http" from service detection does not clear it.
HTTP_API_PORTS = frozenset({2375, 2376, 5984, 5985, 5986, 6443, 7474, 8086, 9200, 10250, 10255})


@dataclass
class OpenPort:
    port: int
    service: str = ""
    product: str = ""
    version: str = ""
    extrainfo: str = ""
    method: str = "table"  # "probed" when -sV recognised it
    tunnel: str = ""

    @property
    def description(self) -> str:
        soft = " ".join(p for p in (self.product, self.version) if p)
        name = f"{self.tunnel}/{self.service}" if self.tunnel else (self.service or "unknown")
        return f"{name} ({soft})" if soft else name

    def to_dict(self) -> dict[str, Any]:
        return {"port": self.port, "service": self.service, "product": self.product, "version": self.version,
                "extrainfo": self.extrainfo, "method": self.method, "tunnel": self.tunnel}


def classify_service(op: OpenPort) -> ServiceClass | None:
    """The finding category an open port falls into, if any."""
    name = op.service.lower()
    product = f"{op.product} {op.extrainfo}"
    for cls in SERVICE_CLASSES:
        if name in cls.names or name.startswith(cls.name_prefixes):
            return cls
        if op.method == "probed" and op.product and cls.product.search(product):
            return cls
    if op.method != "probed" or (name in _GENERIC and op.port in HTTP_API_PORTS):
        for cls in SERVICE_CLASSES:
            if op.port in cls.ports:
                return cls
    return None


def discloses_version(op: OpenPort) -> bool:
    """A banner reveals a product version when service detection read a version number."""
    return op.method == "probed" and bool(re.search(r"\d", op.version))


_PORT_SPEC = re.compile(r"\d{1,5}(?:-\d{1,5})?(?:,\d{1,5}(?:-\d{1,5})?)*")


def parse_port_spec(spec: str, max_ports: int) -> tuple[str, int]:
    """Validate an nmap-style TCP port list (``22,80,8000-8100``): normalised text and count.

    Only digits, commas and ranges: nothing that nmap could read as another option.
    """
    text = "".join(str(spec).split())
    if not _PORT_SPEC.fullmatch(text):
        raise ValueError(f"invalid port list {spec!r} (expected e.g. 22,80,8000-8100)")
    ports: set[int] = set()
    for part in text.split(","):
        lo_s, _, hi_s = part.partition("-")
        lo, hi = int(lo_s), int(hi_s or lo_s)
        if not (1 <= lo <= 65535 and 1 <= hi <= 65535) or hi < lo:
            raise ValueError(f"invalid port range {part!r} in {spec!r} (ports are 1..65535)")
        if hi - lo + 1 > max_ports:
            raise ValueError(f"port list {spec!r} has more than {max_ports} ports")
        ports.update(range(lo, hi + 1))
        if len(ports) > max_ports:
            raise ValueError(f"port list {spec!r} has more than {max_ports} ports")
    return ",".join(_compress(sorted(ports))), len(ports)


def _compress(ports: list[int]) -> list[str]:
    out: list[str] = []
    start = prev = ports[0]
    for p in ports[1:] + [-1]:
        if p == prev + 1:
            prev = p
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = p
    return out


def parse_nmap_xml(xml_text: str) -> tuple[list[OpenPort], dict[str, Any]]:
    """Open TCP ports from nmap's XML, plus run facts (timed out, elapsed, nmap version)."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise RuntimeError(f"nmap wrote unreadable XML: {exc}") from None
    facts: dict[str, Any] = {"version": root.get("version", ""), "timed_out": False, "hosts": 0}
    finished = root.find("runstats/finished")
    if finished is not None:
        facts["elapsed_s"] = float(finished.get("elapsed") or 0)
        if finished.get("exit") == "error":
            facts["error"] = finished.get("errormsg") or "nmap reported an error"
    ports: list[OpenPort] = []
    for host in root.findall("host"):
        facts["hosts"] += 1
        if host.get("timedout") == "true":
            facts["timed_out"] = True
        for port in host.findall("ports/port"):
            state = port.find("state")
            if port.get("protocol") != "tcp" or state is None or state.get("state") != "open":
                continue
            svc = port.find("service")
            op = OpenPort(port=int(port.get("portid") or 0))
            if svc is not None:
                op.service = svc.get("name", "")
                op.product = svc.get("product", "")
                op.version = svc.get("version", "")
                op.extrainfo = svc.get("extrainfo", "")
                op.method = svc.get("method", "table")
                op.tunnel = svc.get("tunnel", "")
            ports.append(op)
    return ports, facts


def _port_scanner() -> Any:
    """A python-nmap scanner on the nmap binary, or the one-line reason there is none."""
    nmap_path = shutil.which("nmap")
    if nmap_path is None:
        return INSTALL_HINT
    try:
        import nmap
    except ImportError:
        return "python-nmap is not installed: pip install python-nmap"
    try:
        return nmap.PortScanner(nmap_search_path=(nmap_path,))
    except nmap.PortScannerError as exc:
        return f"{INSTALL_HINT} ({_first_line(exc)})"


class _NmapLog:
    """Runs nmap against one address and keeps what was run (commands, durations) for the evidence."""

    def __init__(self, scanner: Any, address: str, family: list[str], deadline_left: Callable[[], float]) -> None:
        self.scanner = scanner
        self.address = address
        self.family = family
        self.deadline_left = deadline_left
        self.commands: list[str] = []
        self.durations: list[float] = []

    def scan(self, ports: str, args: list[str], wall: float) -> tuple[list[OpenPort], dict[str, Any]]:
        import nmap

        arguments = " ".join(self.family + args)
        # Hard stop for the nmap process: its own --host-timeout plus slack, within the site bound.
        limit = max(2, int(min(wall + 5, max(2.0, self.deadline_left()))))
        self.commands.append(f"nmap -oX - {self.address} -p {ports} {arguments}")
        t0 = time.monotonic()
        try:
            self.scanner.scan(hosts=self.address, ports=ports, arguments=arguments, timeout=limit)
        except nmap.PortScannerTimeout:
            raise RuntimeError(f"nmap did not finish within {limit} s and was stopped") from None
        except nmap.PortScannerError as exc:
            raise RuntimeError(f"nmap failed: {_first_line(exc)}") from None
        finally:
            self.durations.append(round(time.monotonic() - t0, 2))
        return parse_nmap_xml(self.scanner.get_nmap_last_output())


class PortsCheck(Check):
    id: ClassVar[str] = "ports"
    title: ClassVar[str] = "Exposed network services (nmap)"
    description: ClassVar[str] = (
        "TCP connect scan of a bounded port list on the site's pinned address, then nmap service "
        "detection on the open ports: exposed databases, remote administration and file sharing, "
        "ports outside the system's allowed list, and banners that reveal versions."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "ports.list": DEFAULT_PORTS,
        "ports.max_ports": 1024,
        "ports.scan_timeout_s": 60,
        "ports.service_timeout_s": 30,
        "ports.version_intensity": 4,
    }
    catalogue: ClassVar[tuple[FindingSpec, ...]] = catalogue_of("checks.ports")  # findings.yaml

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        scanner = _port_scanner()
        if isinstance(scanner, str):
            return CheckOutcome.failed(scanner)
        try:
            max_ports = int(ctx.param("ports.max_ports", 1024))
            spec = ctx.options.get("ports") or ctx.param("ports.list", DEFAULT_PORTS)
            port_spec, n_ports = parse_port_spec(str(spec), max_ports)
        except (TypeError, ValueError) as exc:
            return CheckOutcome.failed(str(exc))
        address = str(ipaddress.ip_address(target.address))
        allowed = self._allowed_ports(target, ctx)
        log = _NmapLog(scanner, address, ["-6"] if ":" in address else [], ctx.remaining)
        evidence: dict[str, Any] = {
            "address": address, "ports": port_spec, "ports_scanned": n_ports, "allowed_ports": allowed,
            "nmap": ".".join(map(str, scanner.nmap_version())), "commands": log.commands,
        }
        found, error = self._open_ports(log, port_spec, ctx)
        if log.durations:
            evidence["durations_s"] = log.durations
        if error:
            return CheckOutcome.failed(error, evidence)
        found, evidence["service_detection"] = self._services(log, target, found, ctx)
        evidence["open"] = [p.to_dict() for p in found]
        return CheckOutcome(findings=self._findings(target, found, allowed), evidence=evidence)

    @staticmethod
    def _open_ports(log: _NmapLog, port_spec: str, ctx: CheckContext) -> tuple[list[OpenPort], str | None]:
        """Step 1: which ports are open (a TCP connect scan), or why that could not be told."""
        budget = min(float(ctx.param("ports.scan_timeout_s", 60)), ctx.remaining() - 2)
        if budget < 2:
            return [], "not enough time left in the site's time bound to run nmap"
        try:
            found, facts = log.scan(port_spec, ["-n", "-Pn", "-sT", "--max-retries", "1",
                                                "--host-timeout", f"{int(budget)}s"], budget)
        except RuntimeError as exc:
            return [], str(exc)
        if facts["timed_out"]:
            return [], f"nmap gave up on {log.address} after {int(budget)} s (host timeout)"
        if facts.get("error"):
            return [], f"nmap failed: {facts['error']}"
        return found, None

    @staticmethod
    def _services(log: _NmapLog, target: Target, found: list[OpenPort],
                  ctx: CheckContext) -> tuple[list[OpenPort], str]:
        """Step 2: what runs on the open ports, bounded; the port table's guesses are kept when
        it runs out. Returns the ports and how service detection went.

        The site's own web ports are left out: the tls and http checks judge them, and a web
        server makes nmap wait ~6 s for a banner that never comes.
        """
        web_ports = {target.port, target.http_port}
        to_probe = [p for p in found if p.port not in web_ports]
        if not to_probe:
            return found, "nothing to probe"
        budget = min(float(ctx.param("ports.service_timeout_s", 30)), ctx.remaining() - 2)
        intensity = max(0, min(9, int(ctx.param("ports.version_intensity", 4))))
        if budget < 1:
            return found, "skipped"
        try:
            probed, facts = log.scan(",".join(str(p.port) for p in to_probe),
                                     ["-n", "-Pn", "-sT", "-sV", "--version-intensity", str(intensity),
                                      "--host-timeout", f"{int(budget)}s"], budget + 10)
        except RuntimeError as exc:
            return found, f"failed: {exc}"
        if facts.get("error"):
            return found, f"failed: nmap reported {facts['error']}"
        if facts["timed_out"] or not probed:
            return found, f"timed out (--host-timeout {int(budget)}s): service names from nmap's port table"
        by_port = {p.port: p for p in probed}
        return [by_port.get(p.port, p) for p in found], "done"

    @staticmethod
    def _allowed_ports(target: Target, ctx: CheckContext) -> list[int]:
        """The system's declared allowed ports, else the site's own HTTPS and HTTP ports."""
        declared = (ctx.system or {}).get("allowed_ports") or []
        try:
            ports = sorted({int(p) for p in declared})
        except (TypeError, ValueError):
            ports = []
        return ports or sorted({target.port, target.http_port})

    def _findings(self, target: Target, found: list[OpenPort], allowed: list[int]) -> list[Finding]:
        out: list[Finding] = []
        allowed_text = ", ".join(map(str, allowed))
        for op in found:
            details = {"address": target.address, **op.to_dict()}
            cls = classify_service(op)
            if cls is not None:
                out.append(self.finding(
                    cls.finding_id,
                    f"{op.port}/tcp open on {target.address}: {op.description} ({cls.label})",
                    **details,
                ))
            if op.port not in allowed:
                out.append(self.finding(
                    "ports.exposed.unexpected",
                    f"{op.port}/tcp open on {target.address} ({op.description}), not in the allowed "
                    f"ports {allowed_text}",
                    **details,
                ))
            if discloses_version(op):
                out.append(self.finding(
                    "ports.banner.version_disclosure",
                    f"{op.port}/tcp banner reveals {' '.join(p for p in (op.product, op.version) if p)}",
                    **details,
                ))
        return out


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "value", "") or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
