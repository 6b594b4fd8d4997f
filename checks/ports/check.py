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
        nmap_path = shutil.which("nmap")
        if nmap_path is None:
            return CheckOutcome.failed(INSTALL_HINT)
        try:
            import nmap
        except ImportError:
            return CheckOutcome.failed("python-nmap is not installed: pip install python-nmap")
        try:
            scanner = nmap.PortScanner(nmap_search_path=(nmap_path,))
        except nmap.PortScannerError as exc:
            return CheckOutcome.failed(f"{INSTALL_HINT} ({_first_line(exc)})")

        try:
            max_ports = int(ctx.param("ports.max_ports", 1024))
            spec = ctx.options.get("ports") or ctx.param("ports.list", DEFAULT_PORTS)
            port_spec, n_ports = parse_port_spec(str(spec), max_ports)
        except (TypeError, ValueError) as exc:
            return CheckOutcome.failed(str(exc))
        address = str(ipaddress.ip_address(target.address))
        family = ["-6"] if ":" in address else []
        allowed = self._allowed_ports(target, ctx)
        evidence: dict[str, Any] = {
            "address": address, "ports": port_spec, "ports_scanned": n_ports, "allowed_ports": allowed,
            "nmap": ".".join(map(str, scanner.nmap_version())), "commands": [],
        }

        # 1. Which ports are open.
        budget = min(float(ctx.param("ports.scan_timeout_s", 60)), ctx.remaining() - 2)
        if budget < 2:
            return CheckOutcome.failed("not enough time left in the site's time bound to run nmap", evidence)
        try:
            found, facts = self._nmap(scanner, address, port_spec,
                                      family + ["-n", "-Pn", "-sT", "--max-retries", "1",
                                                "--host-timeout", f"{int(budget)}s"],
                                      budget, evidence, ctx.remaining)
        except RuntimeError as exc:
            return CheckOutcome.failed(str(exc), evidence)
        if facts["timed_out"]:
            return CheckOutcome.failed(f"nmap gave up on {address} after {int(budget)} s (host timeout)", evidence)
        if facts.get("error"):
            return CheckOutcome.failed(f"nmap failed: {facts['error']}", evidence)

        # 2. What runs on them (bounded; the port table's guesses are kept when it runs out).
        # The site's own web ports are left out: the tls and http checks judge them, and a
        # web server makes nmap wait ~6 s for a banner that never comes.
        web_ports = {target.port, target.http_port}
        to_probe = [p for p in found if p.port not in web_ports]
        evidence["service_detection"] = "nothing to probe" if not to_probe else "skipped"
        if to_probe:
            budget = min(float(ctx.param("ports.service_timeout_s", 30)), ctx.remaining() - 2)
            intensity = max(0, min(9, int(ctx.param("ports.version_intensity", 4))))
            if budget >= 1:
                open_spec = ",".join(str(p.port) for p in to_probe)
                try:
                    probed, pfacts = self._nmap(
                        scanner, address, open_spec,
                        family + ["-n", "-Pn", "-sT", "-sV", "--version-intensity", str(intensity),
                                  "--host-timeout", f"{int(budget)}s"],
                        budget + 10, evidence, ctx.remaining)
                except RuntimeError as exc:
                    evidence["service_detection"] = f"failed: {exc}"
                else:
                    if pfacts.get("error"):
                        evidence["service_detection"] = f"failed: nmap reported {pfacts['error']}"
                    elif pfacts["timed_out"] or not probed:
                        evidence["service_detection"] = (
                            f"timed out (--host-timeout {int(budget)}s): service names from nmap's port table")
                    else:
                        by_port = {p.port: p for p in probed}
                        found = [by_port.get(p.port, p) for p in found]
                        evidence["service_detection"] = "done"
        evidence["open"] = [p.to_dict() for p in found]
        return CheckOutcome(findings=self._findings(target, found, allowed), evidence=evidence)

    @staticmethod
    def _allowed_ports(target: Target, ctx: CheckContext) -> list[int]:
        """The system's declared allowed ports, else the site's own HTTPS and HTTP ports."""
        declared = (ctx.system or {}).get("allowed_ports") or []
        try:
            ports = sorted({int(p) for p in declared})
        except (TypeError, ValueError):
            ports = []
        return ports or sorted({target.port, target.http_port})

    @staticmethod
    def _nmap(scanner: Any, address: str, ports: str, args: list[str], wall: float,
              evidence: dict[str, Any], deadline_left: Callable[[], float]) -> tuple[list[OpenPort], dict[str, Any]]:
        import nmap

        arguments = " ".join(args)
        # Hard stop for the nmap process: its own --host-timeout plus slack, within the site bound.
        limit = max(2, int(min(wall + 5, max(2.0, deadline_left()))))
        evidence["commands"].append(f"nmap -oX - {address} -p {ports} {arguments}")
        t0 = time.monotonic()
        try:
            scanner.scan(hosts=address, ports=ports, arguments=arguments, timeout=limit)
        except nmap.PortScannerTimeout:
            raise RuntimeError(f"nmap did not finish within {limit} s and was stopped") from None
        except nmap.PortScannerError as exc:
            raise RuntimeError(f"nmap failed: {_first_line(exc)}") from None
        finally:
            evidence.setdefault("durations_s", []).append(round(time.monotonic() - t0, 2))
        return parse_nmap_xml(scanner.get_nmap_last_output())

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
