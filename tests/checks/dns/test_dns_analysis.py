"""The dns check's pure parts: SPF and DMARC parsing, and verdicts on evidence the lab cannot
plant cheaply (weak DNSSEC algorithms, a resolver that does not validate, broken records)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from checks.dns.analysis import NotTested, analyse
from checks.dns.mailauth import judge_dmarc, judge_spf, parse_spf

ZONE = "example.gov.vn"

GOOD: dict[str, Any] = {
    "host": f"www.{ZONE}", "zone": ZONE,
    "dnssec": {"dnskey": [{"flags": 257, "algorithm": 13}], "dnskey_signed": True,
               "ds": [{"algorithm": 13, "digest_type": 2}], "resolver_verdict": "secure",
               "resolver_rcode": "NOERROR"},
    "caa": {"found_at": ZONE, "records": [{"flags": 0, "tag": "issue", "value": "letsencrypt.org"}]},
    "mail": {"mx": [{"preference": 10, "exchange": f"mail.{ZONE}"}],
             "spf_tree": {ZONE: ["v=spf1 mx -all"]}, "spf_tree_truncated": False,
             "dmarc": ["v=DMARC1; p=reject; rua=mailto:d@example.gov.vn"],
             "mta_sts": ["v=STSv1; id=1"], "tls_rpt": ["v=TLSRPTv1; rua=mailto:t@example.gov.vn"],
             "mta_sts_policy": {"url": "u", "status": 200,
                                "text": "version: STSv1\nmode: enforce\nmx: *.example.gov.vn\nmax_age: 604800\n"}},
    "ipv6": {"web_aaaa": ["2001:db8::1"], "ns_aaaa": {f"ns1.{ZONE}": ["2001:db8::53"]},
             "web_reach": {"2001:db8::1": "ok"}, "port": 443},
}


def ids(ev: dict[str, Any]) -> list[str]:
    return sorted(fid for fid, _ in analyse(ev))


def changed(path: str, value: Any) -> dict[str, Any]:
    ev = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = ev
    for p in parents:
        node = node[p]
    node[last] = value
    return ev


def test_good_evidence_has_no_finding() -> None:
    assert ids(GOOD) == []


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("dnssec.dnskey", [{"flags": 257, "algorithm": 5}], ["dns.dnssec.weak_algorithm"]),
    ("dnssec.ds", [{"algorithm": 13, "digest_type": 1}], ["dns.dnssec.weak_algorithm"]),
    ("mail.spf_tree", {ZONE: ["v=spf1 mx ?all"]}, ["dns.spf.permissive"]),
    ("mail.spf_tree", {ZONE: ["v=spf1 mx -all", "v=spf1 -all"]}, ["dns.spf.invalid"]),
    ("mail.spf_tree", {ZONE: ["v=spf1 mx bogus:x -all"]}, ["dns.spf.invalid"]),
    ("mail.spf_tree", {ZONE: ["v=spf1 redirect=_s.example.gov.vn"], "_s.example.gov.vn": ["v=spf1 +all"]},
     ["dns.spf.permissive"]),
    ("mail.spf_tree", {ZONE: ["google-site-verification=x"]}, ["dns.spf.missing"]),
    ("mail.dmarc", ["v=DMARC1; p=maybe"], ["dns.dmarc.invalid"]),
    ("mail.dmarc", ["v=DMARC1; p=reject; sp=none; rua=mailto:x@y"], ["dns.dmarc.subdomains_not_enforcing"]),
    ("mail.dmarc", ["v=DMARC1; p=quarantine"], ["dns.dmarc.no_reporting"]),
    ("mail.mta_sts", [], ["dns.mta_sts.missing"]),
    ("mail.tls_rpt", ["v=TLSRPTv2; rua=x"], ["dns.tls_rpt.missing"]),
    ("mail.mta_sts_policy", {"url": "u", "status": 404}, ["dns.mta_sts.invalid"]),
    ("mail.mta_sts_policy", {"url": "u", "status": 200, "text": "version: STSv1\nmode: enforce\nmx: other.vn\n"
                             "max_age: 1\n"}, ["dns.mta_sts.invalid"]),
    ("mail.mta_sts_policy", {"url": "u", "status": 200, "text": "version: STSv1\nmode: testing\nmx: *.gov.vn\n"
                             "max_age: 1\n"}, ["dns.mta_sts.invalid"]),
    ("ipv6.ns_aaaa", {f"ns1.{ZONE}": [], f"ns2.{ZONE}": ["2001:db8::2"]}, ["dns.ipv6.ns_missing"]),
    ("ipv6.web_reach", {"2001:db8::1": "no answer within 3 s"}, ["dns.ipv6.web_unreachable"]),
    ("caa.records", [{"flags": 0, "tag": "iodef", "value": "mailto:x@y"}], ["dns.caa.missing"]),
    ("caa.issuer_caa_domain", "digicert.com", ["dns.caa.issuer_not_listed"]),
    ("caa.issuer_caa_domain", "LetsEncrypt.org", []),
])
def test_each_flaw_yields_its_finding(path: str, value: Any, expected: list[str]) -> None:
    assert ids(changed(path, value)) == expected


def test_null_mx_domain_needs_no_dmarc_or_mta_sts() -> None:
    ev = changed("mail", {"mx": [{"preference": 0, "exchange": "."}], "spf_tree": {ZONE: ["v=spf1 -all"]},
                          "dmarc": [], "mta_sts": [], "tls_rpt": []})
    assert ids(ev) == []
    no_mx_spf_all = changed("mail", {"mx": [], "spf_tree": {ZONE: ["v=spf1 -all"]}, "dmarc": [],
                                     "mta_sts": [], "tls_rpt": []})
    assert ids(no_mx_spf_all) == []
    # Mail-sending domain (MX present) with the same records: DMARC and friends are owed.
    assert "dns.dmarc.missing" in ids(changed("mail.dmarc", []))


def test_non_validating_resolver_is_not_a_pass() -> None:
    ev = changed("dnssec.resolver_verdict", "insecure")  # DS at the parent, yet no AD bit
    with pytest.raises(NotTested, match="does not validate"):
        analyse(ev)


def test_scanner_without_ipv6_route_is_untested_and_keeps_other_findings() -> None:
    from checks.dns.analysis import judge

    ev = changed("ipv6.web_reach", {"2001:db8::1": "untested: no IPv6 route from the scanner (Network is unreachable)"})
    ev["mail"]["dmarc"] = []
    hits, untested = judge(ev)
    assert [h[0] for h in hits] == ["dns.dmarc.missing"]
    assert untested and "no IPv6 route" in untested[0]


def test_spf_lookup_count_follows_includes_once() -> None:
    tree = {ZONE: ["v=spf1 a mx include:a.x include:b.x -all"], "a.x": ["v=spf1 include:b.x exists:%{i}.x -all"],
            "b.x": ["v=spf1 ip4:192.0.2.0/24 ptr -all"]}
    verdict = judge_spf(ZONE, tree)
    # a, mx, include:a.x (include:b.x (ptr), exists), include:b.x (ptr): b.x is evaluated twice
    assert verdict.lookups == 8 and verdict.errors == []
    loop = judge_spf(ZONE, {ZONE: ["v=spf1 include:a.x -all"], "a.x": [f"v=spf1 include:{ZONE} -all"]})
    assert loop.lookups == 2
    assert parse_spf("v=spf1 include: -all").errors


def test_dmarc_parse_keeps_tags() -> None:
    v = judge_dmarc(["other", "v=DMARC1;p=reject;sp=quarantine;rua=mailto:a@b"])
    assert v.tags["sp"] == "quarantine" and v.errors == []
    assert judge_dmarc(["v=DMARC1; p=reject", "v=DMARC1; p=none"]).errors
