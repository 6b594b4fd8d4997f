"""What the portal check keeps of each page: the facts its judgements rest on, JSON-able.

A page is reduced to its URL and status, title and headings, links (URL and text), forms (action,
method, fields), how many links point to downloadable documents, and whether it shows contact
details and a print control. These facts are the stored evidence, so a verdict can be
re-derived offline from them (:mod:`checks.portal.analyse`); every list is bounded and every
string cut, since pages are hostile.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from bs4 import BeautifulSoup, Tag

from checks.portal.text import Phrases
from checks.web.crawl import CrawledPage, absolute
from checks.web.net import one_line

MAX_LINKS = 400
MAX_HEADINGS = 30
MAX_FORMS = 10
MAX_FIELDS = 30
_TEXT = 160
FILE_EXTENSIONS = re.compile(r"\.(?:pdf|docx?|xlsx?|odt|ods|rtf|zip|rar|7z|pptx?)$", re.I)
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PHONE_RE = re.compile(r"(?<![\w.])\+?\(?\d[\d .()-]{7,16}\d(?![\w])")


@dataclass
class FormFacts:
    action: str
    method: str
    charset: str
    role: str
    fields: list[dict[str, str]] = field(default_factory=list)


@dataclass
class PageFacts:
    url: str
    status: int
    via: str = "crawl"  # crawl | fetch | browser | english
    requested: str = ""  # the URL asked for, when a redirect led to ``url``
    lang: str = ""
    encoding: str = ""
    title: str = ""
    headings: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (url, text)
    hreflang_en: list[str] = field(default_factory=list)
    forms: list[FormFacts] = field(default_factory=list)
    file_links: int = 0
    contact: bool = False
    printable: bool = False
    scripts: int = 0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["links"] = [list(pair) for pair in self.links]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageFacts:
        forms = [FormFacts(**f) for f in data.get("forms") or []]
        links = [(str(u), str(t)) for u, t in data.get("links") or []]
        known = {f.name for f in fields(cls)} - {"forms", "links"}
        rest = {k: v for k, v in data.items() if k in known}
        return cls(**rest, forms=forms, links=links)


_YEAR_RANGE_RE = re.compile(r"^\(?(?:19|20)\d\d\)?\s*[-–]\s*\(?(?:19|20)\d\d\)?$")


def has_phone(text: str) -> bool:
    """A phone number in ``text``: 9 to 13 digits in one run of digits, spaces, dots, dashes and
    brackets (or an 1800/1900 hotline), not a year range ("2021-2030") or a date."""
    for match in _PHONE_RE.finditer(text[:200_000]):
        value = match.group().strip()
        digits = sum(c.isdigit() for c in value)
        if 9 <= digits <= 13 and not _YEAR_RANGE_RE.match(value):
            return True
        if digits == 8 and value.replace(" ", "").replace(".", "")[:4] in ("1800", "1900"):  # hotlines
            return True
    return False


def _attr(node: Tag, name: str) -> str:
    value = node.get(name)
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return str(value or "").strip()


def _text(node: Tag) -> str:
    text = node.get_text(" ")
    if not text.strip():
        text = _attr(node, "aria-label") or _attr(node, "title")
        img = node.find("img")
        if not text and isinstance(img, Tag):
            text = _attr(img, "alt")
    return one_line(text, _TEXT)


def page_facts(page: CrawledPage, print_words: Phrases, print_attrs: list[re.Pattern[str]],
               via: str = "crawl") -> PageFacts:
    """The facts of a crawled (or fetched) page; an unparsed page keeps only URL and status."""
    facts = PageFacts(url=page.final_url[:500], status=page.status, via=via, encoding=(page.encoding or "")[:40],
                      title=page.title[:_TEXT], requested=page.url[:500] if page.url != page.final_url else "")
    if page.soup is not None:
        read_soup(facts, page.soup, page.base_url or page.final_url, page.text(), print_words, print_attrs)
    return facts


def read_soup(facts: PageFacts, soup: BeautifulSoup, base: str, visible: str, print_words: Phrases,
              print_attrs: list[re.Pattern[str]]) -> None:
    """Fill ``facts`` from a parsed page (static or rendered)."""
    html = soup.find("html")
    if isinstance(html, Tag):
        facts.lang = _attr(html, "lang")[:20]
    if not facts.title:
        title = soup.find("title")
        facts.title = one_line(title.get_text(" "), _TEXT) if isinstance(title, Tag) else ""
    for node in soup.find_all(["h1", "h2", "h3"], limit=MAX_HEADINGS):
        text = one_line(node.get_text(" "), _TEXT)
        if text:
            facts.headings.append(text)
    for node in soup.find_all(["a", "area", "link"], limit=20_000):
        if not isinstance(node, Tag):
            continue
        href = _attr(node, "href")
        url = absolute(base, href) if href else None
        if node.name == "link":
            if url and _attr(node, "hreflang").lower().startswith("en") and "alternate" in _attr(node, "rel").lower():
                facts.hreflang_en.append(url[:500])
            continue
        if href.lower().startswith(("mailto:", "tel:")):
            facts.contact = True
        if url and len(facts.links) < MAX_LINKS:
            facts.links.append((url[:500], _text(node)))
            if _attr(node, "hreflang").lower().startswith("en") and len(facts.hreflang_en) < 5:
                facts.hreflang_en.append(url[:500])
        if url and FILE_EXTENSIONS.search(urlsplit(url).path):
            facts.file_links += 1
    for form in soup.find_all("form", limit=MAX_FORMS):
        if isinstance(form, Tag):
            facts.forms.append(_form(form, base))
    for node in soup.find_all(["a", "button", "input"], limit=20_000):
        if not isinstance(node, Tag):
            continue
        label = _text(node) if node.name != "input" else _attr(node, "value")
        attrs = " ".join(_attr(node, a) for a in ("onclick", "class", "id", "href", "title"))
        if print_words.find(label) or any(p.search(attrs) for p in print_attrs):
            facts.printable = True
            break
    facts.scripts = len(soup.find_all("script", limit=1000))
    if _EMAIL_RE.search(visible) or has_phone(visible):
        facts.contact = True


def _form(form: Tag, base: str) -> FormFacts:
    action = absolute(base, _attr(form, "action")) if _attr(form, "action") else base
    fields: list[dict[str, str]] = []
    for node in form.find_all(["input", "select", "textarea", "button"], limit=200):
        if not isinstance(node, Tag) or len(fields) >= MAX_FIELDS:
            continue
        kind = _attr(node, "type").lower() or ("text" if node.name in ("input", "textarea") else node.name)
        if node.name == "button" and kind in ("", "button"):
            kind = "submit"
        fields.append({"name": _attr(node, "name")[:80], "type": kind[:20], "value": _attr(node, "value")[:200],
                       "role": _attr(node, "role")[:20]})
    return FormFacts(action=(action or base)[:500], method=(_attr(form, "method") or "get").lower()[:10],
                     charset=_attr(form, "accept-charset")[:40], role=_attr(form, "role")[:20], fields=fields)
