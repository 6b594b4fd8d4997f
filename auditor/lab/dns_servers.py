"""Real DNS servers for the loopback lab: Knot DNS (authoritative) and Unbound (validating).

The ``dns`` check needs zones that are really signed and a resolver that really validates,
so the lab runs Debian's ``knotd`` for ``lab.test.`` and one child zone per planted flaw,
with keys made now by ``keymgr`` (ECDSA P-256, one combined signing key per zone) and the
zones signed by knotd at start-up, and ``unbound`` as a validating resolver whose only
trust anchor is the DS of ``lab.test.``. Unbound knows no root hints: every lab zone is a
stub pointing at the lab's knotd, everything else is refused, and it never sends a query
off loopback. Both run in a temporary directory on ephemeral ports of 127.0.0.0/8.

A child zone is delegated with its real DS (``signed``), with no DS (``unsigned``, an
unsigned zone) or with a DS whose digest does not match its key (``bogus``, so validation
fails the way a botched key roll fails).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype

LAB_APEX = "lab.test."
DS_MODES = ("signed", "unsigned", "bogus")


@dataclass
class LabZone:
    """One child zone of ``lab.test.``: its label, its records (zone-file lines relative to
    the apex, without SOA/NS, which are added) and how the parent delegates it."""

    label: str
    records: list[str] = field(default_factory=list)
    ds: str = "signed"
    algorithm: str = "ecdsap256sha256"  # a keymgr/knot algorithm name (rsasha1 plants a weak one)

    @property
    def name(self) -> str:
        return f"{self.label}.{LAB_APEX}"

    def __post_init__(self) -> None:
        if self.ds not in DS_MODES:
            raise ValueError(f"zone {self.label}: ds must be one of {DS_MODES}")


def free_port(address: str) -> int:
    """A port free for both UDP and TCP on ``address`` now (bind port 0, then release)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((address, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((address, port))
                except OSError:
                    continue
            return port
    raise RuntimeError(f"no free port on {address}")


def _zone_text(origin: str, records: list[str], ns_v4: str) -> str:
    head = [
        f"$ORIGIN {origin}",
        "$TTL 300",
        f"@ SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 300",
        f"@ NS ns.{origin}",
        f"ns A {ns_v4}",
        "ns AAAA ::1",
    ]
    return "\n".join(head + records) + "\n"


class DNSLab:
    """knotd + unbound for the given child zones of ``lab.test.``; :meth:`start`, :meth:`stop`.

    After :meth:`start`, :attr:`resolver` is ``ADDR:PORT`` of the validating resolver (what a
    test passes as ``--dns-server``) and :attr:`authoritative` the same for knotd.
    """

    def __init__(self, directory: Path, zones: list[LabZone], *, auth_address: str = "127.0.9.1",
                 resolver_address: str = "127.0.9.2") -> None:
        self.dir = Path(directory)
        self.zones = zones
        self.auth_address = auth_address
        self.resolver_address = resolver_address
        self.auth_port = 0
        self.resolver_port = 0
        self._procs: list[subprocess.Popen[bytes]] = []
        self.trust_anchor = ""

    @property
    def resolver(self) -> str:
        return f"{self.resolver_address}:{self.resolver_port}"

    @property
    def authoritative(self) -> str:
        return f"{self.auth_address}:{self.auth_port}"

    @staticmethod
    def available() -> str | None:
        """None when knotd, keymgr and unbound are installed, else what is missing."""
        missing = [b for b in ("knotd", "keymgr", "unbound") if _which(b) is None]
        return ", ".join(missing) + " not installed (scripts/install.sh)" if missing else None

    # ------------------------------------------------------------------ set-up
    def start(self) -> DNSLab:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.auth_port = free_port(self.auth_address)
        conf = self._write_knot_conf()
        ds = {z.name: self._keygen(conf, z.name, z.algorithm) for z in self.zones if z.ds != "unsigned"}
        apex_ds = self._keygen(conf, LAB_APEX, "ecdsap256sha256")
        self.trust_anchor = apex_ds
        self._write_zones(ds)
        self._spawn([_which("knotd") or "knotd", "-c", str(conf)], "knotd.log")
        self._wait_signed()
        self.resolver_port = free_port(self.resolver_address)
        uconf = self._write_unbound_conf()
        self._spawn([_which("unbound") or "unbound", "-d", "-c", str(uconf)], "unbound.log")
        self._wait_resolver()
        return self

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self._procs.clear()

    def _write_knot_conf(self) -> Path:
        d = self.dir
        zones = [LAB_APEX] + [z.name for z in self.zones]
        signed = {LAB_APEX} | {z.name for z in self.zones if z.ds != "unsigned"}
        lines = [
            "server:",
            f'    rundir: "{d}"',
            f"    listen: {self.auth_address}@{self.auth_port}",
            "log:",
            "  - target: stderr",
            "    any: warning",
            "database:",
            f'    storage: "{d}"',
            f'    kasp-db: "{d}/keys"',
            "policy:",
        ]
        algorithms = {LAB_APEX: "ecdsap256sha256"} | {z.name: z.algorithm for z in self.zones}
        for alg in sorted(set(algorithms.values())):
            lines += [f"  - id: lab-{alg}", f"    algorithm: {alg}", "    manual: on", "    single-type-signing: on"]
        lines.append("zone:")
        for name in zones:
            lines += [f"  - domain: {name}", f'    file: "{d}/{name}zone"']
            if name in signed:
                lines += ["    dnssec-signing: on", f"    dnssec-policy: lab-{algorithms[name]}"]
        path = d / "knot.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _keygen(self, conf: Path, zone: str, algorithm: str) -> str:
        """Make the zone's signing key; return its SHA-256 DS record (presentation text)."""
        keymgr = _which("keymgr") or "keymgr"
        size = ["size=2048"] if algorithm.startswith("rsa") else []
        subprocess.run([keymgr, "-c", str(conf), zone, "generate", f"algorithm={algorithm}", *size,
                        "ksk=yes", "zsk=yes"], check=True, capture_output=True, timeout=30)
        out = subprocess.run([keymgr, "-c", str(conf), zone, "ds"], check=True, capture_output=True,
                             text=True, timeout=30).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[1] == "DS" and parts[4] == "2":
                return line.strip()
        raise RuntimeError(f"keymgr gave no SHA-256 DS for {zone}: {out!r}")

    def _write_zones(self, ds: dict[str, str]) -> None:
        parent: list[str] = []
        for z in self.zones:
            parent += [f"{z.label} NS ns.{z.name}", f"ns.{z.label} A {self.auth_address}",
                       f"ns.{z.label} AAAA ::1"]
            if z.ds == "signed":
                parent.append(ds[z.name])
            elif z.ds == "bogus":
                owner, _, tag, alg, dtype, digest = ds[z.name].split(None, 5)
                wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
                parent.append(f"{owner} DS {tag} {alg} {dtype} {wrong}")
            (self.dir / f"{z.name}zone").write_text(_zone_text(z.name, z.records, self.auth_address))
        (self.dir / f"{LAB_APEX}zone").write_text(_zone_text(LAB_APEX, parent, self.auth_address))

    def _write_unbound_conf(self) -> Path:
        d = self.dir
        anchor = d / "lab-anchor.ds"
        anchor.write_text(self.trust_anchor + "\n")
        lines = [
            "server:",
            f"    interface: {self.resolver_address}@{self.resolver_port}",
            f"    port: {self.resolver_port}",
            "    do-ip6: no",
            "    do-daemonize: no",
            '    username: ""',
            '    chroot: ""',
            f'    directory: "{d}"',
            '    pidfile: ""',
            "    use-syslog: no",
            f'    logfile: "{d}/unbound-server.log"',
            "    verbosity: 1",
            "    do-not-query-localhost: no",
            "    access-control: 127.0.0.0/8 allow",
            "    module-config: \"validator iterator\"",
            f'    trust-anchor-file: "{anchor}"',
            "    val-log-level: 2",
            "    harden-dnssec-stripped: yes",
            "    qname-minimisation: no",
            "    cache-max-ttl: 5",
            "    cache-max-negative-ttl: 5",
            '    local-zone: "." refuse',
            f'    local-zone: "{LAB_APEX}" transparent',
            "remote-control:",
            "    control-enable: no",
        ]
        for name in [LAB_APEX] + [z.name for z in self.zones]:
            lines += ["stub-zone:", f'    name: "{name}"', f"    stub-addr: {self.auth_address}@{self.auth_port}",
                      "    stub-prime: no"]
        path = d / "unbound.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _spawn(self, argv: list[str], log: str) -> None:
        out = (self.dir / log).open("wb")
        self._procs.append(subprocess.Popen(argv, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL))
        out.close()

    def _check_alive(self) -> None:
        for proc in self._procs:
            if proc.poll() is not None:
                logs = " | ".join((self.dir / n).read_text(errors="replace")[-800:]
                                  for n in ("knotd.log", "unbound.log", "unbound-server.log")
                                  if (self.dir / n).exists())
                raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {logs}")

    def _wait_signed(self, timeout: float = 20.0) -> None:
        """Until knotd answers every signed zone's DNSKEY with a signature."""
        pending = [LAB_APEX] + [z.name for z in self.zones if z.ds != "unsigned"]
        end = time.monotonic() + timeout
        while pending:
            self._check_alive()
            if time.monotonic() > end:
                raise RuntimeError(f"knotd did not serve signed zones {pending} within {timeout:g} s")
            name = pending[0]
            q = dns.message.make_query(name, "DNSKEY", want_dnssec=True)
            with contextlib.suppress(OSError, dns.exception.DNSException):
                r = dns.query.udp(q, self.auth_address, port=self.auth_port, timeout=1)
                if any(rr.rdtype == dns.rdatatype.RRSIG for rr in r.answer):
                    pending.pop(0)
                    continue
            time.sleep(0.1)

    def _wait_resolver(self, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while True:
            self._check_alive()
            q = dns.message.make_query(LAB_APEX, "SOA", want_dnssec=True)
            with contextlib.suppress(OSError, dns.exception.DNSException):
                r = dns.query.udp(q, self.resolver_address, port=self.resolver_port, timeout=1)
                if r.flags & dns.flags.AD:
                    return
            if time.monotonic() > end:
                raise RuntimeError(f"unbound did not validate {LAB_APEX} within {timeout:g} s")
            time.sleep(0.1)


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None)



def _good_records(web: str, zone: str) -> list[str]:
    """A child zone with everything right: CAA, SPF -all with one include, DMARC reject with
    reports, MTA-STS and TLS-RPT records, AAAA on ::1 for the web host and the mail host."""
    return [
        f"@ A {web}",
        f"edge A {web}",
        "edge AAAA ::1",
        f"www A {web}",
        "www AAAA ::1",
        '@ CAA 0 issue "lab-ca.test"',  # the lab CA's CAA domain (policy parameter dns.caa_issuers)
        '@ CAA 0 iodef "mailto:security@lab.test"',
        "@ MX 10 mail",
        f"mail A {web}",
        "mail AAAA ::1",
        f'@ TXT "v=spf1 mx include:_spf.{zone} -all"',
        '_spf TXT "v=spf1 ip4:127.0.9.0/24 ip6:::1 -all"',
        '_dmarc TXT "v=DMARC1; p=reject; sp=reject; rua=mailto:dmarc@lab.test"',
        '_mta-sts TXT "v=STSv1; id=20261204"',
        f"mta-sts A {web}",
        '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@lab.test"',
    ]


def _changed(web: str, zone: str, drop: tuple[str, ...] = (), add: tuple[str, ...] = ()) -> list[str]:
    return [r for r in _good_records(web, zone) if not r.startswith(drop)] + list(add)


# label -> (the one finding id it plants, or "" for none; how it differs from "good")
LAB_DNS_FLAWS: dict[str, str] = {
    "good": "",
    "unsigned": "dns.dnssec.unsigned",
    "bogus": "dns.dnssec.bogus",
    "nocaa": "dns.caa.missing",
    "spfall": "dns.spf.permissive",
    "spflookups": "dns.spf.too_many_lookups",
    "dmarcnone": "dns.dmarc.not_enforcing",
    "nodmarc": "dns.dmarc.missing",
    "nomail": "",
    "noaaaa": "dns.ipv6.web_missing",
    "aaaadead": "dns.ipv6.web_unreachable",
    "stsnone": "dns.mta_sts.invalid",
    "weakalg": "dns.dnssec.weak_algorithm",
    "cdn": "",
    "caawrong": "dns.caa.issuer_not_listed",
}


def mta_sts_policy(mode: str = "enforce") -> str:
    """The MTA-STS policy every lab zone's ``mta-sts`` host serves (one ``mx:`` per zone)."""
    mx = "".join(f"mx: mail.{label}.{LAB_APEX.rstrip('.')}\n" for label in LAB_DNS_FLAWS)
    return f"version: STSv1\nmode: {mode}\n{mx}max_age: 86400\n"


def lab_zones(web: str, sts_none: str = "127.0.9.5") -> list[LabZone]:
    """The lab's child zones of ``lab.test.``, one per entry of :data:`LAB_DNS_FLAWS`.

    ``web`` is the IPv4 address the zones' web, mail and mta-sts names point at (serve
    :func:`mta_sts_policy` there on port 443); ``stsnone``'s mta-sts name points at
    ``sts_none`` instead (serve a ``mode: none`` policy there). ``www`` of every
    zone has AAAA ``::1``: ``aaaadead`` differs only in the port a test audits it on (one
    that nothing serves on ``::1``), so its AAAA does not answer.
    """
    spf = "@ TXT"

    def z(label: str) -> str:
        return f"{label}.{LAB_APEX}"

    includes = " ".join(f"include:s{i}.{z('spflookups')}" for i in range(1, 12))
    return [
        LabZone("good", _good_records(web, z("good"))),
        LabZone("unsigned", _good_records(web, z("unsigned")), ds="unsigned"),
        LabZone("bogus", _good_records(web, z("bogus")), ds="bogus"),
        LabZone("nocaa", _changed(web, z("nocaa"), drop=("@ CAA",))),
        LabZone("spfall", _changed(web, z("spfall"), drop=(spf,), add=('@ TXT "v=spf1 mx +all"',))),
        LabZone("spflookups", _changed(web, z("spflookups"), drop=(spf,), add=(
            f'@ TXT "v=spf1 {includes} -all"',
            *(f's{i} TXT "v=spf1 ip4:127.0.9.{i} -all"' for i in range(1, 12))))),
        LabZone("dmarcnone", _changed(web, z("dmarcnone"), drop=("_dmarc",),
                                      add=('_dmarc TXT "v=DMARC1; p=none; rua=mailto:dmarc@lab.test"',))),
        LabZone("nodmarc", _changed(web, z("nodmarc"), drop=("_dmarc",))),
        LabZone("nomail", _changed(web, z("nomail"),
                                   drop=(spf, "@ MX", "mail ", "_dmarc", "_mta-sts", "mta-sts", "_smtp"),
                                   add=("@ MX 0 .", '@ TXT "v=spf1 -all"'))),
        LabZone("noaaaa", _changed(web, z("noaaaa"), drop=("www AAAA",))),
        LabZone("aaaadead", _good_records(web, z("aaaadead"))),
        LabZone("caawrong", _changed(web, z("caawrong"), drop=('@ CAA 0 issue',),
                                     add=('@ CAA 0 issue "other-ca.test"',))),
        LabZone("cdn", _changed(web, z("cdn"), drop=("www ",), add=(f"www CNAME edge.{z('good')}",))),
        LabZone("weakalg", _good_records(web, z("weakalg")), algorithm="rsasha1"),
        LabZone("stsnone", _changed(web, z("stsnone"), drop=("mta-sts",), add=(f"mta-sts A {sts_none}",))),
    ]
