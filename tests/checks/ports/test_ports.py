"""The ports check with real nmap against services this module opens on 127.0.2.20-21:
a fake MySQL greeting, a telnet-like negotiation, an FTP banner, a silent port."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from project_paths import PROJECT

from auditor.check import CheckContext, CheckOutcome
from checks.ports.check import INSTALL_HINT, OpenPort, PortsCheck, _NmapLog, classify_service, parse_port_spec

ADDR = "127.0.2.20"
SLOW_ADDR = "127.0.2.21"
HOST = "svc.ports.example.test"

pytestmark = pytest.mark.skipif(not any(
    os.access(os.path.join(d, "nmap"), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)
), reason="nmap is not installed (apt-get install nmap)")


def mysql_greeting(version: bytes) -> bytes:
    """A MySQL protocol-10 handshake packet, as a real server sends on connect."""
    payload = (b"\x0a" + version + b"\x00" + struct.pack("<I", 7) + b"abcdefgh\x00"
               + struct.pack("<H", 0xF7FF) + b"\x21" + struct.pack("<H", 2) + struct.pack("<H", 0x81FF)
               + b"\x15" + b"\x00" * 10 + b"ijklmnopqrst\x00" + b"mysql_native_password\x00")
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload


TELNET_NEGOTIATION = b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27"
FTP_BANNER = b"220 ProFTPD 1.3.5 Server (Debian) [127.0.2.20]\r\n"


class FakeServices:
    """Listening sockets that send a canned banner (or nothing) and hang up after a while."""

    def __init__(self) -> None:
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()

    def serve(self, address: str, port: int, banner: bytes | None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(32)
        sock.settimeout(0.2)
        self._socks.append(sock)
        threading.Thread(target=self._accept, args=(sock, banner), daemon=True).start()

    def _accept(self, sock: socket.socket, banner: bytes | None) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn, banner), daemon=True).start()

    def _handle(self, conn: socket.socket, banner: bytes | None) -> None:
        with conn:
            try:
                conn.settimeout(8)
                if banner:
                    conn.sendall(banner)
                conn.recv(1024)  # wait for the client, or for its hang-up
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        for sock in self._socks:
            sock.close()


@pytest.fixture(scope="module")
def services() -> Iterator[FakeServices]:
    fake = FakeServices()
    try:
        fake.serve(ADDR, 21, FTP_BANNER)
        fake.serve(ADDR, 23, TELNET_NEGOTIATION)
        fake.serve(ADDR, 3306, mysql_greeting(b"5.7.33-log"))
        fake.serve(ADDR, 13306, mysql_greeting(b"8.0.36"))   # a database on a port nobody expects
        fake.serve(ADDR, 443, None)                            # the site's own HTTPS port
        fake.serve(SLOW_ADDR, 6379, None)                      # waits for the client forever
        yield fake
    finally:
        fake.close()


def target(address: str = ADDR):  # type: ignore[no-untyped-def]
    from auditor.targets import Target

    return Target(url=f"https://{HOST}/", host=HOST, port=443, address=address, http_port=80)


def run_check(ports: str, *, address: str = ADDR, system: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> tuple[CheckOutcome, float]:
    check = PortsCheck()
    ctx = CheckContext(params={**check.parameters, **(params or {})}, options={"ports": ports}, system=system)
    t0 = time.monotonic()
    outcome = check.run(target(address), ctx)
    return outcome, time.monotonic() - t0


def by_id(outcome: CheckOutcome) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for f in outcome.findings:
        out.setdefault(f.id, set()).add(f.details["port"])
    return out


@pytest.fixture(scope="module")
def planted(services: FakeServices) -> tuple[CheckOutcome, float]:
    return run_check("21,23,443,3306,5432,13306")


def test_real_nmap_finds_the_planted_services(planted: tuple[CheckOutcome, float]) -> None:
    outcome, elapsed = planted
    assert outcome.error is None, outcome.error
    assert by_id(outcome) == {
        "ports.exposed.database": {3306, 13306},           # 13306 recognised by its banner, not its number
        "ports.exposed.remote_admin": {23},
        "ports.exposed.file_sharing": {21},
        "ports.exposed.unexpected": {21, 23, 3306, 13306},  # 443 is the site's own port
        "ports.banner.version_disclosure": {21, 3306, 13306},  # the telnet negotiation names no version
    }
    opened = {p["port"]: p for p in outcome.evidence["open"]}
    assert set(opened) == {21, 23, 443, 3306, 13306}  # 5432 is closed
    assert (opened[3306]["product"], opened[3306]["version"], opened[3306]["method"]) == ("MySQL", "5.7.33-log", "probed")
    assert opened[13306]["service"] == "mysql" and opened[13306]["version"] == "8.0.36"
    assert opened[21]["product"] == "ProFTPD" and opened[23]["service"] == "telnet"
    evidence = {f.id + str(f.details["port"]): f.evidence for f in outcome.findings}
    assert evidence["ports.banner.version_disclosure3306"] == "3306/tcp banner reveals MySQL 5.7.33-log"
    assert "not in the allowed ports 80, 443" in evidence["ports.exposed.unexpected21"]
    assert elapsed < 20


def test_nmap_never_resolves_and_is_bounded(planted: tuple[CheckOutcome, float]) -> None:
    outcome, _ = planted
    connect, detect = outcome.evidence["commands"]
    for cmd in (connect, detect):
        assert f" {ADDR} " in cmd and " -n " in cmd and " -Pn " in cmd and "--host-timeout" in cmd
        assert HOST not in cmd
    assert "-sV" not in connect
    # service detection only on the open ports, never on the site's own web port
    assert "-p 21,23,3306,13306 " in detect and "--version-intensity 4" in detect
    assert outcome.evidence["service_detection"] == "done"
    assert outcome.evidence["ports"] == "21,23,443,3306,5432,13306" and outcome.evidence["ports_scanned"] == 6


def test_system_allowed_ports(services: FakeServices) -> None:
    outcome, _ = run_check("21,23,443", system={"name": "s", "allowed_ports": [443, 21]})
    assert outcome.error is None
    found = by_id(outcome)
    assert found["ports.exposed.unexpected"] == {23}
    assert found["ports.exposed.file_sharing"] == {21}  # allowed, but still an exposed FTP server
    assert outcome.evidence["allowed_ports"] == [21, 443]


def test_service_detection_time_bound(services: FakeServices) -> None:
    """A silent service keeps nmap's -sV waiting; the bound ends it and the port table's name is kept."""
    outcome, elapsed = run_check("6379", address=SLOW_ADDR, params={"ports.service_timeout_s": 2})
    assert outcome.error is None, outcome.error
    assert outcome.evidence["service_detection"].startswith("timed out (--host-timeout 2s)")
    assert by_id(outcome) == {"ports.exposed.database": {6379}, "ports.exposed.unexpected": {6379}}
    assert outcome.evidence["open"][0]["method"] == "table"
    assert elapsed < 15


def test_service_detection_error_keeps_the_port_table(services: FakeServices,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An -sV run that nmap reports as failed is said so; its partial output is not used."""
    real = _NmapLog.scan

    def failing_sv(log, ports, args, wall):  # type: ignore[no-untyped-def]
        found, facts = real(log, ports, args, wall)
        if "-sV" in args:
            facts = {**facts, "error": "Failed to resolve service probes"}
        return found, facts

    monkeypatch.setattr(_NmapLog, "scan", failing_sv)
    outcome, _ = run_check("3306")
    assert outcome.error is None, outcome.error
    assert outcome.evidence["service_detection"] == "failed: nmap reported Failed to resolve service probes"
    assert outcome.evidence["open"][0]["method"] == "table"
    assert by_id(outcome)["ports.exposed.database"] == {3306}


def test_bad_port_lists_are_check_errors() -> None:
    for spec, message in (
        ("22;--script=vuln", "invalid port list"),
        ("80,abc", "invalid port list"),
        ("0-10", "invalid port range '0-10'"),
        ("1-5000", "more than 1024 ports"),
        ("443-80", "invalid port range '443-80'"),
    ):
        outcome, _ = run_check(spec)
        assert outcome.error is not None and message in outcome.error, (spec, outcome.error)
        assert outcome.findings == []


def test_parse_port_spec() -> None:
    assert parse_port_spec(" 443, 80,81-83,82", 1024) == ("80-83,443", 5)
    assert parse_port_spec("22", 1) == ("22", 1)
    with pytest.raises(ValueError, match="more than 2 ports"):
        parse_port_spec("1,2,3", 2)


def test_classify_service_by_name_product_and_port() -> None:
    def cls(**kw: Any) -> str | None:
        c = classify_service(OpenPort(**kw))
        return c.finding_id if c else None

    assert cls(port=9200, service="http", product="Elasticsearch REST API", version="7.17.1",
               method="probed") == "ports.exposed.database"
    assert cls(port=9200, service="wap-wsp") == "ports.exposed.database"            # port table guess
    assert cls(port=10250, service="http", method="probed") == "ports.exposed.remote_admin"  # kubelet
    assert cls(port=2375, service="docker") == "ports.exposed.remote_admin"
    assert cls(port=5901, service="vnc-1") == "ports.exposed.remote_admin"
    assert cls(port=445, service="microsoft-ds") == "ports.exposed.file_sharing"
    assert cls(port=2049, service="nfs") == "ports.exposed.file_sharing"
    assert cls(port=22, service="ssh", product="OpenSSH", version="9.2p1", method="probed") is None
    assert cls(port=3306, service="http", product="nginx", method="probed") is None  # a web server, whatever the port


def test_missing_nmap_is_a_check_error_with_install_hint(tmp_path: Path) -> None:
    """With no nmap on PATH the check says how to install it (run in a clean subprocess)."""
    script = textwrap.dedent(f"""
        import json
        from auditor.check import CheckContext
        from auditor.targets import Target
        from checks.ports.check import PortsCheck
        t = Target(url="https://{HOST}/", host="{HOST}", port=443, address="{ADDR}")
        o = PortsCheck().run(t, CheckContext(options={{"ports": "21"}}))
        print(json.dumps({{"error": o.error, "findings": len(o.findings)}}))
    """)
    env = {**os.environ, "PATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
                          cwd=PROJECT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"error": INSTALL_HINT, "findings": 0}
    assert INSTALL_HINT == "nmap is not installed: apt-get install nmap"


def test_scan_cli_uses_the_systems_allowed_ports(services: FakeServices, tmp_path: Path, db_url: str,
                                                 cli: Any) -> None:
    """End to end: the inventory's allowed ports reach the check through the engine."""
    inv = tmp_path / "inv.yaml"
    inv.write_text(f"systems:\n  - {{name: svc, owner: X, category: citizen_business, "
                   f"allowed_ports: [443, 3306], sites: ['https://{HOST}/']}}\n", encoding="utf-8")
    assert cli("systems", "import", str(inv), "--db", db_url).code == 0
    r = cli("scan", f"https://{HOST}/", "--resolve", f"{HOST}:443:{ADDR}", "--checks", "ports",
            "--ports", "23,443,3306", "--format", "json", "--db", db_url, "--fail-on", "high")
    assert r.code == 1, r  # high findings
    result = json.loads(r.out)["results"][0]
    assert result["checks"]["ports"]["status"] == "ok"
    found = {(f["id"], f["evidence"].split("/")[0]) for f in result["findings"]}
    assert found == {
        ("ports.exposed.database", "3306"), ("ports.banner.version_disclosure", "3306"),
        ("ports.exposed.remote_admin", "23"), ("ports.exposed.unexpected", "23"),
    }
    assert result["grade"] == "C"
