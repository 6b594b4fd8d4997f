"""The bounded crawler on real loopback servers (addresses 127.0.1.100-127.0.1.129).

Proves: it stays on the audited host (a listener for the off-site host counts every connection
attempt and sees none), honours depth, page, byte and time bounds, and survives malformed
HTML, a 5 MB page, redirect loops and non-UTF-8 pages; the crawl is computed once per target
and shared between checks.
"""

from __future__ import annotations

import socket
import threading
import time
import unicodedata
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from auditor.check import CheckContext
from auditor.errors import AuditorError
from auditor.lab.privacy_sites import CRAWL_OTHER_HOST, CRAWL_SITES, HUGE_PAGE_BYTES
from auditor.lab.sites import Lab, RunningSite
from auditor.targets import Resolver, Target, make_target
from checks.privacy.personal_data import load_vocabulary, read_forms
from checks.web import crawl as crawl_mod
from checks.web.crawl import Crawl, CrawlBounds, crawl_site, shared_crawl
from policies import PolicyFiles

LAB_FIRST = "127.0.1.100"
COUNTER_ADDRESS = "127.0.1.120"
SLOW_ADDRESS = "127.0.1.121"
SLOW_HOST = "slow.crawl.test"


class ConnectionCounter:
    """Raw TCP listeners that count connection attempts (and close them at once)."""

    def __init__(self, address: str, ports: tuple[int, ...]) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._stop = False
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            for attempt in range(25):  # another test run may be releasing the port
                try:
                    sock.bind((address, port))
                    break
                except OSError:
                    if attempt == 24:
                        raise
                    time.sleep(0.2)
            sock.listen(16)
            sock.settimeout(0.2)
            self._socks.append(sock)
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop:
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.count += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        for sock in self._socks:
            sock.close()


class _SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        time.sleep(0.5)
        n = int(self.path.strip("/p") or 0) if self.path.startswith("/p") else 0
        links = "".join(f'<a href="/p{i}">p{i}</a>' for i in range(n + 1, n + 40))
        body = f"<html><body>{links}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def crawl_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("crawl-lab"), CRAWL_SITES, first_address=LAB_FIRST)
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def counter() -> Iterator[ConnectionCounter]:
    c = ConnectionCounter(COUNTER_ADDRESS, (80, 443, 8443))
    yield c
    c.close()


@pytest.fixture(scope="module")
def site(crawl_lab: Lab) -> RunningSite:
    return crawl_lab.site("crawl-lab")


def _resolver(site: RunningSite) -> Resolver:
    return Resolver(site.resolve + [f"{CRAWL_OTHER_HOST}:*:{COUNTER_ADDRESS}",
                                    f"elsewhere.example:*:{COUNTER_ADDRESS}"], allow_dns=False)


def run_crawl(site: RunningSite, deadline_s: float = 60.0, **options: object) -> Crawl:
    resolver = _resolver(site)
    target = make_target(site.url, resolver)
    ctx = CheckContext(timeout=5, deadline=time.monotonic() + deadline_s, resolver=resolver, options=options)
    return crawl_site(target, ctx)


@pytest.fixture(scope="module")
def default_crawl(site: RunningSite, counter: ConnectionCounter) -> Crawl:
    return run_crawl(site)


def _paths(crawl: Crawl) -> set[str]:
    return {urlsplit(p.final_url).path for p in crawl.pages}


def test_stays_on_the_audited_host(default_crawl: Crawl, site: RunningSite, counter: ConnectionCounter) -> None:
    crawl = default_crawl
    assert len(crawl.pages) > 10
    for page in crawl.pages:
        parts = urlsplit(page.final_url)
        assert parts.hostname == site.host
        assert (parts.scheme, parts.port or {"https": 443, "http": 80}[parts.scheme]) in (
            ("https", site.https_port), ("http", site.http_port))
    # Off-site links, a protocol-relative link and an off-site redirect: never connected to.
    assert counter.count == 0
    assert crawl.skipped.get("off-site link", 0) >= 3  # other host (2 schemes), other port, elsewhere
    assert any(CRAWL_OTHER_HOST in loc for loc in crawl.offsite_redirects)
    assert any(f["kind"] == "offsite" for f in crawl.failures)
    # The cookie that off-site redirect sets is still received by a visitor's browser.
    assert (f"https://{site.host}/redirect-off", "_ga=GA1.2.3.4; Path=/") in crawl.cookies()
    # The plain-HTTP twin of the host is part of the site.
    assert any(p.final_url == f"http://{site.host}/plain" for p in crawl.pages)
    # Files are not fetched as pages; mailto/javascript/tel/fragments are not links at all.
    assert "/doc.pdf" not in _paths(crawl)
    home = crawl.home
    assert home is not None and home.final_url == site.url
    assert not any(link.startswith(("mailto:", "javascript:", "tel:")) for link in home.links)
    # A redirect inside the site is followed and its target kept once.
    assert sorted(_paths(crawl)).count("/b") == 1


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_depth_bound(site: RunningSite, depth: int) -> None:
    crawl = run_crawl(site, crawl_depth=depth)
    assert max(p.depth for p in crawl.pages) <= depth
    chain = ["/a", "/a1", "/a2", "/a3"]
    paths = _paths(crawl)
    for i, path in enumerate(chain, start=1):
        assert (path in paths) == (i <= depth), (depth, path, sorted(paths))


def test_page_bound(site: RunningSite) -> None:
    crawl = run_crawl(site, crawl_pages=3)
    assert len(crawl.pages) == 3
    assert crawl.stopped and "page limit" in crawl.stopped


def test_byte_bound_on_a_huge_page(site: RunningSite) -> None:
    crawl = run_crawl(site, page_bytes=100_000, crawl_depth=1)
    huge = crawl.page_for(f"https://{site.host}/huge")
    assert huge is not None and huge.truncated and huge.size <= 100_000
    # What came before the cut is read: the form and the early link; the late link is not.
    assert any(link.endswith("/early") for link in huge.links)
    assert not any(link.endswith("/late") for link in huge.links)
    assert huge.soup is not None
    forms = read_forms(huge.soup, huge.final_url, load_vocabulary(PolicyFiles().layers("privacy.yaml")))
    assert [f.kind for f in forms[0].fields] == ["phone"]


def test_default_byte_bound(default_crawl: Crawl, site: RunningSite) -> None:
    huge = default_crawl.page_for(f"https://{site.host}/huge")
    assert huge is not None
    assert huge.truncated and huge.size <= 2_000_000 < HUGE_PAGE_BYTES


def test_survives_malformed_html(default_crawl: Crawl, site: RunningSite) -> None:
    page = default_crawl.page_for(f"https://{site.host}/malformed")
    assert page is not None and page.status == 200 and page.soup is not None and page.parse_error is None
    paths = {urlsplit(link).path for link in page.links}
    assert {"/ok-1", "/ok-3"} <= paths
    # Links with an invalid IPv6 literal or port are dropped, not fatal.
    assert not any("99999" in link or "[::1" in link for link in page.links)
    # Its forms can be read too (nested, unclosed).
    forms = read_forms(page.soup, page.final_url, load_vocabulary(PolicyFiles().layers("privacy.yaml")))
    assert any(f.kind == "email" for form in forms for f in form.fields)
    assert "/ok-1" in _paths(default_crawl)


def test_survives_redirect_loops(default_crawl: Crawl, site: RunningSite) -> None:
    loops = {urlsplit(f["url"]).path: f for f in default_crawl.failures if f["kind"] == "loop"}
    assert {"/loop", "/self-loop"} <= set(loops)
    assert "redirect loop" in loops["/loop"]["error"]
    # The crawl carried on after them: pages linked after the loops were fetched.
    assert {"/cp1258", "/latin1", "/bad-utf8"} <= _paths(default_crawl)


def test_non_utf8_pages(default_crawl: Crawl, site: RunningSite) -> None:
    cp = default_crawl.page_for(f"https://{site.host}/cp1258")
    assert cp is not None and cp.encoding == "windows-1258"
    assert unicodedata.normalize("NFC", cp.title) == "Trang mã hóa Windows-1258"
    assert cp.soup is not None
    kinds = [f.kind for form in read_forms(cp.soup, cp.final_url, load_vocabulary(PolicyFiles().layers("privacy.yaml"))) for f in form.fields]
    assert kinds == ["full_name", "phone"]
    assert "/vn-link" in _paths(default_crawl)

    latin = default_crawl.page_for(f"https://{site.host}/latin1")
    assert latin is not None and "Café crème" in latin.text()

    bad = default_crawl.page_for(f"https://{site.host}/bad-utf8")
    assert bad is not None and bad.soup is not None
    assert "\ufffd" in bad.title  # invalid bytes replaced, not fatal
    assert "/after-bad-bytes" in _paths(default_crawl)


def test_time_bound_and_http_fallback() -> None:
    server = ThreadingHTTPServer((SLOW_ADDRESS, 80), _SlowHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    try:
        resolver = Resolver([f"{SLOW_HOST}:*:{SLOW_ADDRESS}"], allow_dns=False)
        target = make_target(f"https://{SLOW_HOST}/", resolver)
        ctx = CheckContext(timeout=2, deadline=time.monotonic() + 3.0, resolver=resolver,
                           options={"crawl_pages": 100, "crawl_depth": 5})
        t0 = time.monotonic()
        crawl = crawl_site(target, ctx)
        elapsed = time.monotonic() - t0
    finally:
        server.shutdown()
        server.server_close()
    # Nothing on 443: the crawl fell back to the plain-HTTP site, then stopped on time.
    assert crawl.home is not None and crawl.home.final_url == f"http://{SLOW_HOST}/"
    assert any(f["kind"] == "refused" for f in crawl.failures)
    assert crawl.stopped == "site time budget spent"
    assert 2 <= len(crawl.pages) <= 6
    assert elapsed < 3.5


def test_bad_bounds_are_one_line_errors() -> None:
    for options, word in (({"crawl_depth": -1}, "crawl_depth"), ({"crawl_pages": 0}, "crawl_pages"),
                          ({"page_bytes": "lots"}, "page_bytes"), ({"crawl_depth": 1.5}, "crawl_depth")):
        with pytest.raises(AuditorError, match=word):
            CrawlBounds.from_options(options)
    assert CrawlBounds.from_options({}) == CrawlBounds(2, 30, 2_000_000)


def test_crawl_is_computed_once_and_shared(site: RunningSite, monkeypatch: pytest.MonkeyPatch) -> None:
    from checks.privacy.check import PrivacyCheck
    from checks.reputation.check import ReputationCheck

    calls: list[str] = []
    real = crawl_mod.crawl_site

    def counting(target: Target, ctx: CheckContext) -> Crawl:
        calls.append(target.host)
        time.sleep(0.2)  # let the other check arrive while this one is crawling
        return real(target, ctx)

    monkeypatch.setattr(crawl_mod, "crawl_site", counting)
    resolver = _resolver(site)
    target = make_target(site.url, resolver)
    ctx = CheckContext(timeout=5, resolver=resolver, options={"crawl_depth": 1})
    outcomes: dict[str, object] = {}
    threads = [threading.Thread(target=lambda c=c: outcomes.__setitem__(c.id, c.run(target, ctx)))
               for c in (PrivacyCheck(), ReputationCheck())]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert calls == [site.host]
    assert set(outcomes) == {"privacy", "reputation"}
    assert shared_crawl(target, ctx) is shared_crawl(target, ctx)
    assert calls == [site.host]


def test_extra_pages_stay_on_site(default_crawl: Crawl, site: RunningSite, counter: ConnectionCounter,
                                  tmp_path: Path) -> None:
    resolver = _resolver(site)
    ctx = CheckContext(timeout=5, resolver=resolver)
    before = counter.count
    assert default_crawl.fetch_extra(f"https://{CRAWL_OTHER_HOST}/privacy", ctx) is None
    assert counter.count == before
    extra = default_crawl.fetch_extra(f"https://{site.host}/a3", ctx)
    assert extra is not None and extra.status == 200
    assert default_crawl.fetch_extra(f"https://{site.host}/a3", ctx) is extra
    assert _open_pools(default_crawl) == 0  # the extra fetch let its connections go


def _open_pools(crawl: Crawl) -> int:
    assert crawl._fetcher is not None
    return sum(len(adapter.poolmanager.pools) for adapter in crawl._fetcher.session.adapters.values())


def test_connections_are_released_after_the_crawl(site: RunningSite) -> None:
    crawl = run_crawl(site, crawl_depth=1)
    assert crawl.pages and _open_pools(crawl) == 0


def test_landing_page_redirecting_off_host_is_explained(site: RunningSite, counter: ConnectionCounter) -> None:
    from checks.privacy.check import PrivacyCheck

    resolver = _resolver(site)
    target = make_target(f"https://{site.host}/redirect-off", resolver)
    outcome = PrivacyCheck().run(target, CheckContext(timeout=5, resolver=resolver))
    assert outcome.status == "error" and outcome.findings == []
    assert f"redirects to https://{CRAWL_OTHER_HOST}/landing, another host" in (outcome.error or "")
    assert counter.count == 0
