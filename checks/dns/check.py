"""The ``dns`` check: what the domain publishes in DNS, asked of a resolver the user chooses.

Queries go only to ``--dns-server ADDR[:PORT]`` (``ctx.options["dns_server"]``), else to the
system resolver. Under ``--no-dns`` (or ``AUDITOR_NO_DNS=1``) the system resolver is never
asked: the check stays out of a default scan and, named with ``--checks``, reports a check
error unless ``--dns-server`` names a resolver explicitly (that is the user's permission to
query that one server). DNSSEC verdicts are the chosen resolver's, so it must validate: the
chain runs from its trust anchor (the root's for a public resolver, the lab's in tests).

Collection (:mod:`checks.dns.collect`) and judgement (:mod:`checks.dns.analysis`) are split
so stored evidence can be judged again offline (:meth:`DNSCheck.reanalyse`).
"""

from __future__ import annotations

from typing import Any

from auditor.catalogue import catalogue_of
from auditor.check import Check, CheckContext, CheckOutcome, Finding
from auditor.errors import AuditorError
from auditor.targets import Target, is_ip_literal
from checks.dns.analysis import judge
from checks.dns.client import DNSBudgetError, DNSClient, DNSQueryError, parse_server, system_servers
from checks.dns.collect import collect
from checks.web.net import one_line

CATALOGUE = catalogue_of("checks.dns")


def _dns_allowed(ctx: CheckContext) -> bool:
    return ctx.resolver is None or bool(getattr(ctx.resolver, "allow_dns", True))


class DNSCheck(Check):
    """DNSSEC, CAA, mail anti-spoofing (SPF, DMARC, MTA-STS, TLS-RPT) and IPv6 of the site's domain."""

    id = "dns"
    title = "DNS and e-mail posture: DNSSEC, CAA, SPF, DMARC, MTA-STS, TLS-RPT, IPv6"
    description = (
        "Asks the chosen resolver (--dns-server, else the system's) about the site's zone: DNSSEC "
        "validation and algorithms, CAA (present, naming the CA of the site's certificate), SPF (syntax, +all/?all, the 10-lookup limit), DMARC policy "
        "and reporting, MTA-STS and TLS-RPT records (not required of a domain that sends no mail: "
        "null MX or v=spf1 -all), AAAA records of the web host and name servers, and whether the "
        "site answers over IPv6."
    )
    catalogue = CATALOGUE
    parameters = {
        "dns.max_queries": 120,
        # Issuer organisation (substring of the certificate's issuer O) -> its CAA domain.
        "dns.caa_issuers": {
            "Let's Encrypt": "letsencrypt.org", "DigiCert": "digicert.com", "Sectigo": "sectigo.com",
            "GlobalSign": "globalsign.com", "GoDaddy": "godaddy.com", "Google Trust Services": "pki.goog",
            "Amazon": "amazon.com", "Entrust": "entrust.net",
        },
    }

    def applies(self, target: Target, ctx: CheckContext) -> bool:
        if is_ip_literal(target.host):
            return False
        return bool(ctx.options.get("dns_server")) or _dns_allowed(ctx)

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        if is_ip_literal(target.host):
            return CheckOutcome.failed(f"{target.host} is an IP address: there is no domain to look up")
        server = ctx.options.get("dns_server")
        if server:
            try:
                servers = [parse_server(s) for s in str(server).split(",") if s.strip()]
            except ValueError as exc:
                return CheckOutcome.failed(str(exc))
        elif not _dns_allowed(ctx):
            return CheckOutcome.failed("DNS queries are off (--no-dns or AUDITOR_NO_DNS): "
                                       "give --dns-server ADDR[:PORT] to ask a chosen resolver")
        else:
            servers = system_servers()
        try:
            client = DNSClient(servers, ctx, max_queries=int(ctx.param("dns.max_queries", 120)))
            evidence = collect(client, target, ctx)
        except (DNSQueryError, DNSBudgetError, AuditorError) as exc:
            return CheckOutcome.failed(f"could not test DNS: {exc}")
        hits, untested = judge(evidence)
        return CheckOutcome(findings=self._findings(hits), evidence=evidence,
                            error=one_line("; ".join(untested), 500) if untested else None)

    def _findings(self, hits: list[tuple[str, str]]) -> list[Finding]:
        # Record text is the zone owner's: one line, control characters escaped, capped.
        return [self.finding(fid, one_line(line, 300)) for fid, line in hits]

    def reanalyse(self, stored: dict[str, Any], ctx: CheckContext | None = None) -> list[Finding]:
        """The findings stored evidence supports, judged again by today's code."""
        return self._findings(judge(stored)[0])
