"""The privacy check family: its check, its collection and analysis code, and its findings.yaml."""

from checks.privacy.check import PrivacyCheck

__all__ = ["PrivacyCheck"]
