"""The ``dns`` check's verdicts: a pure function of the evidence :mod:`checks.dns.collect` stored.

Returns ``(finding id, one-line evidence)`` pairs. Rules:

- DNSSEC: the resolver's verdict on the apex DNSKEY decides (secure, bogus, insecure); an
  insecure zone with a DS at its parent would mean the resolver does not validate, which is a
  check error (untested), not a pass. Algorithms RFC 8624 says must not (or should not) be
  used for signing, and SHA-1-only DS records, are weak.
- A domain that sends no mail (null MX, RFC 7505; or no MX and ``v=spf1 -all``) is done by
  its SPF: no DMARC, MTA-STS or TLS-RPT finding is raised for it.
"""

from __future__ import annotations

from typing import Any

from checks.dns.mailauth import SPF_LOOKUP_LIMIT, is_null_spf, judge_dmarc, judge_spf
from checks.dns.mta_sts import judge_policy

# RFC 8624 §3.1: MUST NOT sign with 1, 3, 6, 12; NOT RECOMMENDED 5, 7 (SHA-1).
WEAK_ALGORITHMS = {1: "RSAMD5", 3: "DSA", 5: "RSASHA1", 6: "DSA-NSEC3-SHA1", 7: "RSASHA1-NSEC3-SHA1",
                   12: "ECC-GOST"}


UNTESTED = "untested:"  # a probe result that says the scanner, not the site, could not try


class NotTested(Exception):
    """The evidence cannot support a verdict (e.g. a non-validating resolver)."""


def judge(ev: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """The findings the evidence supports, and what it leaves untested (each part on its own:
    an untested DNSSEC verdict does not hide the mail findings)."""
    hits: list[tuple[str, str]] = []
    untested: list[str] = []
    zone = str(ev.get("zone", ""))
    try:
        hits += _dnssec(zone, ev.get("dnssec", {}))
    except NotTested as exc:
        untested.append(str(exc))
    hits += _caa(str(ev.get("host", "")), ev.get("caa", {}))
    hits += _mail(zone, ev.get("mail", {}))
    try:
        hits += _ipv6(str(ev.get("host", "")), ev.get("ipv6", {}))
    except NotTested as exc:
        untested.append(str(exc))
    return hits, untested


def analyse(ev: dict[str, Any]) -> list[tuple[str, str]]:
    """The findings; raises :class:`NotTested` when a part could not be judged."""
    hits, untested = judge(ev)
    if untested:
        raise NotTested("; ".join(untested))
    return hits


def _dnssec(zone: str, d: dict[str, Any]) -> list[tuple[str, str]]:
    verdict = d.get("resolver_verdict")
    keys = d.get("dnskey", [])
    ds = d.get("ds", [])
    out: list[tuple[str, str]] = []
    if verdict == "bogus":
        if not keys:
            raise NotTested(f"the resolver answers SERVFAIL for {zone} DNSKEY and gives no data with CD: "
                            "cannot tell a bogus zone from a broken one")
        out.append(("dns.dnssec.bogus", f"{zone}: the validating resolver rejects the zone's signatures "
                                        f"(SERVFAIL; DS at parent: {len(ds)}, DNSKEY: {len(keys)})"))
    elif verdict == "insecure":
        if ds:
            raise NotTested(f"{zone} has a DS at its parent but the resolver did not validate it (no AD bit): "
                            "the resolver does not validate DNSSEC; choose a validating one with --dns-server")
        why = "no DNSKEY" if not keys else "DNSKEY published but no DS at the parent (no chain of trust)"
        out.append(("dns.dnssec.unsigned", f"{zone}: not validated by DNSSEC ({why})"))
    elif verdict != "secure":
        raise NotTested(f"no DNSSEC verdict for {zone}")
    weak = sorted({WEAK_ALGORITHMS[k["algorithm"]] for k in keys if k.get("algorithm") in WEAK_ALGORITHMS})
    if ds and all(x.get("digest_type") == 1 for x in ds):
        weak.append("DS digest SHA-1 only")
    if weak and keys:
        out.append(("dns.dnssec.weak_algorithm", f"{zone}: " + ", ".join(weak)))
    return out


def _caa(host: str, caa: dict[str, Any]) -> list[tuple[str, str]]:
    records = caa.get("records", [])
    issue = [r for r in records if r.get("tag", "").lower() == "issue"]
    if not issue and not any(r.get("tag", "").lower() == "issuewild" for r in records):
        return [("dns.caa.missing", f"no CAA issue record at {host} or any parent domain")]
    expected = caa.get("issuer_caa_domain")
    if not expected or not issue:
        return []  # an issuer this policy does not map (or a wildcard-only set): no verdict
    named = {str(r.get("value", "")).split(";", 1)[0].strip().lower() for r in issue}
    if expected.lower() not in named:
        org = (caa.get("cert_issuer") or {}).get("organization")
        return [("dns.caa.issuer_not_listed", f"{caa.get('found_at')}: CAA issue names "
                 f"{', '.join(sorted(n or ';' for n in named))}, not {expected} (issuer of the site's certificate: {org})")]
    return []


def sends_no_mail(mail: dict[str, Any], spf_record: str | None) -> bool:
    mx = mail.get("mx", [])
    null_mx = len(mx) == 1 and mx[0].get("exchange") in (".", "")
    return null_mx or (not mx and spf_record is not None and is_null_spf(spf_record))


def _mail(zone: str, mail: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    spf = judge_spf(zone, mail.get("spf_tree", {}))
    if spf.record is None:
        out.append(("dns.spf.missing", f"{zone}: no v=spf1 TXT record"))
    else:
        if spf.errors:
            out.append(("dns.spf.invalid", f"{zone}: " + "; ".join(spf.errors)[:300]))
        if spf.all_qualifier in ("+", "?"):
            out.append(("dns.spf.permissive", f"{zone}: '{spf.all_qualifier}all' lets any host send as the domain"))
        over = spf.lookups > SPF_LOOKUP_LIMIT or mail.get("spf_tree_truncated")
        if over:
            out.append(("dns.spf.too_many_lookups",
                        f"{zone}: {spf.lookups}{'+' if mail.get('spf_tree_truncated') else ''} DNS lookups "
                        f"(limit {SPF_LOOKUP_LIMIT})"))
    if sends_no_mail(mail, spf.record):
        return out
    dmarc = judge_dmarc(mail.get("dmarc", []))
    if dmarc.record is None:
        out.append(("dns.dmarc.missing", f"_dmarc.{zone}: no v=DMARC1 record"))
    elif dmarc.errors:
        out.append(("dns.dmarc.invalid", f"_dmarc.{zone}: " + "; ".join(dmarc.errors)[:300]))
    else:
        p = dmarc.tags.get("p", "").lower()
        sp = dmarc.tags.get("sp", p).lower()
        if p == "none":
            out.append(("dns.dmarc.not_enforcing", f"_dmarc.{zone}: p=none (spoofed mail is delivered)"))
        elif sp == "none":
            out.append(("dns.dmarc.subdomains_not_enforcing", f"_dmarc.{zone}: p={p} but sp=none"))
        if not dmarc.tags.get("rua"):
            out.append(("dns.dmarc.no_reporting", f"_dmarc.{zone}: no rua= reporting address"))
    if not any(t.lower().replace(" ", "").startswith("v=stsv1;") for t in mail.get("mta_sts", [])):
        out.append(("dns.mta_sts.missing", f"_mta-sts.{zone}: no v=STSv1 record"))
    else:
        mx_hosts = [m.get("exchange", "") for m in mail.get("mx", []) if m.get("exchange") not in (".", "")]
        why = judge_policy(mail.get("mta_sts_policy"), mx_hosts)
        if why:
            out.append(("dns.mta_sts.invalid", f"mta-sts.{zone}: {why}"[:300]))
    if not any(t.lower().replace(" ", "").startswith("v=tlsrptv1;") for t in mail.get("tls_rpt", [])):
        out.append(("dns.tls_rpt.missing", f"_smtp._tls.{zone}: no v=TLSRPTv1 record"))
    return out


def _ipv6(host: str, v6: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    web = v6.get("web_aaaa", [])
    if not web:
        out.append(("dns.ipv6.web_missing", f"{host}: no AAAA record"))
    else:
        reach = v6.get("web_reach", {})
        local = [why for why in reach.values() if why.startswith(UNTESTED)]
        if local and not any(why == "ok" for why in reach.values()):
            raise NotTested(f"IPv6 reachability of {host}: {local[0]}")
        dead = {a: why for a, why in reach.items() if why != "ok" and not why.startswith(UNTESTED)}
        if dead:
            addr, why = next(iter(dead.items()))
            out.append(("dns.ipv6.web_unreachable",
                        f"{host} [{addr}]:{v6.get('port')} does not answer over IPv6: {why}"[:300]))
    ns = v6.get("ns_aaaa", {})
    missing = sorted(n for n, addrs in ns.items() if not addrs)
    if ns and missing:
        out.append(("dns.ipv6.ns_missing", "name servers without AAAA: " + ", ".join(missing)[:250]))
    return out
