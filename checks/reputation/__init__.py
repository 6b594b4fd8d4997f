"""The reputation check family: its check, its collection and analysis code, and its findings.yaml."""

from checks.reputation.check import ReputationCheck

__all__ = ["ReputationCheck"]
