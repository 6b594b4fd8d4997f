"""The http check family: its check, its collection and analysis code, and its findings.yaml."""

from checks.http.check import HTTPCheck

__all__ = ["HTTPCheck"]
