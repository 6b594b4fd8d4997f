"""Errors, bounds and the plain records of a browser session (what its evidence is made of)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from auditor.errors import AuditorError

INSTALL_HINT = "install it with: apt-get install -y chromium (scripts/install.sh does)"
_STARTUP_SECONDS = 20.0
_WATCH_INTERVAL = 0.25
_MAX_RECORDS = 2000
_MAX_COOKIES = 500
_MAX_STORAGE_KEYS = 200
BYTE_KILL_FACTOR = 4  # a page past this many times its byte bound gets its browser killed
QUIET_SECONDS = 0.3  # network quiet this long after "load" = settled
_ALLOWED_SCHEMES = frozenset({"http", "https", "data", "blob", "about"})


class BrowserError(AuditorError):
    """The browser failed, was killed by a bound, or a page could not be opened in time."""


class BrowserUnavailable(BrowserError):
    """Chromium is not installed (or not runnable); the message says how to install it."""


@dataclass(frozen=True)
class BrowserLimits:
    """Bounds of one browser session. ``page_bytes`` bounds the bytes a page loads (all its
    requests together): past it, further requests are aborted and loading is stopped."""

    page_seconds: float = 20.0
    total_seconds: float = 120.0
    page_bytes: int = 10_000_000
    memory_mb: int = 1500
    max_processes: int = 24
    settle_seconds: float = 2.0  # after "load": at most this long for tag managers to inject their tags
    grace_seconds: float = 5.0  # the watchdog kills the browser this long past a page or session deadline


# --------------------------------------------------------------------------------------------
# plain data


@dataclass
class RequestRecord:
    url: str
    host: str
    method: str
    resource_type: str
    phase: str
    navigation: bool = False
    status: int | None = None
    failure: str | None = None
    blocked: str | None = None  # why the browser module aborted it (never left the browser)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}


@dataclass
class CookieRecord:
    name: str
    domain: str
    path: str
    http_only: bool
    secure: bool
    same_site: str
    expires: float
    source: str  # "http" (seen in a Set-Cookie header) or "script" (document.cookie / CookieStore)
    phase: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PageSnapshot:
    url: str
    final_url: str
    status: int | None
    title: str
    html: str
    html_truncated: bool
    requests: list[RequestRecord] = field(default_factory=list)
    cookies: list[CookieRecord] = field(default_factory=list)
    local_storage_keys: list[str] = field(default_factory=list)
    session_storage_keys: list[str] = field(default_factory=list)
    bytes_loaded: int = 0
    byte_limit_hit: bool = False
    refused: dict[str, int] = field(default_factory=dict)  # downloads, dialogs, popups
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def hosts(self, phase: str | None = None) -> list[str]:
        out: list[str] = []
        for r in self.requests:
            if (phase is None or r.phase == phase) and r.host and r.host not in out:
                out.append(r.host)
        return out

    def to_dict(self, html_limit: int = 0) -> dict[str, Any]:
        return {
            "url": self.url, "final_url": self.final_url, "status": self.status, "title": self.title[:300],
            **({"html": self.html[:html_limit]} if html_limit else {}),
            "html_bytes": len(self.html), "html_truncated": self.html_truncated,
            "requests": [r.to_dict() for r in self.requests[:500]],
            "cookies": [c.to_dict() for c in self.cookies[:200]],
            "local_storage_keys": self.local_storage_keys, "session_storage_keys": self.session_storage_keys,
            "bytes_loaded": self.bytes_loaded, "byte_limit_hit": self.byte_limit_hit,
            "refused": self.refused, "errors": self.errors[:20], "seconds": round(self.seconds, 3),
        }
