"""Cookies set over HTTPS: parsing Set-Cookie lines (values redacted) and the attribute verdicts.

A cookie's value may be a live session, so only its name and attributes are ever kept.
"""

from __future__ import annotations

import http.cookiejar
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checks.http.hit import MAX_LISTED, Hit, clip, hit, names
from checks.web.net import FetchResult

URL_CHARS = 1024
MAX_COOKIES = 50

_SESSION_COOKIE_RE = re.compile(
    r"sess|sid|token|auth|login|jsessionid|phpsessid|asp\.net_sessionid|connect\.sid|laravel_session|remember",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CookieInfo:
    """One Set-Cookie line: name, the URL that set it, its attributes, and whether it deletes."""

    name: str
    url: str
    secure: bool
    httponly: bool
    samesite: str | None
    deleted: bool
    attributes: str

    @property
    def session_like(self) -> bool:
        return bool(_SESSION_COOKIE_RE.search(self.name))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url[:URL_CHARS],
            "secure": self.secure,
            "httponly": self.httponly,
            "samesite": self.samesite,
            "session_like": self.session_like,
            "deleted": self.deleted,
            "set_cookie": self.attributes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CookieInfo:
        """Read back :meth:`to_dict` (``session_like`` is recomputed from the name)."""
        return cls(
            name=str(data.get("name", "")),
            url=str(data.get("url", "")),
            secure=bool(data.get("secure")),
            httponly=bool(data.get("httponly")),
            samesite=data.get("samesite"),
            deleted=bool(data.get("deleted")),
            attributes=str(data.get("set_cookie", "")),
        )


def parse_set_cookie(header: str, url: str, now: float | None = None) -> CookieInfo | None:
    """One Set-Cookie line, attributes only (the value is redacted: it may be a live session)."""
    parts = header.split(";")
    name, eq, _value = parts[0].partition("=")
    name = name.strip() if eq else ""
    if not parts[0].strip():
        return None
    attrs: dict[str, str] = {}
    shown: list[str] = []
    for part in parts[1:]:
        key, _, val = part.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        attrs[key] = val.strip()  # RFC 6265 5.3: the last occurrence of an attribute wins
        shown.append(part.strip())
    samesite = attrs.get("samesite")
    samesite = samesite.lower() if samesite and samesite.lower() in ("strict", "lax", "none") else None
    display = clip(name or "(unnamed)", 100)
    return CookieInfo(
        name=display,
        url=url,
        secure="secure" in attrs,
        httponly="httponly" in attrs,
        samesite=samesite,
        deleted=_deletes(attrs, time.time() if now is None else now),
        attributes=clip("; ".join([f"{display}=<redacted>", *shown])),
    )


def _deletes(attrs: dict[str, str], now: float) -> bool:
    """Max-Age <= 0 (which wins over Expires), or an Expires date in the past."""
    if "max-age" in attrs:
        try:
            return int(attrs["max-age"]) <= 0
        except ValueError:
            return False
    if attrs.get("expires"):
        expires = http.cookiejar.http2time(attrs["expires"])
        return expires is not None and expires < now
    return False


def cookies_set_by(responses: Sequence[FetchResult]) -> list[CookieInfo]:
    """Every cookie the ``responses`` set, in order."""
    cookies: list[CookieInfo] = []
    for result in responses:
        for line in result.set_cookies:
            cookie = parse_set_cookie(line, result.url)
            if cookie is not None:
                cookies.append(cookie)
    return cookies


def cookie_hits(cookies: Sequence[CookieInfo]) -> list[Hit]:
    """Live (not deleted) cookies without Secure, session-like ones without HttpOnly, and
    cookies without a valid SameSite: one hit per missing attribute."""
    live = [c for c in cookies if not c.deleted]
    rules = (
        ("http.cookie.no_secure", [c for c in live if not c.secure], "without Secure"),
        (
            "http.cookie.no_httponly",
            [c for c in live if c.session_like and not c.httponly],
            "(session-like) without HttpOnly",
        ),
        ("http.cookie.no_samesite", [c for c in live if c.samesite is None], "without SameSite"),
    )
    hits: list[Hit] = []
    for finding_id, bad, what in rules:
        if not bad:
            continue
        bad_names = list(dict.fromkeys(c.name for c in bad))
        hits.append(
            hit(
                finding_id,
                f"cookie(s) {what}: {names(bad_names)}",
                url=bad[0].url,
                cookies=bad_names[:MAX_COOKIES],
                set_cookie=[c.attributes for c in bad[:MAX_LISTED]],
            )
        )
    return hits
