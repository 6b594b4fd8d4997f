"""The tls check family: its check, its collection and analysis code, and its findings.yaml."""

from checks.tls.check import TLSCheck

__all__ = ["TLSCheck"]
