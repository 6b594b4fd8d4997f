"""Collection for the portal check: the shared crawl, then a few bounded fetches of its own.

The shared crawl (:func:`checks.web.crawl.shared_crawl`) reads the site first. This module adds,
within its own bounds (``portal.extra_pages`` pages, each with the crawl's byte cap and chain
time bound, all within ``CRAWL_BUDGET_FACTOR`` x the timeout and the site deadline):

- the pages the checklist's items are linked to when the crawl did not reach them;
- the home page rendered by a browser when its menu needs scripts (few links without them);
- the English home page (language switch link, ``hreflang``, then ``/en`` paths) and its
  organisation and contact pages;
- one submission of each site search form (at most ``max_forms``, GET only), the query encoded
  in the form's charset (windows-1258 with combining tone marks, as a browser sends it);
- a sample of links to other state portals (``sample`` distinct hosts), each host's page fetched
  through the scan's resolver only (``--resolve`` overrides and the address policy; under
  ``--no-dns`` an unmapped name is "could not check"), never following a redirect off that host.

It never sends a form other than search, never logs in, and keeps no cookie beyond the session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

from auditor.check import CheckContext
from auditor.targets import Target
from checks.portal.analyse import Observed, is_search_form, link_matches
from checks.portal.facts import FILE_EXTENSIONS, PageFacts, page_facts, read_soup
from checks.portal.rules import Decree, Item
from checks.portal.text import Phrases, tokens
from checks.web import net
from checks.web.crawl import CRAWL_BUDGET_FACTOR, Crawl, CrawledPage, canonical_url, read_page, url_host

PORTAL_LINK_BYTES = 65_536
MAX_CANDIDATES_PER_ITEM = 2


class Extras:
    """Bounded fetches of pages of the audited site (and, for links, of other portals)."""

    def __init__(self, ctx: CheckContext, target: Target, max_pages: int, page_bytes: int) -> None:
        self.ctx = ctx
        self.target = target
        self.max_pages = max_pages
        self.page_bytes = page_bytes
        self.fetched = 0
        self.ends = time.monotonic() + CRAWL_BUDGET_FACTOR * ctx.bounded_timeout()
        self.session = net.make_session(ctx, target, pool_size=2)
        self.stopped = ""

    def can_fetch(self) -> bool:
        if self.fetched >= self.max_pages:
            self.stopped = f"portal page limit ({self.max_pages}) reached"
            return False
        if time.monotonic() >= self.ends or self.ctx.remaining() <= 2.0:
            self.stopped = "portal time bound spent"
            return False
        return True

    def page(self, url: str, *, host: str | None = None, max_bytes: int | None = None
             ) -> tuple[CrawledPage | None, str, str]:
        """(page, error, error kind); the page is None when no response arrived."""
        if not self.can_fetch():
            return None, f"not fetched ({self.stopped})", "bound"
        self.fetched += 1
        sub = self.ctx.with_deadline(self.ends)
        try:
            chain, stop = net.follow(self.session, url, ctx=sub, max_bytes=max_bytes or self.page_bytes,
                                     max_redirects=10, same_site_only=True, allowed_hosts={host or self.target.host})
        except net.FetchError as exc:
            return None, exc.message, exc.kind
        if stop is not None:
            return None, net.one_line(str(stop), 300), stop.kind
        last = chain[-1]
        page = CrawledPage(url=url, final_url=last.url, depth=-1, status=last.status, content_type=last.content_type,
                           encoding=last.encoding, truncated=last.truncated, size=len(last.body))
        if last.content_type in ("text/html", "application/xhtml+xml") or (
                not last.content_type and last.body[:1] == b"<"):
            read_page(page, last.text)
        return page, "", ""

    def close(self) -> None:
        self.session.close()


def encode_query(text: str, charset: str) -> str:
    """``text`` percent-encoded the way a browser submits it from a page in ``charset``."""
    import unicodedata

    name = (charset or "utf-8").lower()
    try:
        data = text.encode(name)
    except (LookupError, UnicodeEncodeError):
        try:  # windows-1258 holds the tone marks only as combining characters
            data = unicodedata.normalize("NFD", text).encode(name, errors="xmlcharrefreplace")
        except LookupError:
            data = text.encode("utf-8")
    return quote_plus(data)


def search_url(form: Any, query: str, page_encoding: str, names: set[str]) -> str:
    charset = (form.charset.split()[0] if form.charset else "") or page_encoding or "utf-8"
    pairs: list[str] = []
    placed = False
    for f in form.fields:
        if not f["name"] or f["type"] in ("submit", "button", "reset", "image", "file", "checkbox", "radio"):
            continue
        if not placed and (f["type"] == "search" or f["name"].lower() in names or f["type"] == "text"):
            value, placed = query, True
        else:
            value = f["value"]
        pairs.append(f"{encode_query(f['name'], charset)}={encode_query(value, charset)}")
    parts = urlsplit(form.action)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "&".join(pairs), ""))


def _facts(page: CrawledPage, decree: Decree, via: str) -> PageFacts:
    spec = decree.function("print")
    words = Phrases(spec.get("words") or [])
    import re

    attrs = [re.compile(str(p), re.I) for p in spec.get("attr_patterns") or []]
    return page_facts(page, words, attrs, via=via)


def collect(target: Target, ctx: CheckContext, crawl: Crawl, decree: Decree, *, kind: str,
            render_home: Callable[[str], tuple[str, str]] | None, render_error: str,
            extra_pages: int, min_menu_links: int) -> Observed:
    """Everything :func:`checks.portal.analyse.checklist` judges (see the module docstring)."""
    obs = Observed(host=target.host, home_url=crawl.home.final_url if crawl.home else target.url, kind=kind)
    for p in crawl.pages:
        obs.pages.append(_facts(p, decree, "crawl"))
    for f in crawl.failures:
        obs.failures[canonical_url(f["url"])] = str(f.get("error", ""))[:300]
    extras = Extras(ctx, target, extra_pages, crawl.bounds.page_bytes)
    try:
        _menu(obs, decree, render_home, render_error, min_menu_links)
        _item_pages(obs, decree, decree.items, obs.pages, extras, "fetch")
        _english(obs, decree, extras)
        _search(obs, decree, extras)
        _portal_links(obs, decree, extras)
    finally:
        extras.close()
    return obs


def _menu(obs: Observed, decree: Decree, render_home: Callable[[str], tuple[str, str]] | None,
          render_error: str, min_links: int) -> None:
    """Render the home page when its menu needs scripts; else say why the menu is unread."""
    home = obs.pages[0] if obs.pages else None
    if home is None or not home.ok:
        obs.home_problem = f"the home page could not be read ({home.status if home else 'not fetched'})"
        return
    own = [u for u, _ in home.links if url_host(u) == obs.host and not FILE_EXTENSIONS.search(urlsplit(u).path)
           and canonical_url(u) != canonical_url(home.url)]
    if len(set(own)) >= min_links or home.scripts == 0:
        return
    if render_home is None:
        obs.home_problem = (f"the home page has {len(set(own))} link(s) without scripts and a script menu; "
                            f"no browser to render it: {render_error}")
        return
    try:
        html, final = render_home(home.url)
    except Exception as exc:  # the browser's own errors are many; each is one line
        obs.home_problem = f"the home page needs scripts and the browser failed: {net.one_line(str(exc), 200)}"
        return
    from bs4 import BeautifulSoup

    from checks.web.crawl import visible_text

    soup = BeautifulSoup(html[:4_000_000], "html.parser")
    rendered = PageFacts(url=home.url, status=home.status, via="browser", encoding="utf-8")
    spec = decree.function("print")
    import re

    read_soup(rendered, soup, final or home.url, visible_text(soup), Phrases(spec.get("words") or []),
              [re.compile(str(p), re.I) for p in spec.get("attr_patterns") or []])
    obs.pages[0] = rendered


def _item_pages(obs: Observed, decree: Decree, items: tuple[Item, ...], pages: list[PageFacts], extras: Extras,
                via: str, sink: list[PageFacts] | None = None) -> None:
    """Fetch the pages the items are linked to that were not read yet."""
    sink = obs.pages if sink is None else sink
    known = {canonical_url(p.url) for p in sink} | {canonical_url(p.requested) for p in sink if p.requested}
    for item in items:
        wanted: list[str] = []
        for page in list(pages):
            for url, text in page.links:
                if url_host(url) != obs.host or FILE_EXTENSIONS.search(urlsplit(url).path):
                    continue
                if link_matches(item, url, text) and canonical_url(url) not in wanted:
                    wanted.append(canonical_url(url))
        for url in wanted[:MAX_CANDIDATES_PER_ITEM]:
            if url in known:
                continue
            known.add(url)
            page, error, _ = extras.page(url)
            if page is None:
                obs.failures[url] = error
            else:
                sink.append(_facts(page, decree, via))


def _english(obs: Observed, decree: Decree, extras: Extras) -> None:
    spec = decree.function("english")
    switch = Phrases(spec.get("switch_words") or [])
    candidates: list[str] = []
    for page in obs.pages[:5]:
        candidates += page.hreflang_en
        for url, text in page.links:
            words = tokens(text)
            if url_host(url) == obs.host and words and switch.find(words) and len(words) <= 3:
                candidates.append(url)
    home = obs.home_url
    parts = urlsplit(home)
    for path in spec.get("paths") or []:
        candidates.append(urlunsplit((parts.scheme, parts.netloc, str(path), "", "")))
    errors: list[str] = []
    tried: set[str] = set()
    for url in candidates:
        key = canonical_url(url)
        if key in tried or url_host(url) != obs.host:
            continue
        tried.add(key)
        if len(tried) > 6:
            break
        page, error, kind = extras.page(url)
        if page is None:
            if kind not in ("offsite",):
                errors.append(f"{url}: {error}")
            continue
        if page.status >= 500:
            errors.append(f"{url} answers {page.status}")
            continue
        facts = _facts(page, decree, "english")
        if not facts.ok or page.soup is None:
            continue
        if facts.lang.lower().startswith("en") or any(
                link_matches(i, u, t) for i in decree.english_items for u, t in facts.links):
            obs.english_home = facts.url
            obs.english_pages.append(facts)
            break
    if not obs.english_home:
        if errors:
            obs.english_problem = "English pages could not be fetched: " + "; ".join(errors[:2])
        return
    _item_pages(obs, decree, decree.english_items, obs.english_pages, extras, "english", sink=obs.english_pages)


def _search(obs: Observed, decree: Decree, extras: Extras) -> None:
    spec = decree.function("search")
    names = {str(n).lower() for n in spec.get("field_names") or []}
    query = str(spec.get("query") or "a")
    no_results = Phrases(spec.get("no_result_words") or [])
    seen: set[str] = set()
    forms: list[tuple[Any, PageFacts]] = []
    for page in obs.pages:
        for form in page.forms:
            if is_search_form(form, spec) and canonical_url(form.action) not in seen:
                seen.add(canonical_url(form.action))
                forms.append((form, page))
    home = obs.pages[0] if obs.pages else None
    home_links = {canonical_url(u) for u, _ in (home.links if home else [])}
    for form, page in forms[: int(spec.get("max_forms", 2))]:
        url = search_url(form, query, page.encoding, names)
        attempt: dict[str, Any] = {"url": url[:500], "method": form.method, "page": page.url}
        if form.method != "get":
            attempt.update(error="POST search forms are not submitted (could not judge)", kind="unsupported")
        elif url_host(url) != obs.host:
            attempt.update(error="the form searches another site", kind="unsupported")
        else:
            result, error, kind = extras.page(url)
            if result is None:
                attempt.update(error=error, kind=kind or "error")
            else:
                facts = _facts(result, decree, "search")
                attempt["status"] = facts.status
                found = no_results.find(result.text()) if result.soup is not None else None
                if found:
                    attempt["no_results"] = found
                new = {canonical_url(u) for u, _ in facts.links if url_host(u) == obs.host} - home_links
                new.discard(canonical_url(url))
                attempt["result_links"] = len(new)
        obs.searches.append(attempt)


def _portal_links(obs: Observed, decree: Decree, extras: Extras) -> None:
    spec = decree.function("state_portal_links")
    suffixes = [str(s).lower().strip(".") for s in spec.get("host_suffixes") or []]
    sample = int(spec.get("sample", 3))
    picked: dict[str, str] = {}
    for page in obs.pages:
        for url, _ in page.links:
            host = url_host(url)
            if not host or host == obs.host or host in picked:
                continue
            if any(host == s or host.endswith("." + s) for s in suffixes):
                picked[host] = url
            if len(picked) >= sample:
                break
        if len(picked) >= sample:
            break
    for host, url in picked.items():
        page, error, kind = extras.page(url, host=host, max_bytes=PORTAL_LINK_BYTES)
        entry: dict[str, Any] = {"url": url[:500], "host": host}
        if page is None:
            entry.update(error=error, kind=kind)
        else:
            entry["status"] = page.status
        obs.portal_links.append(entry)
