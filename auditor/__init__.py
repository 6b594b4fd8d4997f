"""auditor: website security audits and network-trust certificates.

The public surface is small::

    from auditor import Auditor, ScanRequest
    results = Auditor(db="sqlite:///audit.db").scan(ScanRequest(["https://portal.example.gov.vn/"]))

and, for check plug-ins, :mod:`auditor.check` (``Check``, ``FindingSpec``, ``CheckOutcome``...).
Heavy modules load on first use, so a plug-in importing ``auditor.check`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from auditor.version import __version__

_LAZY = {
    "Auditor": "auditor.scanning",
    "ScanRequest": "auditor.scanning",
    "Check": "auditor.check",
    "CheckContext": "auditor.check",
    "CheckOutcome": "auditor.check",
    "Finding": "auditor.check",
    "FindingSpec": "auditor.check",
    "Severity": "auditor.check",
    "Target": "auditor.targets",
    "AuditorError": "auditor.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'auditor' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
