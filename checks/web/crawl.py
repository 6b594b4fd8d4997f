"""A bounded crawl of one audited site, shared by the checks that read pages.

The crawl starts at the target's landing page and walks links breadth first, like a first-time
visitor who never clicks "accept": no consent is ever given, so every cookie it receives and
every resource a page references is what a visitor gets *before* consent.

Bounds (all from ``ctx.options``): ``crawl_depth`` links away from the landing page (default
2), ``crawl_pages`` pages (30), ``page_bytes`` bytes read per page (2,000,000); the whole
crawl also stops a little before the site deadline, so the checks still have time to report.
It follows only links on the audited host: the same scheme, host and port as the landing page,
plus the ``http://`` twin of the host on the target's plain-HTTP port. Redirects stay on the
host (see :func:`checks.web.net.follow`); loops and over-long chains are recorded and skipped.
Pages are parsed with the forgiving ``html.parser``; a page that still fails to parse is kept
without a tree. Bodies are decoded with the charset the page declares (windows-1258, latin-1...)
and undecodable bytes are replaced, never fatal.

Compute it once per target with :func:`shared_crawl` (``ctx.memo("crawl", ...)``).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from bs4 import BeautifulSoup, Tag

from auditor.check import CheckContext
from auditor.errors import AuditorError, TargetError
from auditor.targets import Target, normalize_host
from checks.web import net

DEFAULT_DEPTH = 2
DEFAULT_PAGES = 30
DEFAULT_PAGE_BYTES = 2_000_000
MAX_REDIRECTS = 10
MAX_LINKS_PER_PAGE = 5000
MAX_RESOURCES_PER_PAGE = 5000
MAX_EXTRA_PAGES = 5  # pages fetched on request after the crawl (linked policy pages)
# The whole crawl may take at most this many per-operation timeouts (each page's redirect chain
# at most checks.web.net.CHAIN_BUDGET_FACTOR of them): a site whose every page trickles
# cannot hold the crawl for pages x chain budget.
CRAWL_BUDGET_FACTOR = 10.0
_INLINE_SCRIPT_BYTES = 200_000
_NOT_PAGES = re.compile(
    r"\.(?:pdf|docx?|xlsx?|pptx?|odt|ods|rtf|zip|rar|7z|gz|tgz|bz2|xz|tar|jpe?g|png|gif|svg|webp|bmp|ico|"
    r"tiff?|mp[34]|m4a|avi|mov|wmv|flv|mkv|webm|ogg|wav|exe|msi|apk|dmg|iso|bin|css|js|mjs|json|xml|rss|"
    r"woff2?|ttf|otf|eot|swf)$",
    re.I,
)
_JS_TYPES = frozenset({
    "", "text/javascript", "application/javascript", "module", "text/ecmascript", "application/ecmascript",
    "application/x-javascript", "text/jscript", "text/livescript",
})
_LOADING_RELS = frozenset({
    "stylesheet", "icon", "shortcut", "apple-touch-icon", "preload", "modulepreload", "prefetch",
    "manifest", "preconnect", "mask-icon",
})
_SCRIPT_URL_RE = re.compile(r"""(?:https?:)?//(?:[a-z0-9-]+\.)+[a-z]{2,63}(?::\d{1,5})?(?:/[^\s'"`<>()\\]*)?""", re.I)
# C0/DEL/C1 controls left in a URL (ESC, CSI...): percent-encoded, as a browser's URL parser does.
_URL_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_CSS_URL_RE = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])([^'"\s)]+)""", re.I)


@dataclass(frozen=True)
class CrawlBounds:
    depth: int = DEFAULT_DEPTH
    pages: int = DEFAULT_PAGES
    page_bytes: int = DEFAULT_PAGE_BYTES

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> CrawlBounds:
        """Read and check ``crawl_depth`` / ``crawl_pages`` / ``page_bytes``."""

        def number(key: str, default: int, minimum: int) -> int:
            value = options.get(key)
            if value is None:
                return default
            try:
                n = int(value)
                if isinstance(value, float) and n != value:
                    raise ValueError
            except (TypeError, ValueError):
                raise AuditorError(f"{key} must be a whole number, got {value!r}") from None
            if n < minimum:
                raise AuditorError(f"{key} must be at least {minimum}, got {n}")
            return n

        return cls(
            depth=number("crawl_depth", DEFAULT_DEPTH, 0),
            pages=number("crawl_pages", DEFAULT_PAGES, 1),
            page_bytes=number("page_bytes", DEFAULT_PAGE_BYTES, 1024),
        )


@dataclass(frozen=True)
class Resource:
    """Something a page makes the browser load (or, for ``inline-script``, names in code).

    ``loaded`` is False for a script whose ``type`` is not JavaScript (``text/plain`` etc.):
    consent managers hold such scripts back until the visitor agrees.
    """

    tag: str
    url: str
    loaded: bool = True

    @property
    def host(self) -> str:
        return url_host(self.url)


@dataclass
class CrawledPage:
    """One fetched page. ``soup`` is None for non-HTML responses and unparseable pages."""

    url: str
    final_url: str
    depth: int
    status: int
    content_type: str
    encoding: str | None
    truncated: bool
    size: int
    set_cookies: list[tuple[str, str]] = field(default_factory=list)
    redirects: list[dict[str, Any]] = field(default_factory=list)
    soup: BeautifulSoup | None = None
    title: str = ""
    base_url: str = ""
    links: list[str] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    form_actions: list[str] = field(default_factory=list)
    parse_error: str | None = None
    body_error: str | None = None
    _text: str | None = field(default=None, repr=False)
    _text_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_html(self) -> bool:
        return self.soup is not None

    @property
    def scheme(self) -> str:
        return urlsplit(self.final_url).scheme

    def text(self) -> str:
        """The visible text of the page (computed once; shared by checks in other threads)."""
        with self._text_lock:
            if self._text is None:
                self._text = visible_text(self.soup) if self.soup is not None else ""
            return self._text

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "url": self.final_url[:500], "depth": self.depth, "status": self.status,
            "content_type": self.content_type[:100], "bytes": self.size,
        }
        if self.url != self.final_url:
            out["requested"] = self.url[:500]
        if self.truncated:
            out["truncated"] = True
        if self.encoding:
            out["encoding"] = self.encoding[:40]
        if self.parse_error:
            out["parse_error"] = self.parse_error
        if self.body_error:
            out["body_error"] = self.body_error
        return out


def visible_text(soup: BeautifulSoup, limit: int = 1_000_000) -> str:
    """Text a visitor can read (no script/style), one space between words, bounded."""
    parts: list[str] = []
    size = 0
    try:
        for string in soup.find_all(string=True):
            parent = string.parent
            if parent is not None and parent.name in ("script", "style", "template", "noscript", "head", "title"):
                continue
            text = str(string).strip()
            if text:
                parts.append(text)
                size += len(text) + 1
                if size > limit:
                    break
    except (RecursionError, ValueError):
        pass
    return " ".join(" ".join(parts).split())[:limit]


@dataclass
class Crawl:
    """The result of crawling one site."""

    start_url: str
    host: str
    bounds: CrawlBounds
    pages: list[CrawledPage] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    received_cookies: list[tuple[str, str]] = field(default_factory=list)
    offsite_redirects: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None
    elapsed: float = 0.0
    allowed_origins: frozenset[tuple[str, str, int]] = frozenset()
    _extra: dict[str, CrawledPage | None] = field(default_factory=dict, repr=False)
    _fetcher: _Fetcher | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ok(self) -> bool:
        return bool(self.pages)

    @property
    def home(self) -> CrawledPage | None:
        """The landing page (the first page fetched)."""
        return self.pages[0] if self.pages else None

    @property
    def html_pages(self) -> list[CrawledPage]:
        return [p for p in self.pages if p.is_html]

    def failure_reason(self) -> str:
        """Why the crawl has no page, in one line (for a check error)."""
        if not self.failures:
            return "no page fetched"
        first = self.failures[0]
        if first["kind"] == "offsite":
            return (f"{first['url']} redirects to {first['error']}, another host; the crawl stays on the "
                    "audited host: audit that host instead")
        return "; ".join(f"{f['url']}: {f['error']}" for f in self.failures[:2])

    def cookies(self) -> list[tuple[str, str]]:
        """Every Set-Cookie received, with the URL that sent it, once each, in crawl order.

        That includes the responses of fetches that kept no page (a redirect loop, an
        off-site redirect, a failure after a redirect, a page already crawled) and the
        extra pages: a visitor's browser keeps those cookies too.
        """
        return list(dict.fromkeys(self.received_cookies))

    def page_for(self, url: str) -> CrawledPage | None:
        key = canonical_url(url)
        for page in self.pages:
            if canonical_url(page.url) == key or canonical_url(page.final_url) == key:
                return page
        with self._lock:
            return self._extra.get(key)

    def on_site(self, url: str) -> bool:
        return origin_key(url) in self.allowed_origins

    def fetch_extra(self, url: str, ctx: CheckContext) -> CrawledPage | None:
        """A page of the site the crawl did not reach (a linked policy page), fetched once.

        Same bounds as the crawl's pages; at most :data:`MAX_EXTRA_PAGES` per site; off-site
        URLs are never fetched (None).
        """
        existing = self.page_for(url)
        if existing is not None:
            return existing
        if not self.on_site(url) or self._fetcher is None:
            return None
        key = canonical_url(url)
        with self._lock:
            if key in self._extra:
                return self._extra[key]
            if len(self._extra) >= MAX_EXTRA_PAGES or ctx.remaining() <= 1.0:
                return None
            # The caller's context: the crawl's own stops short of the deadline on purpose.
            try:
                page = self._fetcher.fetch_page(url, depth=-1, crawl=self, ctx=ctx)
            finally:
                self._fetcher.close()
            self._extra[key] = page
            return page

    def evidence(self, limit: int = 40) -> dict[str, Any]:
        return {
            "start_url": self.start_url,
            "bounds": {"depth": self.bounds.depth, "pages": self.bounds.pages, "page_bytes": self.bounds.page_bytes},
            "pages": [p.summary() for p in self.pages[:limit]],
            "page_count": len(self.pages),
            "failures": self.failures[:limit],
            "skipped": dict(self.skipped),
            "stopped": self.stopped,
            "elapsed_s": round(self.elapsed, 3),
        }


# --------------------------------------------------------------------------------------------
# URLs


def canonical_url(url: str) -> str:
    """Comparable form: lower-case scheme and host, default port dropped, no fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def origin_key(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
        host = normalize_host(parts.hostname or "")
    except (ValueError, TargetError):
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return None
    return scheme, host, port or (443 if scheme == "https" else 80)


def url_host(url: str | None) -> str:
    """The host of ``url`` as :class:`~auditor.targets.Target` spells hosts (lower case,
    IDNA), so it compares with ``target.host``; "" when there is none or it is invalid."""
    try:
        return normalize_host(urlsplit(url or "").hostname or "")
    except (ValueError, TargetError):
        return ""


def absolute(base: str, ref: str) -> str | None:
    """``ref`` resolved against ``base`` if it is an http(s) URL with a usable host, else None."""
    ref = (ref or "").strip().strip(_C0_OR_SPACE)  # as browsers do (urlsplit drops them too)
    if "\n" in ref or "\r" in ref or "\t" in ref or "\x00" in ref:
        ref = ref.replace("\n", "").replace("\r", "").replace("\t", "").replace("\x00", "")
    if not ref or len(ref) > 4096:
        return None
    low = ref[:12].lower()
    if low.startswith(("javascript:", "mailto:", "tel:", "data:", "blob:", "about:", "#")):
        return None
    try:
        url = urljoin(base, ref)
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return _URL_CONTROL_RE.sub(lambda m: quote(m.group()), url.split("#", 1)[0])


# --------------------------------------------------------------------------------------------
# page reading


def _attr(node: Tag, name: str) -> str:
    value = node.get(name)
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return str(value or "").strip()


def _srcset_urls(value: str) -> list[str]:
    return [part.strip().split()[0] for part in value.split(",") if part.strip()][:20]


def read_page(page: CrawledPage, text: str) -> None:
    """Parse ``text`` into ``page.soup`` and collect its title, links and resources."""
    try:
        soup = BeautifulSoup(text, "html.parser")
    except Exception as exc:  # html.parser is forgiving, but hostile bytes find every edge
        page.parse_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        return
    page.soup = soup
    base = page.final_url
    try:
        base_tag = soup.find("base", href=True)
        if isinstance(base_tag, Tag):
            candidate = absolute(page.final_url, _attr(base_tag, "href"))
            if candidate:
                base = candidate
        page.base_url = base
        title = soup.find("title")
        page.title = net.one_line(title.get_text(" "), 300) if isinstance(title, Tag) else ""
        _collect(page, soup, base)
    except (RecursionError, ValueError, AttributeError) as exc:
        page.parse_error = f"{type(exc).__name__} while reading the page"


def _collect(page: CrawledPage, soup: BeautifulSoup, base: str) -> None:
    links: list[str] = []
    resources: list[Resource] = []
    actions: list[str] = []

    def add(tag: str, ref: str, loaded: bool = True) -> None:
        if len(resources) < MAX_RESOURCES_PER_PAGE:
            url = absolute(base, ref)
            if url:
                resources.append(Resource(tag, url, loaded))

    for node in soup.find_all(True, limit=500_000):
        if not isinstance(node, Tag):
            continue
        name = node.name
        if name in ("a", "area"):
            href = _attr(node, "href")
            if href and len(links) < MAX_LINKS_PER_PAGE:
                url = absolute(base, href)
                if url:
                    links.append(url)
        elif name == "script":
            js = _attr(node, "type").lower().split(";")[0].strip() in _JS_TYPES
            if _attr(node, "src"):
                add("script", _attr(node, "src"), loaded=js)
            elif js:
                code = node.get_text()[:_INLINE_SCRIPT_BYTES]
                for found in _SCRIPT_URL_RE.findall(code)[:200]:
                    add("inline-script", found)
        elif name == "style":
            for found in _CSS_URL_RE.findall(node.get_text()[:_INLINE_SCRIPT_BYTES])[:200]:
                add("style", found)
        elif name == "link":
            rels = {r.lower() for r in _attr(node, "rel").split()}
            if rels & _LOADING_RELS and _attr(node, "href"):
                add("link", _attr(node, "href"))
        elif name in ("img", "source"):
            if _attr(node, "src"):
                add(name, _attr(node, "src"))
            for src in _srcset_urls(_attr(node, "srcset")):
                add(name, src)
        elif name in ("iframe", "frame", "embed", "audio", "video", "track"):
            if _attr(node, "src"):
                add(name, _attr(node, "src"))
            if name == "video" and _attr(node, "poster"):
                add(name, _attr(node, "poster"))
        elif name == "form" and _attr(node, "action") and len(actions) < 500:
            url = absolute(base, _attr(node, "action"))
            if url:
                actions.append(url)
        elif name == "object" and _attr(node, "data"):
            add("object", _attr(node, "data"))
        elif name == "input" and _attr(node, "type").lower() == "image" and _attr(node, "src"):
            add("input", _attr(node, "src"))
        if node.has_attr("style") and "url(" in _attr(node, "style"):
            for found in _CSS_URL_RE.findall(_attr(node, "style"))[:20]:
                add("style", found)
    page.links = links
    page.resources = resources
    page.form_actions = actions


# --------------------------------------------------------------------------------------------
# crawling


class _Fetcher:
    """Fetches pages of one site with one cookie-keeping session.

    :meth:`close` releases the session's connections; the session (and its cookies) stays
    usable and opens new connections when asked for another page.
    """

    def __init__(self, ctx: CheckContext, target: Target, bounds: CrawlBounds) -> None:
        self.ctx = ctx
        self.target = target
        self.bounds = bounds
        self.session = net.make_session(ctx, target, pool_size=2)

    def fetch_page(self, url: str, *, depth: int, crawl: Crawl, ctx: CheckContext | None = None) -> CrawledPage | None:
        try:
            chain, stop = net.follow(
                self.session, url, ctx=ctx or self.ctx, max_bytes=self.bounds.page_bytes,
                max_redirects=MAX_REDIRECTS, same_site_only=True, allowed_hosts={self.target.host},
            )
        except net.FetchError as exc:
            crawl.received_cookies.extend(_set_cookies(exc.chain))
            crawl.failures.append({"url": url[:500], "error": exc.message, "kind": exc.kind})
            return None
        cookies = _set_cookies(chain)
        crawl.received_cookies.extend(cookies)
        if stop is not None:
            if stop.kind == "offsite" and stop.location:
                crawl.offsite_redirects.append(stop.location[:2000])
            crawl.failures.append({"url": url[:500], "error": str(stop)[:300], "kind": stop.kind})
            return None
        last = chain[-1]
        page = CrawledPage(
            url=url, final_url=last.url, depth=depth, status=last.status, content_type=last.content_type,
            encoding=last.encoding, truncated=last.truncated, size=len(last.body), set_cookies=cookies,
            redirects=net.chain_evidence(chain[:-1], 500) if len(chain) > 1 else [],
            body_error=last.body_error,
        )
        if _looks_like_html(last):
            read_page(page, last.text)
        return page

    def close(self) -> None:
        self.session.close()


def _set_cookies(chain: list[net.FetchResult]) -> list[tuple[str, str]]:
    """(URL, Set-Cookie value) of every response of ``chain``, bounded."""
    return [(r.url, c[:4096]) for r in chain for c in r.set_cookies[:50]]


def _looks_like_html(result: net.FetchResult) -> bool:
    ctype = result.content_type
    if ctype in ("text/html", "application/xhtml+xml"):
        return True
    if ctype:
        return False
    return result.body[:512].lstrip()[:1] == b"<"


def crawl_site(target: Target, ctx: CheckContext) -> Crawl:
    """Crawl ``target`` within the bounds in ``ctx.options`` (see the module docstring)."""
    bounds = CrawlBounds.from_options(ctx.options)
    started = time.monotonic()
    # Leave the checks time to report: stop fetching a little before the site deadline.
    reserve = min(10.0, 0.1 * ctx.remaining())
    budget = CRAWL_BUDGET_FACTOR * ctx.bounded_timeout()
    cctx = ctx.with_deadline(min(ctx.deadline - reserve, started + budget))
    bounded_by_timeout = started + budget < ctx.deadline - reserve
    allowed = frozenset({("https", target.host, target.port), ("http", target.host, target.http_port)})
    crawl = Crawl(start_url=target.url, host=target.host, bounds=bounds, allowed_origins=allowed)
    fetcher = _Fetcher(cctx, target, bounds)
    crawl._fetcher = fetcher
    try:
        _walk(crawl, fetcher, target, cctx)
    finally:
        fetcher.close()  # keep-alive connections are not left open for the rest of the scan
    if crawl.stopped == _DEADLINE_STOP and bounded_by_timeout:
        crawl.stopped = f"crawl time bound spent ({budget:g} s: {CRAWL_BUDGET_FACTOR:g} x timeout)"
    crawl.elapsed = time.monotonic() - started
    return crawl


def _walk(crawl: Crawl, fetcher: _Fetcher, target: Target, cctx: CheckContext) -> None:
    """Breadth-first fetch of the site's pages into ``crawl`` (see :func:`crawl_site`)."""
    bounds = crawl.bounds
    queue: deque[tuple[str, int]] = deque([(target.url, 0)])
    seen: set[str] = {canonical_url(target.url)}  # queued or fetched
    crawled: set[str] = set()  # final URLs of the pages kept
    fetched_http_twin = False

    def skip(reason: str) -> None:
        crawl.skipped[reason] = crawl.skipped.get(reason, 0) + 1

    while queue:
        if len(crawl.pages) >= bounds.pages:
            crawl.stopped = f"page limit ({bounds.pages}) reached"
            break
        if cctx.remaining() <= 0:
            crawl.stopped = _DEADLINE_STOP
            break
        url, depth = queue.popleft()
        page = fetcher.fetch_page(url, depth=depth, crawl=crawl)
        if page is None:
            if not crawl.pages and url == target.url and target.http_url != target.url:
                # No HTTPS landing page: a visitor typing the name gets the plain-HTTP site.
                fetched_http_twin = True
                key = canonical_url(target.http_url)
                if key not in seen:
                    seen.add(key)
                    queue.appendleft((target.http_url, 0))
            continue
        final_key = canonical_url(page.final_url)
        if final_key in crawled:
            skip("already crawled (after redirect)")
            continue
        crawled.add(final_key)
        seen.add(final_key)
        if not crawl.on_site(page.final_url):
            skip("redirected to another port")
            continue
        crawl.pages.append(page)
        if not fetched_http_twin:
            # The plain-HTTP landing page, as a visitor typing the bare name sees it; a
            # redirect to HTTPS lands on a page already crawled.
            fetched_http_twin = True
            key = canonical_url(target.http_url)
            if key not in seen:
                seen.add(key)
                queue.append((target.http_url, bounds.depth))
        if depth >= bounds.depth:
            continue
        for link in page.links:
            key = canonical_url(link)
            if key in seen:
                continue
            if not crawl.on_site(link):
                skip("off-site link")
                continue
            if _NOT_PAGES.search(urlsplit(link).path):
                skip("not a page (file extension)")
                continue
            if len(queue) >= bounds.pages * 20:
                skip("queue full")
                continue
            seen.add(key)
            queue.append((link, depth + 1))


_DEADLINE_STOP = "site time budget spent"


def shared_crawl(target: Target, ctx: CheckContext) -> Crawl:
    """The crawl of ``target``, computed once per site scan and shared between checks."""
    return ctx.memo("crawl", lambda: crawl_site(target, ctx))  # type: ignore[no-any-return]


__all__ = [
    "Crawl",
    "CrawlBounds",
    "CrawledPage",
    "Resource",
    "absolute",
    "canonical_url",
    "crawl_site",
    "origin_key",
    "read_page",
    "shared_crawl",
    "url_host",
    "visible_text",
]
