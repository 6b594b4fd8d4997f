"""Structured event log: one JSON object per line, one line per event.

``{"ts": "2026-11-23T10:00:00.123Z", "event": "run_finished", "site": "https://...", ...}``

JSON lines because the values (URLs, error messages from hostile servers) may hold spaces,
quotes or anything else: ``json.dumps`` escapes control characters and keeps one event on
one line whatever a site sends.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

from auditor.results import jsonable

MAX_VALUE_CHARS = 2000


def _bounded(value: Any) -> Any:
    value = jsonable(value)
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[: MAX_VALUE_CHARS - 1] + "…"
    return value


class EventLog:
    def __init__(self, stream: TextIO | None = None, *, worker: str = "") -> None:
        self.stream = stream or sys.stdout
        self.worker = worker
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        record: dict[str, Any] = {
            "ts": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "event": event,
        }
        if self.worker:
            record["worker"] = self.worker
        record.update({k: _bounded(v) for k, v in fields.items() if v is not None})
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed pipe must not stop the scheduler
        return record
