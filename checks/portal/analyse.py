"""The portal judgements, from collected facts only (no network): rerun them on stored evidence.

Every item of the checklist ends in one of three states, never a silent pass:

- ``present``: a fetched page of the site is the item's page (its link text, title or a heading
  names the item, or its path matches the item's URL patterns) and holds what the item requires
  (a downloadable file, a search form, a link to the National Public Service Portal, contact
  details); the page URL is the evidence;
- ``missing``: no link or page of the crawl names the item, or the item's page answers 404/410,
  or it lacks what the item requires;
- ``unjudged`` ("could not judge"): the item's page could not be fetched (an error, a timeout, a
  5xx, a crawl bound), or the home page itself could not be read (a menu that needs scripts and
  no browser). An unjudged item is never counted as present.

Functions (search, print, links to other state portals, English pages), the domain name and
accessibility get the same three states.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from checks.portal.facts import FILE_EXTENSIONS, PageFacts
from checks.portal.rules import Decree, Item
from checks.portal.text import Phrases, tokens
from checks.web.crawl import canonical_url, url_host

PRESENT, MISSING, UNJUDGED = "present", "missing", "unjudged"
NOT_FOUND_STATUSES = frozenset({404, 410})


@dataclass
class Row:
    """One line of the checklist."""

    key: str  # item id, or search / print / state_portal_links / english / domain / accessibility
    group: str  # section | function | english | domain | accessibility
    title_vi: str
    title_en: str
    article: str
    verified: bool
    state: str
    url: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Observed:
    """What collection saw (see :mod:`checks.portal.collect`)."""

    host: str
    home_url: str
    kind: str = ""  # declared state_portal kind of the inventoried system ("" when none)
    pages: list[PageFacts] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # canonical URL -> why it was not fetched
    home_problem: str = ""  # why the home page's menu could not be read ("" when it could)
    english_home: str = ""
    english_pages: list[PageFacts] = field(default_factory=list)
    english_problem: str = ""
    searches: list[dict[str, Any]] = field(default_factory=list)
    search_problem: str = ""
    portal_links: list[dict[str, Any]] = field(default_factory=list)
    a11y: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pages"] = [p.to_dict() for p in self.pages]
        out["english_pages"] = [p.to_dict() for p in self.english_pages]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Observed:
        """The observation stored in a scan's evidence (``observed``), to judge it again offline."""
        known = {f.name for f in fields(cls)} - {"pages", "english_pages"}
        rest = {k: v for k, v in data.items() if k in known}
        return cls(**rest, pages=[PageFacts.from_dict(p) for p in data.get("pages") or []],
                   english_pages=[PageFacts.from_dict(p) for p in data.get("english_pages") or []])

    def page(self, url: str) -> PageFacts | None:
        key = canonical_url(url)
        for p in self.pages:
            if canonical_url(p.url) == key or (p.requested and canonical_url(p.requested) == key):
                return p
        return None


# --------------------------------------------------------------------------------------------
# recognising an item


def _on_site(url: str, host: str) -> bool:
    return url_host(url) == host


def _is_file(url: str) -> bool:
    return bool(FILE_EXTENSIONS.search(urlsplit(url).path))


def _is_english(page: PageFacts) -> bool:
    return page.via == "english" or page.lang.lower().startswith("en")


def link_matches(item: Item, url: str, text: str) -> str | None:
    """Why the link (url, text) names ``item`` (the phrase or pattern), or None."""
    words = tokens(text)
    if item.not_words.find(words):
        return None
    hit = item.words.find(words)
    if hit:
        return f"link text {hit!r}"
    path = urlsplit(url).path
    for pattern in item.url_patterns:
        if pattern.search(path):
            return f"link path matches {pattern.pattern!r}"
    return None


def page_matches(item: Item, page: PageFacts) -> str | None:
    for text in [page.title, *page.headings[:5]]:
        words = tokens(text)
        if item.not_words.find(words):
            continue
        hit = item.words.find(words)
        if hit:
            return f"page heading {hit!r}"
    path = urlsplit(page.url).path
    for pattern in item.url_patterns:
        if pattern.search(path):
            return f"page path matches {pattern.pattern!r}"
    return None


def is_search_form(form: Any, search: dict[str, Any]) -> bool:
    names = {str(n).lower() for n in search.get("field_names") or []}
    if form.role.lower() == "search":
        return True
    for f in form.fields:
        if f["type"] == "search" or f["role"] == "search" or (f["type"] in ("text", "search") and f["name"].lower() in names):
            return True
    path = urlsplit(form.action).path.lower()
    return any(str(p).lower() in path for p in search.get("action_patterns") or [])


def _unmet(item: Item, page: PageFacts, decree: Decree) -> list[str]:
    """What ``page`` lacks of the item's requirements."""
    search = decree.function("search")
    lacking: list[str] = []
    for req in item.requires:
        if req == "file_link" and page.file_links == 0:
            lacking.append("no link to a downloadable document (PDF, DOC...)")
        elif req == "search_form" and not any(is_search_form(f, search) for f in page.forms):
            lacking.append("no search form for the documents")
        elif req == "link_host" and not any(
                url_host(u) == h or url_host(u).endswith("." + h) for u, _ in page.links for h in item.hosts):
            lacking.append(f"no link to {', '.join(item.hosts)}")
        elif req == "contact" and not page.contact:
            lacking.append("no e-mail address or phone number")
    return lacking


def judge_item(item: Item, obs: Observed, decree: Decree, pages: list[PageFacts], *, group: str = "section",
               home_problem: str = "") -> Row:
    """The state of one item over ``pages`` (see the module docstring)."""
    row = Row(item.id, group, item.title_vi, item.title_en, item.article, item.verified, MISSING)
    candidates: dict[str, str] = {}  # canonical url -> why
    english = group == "english"
    for page in pages:
        if not page.ok or (not english and _is_english(page)):
            continue
        why = page_matches(item, page)
        if why:
            candidates.setdefault(canonical_url(page.url), why)
        for url, text in page.links:
            if not _on_site(url, obs.host) or _is_file(url):
                continue
            why = link_matches(item, url, text)
            if why:
                candidates.setdefault(canonical_url(url), f"{why} on {page.url}")
    unjudged: list[str] = []
    lacking: list[tuple[str, list[str]]] = []
    gone: list[str] = []
    for url, why in candidates.items():
        page = obs.page(url)
        if page is None:
            unjudged.append(f"{url}: {obs.failures.get(url, 'not fetched (crawl bound)')}")
            continue
        if page.status in NOT_FOUND_STATUSES:
            gone.append(f"{url} answers {page.status}")
            continue
        if not english and page.ok and _is_english(page):
            continue  # the English twin of a page is not the Vietnamese item
        if not page.ok:
            unjudged.append(f"{url} answers {page.status}")
            continue
        unmet = _unmet(item, page, decree)
        if not unmet:
            row.state, row.url, row.reason = PRESENT, page.url, why
            return row
        lacking.append((page.url, unmet))
    if unjudged:
        row.state, row.reason = UNJUDGED, "; ".join(unjudged[:3])
        return row
    if not candidates and home_problem:
        row.state, row.reason = UNJUDGED, home_problem
        return row
    if lacking:
        row.url = lacking[0][0]
        row.reason = "page found but " + "; ".join(lacking[0][1])
        row.details = {"lacking": lacking[0][1]}
    elif gone:
        row.reason = "; ".join(gone[:3])
    else:
        row.reason = "no link, title or heading names it on the pages read"
    return row


# --------------------------------------------------------------------------------------------
# functions


def judge_search(obs: Observed, decree: Decree) -> Row:
    spec = decree.function("search")
    row = Row("search", "function", *_titles(spec), MISSING)
    if obs.search_problem:
        row.state, row.reason = UNJUDGED, obs.search_problem
        return row
    if not obs.searches:
        row.reason = "no search form on the pages read"
        if obs.home_problem:
            row.state, row.reason = UNJUDGED, obs.home_problem
        return row
    failures: list[str] = []
    undecided: list[str] = []
    for attempt in obs.searches:
        if attempt.get("error"):
            (undecided if attempt.get("kind") in ("timeout", "deadline", "unsupported") else failures).append(
                f"{attempt['url']}: {attempt['error']}")
        elif attempt.get("status", 0) >= 500 or attempt.get("status", 0) in NOT_FOUND_STATUSES | {400, 403, 405}:
            failures.append(f"{attempt['url']} answers {attempt['status']}")
        elif attempt.get("no_results"):
            failures.append(f"{attempt['url']}: {attempt['no_results']!r} for the query {spec.get('query')!r}")
        elif attempt.get("result_links", 0) < 1:
            failures.append(f"{attempt['url']}: no result links for the query {spec.get('query')!r}")
        else:
            row.state, row.url = PRESENT, attempt["url"]
            row.reason = f"{attempt['result_links']} result link(s) for {spec.get('query')!r}"
            return row
    if undecided and not failures:
        row.state, row.reason = UNJUDGED, "; ".join(undecided[:2])
        return row
    row.state, row.reason = MISSING, "; ".join(failures[:2])
    row.details = {"attempts": obs.searches[:3]}
    return row


def judge_print(obs: Observed, decree: Decree, item_urls: set[str]) -> Row:
    spec = decree.function("print")
    row = Row("print", "function", *_titles(spec), MISSING)
    articles = [p for p in obs.pages if p.ok and canonical_url(p.url) != canonical_url(obs.home_url)
                and canonical_url(p.url) not in item_urls and p.via != "english"]
    printable = [p for p in articles if p.printable]
    if printable:
        row.state, row.url, row.reason = PRESENT, printable[0].url, f"print control on {len(printable)} page(s)"
    elif not articles:
        row.state = UNJUDGED
        row.reason = obs.home_problem or "no article page was read"
    else:
        row.reason = f"no print control on the {len(articles)} article page(s) read"
        row.details = {"pages": [p.url for p in articles[:5]]}
    return row


def judge_portal_links(obs: Observed, decree: Decree) -> Row:
    spec = decree.function("state_portal_links")
    row = Row("state_portal_links", "function", *_titles(spec), MISSING)
    if not obs.portal_links:
        row.reason = obs.home_problem or "no link to another state agency's portal"
        if obs.home_problem:
            row.state = UNJUDGED
        return row
    working = [link for link in obs.portal_links if link.get("status") and link["status"] < 400]
    broken = [link for link in obs.portal_links
              if (link.get("status") or 0) >= 400 or link.get("kind") in ("refused", "closed", "tls", "protocol")]
    row.details = {"sampled": obs.portal_links}
    if broken:
        row.state, row.url = MISSING, broken[0]["url"]
        row.reason = "; ".join(f"{b['url']}: {b.get('error') or b.get('status')}" for b in broken[:3])
        row.details["broken"] = [b["url"] for b in broken]
    elif working:
        row.state, row.url = PRESENT, working[0]["url"]
        row.reason = f"{len(working)} of {len(obs.portal_links)} sampled link(s) answer"
    else:
        row.state = UNJUDGED
        row.reason = "; ".join(f"{b['url']}: {b.get('error')}" for b in obs.portal_links[:3])
    return row


def judge_english(obs: Observed, decree: Decree) -> tuple[Row, list[Row]]:
    spec = decree.function("english")
    row = Row("english", "english", *_titles(spec), MISSING)
    if obs.english_problem:
        row.state, row.reason = UNJUDGED, obs.english_problem
        return row, []
    if not obs.english_home:
        row.reason = "no English page (language switch, hreflang or /en) found"
        if obs.home_problem:
            row.state, row.reason = UNJUDGED, obs.home_problem
        row.details = {"missing": [i.id for i in decree.english_items]}
        return row, []
    en_obs = Observed(host=obs.host, home_url=obs.english_home, pages=obs.english_pages, failures=obs.failures)
    rows = [judge_item(i, en_obs, decree, obs.english_pages, group="english") for i in decree.english_items]
    for r in rows:
        r.key = f"english.{r.key}"
    missing = [r.key.removeprefix("english.") for r in rows if r.state == MISSING]
    unjudged = [r.key.removeprefix("english.") for r in rows if r.state == UNJUDGED]
    row.url = obs.english_home
    if missing:
        row.reason = f"English pages lack: {', '.join(missing)}"
        row.details = {"missing": missing}
    elif unjudged:
        row.state, row.reason = UNJUDGED, f"English pages not read: {', '.join(unjudged)}"
    else:
        row.state, row.reason = PRESENT, "English organisation and contact pages found"
    return row, rows


# --------------------------------------------------------------------------------------------
# domain and accessibility


def judge_domain(host: str, kind: str, decree: Decree) -> Row:
    spec = decree.domain
    row = Row("domain", "domain", *_titles(spec), PRESENT)
    suffix = str(spec.get("suffix") or "gov.vn").lower().strip(".")
    name = host.lower().rstrip(".")
    if name.startswith("www."):
        name = name[4:]
    if kind in (spec.get("exempt_kinds") or []):
        row.reason = f"{kind} portal: exempt from the naming rule"
        return row
    if not name or all(c.isdigit() or c in ".:[]" for c in name) or ":" in name:
        row.state, row.reason = MISSING, f"{host} is an address, not a name under .{suffix}"
        return row
    if not name.endswith("." + suffix):
        row.state, row.reason = MISSING, f"{host} is not under .{suffix}"
        return row
    labels = name[: -len(suffix) - 1].split(".")
    rule = (spec.get("labels") or {}).get(kind) if kind else None
    if rule:
        low, high = int(rule.get("min", 1)), int(rule.get("max", 9))
        if not low <= len(labels) <= high:
            row.state = MISSING
            row.reason = f"{host}: a {kind} portal is named {rule.get('rule')}"
            return row
    row.reason = f"{host} is under .{suffix}" + (f" as a {kind} portal" if rule else "")
    return row


def judge_accessibility(obs: Observed, decree: Decree) -> Row:
    spec = decree.accessibility
    row = Row("accessibility", "accessibility", *_titles(spec), PRESENT)
    a11y = obs.a11y or {}
    if a11y.get("error") or not a11y.get("pages"):
        row.state, row.reason = UNJUDGED, str(a11y.get("error") or "accessibility not tested")
        return row
    counts: dict[str, int] = {}
    for page in a11y["pages"]:
        for v in page.get("violations") or []:
            counts[v.get("impact") or "unknown"] = counts.get(v.get("impact") or "unknown", 0) + int(v.get("count", 1))
    row.details = {"by_impact": counts, "pages": [p["url"] for p in a11y["pages"]]}
    if counts:
        row.state = MISSING
        row.reason = "WCAG 2.0 A/AA violations: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
    else:
        row.reason = f"no WCAG 2.0 A/AA violation on {len(a11y['pages'])} page(s)"
    return row


def _titles(spec: dict[str, Any]) -> tuple[str, str, str, bool]:
    title = spec.get("title") or {}
    return (str(title.get("vi") or ""), str(title.get("en") or ""), str(spec.get("article") or ""),
            bool(spec.get("verified", False)))


def checklist(obs: Observed, decree: Decree, *, accessibility: bool = True) -> list[Row]:
    """Every row of the checklist, in the order the report shows them."""
    rows = [judge_item(item, obs, decree, obs.pages, home_problem=obs.home_problem) for item in decree.items]
    item_urls = {canonical_url(r.url) for r in rows if r.url}
    rows.append(judge_search(obs, decree))
    rows.append(judge_print(obs, decree, item_urls))
    rows.append(judge_portal_links(obs, decree))
    english, english_rows = judge_english(obs, decree)
    rows.append(english)
    rows.extend(english_rows)
    rows.append(judge_domain(obs.host, obs.kind, decree))
    if accessibility:
        rows.append(judge_accessibility(obs, decree))
    else:  # shown as not judged, never as a pass; the policy's choice, so not a check error
        rows.append(Row("accessibility", "accessibility", *_titles(decree.accessibility), UNJUDGED,
                        reason="not tested: turned off by the policy (portal.accessibility: false)",
                        details={"disabled": True}))
    return rows


__all__ = ["MISSING", "PRESENT", "UNJUDGED", "Observed", "Phrases", "Row", "checklist", "is_search_form",
           "judge_domain", "link_matches", "page_matches"]
