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
from checks.http.site import host_of, is_public_suffix, registrable_domain
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
    domain: str | None = None  # the Domain attribute as browsers keep it (lower-case, no leading dot)
    path: str | None = None  # the Path attribute when it is a path ("/..."), else None

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
            "domain": self.domain,
            "path": self.path,
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
            domain=None if data.get("domain") is None else str(data.get("domain")),
            path=None if data.get("path") is None else str(data.get("path")),
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
    # RFC 6265bis 5.6: an empty Domain is ignored, a leading dot dropped; a Path not
    # starting with "/" means the default path.
    domain = attrs.get("domain", "").strip().removeprefix(".").lower() or None
    path = attrs.get("path") if attrs.get("path", "").startswith("/") else None
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
        domain=clip(domain, 253) if domain else None,
        path=clip(path, 200) if path else None,
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


# ---------------------------------------------------------------------------------------------
# Rules browsers enforce (RFC 6265bis): prefixes, SameSite=None, Domain scope


def prefix_problem(cookie: CookieInfo) -> str | None:
    """Why a ``__Secure-`` / ``__Host-`` cookie is rejected (prefixes match case-insensitively)."""
    low = cookie.name.lower()
    if low.startswith("__host-"):
        missing = []
        if not cookie.secure:
            missing.append("no Secure")
        if cookie.domain is not None:
            missing.append(f"Domain={cookie.domain}")
        if cookie.path != "/":
            missing.append("Path is not /" if cookie.path else "no Path=/")
        return f"{cookie.name}: __Host- cookie with {', '.join(missing)}" if missing else None
    if low.startswith("__secure-") and not cookie.secure:
        return f"{cookie.name}: __Secure- cookie without Secure"
    return None


def domain_problem(cookie: CookieInfo, host: str) -> tuple[str, bool] | None:
    """``(why, rejected)`` when the Domain attribute is a public suffix or another host's
    domain (browsers reject the cookie), or when a session-like cookie is shared with every
    subdomain of the registrable domain while set by a deeper host."""
    domain = cookie.domain
    if domain is None or domain == host:
        return None
    if not (host == domain or host.endswith("." + domain)):
        return f"{cookie.name}: Domain={domain} does not cover {host}, so browsers reject it", True
    if is_public_suffix(domain):
        return f"{cookie.name}: Domain={domain} is a public suffix, so browsers reject it", True
    if cookie.session_like and registrable_domain(host) == domain:
        return f"{cookie.name}: Domain={domain} shares it with every subdomain of {domain}, not only {host}", False
    return None


def strict_cookie_hits(cookies: Sequence[CookieInfo]) -> list[Hit]:
    """http.cookie.prefix_violation, http.cookie.samesite_none_insecure, http.cookie.domain_broad."""
    live = [c for c in cookies if not c.deleted]
    prefix = [(c, p) for c in live if (p := prefix_problem(c)) is not None]
    none_insecure = [(c, f"{c.name}: SameSite=None without Secure") for c in live
                     if c.samesite == "none" and not c.secure]
    broad = []
    for c in live:
        host = host_of(c.url)
        found = domain_problem(c, host) if host else None
        if found is not None:
            broad.append((c, found[0]))
    hits: list[Hit] = []
    for finding_id, bad in (
        ("http.cookie.prefix_violation", prefix),
        ("http.cookie.samesite_none_insecure", none_insecure),
        ("http.cookie.domain_broad", broad),
    ):
        if not bad:
            continue
        reasons = list(dict.fromkeys(r for _, r in bad))
        suffix = " (browsers reject such cookies)" if finding_id != "http.cookie.domain_broad" else ""
        hits.append(
            hit(
                finding_id,
                "; ".join(reasons[:3]) + (f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else "") + suffix,
                url=bad[0][0].url,
                cookies=list(dict.fromkeys(c.name for c, _ in bad))[:MAX_COOKIES],
                reasons=reasons[:MAX_LISTED],
                set_cookie=[c.attributes for c, _ in bad[:MAX_LISTED]],
            )
        )
    return hits
