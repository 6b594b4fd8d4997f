"""The landing page's HTML: <meta> policies, resources loaded over http:// and SRI.

:func:`scan_html` reads the bounded body once (html.parser, lenient with hostile bytes) into a
:class:`PageScan`; :func:`mixed_content_hit` and :func:`sri_hit` judge it. Forms and links are
not loads, so only elements that make the browser fetch something count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from bs4 import BeautifulSoup
from bs4.element import Tag

from checks.http.hit import MAX_LISTED, Hit, clip, hit, names
from checks.web.net import FetchResult

URL_CHARS = 1024

# Elements whose attributes make the browser load something (forms and links are not loads).
_LOAD_ATTRS: dict[str, tuple[str, ...]] = {
    "script": ("src",),
    "iframe": ("src",),
    "frame": ("src",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "object": ("data",),
    "embed": ("src",),
}
_WANTED_TAGS = [*_LOAD_ATTRS, "link", "input", "meta"]
_LOADING_LINK_RELS = frozenset({"stylesheet", "preload", "modulepreload"})
_URL_STRIP_RE = re.compile(r"[\t\n\r]")
_URL_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # percent-encoded, as browsers do
_C0_OR_SPACE = "".join(map(chr, range(0x21)))


@dataclass(frozen=True)
class Load:
    """A resource the page loads over plain http:// (``tag`` is the element's name)."""

    tag: str
    url: str

    def to_dict(self) -> dict[str, str]:
        return {"tag": self.tag, "url": self.url}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Load:
        return cls(tag=str(data.get("tag", "")), url=str(data.get("url", "")))


@dataclass(frozen=True)
class PageScan:
    """What the HTML of the landing page says (bounded body, html.parser).

    ``mixed_total`` and ``sri_total`` count every hit even when the lists are cut short (as
    they are in stored evidence).
    """

    meta_csp: list[str] = field(default_factory=list)
    meta_referrer: list[str] = field(default_factory=list)
    mixed: list[Load] = field(default_factory=list)
    sri_missing: list[str] = field(default_factory=list)
    parsed: bool = False
    error: str | None = None
    mixed_total: int = 0
    sri_total: int = 0


def looks_like_html(result: FetchResult) -> bool:
    ctype = result.content_type
    if ctype in ("text/html", "application/xhtml+xml"):
        return True
    return not ctype and result.body.lstrip()[:1] == b"<"


def scan_html(result: FetchResult) -> PageScan:
    """Meta CSP/referrer tags, http:// loads and external scripts without integrity=."""
    if not looks_like_html(result):
        return PageScan()
    try:
        soup = BeautifulSoup(result.text, "html.parser")
    except Exception as exc:  # html.parser is lenient, but the bytes are hostile
        return PageScan(error=clip(f"HTML parse failed: {type(exc).__name__}: {exc}"))
    base = _base_url(soup, result.url)
    page_origin = _origin(result.url)
    meta_csp: list[str] = []
    meta_referrer: list[str] = []
    mixed: dict[str, Load] = {}  # by URL, first element wins
    sri: dict[str, str] = {}
    for tag in soup.find_all(_WANTED_TAGS):
        if not isinstance(tag, Tag):
            continue
        name = tag.name.lower()
        if name == "meta":
            kind, content = _meta_policy(tag)
            if kind == "csp":
                meta_csp.append(content)
            elif kind == "referrer":
                meta_referrer.append(content)
            continue
        for url in _loaded_urls(tag, name, base):
            scheme = urlsplit(url).scheme.lower()
            if scheme == "http":
                mixed.setdefault(url, Load(name, url[:URL_CHARS]))
            if name == "script" and _external_without_integrity(tag, url, scheme, page_origin):
                sri.setdefault(url, url[:URL_CHARS])
    return PageScan(
        meta_csp=meta_csp,
        meta_referrer=meta_referrer,
        mixed=list(mixed.values()),
        sri_missing=list(sri.values()),
        parsed=True,
        mixed_total=len(mixed),
        sri_total=len(sri),
    )


def _external_without_integrity(tag: Tag, url: str, scheme: str, page_origin: tuple[str, str, int | None]) -> bool:
    """A script from another origin with no (or an empty) integrity= attribute."""
    if scheme not in ("http", "https") or _origin(url) == page_origin:
        return False
    return not (_attr(tag, "integrity") or "").strip()


def _attr(tag: Tag, name: str) -> str | None:
    value = tag.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _absolute(base: str, value: str) -> str | None:
    value = _URL_STRIP_RE.sub("", value).strip().strip(_C0_OR_SPACE)  # as browsers (and urlsplit) do
    if not value:
        return None
    try:
        absolute = urljoin(base, value)
        urlsplit(absolute).port  # noqa: B018 - validates the port
    except ValueError:
        return None
    return _URL_CONTROL_RE.sub(lambda m: quote(m.group()), absolute)


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
    except ValueError:  # "https://[" does not even split
        return "", "", None
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _base_url(soup: BeautifulSoup, page_url: str) -> str:
    """The first <base href> when it is an http(s) URL, else the page's own URL."""
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        candidate = _absolute(page_url, _attr(base_tag, "href") or "")
        if candidate and urlsplit(candidate).scheme.lower() in ("http", "https"):
            return candidate
    return page_url


def _meta_policy(tag: Tag) -> tuple[str | None, str]:
    """``("csp" | "referrer" | None, content)`` for one <meta> element."""
    content = _attr(tag, "content")
    if content is None:
        return None, ""
    if (_attr(tag, "http-equiv") or "").strip().lower() == "content-security-policy":
        return "csp", content
    if (_attr(tag, "name") or "").strip().lower() == "referrer":
        return "referrer", content
    return None, content


def _srcset_urls(value: str) -> list[str]:
    urls = []
    for candidate in value.split(","):
        tokens = candidate.split()
        if tokens:
            urls.append(tokens[0])
    return urls


def _raw_loads(tag: Tag, name: str) -> list[str]:
    """The attribute values of one element that name something the browser fetches."""
    if name == "link":
        rels = set((_attr(tag, "rel") or "").lower().split())
        href = _attr(tag, "href")
        return [href] if rels & _LOADING_LINK_RELS and href else []
    if name == "input":
        src = _attr(tag, "src")
        return [src] if (_attr(tag, "type") or "").strip().lower() == "image" and src else []
    values: list[str] = []
    for attr_name in _LOAD_ATTRS[name]:
        raw = _attr(tag, attr_name)
        if raw:
            values.extend(_srcset_urls(raw) if attr_name == "srcset" else [raw])
    return values


def _loaded_urls(tag: Tag, name: str, base: str) -> list[str]:
    """The absolute URLs one element loads (values that do not parse as URLs are skipped)."""
    return [url for raw in _raw_loads(tag, name) if (url := _absolute(base, raw)) is not None]


# ---------------------------------------------------------------------------------------------
# Verdicts


def mixed_content_hit(url: str, page: PageScan, upgrade: bool) -> Hit | None:
    """http:// loads on an HTTPS page; moot when an enforced policy upgrades insecure requests."""
    if not page.mixed or upgrade or urlsplit(url).scheme.lower() != "https":
        return None
    urls = [m.url for m in page.mixed]
    return hit(
        "http.mixed_content",
        f"{page.mixed_total} resource(s) loaded over http://: {names(urls, 5, page.mixed_total)}",
        url=url,
        resources=[m.to_dict() for m in page.mixed[:MAX_LISTED]],
        total=page.mixed_total,
    )


def sri_hit(url: str, page: PageScan) -> Hit | None:
    """Scripts from other origins without an integrity= attribute."""
    if not page.sri_missing:
        return None
    return hit(
        "http.sri.missing",
        f"{page.sri_total} external script(s) without integrity=: {names(page.sri_missing, 5, page.sri_total)}",
        url=url,
        scripts=page.sri_missing[:MAX_LISTED],
        total=page.sri_total,
    )
