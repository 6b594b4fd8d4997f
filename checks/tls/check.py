"""The ``tls`` check: protocols, cipher suites, certificate and known TLS vulnerabilities.

Collection and analysis are split:

- :func:`checks.tls.collect.collect` runs sslyze (the library) against the pinned address
  and returns typed evidence (:class:`checks.tls.evidence.TLSEvidence`);
- :func:`checks.tls.analysis.analyse` derives the findings from that evidence alone, so a
  stored scan's evidence (its JSON, ``TLSEvidence.to_dict()``) can be re-judged offline.

:class:`TLSCheck` glues the two. Everything sslyze could not test is reported as a check
error ("could not test: heartbleed (...)"), never as a pass or a finding.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from auditor.catalogue import catalogue_of
from auditor.check import Check, CheckContext, CheckOutcome
from checks.tls.analysis import DEFAULT_PARAMS, analyse
from checks.tls.collect import collect

if TYPE_CHECKING:
    from auditor.targets import Target

__all__ = ["CATALOGUE", "TLSCheck"]

CATALOGUE = catalogue_of("checks.tls")  # findings.yaml beside this file


class TLSCheck(Check):
    """sslyze-based audit of the HTTPS port."""

    id = "tls"
    title = "TLS configuration and certificate"
    description = (
        "Scans the HTTPS port with sslyze: SSL/TLS versions and cipher suites, key exchange "
        "strength, the certificate chain (validity dates, host name, trust, completeness, key "
        "and signature strength) and known TLS vulnerabilities (Heartbleed, CCS injection, "
        "ROBOT, insecure renegotiation, compression, missing fallback SCSV)."
    )
    catalogue = CATALOGUE
    parameters = dict(DEFAULT_PARAMS)

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        try:
            evidence = collect(target, ctx)  # looked up here, so tests can replace it
        except Exception as exc:  # sslyze bug or unexpected environment: a check error, not a crash
            return CheckOutcome.failed(f"TLS scan failed: {type(exc).__name__}: {exc}")
        params = {name: ctx.param(name, default) for name, default in self.parameters.items()}
        found, errors = analyse(evidence, host=target.host, params=params, now=datetime.now(UTC))
        findings = [self.finding(fid, line, url=target.url, **details) for fid, line, details in found]
        return CheckOutcome(findings=findings, evidence=evidence.to_dict(), error="; ".join(errors) or None)
