"""The dns check family: DNSSEC, CAA, SPF/DMARC/MTA-STS/TLS-RPT and IPv6 (dnspython)."""

from checks.dns.check import DNSCheck

__all__ = ["DNSCheck"]
