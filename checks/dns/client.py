"""A bounded DNS client (dnspython) for the ``dns`` check: the resolver the user chose, nothing else.

Name servers are hostile like web servers, so the bounds live here:

- **Only the chosen servers.** Queries go to the ``--dns-server`` addresses (``ADDR[:PORT]``),
  else to the system resolver's addresses read from ``/etc/resolv.conf`` by dnspython. The
  client never follows referrals or asks another server.
- **Bounded time.** Each query waits at most ``ctx.bounded_timeout()`` (cut to the site
  deadline) for UDP, and the same again for the TCP retry a truncated answer asks for; the
  client stops asking once the site deadline has passed.
- **Bounded count and size.** At most ``max_queries`` queries per check run (a hostile zone
  cannot make SPF includes or CNAME games cost thousands), UDP answers up to the 1232-byte
  EDNS size we advertise, TCP answers up to 64 KiB (the protocol's own cap, enforced by the
  two-byte length prefix) and only the first ``MAX_RRS`` records of a section are kept.
- **DNSSEC.** Every query sets DO (to receive RRSIGs). Data queries also set CD (checking
  disabled), so a validating resolver hands over even data it judged bogus and the mail, CAA
  and IPv6 parts still see the records; the validation verdict comes from the same question
  asked without CD (``validate=True``): AD set means the chain from the resolver's trust
  anchor holds, SERVFAIL there while the CD answer has data means bogus.

Answers are cached per (name, type) for the run, so the mail, CAA and DNSSEC parts share them.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from auditor.targets import is_ip_literal

if TYPE_CHECKING:
    from auditor.check import CheckContext

DEFAULT_MAX_QUERIES = 120
MAX_RRS = 64
EDNS_PAYLOAD = 1232


class DNSBudgetError(Exception):
    """The run's query count or time is used up: what is left is not tested."""


class DNSQueryError(Exception):
    """No usable answer from any chosen server (timeout, refused, malformed)."""


def parse_server(spec: str) -> tuple[str, int]:
    """``ADDR``, ``ADDR:PORT``, ``[V6]:PORT`` or a bare IPv6 address -> (address, port)."""
    text = spec.strip()
    addr, port_s = text, ""
    if text.startswith("["):
        if "]" not in text:
            raise ValueError(f"--dns-server {spec!r}: expected [IPV6]:PORT")
        addr, _, rest = text[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"--dns-server {spec!r}: expected ADDR[:PORT] or [IPV6]:PORT")
    elif text.count(":") == 1:
        addr, port_s = text.split(":")
    try:
        address = str(ipaddress.ip_address(addr))
    except ValueError:
        raise ValueError(f"--dns-server {spec!r}: {addr!r} is not an IP address") from None
    port = 53
    if port_s:
        if not port_s.isdigit() or not 0 < int(port_s) < 65536:
            raise ValueError(f"--dns-server {spec!r}: port {port_s!r} is not 1..65535")
        port = int(port_s)
    return address, port


def system_servers() -> list[tuple[str, int]]:
    """The system resolver's name servers (``/etc/resolv.conf``), port 53."""
    try:
        conf = dns.resolver.Resolver(configure=True)
    except (dns.resolver.NoResolverConfiguration, OSError):
        return []
    return [(str(a), int(conf.port)) for a in conf.nameservers if is_ip_literal(str(a))]


@dataclass
class Answer:
    """What a server said for one (name, type): rcode, records and their signatures."""

    name: str
    rdtype: str
    rcode: str
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    ad: bool = False

    def rrset(self, rdtype: str, name: str | None = None) -> dns.rrset.RRset | None:
        """The answer RRset of ``rdtype`` at ``name`` (default the query name), following the
        CNAME chain in the answer (at most 8 links, as a resolver hands them over), if any."""
        want = dns.name.from_text(name or self.name)
        code = dns.rdatatype.from_text(rdtype)
        for _ in range(8):
            cname = None
            for rr in self.answer:
                if rr.name != want:
                    continue
                if rr.rdtype == code:
                    return rr
                if rr.rdtype == dns.rdatatype.CNAME and code != dns.rdatatype.CNAME:
                    cname = rr[0].target
            if cname is None:
                return None
            want = cname
        return None

    def sigs(self, rdtype: str, name: str | None = None, section: str = "answer") -> dns.rrset.RRset | None:
        """The RRSIG RRset covering ``rdtype`` at ``name``."""
        want = dns.name.from_text(name or self.name)
        code = dns.rdatatype.from_text(rdtype)
        for rr in self.answer if section == "answer" else self.authority:
            if rr.rdtype == dns.rdatatype.RRSIG and rr.covers == code and rr.name == want:
                return rr
        return None

    def texts(self, rdtype: str = "TXT") -> list[str]:
        """TXT strings of the answer (each record's strings joined, RFC 7208 §3.3), or other
        record types as presentation text."""
        rr = self.rrset(rdtype)
        if rr is None:
            return []
        if rdtype == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in rr]
        return [r.to_text() for r in rr]

    @property
    def exists(self) -> bool:
        return self.rcode == "NOERROR"


class DNSClient:
    """Queries the chosen servers within the check's bounds (see the module docstring)."""

    def __init__(
        self, servers: list[tuple[str, int]], ctx: CheckContext, *, max_queries: int = DEFAULT_MAX_QUERIES
    ) -> None:
        if not servers:
            raise DNSQueryError("no DNS server to ask (none given with --dns-server and none in /etc/resolv.conf)")
        self.servers = servers
        self.ctx = ctx
        self.max_queries = max_queries
        self.queries = 0
        self.tcp_fallbacks = 0
        self._cache: dict[tuple[str, str], Answer] = {}
        self._lock = threading.Lock()

    def query(self, name: str, rdtype: str, *, validate: bool = False) -> Answer:
        """One question; cached. Raises DNSBudgetError or DNSQueryError.

        ``validate``: ask without CD and accept SERVFAIL as an answer (the resolver's verdict).
        """
        key = (dns.name.from_text(name).to_text().lower(), rdtype + ("/v" if validate else ""))
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            if self.queries >= self.max_queries:
                raise DNSBudgetError(f"DNS query budget used up ({self.max_queries} queries)")
            if self.ctx.remaining() <= 0:
                raise DNSBudgetError("site time bound reached before all DNS questions were asked")
            self.queries += 1
        answer = self._ask(key[0], rdtype, validate)
        with self._lock:
            self._cache[key] = answer
        return answer

    def _ask(self, name: str, rdtype: str, validate: bool) -> Answer:
        request = dns.message.make_query(name, rdtype, want_dnssec=True, payload=EDNS_PAYLOAD)
        request.flags |= dns.flags.RD if validate else dns.flags.CD | dns.flags.RD
        errors: list[str] = []
        for address, port in self.servers:
            timeout = self.ctx.bounded_timeout()
            try:
                response = dns.query.udp(request, address, port=port, timeout=timeout,
                                         ignore_unexpected=True, ignore_trailing=True)
                if response.flags & dns.flags.TC:
                    self.tcp_fallbacks += 1
                    response = dns.query.tcp(request, address, port=port, timeout=self.ctx.bounded_timeout())
            except (dns.exception.Timeout, TimeoutError):
                errors.append(f"{address}:{port} did not answer within {timeout:g} s")
                continue
            except (OSError, dns.exception.DNSException, ValueError, EOFError) as exc:
                errors.append(f"{address}:{port}: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            rcode = dns.rcode.to_text(response.rcode())
            if rcode in ("REFUSED", "NOTIMP", "FORMERR") or (rcode == "SERVFAIL" and not validate):
                errors.append(f"{address}:{port} answered {rcode} for {name} {rdtype}")
                continue
            return Answer(
                name=name, rdtype=rdtype, rcode=rcode,
                answer=[_cap(rr) for rr in response.answer[:MAX_RRS]],
                authority=[_cap(rr) for rr in response.authority[:MAX_RRS]],
                ad=bool(response.flags & dns.flags.AD),
            )
        raise DNSQueryError("; ".join(errors)[:500] or f"no answer for {name} {rdtype}")


def _cap(rr: dns.rrset.RRset) -> dns.rrset.RRset:
    """An RRset with at most MAX_RRS records (a hostile server may send thousands)."""
    if len(rr) <= MAX_RRS:
        return rr
    out = dns.rrset.RRset(rr.name, rr.rdclass, rr.rdtype, rr.covers)
    for i, rdata in enumerate(rr):
        if i >= MAX_RRS:
            break
        out.add(rdata, rr.ttl)
    return out
