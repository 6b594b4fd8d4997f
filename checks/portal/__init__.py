"""portal: what a state agency's portal must publish and offer (Decree 42/2022, then Decree 224/2026)."""

from checks.portal.check import PortalCheck

__all__ = ["PortalCheck"]
