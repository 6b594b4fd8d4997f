"""What happens to a site after its re-audit: certificate, owner notice, report PDF.

Thin glue over :mod:`certificates` (the rules and the status machine) and the
``reports`` package (the PDF), so that the service reads as a sequence of steps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor import storage

log = logging.getLogger("scheduler.lifecycle")

# Actions after which the owner is told: the status changed, or a new certificate replaced it.
NOTIFY_ACTIONS = ("suspend", "reinstate", "renew")


@dataclass
class Outcome:
    """The certificate side of one re-audit (a copy of ``certificates.Transition``)."""

    action: str
    serial: str | None
    old_status: str | None
    new_status: str | None
    reasons: list[str]
    previous_serial: str | None = None

    @property
    def notify(self) -> bool:
        return self.action in NOTIFY_ACTIONS


def reassess(db: str | None, url: str, scan_id: int, *, key_path: str | None, policy: Any) -> Outcome:
    """Apply scan ``scan_id`` to the site's live certificate (renew, keep, suspend, reinstate)."""
    import certificates

    with storage.session_scope(db) as session:
        t = certificates.reassess(session, url, scan_id, key_path=key_path, policy=policy)
        return Outcome(
            action=t.action, serial=t.serial, old_status=t.old_status, new_status=t.new_status,
            reasons=list(t.reasons), previous_serial=getattr(t, "previous_serial", None),
        )


@dataclass
class Owner:
    system: str | None
    contact: str | None


def owner_of(db: str | None, url: str) -> Owner:
    with storage.session_scope(db) as session:
        system = storage.system_of_site(session, url)
        if system is None:
            return Owner(None, None)
        return Owner(system.name, (system.contact or "").strip() or None)


def scan_grade(db: str | None, scan_id: int) -> str | None:
    with storage.session_scope(db) as session:
        scan = storage.get_scan(session, scan_id)
        return scan.grade if scan else None


def render_report(db: str | None, target: str, path: Path, *, lang: str, policy_dir: Any) -> Path | None:
    """The compliance report PDF of ``target`` (a system name, else a site URL) at ``path``."""
    from reports.render import render_report as render

    with storage.session_scope(db) as session:
        out = render(session, target, path, lang=lang, policy_dir=policy_dir)
    out = Path(out)
    return out if out.is_file() and out.stat().st_size > 0 else None
