"""What the ``dns`` check asks the resolver (and the IPv6 site), kept as JSON-able evidence.

Every answer the analysis needs is gathered here, through the bounded client
(:mod:`checks.dns.client`), into one plain dict; :mod:`checks.dns.analysis` judges that dict
alone, so a stored scan can be judged again offline.

- **Zone**: the enclosing zone of the audited host, from the SOA in the answer or the
  authority section (``www.example.gov.vn`` -> ``example.gov.vn``). The mail domain is that
  zone's apex.
- **DNSSEC**: the apex DNSKEY and DS (asked with CD, so bogus data is still seen) and the
  resolver's verdict on the DNSKEY asked without CD.
- **CAA**: RFC 8659 tree climbing from the host up to (not including) the top-level label;
  when there are records, the issuer of the certificate the site serves (at its pinned
  address) and the CAA domain the policy parameter ``dns.caa_issuers`` maps it to.
- **Mail**: MX, the SPF record and every include/redirect target (at most
  ``MAX_SPF_DOMAINS``), ``_dmarc``, ``_mta-sts`` and ``_smtp._tls`` TXT records, and the
  MTA-STS policy those announce (:mod:`checks.dns.mta_sts`).
- **IPv6**: AAAA of the host and of the zone's name servers, and whether the host answers
  (TCP connect and TLS handshake within the check's time bound) on each of its IPv6
  addresses (at most ``MAX_V6_PROBES``), subject to the run's address policy.
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any

import dns.rdatatype

from auditor.check import CheckContext
from auditor.errors import AuditorError
from auditor.targets import Target
from checks.dns.bounded import guard
from checks.dns.client import Answer, DNSClient
from checks.dns.mailauth import parse_spf, spf_records
from checks.dns.mta_sts import fetch_policy

MAX_SPF_DOMAINS = 16
MAX_NS = 8
MAX_V6_PROBES = 4
MAX_TXT = 16
_LOCAL_ERRNOS = {errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}


def find_zone(client: DNSClient, host: str) -> str:
    """The apex of the zone ``host`` is in.

    The SOA of a NODATA/NXDOMAIN answer names it, unless ``host`` is a CNAME (to a CDN, say):
    then that SOA is the target's zone, so the parents of ``host`` are asked in turn until
    one owns an SOA itself.
    """
    labels = _norm(host).split(".")
    for i in range(len(labels)):
        name = ".".join(labels[i:])
        ans = client.query(name, "SOA")
        if any(rr.rdtype == dns.rdatatype.SOA and _norm(rr.name.to_text()) == name for rr in ans.answer):
            return name
        for rr in ans.authority:
            owner = _norm(rr.name.to_text())
            if rr.rdtype == dns.rdatatype.SOA and (name == owner or name.endswith("." + owner)):
                return owner
    raise AuditorError(f"no zone found for {host}: no SOA at it or any parent")


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def _txts(ans: Answer) -> list[str]:
    return ans.texts("TXT")[:MAX_TXT]


def collect(client: DNSClient, target: Target, ctx: CheckContext) -> dict[str, Any]:
    host = _norm(target.host)
    zone = find_zone(client, host)
    ev: dict[str, Any] = {"host": host, "zone": zone, "server": [f"{a}:{p}" for a, p in client.servers]}
    ev["dnssec"] = _dnssec(client, zone)
    ev["caa"] = _caa(client, target, ctx)
    ev["mail"] = _mail(client, zone, ctx)
    ev["ipv6"] = _ipv6(client, target, zone, ctx)
    ev["queries"] = client.queries
    return ev


def _dnssec(client: DNSClient, zone: str) -> dict[str, Any]:
    keys = client.query(zone, "DNSKEY")
    dnskey = keys.rrset("DNSKEY")
    ds = client.query(zone, "DS").rrset("DS")
    verdict = client.query(zone, "DNSKEY", validate=True)
    status = "secure" if verdict.ad and verdict.rcode == "NOERROR" else (
        "bogus" if verdict.rcode == "SERVFAIL" else "insecure")
    return {
        "dnskey": [{"flags": r.flags, "algorithm": int(r.algorithm)} for r in dnskey] if dnskey else [],
        "dnskey_signed": keys.sigs("DNSKEY") is not None,
        "ds": [{"algorithm": int(r.algorithm), "digest_type": int(r.digest_type)} for r in ds] if ds else [],
        "resolver_verdict": status,
        "resolver_rcode": verdict.rcode,
    }


def _caa(client: DNSClient, target: Target, ctx: CheckContext) -> dict[str, Any]:
    host = _norm(target.host)
    out: dict[str, Any] = {"found_at": None, "records": []}
    labels = host.split(".")
    for i in range(len(labels) - 1):
        name = ".".join(labels[i:])
        rr = client.query(name, "CAA").rrset("CAA")
        if rr is not None:
            out["found_at"] = name
            out["records"] = [{"flags": int(r.flags), "tag": r.tag.decode("ascii", "replace")[:32],
                               "value": r.value.decode("utf-8", "replace")[:200]} for r in rr][:MAX_TXT]
            break
    if out["records"]:
        issuer = certificate_issuer(target, ctx)
        out["cert_issuer"] = issuer
        known: dict[str, str] = dict(ctx.param("dns.caa_issuers", {}) or {})
        org = str(issuer.get("organization") or "")
        out["issuer_caa_domain"] = next((dom for name, dom in known.items() if name and name.lower() in org.lower()),
                                        None)
    return out


def certificate_issuer(target: Target, ctx: CheckContext) -> dict[str, Any]:
    """The issuer (organization, common name) of the certificate the site serves at its pinned
    address, or the error; the chain is the tls check's business, so it is not validated."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((target.address, target.port), timeout=ctx.bounded_timeout()) as sock, \
                guard(sock, ctx.bounded_timeout()):
            sock.settimeout(ctx.bounded_timeout())
            with tls.wrap_socket(sock, server_hostname=target.host) as conn:
                der = conn.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    if not der:
        return {"error": "no certificate"}
    try:
        name = x509.load_der_x509_certificate(der).issuer
    except ValueError as exc:
        return {"error": f"unreadable certificate: {str(exc)[:120]}"}

    def first(oid: x509.ObjectIdentifier) -> str | None:
        attrs = name.get_attributes_for_oid(oid)
        return str(attrs[0].value)[:200] if attrs else None

    return {"organization": first(NameOID.ORGANIZATION_NAME), "common_name": first(NameOID.COMMON_NAME)}


def _mail(client: DNSClient, zone: str, ctx: CheckContext) -> dict[str, Any]:
    mx = client.query(zone, "MX").rrset("MX")
    mx_list = [{"preference": int(r.preference), "exchange": _norm(r.exchange.to_text()) or "."}
               for r in mx] if mx else []
    tree: dict[str, list[str]] = {zone: _txts(client.query(zone, "TXT"))}
    queue = list(_spf_targets(tree[zone]))
    truncated = False
    while queue:
        domain = queue.pop(0)
        if domain in tree:
            continue
        if len(tree) >= MAX_SPF_DOMAINS:
            truncated = True
            break
        tree[domain] = _txts(client.query(domain, "TXT"))
        queue += _spf_targets(tree[domain])
    out: dict[str, Any] = {
        "mx": mx_list,
        "spf_tree": tree,
        "spf_tree_truncated": truncated,
        "dmarc": _txts(client.query(f"_dmarc.{zone}", "TXT")),
        "mta_sts": _txts(client.query(f"_mta-sts.{zone}", "TXT")),
        "tls_rpt": _txts(client.query(f"_smtp._tls.{zone}", "TXT")),
    }
    if any(t.lower().replace(" ", "").startswith("v=stsv1;") for t in out["mta_sts"]):
        out["mta_sts_policy"] = fetch_policy(client, zone, ctx)
    return out


def _spf_targets(txts: list[str]) -> list[str]:
    recs = spf_records(txts)
    if not recs:
        return []
    rec = parse_spf(recs[0])
    return rec.includes + ([rec.redirect] if rec.redirect else [])


def _ipv6(client: DNSClient, target: Target, zone: str, ctx: CheckContext) -> dict[str, Any]:
    host = _norm(target.host)
    rr = client.query(host, "AAAA").rrset("AAAA")
    web = [r.address for r in rr] if rr else []
    ns_rr = client.query(zone, "NS").rrset("NS")
    ns: dict[str, list[str]] = {}
    for r in list(ns_rr or [])[:MAX_NS]:
        name = _norm(r.target.to_text())
        aaaa = client.query(name, "AAAA").rrset("AAAA")
        ns[name] = [a.address for a in aaaa] if aaaa else []
    reach = {addr: _probe(host, addr, target.port, ctx) for addr in web[:MAX_V6_PROBES]}
    return {"web_aaaa": web, "ns_aaaa": ns, "web_reach": reach, "port": target.port}


def _probe(host: str, address: str, port: int, ctx: CheckContext) -> str:
    """"ok" when ``address:port`` accepts TCP (within T) and completes a TLS handshake (within
    T more, whatever the server drips), else why not."""
    if ctx.resolver is not None:
        try:
            ctx.resolver.policy.check(host, address)
        except AuditorError as exc:
            return f"not probed: {exc}"
    timeout = ctx.bounded_timeout()
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE  # certificates are the tls check's business
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock, \
                guard(sock, ctx.bounded_timeout()) as fired:
            sock.settimeout(ctx.bounded_timeout())
            try:
                with tls.wrap_socket(sock, server_hostname=host) as conn:
                    version = conn.version()
            except (OSError, ssl.SSLError):
                if fired.is_set():
                    raise TimeoutError from None
                raise
        return "ok" if version else "no TLS version negotiated"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        if exc.errno in _LOCAL_ERRNOS:  # this machine has no IPv6 path: says nothing of the site
            return f"untested: no IPv6 route from the scanner ({exc.strerror})"
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    except (ssl.SSLError, ValueError) as exc:
        return f"{type(exc).__name__}: {str(exc)[:120]}"
