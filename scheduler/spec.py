"""Schedule specifications: ``interval:SECONDS`` or ``cron:EXPR``, parsed from what users type.

A spec is a short string so that it can be stored in a settings row, compared with the one
a stored job was built from, and printed by ``auditor schedule list`` as it is.
"""

from __future__ import annotations

import re

from apscheduler.triggers.cron import CronTrigger

from auditor.errors import AuditorError

WEEK_SECONDS = 7 * 24 * 3600
DEFAULT_SPEC = f"interval:{WEEK_SECONDS}"
MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 366 * 24 * 3600

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# ASCII digits only (str.isdigit() also accepts "²", which int() refuses), at most nine of them.
_DURATION = re.compile(r"\s*([0-9]{1,9})\s*([smhdw]?)\s*", re.IGNORECASE)


def parse_duration(text: str) -> int:
    """``10s``, ``15m``, ``1h``, ``7d`` or ``2w`` (also a bare number of seconds) -> seconds."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise AuditorError(f"invalid interval {text!r}: use a number with s, m, h, d or w (e.g. 15m, 7d)")
    seconds = int(match.group(1)) * _UNITS[match.group(2).lower() or "s"]
    if not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        raise AuditorError(f"invalid interval {text!r}: must be between 1 s and 366 days")
    return seconds


def cron_trigger(expr: str) -> CronTrigger:
    """A UTC cron trigger from a five-field crontab expression (minute hour day month weekday)."""
    fields = expr.split()
    if len(fields) != 5:
        raise AuditorError(f"invalid cron expression {expr!r}: expected 5 fields (minute hour day month weekday)")
    try:
        return CronTrigger.from_crontab(" ".join(fields), timezone="UTC")
    except (ValueError, TypeError) as exc:
        raise AuditorError(f"invalid cron expression {expr!r}: {exc}") from None


def make_spec(*, interval: str | None = None, cron: str | None = None) -> str:
    """The spec for ``--interval`` or ``--cron`` (exactly one), validated."""
    if (interval is None) == (cron is None):
        raise AuditorError("give exactly one of --interval or --cron")
    if interval is not None:
        return f"interval:{parse_duration(interval)}"
    assert cron is not None
    cron_trigger(cron)
    return "cron:" + " ".join(cron.split())


def split_spec(spec: str) -> tuple[str, str]:
    """``("interval", "604800")`` or ``("cron", "0 3 * * 1")``; raises on anything else."""
    kind, _, value = spec.partition(":")
    if kind not in ("interval", "cron") or not value:
        raise AuditorError(f"invalid stored schedule {spec!r}")
    return kind, value


def describe(spec: str) -> str:
    """A short human form: ``every 7d``, ``every 15m``, ``cron 0 3 * * 1``."""
    kind, value = split_spec(spec)
    if kind == "cron":
        return f"cron {value}"
    seconds = int(value)
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"every {seconds // size}{unit}"
    return f"every {seconds}s"


def misfire_grace_seconds(spec: str) -> int:
    """How late a run may still start. One period for intervals (the coalesced run after any
    downtime is always less than one period late, so it is never dropped), a week for cron."""
    kind, value = split_spec(spec)
    if kind == "interval":
        return max(int(value), 60)
    return WEEK_SECONDS
