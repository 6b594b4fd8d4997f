"""Fuzz the portal check's readers of site text: word matching (``checks.portal.text``), the
phone-number test and the page facts (``checks.portal.facts``), and judging those facts.

Property: they return their declared types and never raise, whatever the markup; every link and
title kept is one line, and the facts survive the JSON round trip that storage makes.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from fuzz_strategies import any_text, assert_one_line, mixed
from hypothesis import example, given

from checks.portal.analyse import Observed, checklist
from checks.portal.facts import PageFacts, has_phone, page_facts
from checks.portal.rules import decree_for
from checks.portal.text import Phrases, tokens
from checks.web.crawl import CrawledPage, read_page
from policies import PolicyFiles

DECREE = decree_for(PolicyFiles().file("portal"), date(2026, 12, 4))
PHRASES = Phrases(["cơ cấu tổ chức", "en", "liên hệ"])

markup = mixed(
    "<a href=", "/van-ban", "/en/", " hreflang=en", "<link rel=alternate hreflang=en href=", "Văn bản pháp luật",
    "Cơ cấu tổ chức", "Liên hệ", "EN", "<form", " role=search", " action=", "/tim-kiem", "<input", " type=search",
    " name=q", " accept-charset=", "windows-1258", "<button onclick=window.print()>", "In bài", "<h1>", "<h2>",
    "<title>", "mailto:a@b.gov.vn", "tel:0236", "0236 3821 000", "2021-2030", "<img alt=", ".pdf", "\"", "'",
    ">", "<", "\u0301", "\u0000", "\x1b[2J", "http://[::1", "//", max_size=50,
)

pytestmark = pytest.mark.filterwarnings("ignore::bs4.MarkupResemblesLocatorWarning")


@given(any_text)
@example("Ð\u0300\u0301" * 50)
def test_tokens_and_phrases(text: str) -> None:
    words = tokens(text)
    assert isinstance(words, tuple) and all(isinstance(w, str) and w for w in words)
    found = PHRASES.find(text)
    assert found is None or found in PHRASES.raw
    assert isinstance(has_phone(text), bool)


@given(markup)
@example('<a href="/en/" hreflang=en>EN</a><form role=search action=/tim-kiem><input name=q></form>')
def test_page_facts_and_judging(html: str) -> None:
    page = CrawledPage(url="https://so.lab.gov.vn/", final_url="https://so.lab.gov.vn/", depth=0, status=200,
                       content_type="text/html", encoding="utf-8", truncated=False, size=len(html))
    read_page(page, html)
    facts = page_facts(page, Phrases(["in bài"]), [])
    assert isinstance(facts, PageFacts)
    for url, text in facts.links:
        assert_one_line(url)
        assert_one_line(text)
    assert_one_line(facts.title)
    stored = json.loads(json.dumps(facts.to_dict()))
    assert PageFacts.from_dict(stored) == facts or PageFacts.from_dict(stored).to_dict() == facts.to_dict()
    obs = Observed(host="so.lab.gov.vn", home_url=facts.url, pages=[facts])
    rows = checklist(obs, DECREE, accessibility=False)
    assert {r.state for r in rows} <= {"present", "missing", "unjudged"}
