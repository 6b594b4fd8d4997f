"""Triggers for site jobs, spread over the period by a stable hash of the URL.

A plain ``IntervalTrigger`` counts from whenever a job was added, so a list of thousands of
sites imported at once would all fire in the same minute every week. Here every interval job
fires on a fixed grid, ``EPOCH + offset(url) + k * period``, where the offset is a hash of the
URL modulo the period: the sites of a large list land evenly across the week, a site keeps
its weekday and hour across restarts, and every scheduler process computes the very same
fire times, which is what lets a ``ScheduleRun`` slot deduplicate runs between processes.
A run that happens off the grid (a site's first run, a retry) does not move the grid.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from scheduler.spec import cron_trigger, split_spec

# A Monday, 00:00 UTC: the origin of every grid.
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def spread_offset(url: str, period_seconds: int) -> int:
    """Seconds into the period at which ``url`` fires (stable across processes and runs)."""
    digest = hashlib.sha256(url.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % max(1, period_seconds)


class SpreadIntervalTrigger(BaseTrigger):
    """Fires every ``period_seconds`` on the grid ``EPOCH + offset_seconds + k * period``."""

    __slots__ = ("offset_seconds", "period_seconds")

    def __init__(self, period_seconds: int, offset_seconds: int = 0) -> None:
        if period_seconds < 1:
            raise ValueError("period must be at least one second")
        self.period_seconds = int(period_seconds)
        self.offset_seconds = int(offset_seconds) % self.period_seconds

    @property
    def base(self) -> datetime:
        return EPOCH + timedelta(seconds=self.offset_seconds)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        """The first grid point after ``previous_fire_time``, or at/after ``now`` for a new job."""
        period_us = self.period_seconds * 1_000_000
        if previous_fire_time is None:
            delta_us = _micros(now - self.base)
            k = -(-delta_us // period_us)  # ceiling: at or after now
        else:
            delta_us = _micros(previous_fire_time - self.base)
            k = delta_us // period_us + 1  # strictly after the previous fire time
        return self.base + timedelta(microseconds=k * period_us)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last grid point not after ``moment``."""
        period_us = self.period_seconds * 1_000_000
        k = _micros(moment - self.base) // period_us
        return self.base + timedelta(microseconds=k * period_us)

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "period_seconds": self.period_seconds, "offset_seconds": self.offset_seconds}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.period_seconds = int(state["period_seconds"])
        self.offset_seconds = int(state["offset_seconds"])

    def __str__(self) -> str:
        return f"spread-interval[{self.period_seconds}s @+{self.offset_seconds}s]"

    def __repr__(self) -> str:
        return f"<SpreadIntervalTrigger (period={self.period_seconds}s, offset={self.offset_seconds}s)>"


def _micros(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def trigger_for(spec: str, url: str) -> BaseTrigger:
    """The trigger a site job uses for ``spec``. Cron expressions fire exactly as written."""
    kind, value = split_spec(spec)
    if kind == "interval":
        period = int(value)
        return SpreadIntervalTrigger(period, spread_offset(url, period))
    return cron_trigger(value)
