"""The ports check family: its check, its collection and analysis code, and its findings.yaml."""

from checks.ports.check import PortsCheck

__all__ = ["PortsCheck"]
