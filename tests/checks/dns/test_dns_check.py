"""The dns check end to end: real knotd (signed lab zones) and a validating unbound on
127.0.9.x, an HTTPS site on ::1, ``auditor scan --checks dns --dns-server ...``.

Every lab zone plants exactly one flaw (or none) and must yield exactly that finding. No test
asks any resolver but the lab's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditor.check import CheckContext
from auditor.lab.dns_servers import LAB_DNS_FLAWS, DNSLab, lab_zones, mta_sts_policy
from auditor.lab.pki import LabPKI
from auditor.lab.server import LabHTTPServer, Page, TLSConfig, build_tls_context, reserve_closed_port
from auditor.targets import Resolver, Target
from checks.dns import DNSCheck

WEB_V4 = "127.0.9.3"  # the zones' A records; the dns check connects only to its port 443 (MTA-STS)
STS_NONE_V4 = "127.0.9.5"  # mta-sts.stsnone.lab.test: serves a mode: none policy


@pytest.fixture(scope="session")
def dns_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = DNSLab.available()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("dnslab")
    lab = DNSLab(base / "dns", lab_zones(WEB_V4, STS_NONE_V4))
    pki = LabPKI(base / "pki")
    leaf = pki.issue("v6site", [f"{name}.{label}.lab.test" for label in LAB_DNS_FLAWS for name in ("www", "mta-sts")])
    tls = build_tls_context(TLSConfig(), leaf.cert, leaf.key)
    v6 = LabHTTPServer("::1", 0, pages={"/": Page(body="<!doctype html><title>v6</title>")}, tls=tls).start()
    sts = [LabHTTPServer(addr, 443, tls=tls, pages={"/.well-known/mta-sts.txt": Page(
        body=mta_sts_policy(mode), content_type="text/plain")}).start()
        for addr, mode in ((WEB_V4, "enforce"), (STS_NONE_V4, "none"))]
    closed = reserve_closed_port("::1")
    try:
        lab.start()
        yield {"lab": lab, "v6_port": v6.port, "dead_port": closed.getsockname()[1], "ca_file": str(pki.ca_file)}
    finally:
        lab.stop()
        v6.stop()
        for srv in sts:
            srv.stop()
        closed.close()


def _target(label: str, lab: dict[str, Any]) -> tuple[str, str]:
    """The zone's www site: pinned to [::1] (the HTTPS site whose certificate CAA is judged
    against), on the port nothing serves for ``aaaadead``."""
    port = lab["dead_port"] if label == "aaaadead" else lab["v6_port"]
    host = f"www.{label}.lab.test"
    return f"https://{host}:{port}/", f"{host}:{port}:[::1]"


def lab_policy(directory: Path) -> Path:
    """The bundled policy with the lab CA's CAA domain in ``dns.caa_issuers``."""
    import shutil

    import yaml

    from checks.dns.check import DNSCheck as Check

    shutil.copytree(Path(__file__).resolve().parents[3] / "policies" / "default", directory)
    doc = yaml.safe_load((directory / "policy.yaml").read_text(encoding="utf-8"))
    doc.setdefault("parameters", {})["dns.caa_issuers"] = {**Check.parameters["dns.caa_issuers"],
                                                           "Auditor Lab": "lab-ca.test"}
    (directory / "policy.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def lab_scan(dns_lab: dict[str, Any], cli, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """One ``auditor scan`` of every lab zone's www host; results by zone label, and the run's time."""
    args: list[str] = []
    resolves: list[str] = []
    urls = {}
    for label in LAB_DNS_FLAWS:
        url, resolve = _target(label, dns_lab)
        urls[url] = label
        args.append(url)
        resolves += ["--resolve", resolve]
    db = tmp_path_factory.mktemp("dnsdb") / "scan.db"
    policy = lab_policy(tmp_path_factory.mktemp("dnspolicy") / "policy")
    t0 = time.monotonic()
    res = cli("scan", *args, *resolves, "--checks", "dns", "--dns-server", dns_lab["lab"].resolver,
              "--format", "json", "--db", str(db), "--timeout", "3", "--ca-file", dns_lab["ca_file"],
              "--policy", str(policy))
    elapsed = time.monotonic() - t0
    assert res.out, res
    out = json.loads(res.out)
    return {"code": res.code, "by_label": {urls[r["url"]]: r for r in out["results"]}, "elapsed": elapsed,
            "db": db}


@pytest.mark.parametrize("label", list(LAB_DNS_FLAWS))
def test_each_lab_zone_yields_exactly_its_finding(lab_scan: dict[str, Any], label: str) -> None:
    result = lab_scan["by_label"][label]
    assert result["checks"]["dns"]["status"] == "ok", result["checks"]["dns"]
    ids = sorted(f["id"] for f in result["findings"])
    expected = [LAB_DNS_FLAWS[label]] if LAB_DNS_FLAWS[label] else []
    assert ids == expected, [f["evidence"] for f in result["findings"]]


def test_lab_scan_is_quick_and_exits_zero(lab_scan: dict[str, Any]) -> None:
    assert lab_scan["code"] == 0
    assert lab_scan["elapsed"] < 30


def test_mta_sts_policy_was_fetched_and_judged(lab_scan: dict[str, Any]) -> None:
    from checks.dns.mta_sts import judge_policy

    good = lab_scan["by_label"]["good"]
    assert good["findings"] == []
    bad = lab_scan["by_label"]["stsnone"]["findings"][0]
    assert "mode is 'none'" in bad["evidence"]
    # A certificate the chosen trust store does not vouch for is a broken policy, too.
    assert "certificate" in (judge_policy({"url": "u", "error": "certificate not valid for x"}, []) or "")


def test_bogus_and_unsigned_evidence_says_why(lab_scan: dict[str, Any]) -> None:
    bogus = next(f for f in lab_scan["by_label"]["bogus"]["findings"])
    assert "SERVFAIL" in bogus["evidence"] and bogus["severity"] == "high"
    unsigned = lab_scan["by_label"]["unsigned"]["findings"][0]
    assert "no DNSKEY" in unsigned["evidence"]


def test_stored_evidence_is_judged_again_offline(lab_scan: dict[str, Any]) -> None:
    from sqlmodel import select

    from auditor import storage
    from auditor.models import CheckRun

    url = f"sqlite:///{lab_scan['db']}"
    with storage.session_scope(url) as session:
        runs = [r for r in session.exec(select(CheckRun)).all() if r.check == "dns"]
    assert len(runs) == len(LAB_DNS_FLAWS)
    judged = {tuple(sorted(f.id for f in DNSCheck().reanalyse(r.evidence))) for r in runs}
    assert judged == {(fid,) if fid else () for fid in LAB_DNS_FLAWS.values()}


def test_no_dns_without_server_is_a_check_error_not_a_pass(dns_lab: dict[str, Any], cli) -> None:  # type: ignore[no-untyped-def]
    url, resolve = _target("good", dns_lab)
    res = cli("scan", url, "--resolve", resolve, "--checks", "dns", "--format", "json", "--no-dns")
    assert res.code == 2
    check = json.loads(res.out)["results"][0]["checks"]["dns"]
    assert check["status"] == "error" and "--dns-server" in check["error"]


def test_default_scan_leaves_dns_out_under_no_dns_unless_a_server_is_named() -> None:
    target = Target(url="https://www.good.lab.test/", host="www.good.lab.test", port=443, address=WEB_V4)
    no_dns = Resolver([], allow_dns=False)
    assert DNSCheck().applies(target, CheckContext(resolver=no_dns)) is False
    assert DNSCheck().applies(target, CheckContext(resolver=no_dns, options={"dns_server": "127.0.9.2:53"}))
    ip_target = Target(url="https://127.0.9.3/", host="127.0.9.3", port=443, address=WEB_V4)
    assert DNSCheck().applies(ip_target, CheckContext(options={"dns_server": "127.0.9.2:53"})) is False


def test_silent_resolver_is_a_bounded_check_error(dns_lab: dict[str, Any], cli) -> None:  # type: ignore[no-untyped-def]
    import socket

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.9.4", 0))  # bound, never read: queries go unanswered
    try:
        url, resolve = _target("good", dns_lab)
        t0 = time.monotonic()
        res = cli("scan", url, "--resolve", resolve, "--checks", "dns", "--format", "json",
                  "--dns-server", f"127.0.9.4:{silent.getsockname()[1]}", "--timeout", "1")
        elapsed = time.monotonic() - t0
    finally:
        silent.close()
    assert res.code == 2 and elapsed < 10
    check = json.loads(res.out)["results"][0]["checks"]["dns"]
    assert check["status"] == "error" and "did not answer within" in check["error"]


@pytest.mark.parametrize("bad", ["dns.example", "127.0.9.2:0", "127.0.9.2:99999", "[::1", "1.2.3.4:x"])
def test_bad_dns_server_is_a_one_line_usage_error(cli, bad: str) -> None:  # type: ignore[no-untyped-def]
    res = cli("scan", "https://www.good.lab.test/", "--checks", "dns", "--dns-server", bad)
    assert res.code == 2
    assert "--dns-server" in res.err and "Traceback" not in res.err


def test_dns_lab_resolver_refuses_names_outside_the_lab(dns_lab: dict[str, Any]) -> None:
    import dns.message
    import dns.query

    lab: DNSLab = dns_lab["lab"]
    q = dns.message.make_query("example.com", "A")
    r = dns.query.udp(q, lab.resolver_address, port=lab.resolver_port, timeout=3)
    assert dns.rcode.to_text(r.rcode()) == "REFUSED" and not r.answer
    assert Path(lab.dir / "unbound.conf").read_text().count("root-hints") == 0


def test_cname_to_another_zone_keeps_the_hosts_own_zone(dns_lab: dict[str, Any]) -> None:
    """www.cdn.lab.test is a CNAME into good.lab.test: the mail domain is still cdn.lab.test,
    and the AAAA is the CNAME target's."""
    port = dns_lab["v6_port"]
    target = Target(url=f"https://www.cdn.lab.test:{port}/", host="www.cdn.lab.test", port=port, address="::1")
    ctx = CheckContext(timeout=3, resolver=Resolver([], allow_dns=False), ca_file=dns_lab["ca_file"],
                       options={"dns_server": dns_lab["lab"].resolver})
    out = DNSCheck().run(target, ctx)
    assert out.error is None and out.findings == []
    assert out.evidence["zone"] == "cdn.lab.test"
    assert out.evidence["ipv6"]["web_aaaa"] == ["::1"] and out.evidence["ipv6"]["web_reach"] == {"::1": "ok"}
    assert out.evidence["dnssec"]["resolver_verdict"] == "secure"
    assert out.evidence["queries"] <= 40
    # The bundled issuer map does not know the lab CA: CAA is present, and no verdict on the issuer.
    assert out.evidence["caa"]["cert_issuer"]["organization"] == "Auditor Lab"
    assert out.evidence["caa"]["issuer_caa_domain"] is None
