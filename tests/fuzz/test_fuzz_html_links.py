"""Fuzz the HTML readers a site feeds: the crawler's page reader and URL helpers
(``checks.web.crawl``) and the privacy check's form reader (``read_forms``).

Property: they return their declared types and never raise, whatever the markup; every URL
they collect is an absolute http(s) URL on one line.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup
from fuzz_strategies import assert_one_line, base_urls, mixed, urls
from hypothesis import example, given

from checks.privacy.personal_data import FormInfo, load_vocabulary, read_forms
from checks.web import crawl
from policies import PolicyFiles

VOCAB = load_vocabulary(PolicyFiles().layers("privacy.yaml"))

markup = mixed(
    "<form", "<form action=", "<form method=post", " action=\"", "javascript:alert(1)", "#top", "<input",
    " type=", "password", "checkbox", "image", "submit", " name=", "email", "soDienThoai", " id=f1",
    " form=f1", "<label for=f1>", "Số điện thoại", "</label>", "<button formaction=", " formmethod=post",
    "<select>", "<option selected>", "<textarea>", " aria-labelledby=", " placeholder=", "<a href=",
    "<area href=", "<base href=", "<script src=", "<script>fetch('", "<style>a{background:url(",
    "<img srcset=", "<link rel=preload href=", "<object data=", " style=\"background:url(", "<title>",
    "</form>", ">", "<", "\"", "'", "http://", "https://example.com", "//", "[::1", ":99999", "%00",
    "&nbsp;", "<!--", "<![CDATA[", "<?", "</", "\u0000", max_size=50,
)

pytestmark = pytest.mark.filterwarnings("ignore::bs4.MarkupResemblesLocatorWarning")


@given(base_urls, urls)
@example("https://example.com/", "http://[::1")
@example("https://example.com/", "https://example.com:99999/")
@example("http://[", "/x")
@example("https://example.com/", "/a\x1b[2J\x9b")  # controls are percent-encoded, as browsers do
@example("http://127.0.0.1:8080/a/b?c", "\x1bhttps://https://")  # leading controls are dropped first
def test_absolute(base: str, ref: str) -> None:
    url = crawl.absolute(base, ref)
    if url is not None:
        assert urlsplit(url).scheme in ("http", "https")
        assert "#" not in url
        assert_one_line(url)


@given(urls)
@example("https://[::1/")
@example("http://example.com:99999/")
def test_url_helpers(url: str) -> None:
    assert isinstance(crawl.canonical_url(url), str)
    key = crawl.origin_key(url)
    assert key is None or (key[0] in ("http", "https") and isinstance(key[2], int))
    assert isinstance(crawl.url_host(url), str)


def _page(url: str) -> crawl.CrawledPage:
    return crawl.CrawledPage(url=url, final_url=url, depth=0, status=200, content_type="text/html",
                             encoding=None, truncated=False, size=0)


@given(base_urls, markup)
@example("https://example.com/", "<title>\x00\x1b[2J")  # the title is one printable line
def test_read_page(url: str, text: str) -> None:
    page = _page(url)
    crawl.read_page(page, text)
    assert page.parse_error is None or isinstance(page.parse_error, str)
    assert_one_line(page.title)
    for found in [*page.links, *page.form_actions, *(r.url for r in page.resources)]:
        assert urlsplit(found).scheme in ("http", "https")
        assert_one_line(found)
    assert isinstance(page.text(), str)


@given(base_urls, markup)
@example("https://example.com/", "<form action='http://[::1'><input name=email></form>")
@example("http://[", "<form><input type=checkbox name=agree></form>")
def test_read_forms(url: str, text: str) -> None:
    forms = read_forms(BeautifulSoup(text, "html.parser"), url, VOCAB)
    assert all(isinstance(f, FormInfo) for f in forms)
    for form in forms:
        assert form.method in ("get", "post", "dialog")
        assert form.action_url is None or urlsplit(form.action_url).scheme in ("http", "https")
        assert isinstance(form.role, str)
        assert isinstance(form.evidence(), dict)
