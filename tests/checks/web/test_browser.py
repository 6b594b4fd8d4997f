"""The headless-browser module against real lab sites on 127.0.8.x and a real Debian Chromium.

What is proved: pages render with their script-built DOM, script cookies and storage keys;
names are pinned and other names refused; the --ca-file is trusted for the audited host only;
dialogs, downloads, popups, file:// and unpinned addresses are refused; bounds kill the
browser; and no Chromium process outlives a timeout, Ctrl-C, SIGTERM, SIGKILL or crash of the
scanner process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from auditor.lab.browser_sites import BROWSER_TEST_SITES, OTHER_HOST
from auditor.lab.sites import Lab
from checks.web.browser import (
    BrowserError,
    BrowserLimits,
    BrowserSession,
    BrowserUnavailable,
    find_chromium,
    host_resolver_rules,
)
from checks.web.browser.process import _group_processes

LAB_FIRST = "127.0.8.1"

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="Debian chromium not installed")


@pytest.fixture(scope="module")
def blab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("browser-lab"), BROWSER_TEST_SITES, first_address=LAB_FIRST)
    lab.start()
    yield lab
    lab.stop()


def _gone(pgid: int, seconds: float) -> bool:
    """No process of the group left within ``seconds`` (SIGKILLed processes take a moment to exit)."""
    until = time.monotonic() + seconds
    while _group_processes(pgid) and time.monotonic() < until:
        time.sleep(0.05)
    return _group_processes(pgid) == []


def _session(lab: Lab, **kwargs: object) -> BrowserSession:
    basic, other = lab.site("br-basic"), lab.site("br-other")
    host_map = {basic.spec.host: basic.address, other.spec.host: other.address}
    kwargs.setdefault("ca_file", str(lab.ca_file))
    kwargs.setdefault("pin_host", (basic.spec.host, basic.https_port))
    return BrowserSession(host_map, **kwargs)  # type: ignore[arg-type]


def test_rules_and_missing_chromium() -> None:
    rules = host_resolver_rules({"a.test": "127.0.8.1", "b.test": "::1", "127.0.0.1": "127.0.0.1"}, True)
    assert rules == "MAP a.test 127.0.8.1, MAP b.test [::1], MAP * ~NOTFOUND"
    assert "~NOTFOUND" not in host_resolver_rules({"a.test": "127.0.8.1"}, False)
    with pytest.raises(BrowserUnavailable, match="apt-get install -y chromium"):
        find_chromium("/nonexistent/chromium")


def test_render_script_built_page_pinned_and_scoped(blab: Lab) -> None:
    basic = blab.site("br-basic")
    with _session(blab) as session:
        snap = session.render(basic.url)
        ev = session.evidence()
        pgid = session.pgid
    assert pgid is not None and _group_processes(pgid) == []
    assert snap.status == 200, snap.errors
    # The form exists only in the rendered DOM.
    assert 'name="email"' in snap.html and 'action="/dang-ky"' in snap.html
    cookies = {c.name: c for c in snap.cookies}
    assert cookies["script_cookie"].source == "script" and cookies["http_cookie"].source == "http"
    assert snap.local_storage_keys == ["visitor_id"] and snap.session_storage_keys == ["tab_id"]
    by_host = {r.host: r for r in snap.requests}
    # Unmapped name: aborted inside the browser, recorded as asked for by the page.
    assert by_host["pixel.unmapped.example"].blocked
    # Mapped host under the same lab CA: the browser must not trust it (trust scoped to the audited host).
    other = by_host[OTHER_HOST]
    assert other.status is None and other.failure and "CERT" in other.failure.upper(), other
    assert ev["sandbox"] is True and ev["other_hosts"] == "refused" and len(ev["ca_pinned_keys"]) == 1
    if os.geteuid() == 0:
        assert ev["run_as"] == "nobody"


def test_without_ca_pin_the_audited_host_is_not_trusted(blab: Lab) -> None:
    basic = blab.site("br-basic")
    with _session(blab, ca_file=None) as session:
        snap = session.render(basic.url, settle=False)
    assert snap.status is None and any("CERT" in e.upper() for e in snap.errors), snap.errors


def test_hostile_page_is_contained(blab: Lab) -> None:
    basic = blab.site("br-basic")
    with _session(blab) as session:
        snap = session.render(basic.url + "hostile")
    assert "ran" in snap.html
    assert snap.refused["dialogs"] >= 2 and snap.refused["downloads"] + snap.refused["popups"] >= 1, snap.refused
    blocked = {r.url.split("/")[2] if "://" in r.url else r.url: r.blocked for r in snap.requests if r.blocked}
    assert any(k.startswith("127.0.0.2") for k in blocked), blocked
    assert any(k.startswith("127.0.0.1") for k in blocked), blocked
    sockets = {r.url: r.blocked for r in snap.requests if r.resource_type == "websocket"}
    assert sockets.get("ws://127.0.0.2:9/") and sockets.get("wss://ws.unmapped.example/socket"), sockets
    # file:// never becomes a network request the page can read: either blocked by us or by Chromium.
    assert not any(r.url.startswith("file:") and r.status for r in snap.requests)


def test_endless_script_hits_the_page_deadline_and_browser_dies(blab: Lab) -> None:
    basic = blab.site("br-basic")
    limits = BrowserLimits(page_seconds=2.0, total_seconds=60, grace_seconds=1.0)
    session = _session(blab, limits=limits)
    try:
        with session.view(basic.url + "spin") as view:
            pgid = session.pgid
            assert pgid and _group_processes(pgid)
            start = time.monotonic()
            with pytest.raises(BrowserError, match="killed"):
                view.evaluate("spin()", seconds=1.0)
            assert time.monotonic() - start < 1.0 + 1.0 + 3.0
        assert _gone(pgid, 5.0)
        assert session.killed == "page deadline passed"
    finally:
        session.close()


def test_session_deadline_and_memory_bound_kill_the_browser(blab: Lab) -> None:
    basic = blab.site("br-basic")
    session = _session(blab, limits=BrowserLimits(page_seconds=60, total_seconds=3, grace_seconds=1.0))
    try:
        pgid = session.pgid
        assert pgid is not None
        with pytest.raises(BrowserError), session.view(basic.url + "spin") as view:
            view.evaluate("spin()", seconds=60)
        assert session.killed == "session deadline passed" and _gone(pgid, 5.0)
    finally:
        session.close()
    with pytest.raises(BrowserError, match="memory bound"), _session(blab, limits=BrowserLimits(memory_mb=20)) as s:
        time.sleep(2)
        s.render(basic.url)


def test_byte_bound_stops_further_requests(blab: Lab) -> None:
    basic = blab.site("br-basic")
    with _session(blab, limits=BrowserLimits(page_bytes=1_000_000)) as session:
        snap = session.render(basic.url + "big")
    assert snap.byte_limit_hit
    assert any(r.blocked == "page byte bound reached" for r in snap.requests) or snap.bytes_loaded <= 1_600_000


HOLDER = textwrap.dedent("""
    import sys, time
    from checks.web.browser import BrowserSession, BrowserLimits
    s = BrowserSession({}, limits=BrowserLimits(total_seconds=120, page_seconds=60))
    print(s.pgid, flush=True)
    with s.view("data:text/html,<p>x</p>", settle=False) as v:
        if sys.argv[1] == "abort":
            import os; os.abort()
        time.sleep(90)
""")


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL", "abort"])
def test_no_orphan_chromium_when_the_scanner_dies(how: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, how], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.isdigit(), proc.stderr.read() if proc.stderr else ""
        pgid = int(line)
        assert _group_processes(pgid)
        if how != "abort":
            time.sleep(0.5)
            proc.send_signal(getattr(signal, how))
        proc.wait(timeout=30)
        assert _gone(pgid, 10.0), f"Chromium survived {how}"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_byte_bound_stops_a_body_in_flight(blab: Lab) -> None:
    """A 30 MB fetch against a 2 MB bound: loading is stopped (the fetch aborted) or, if the body
    runs on past 4 x the bound first, the browser is killed. Either way the body never completes."""
    basic = blab.site("br-basic")
    session = _session(blab, limits=BrowserLimits(page_bytes=2_000_000, settle_seconds=15))
    try:
        pgid = session.pgid
        assert pgid is not None
        try:
            snap = session.render(basic.url + "huge")
        except BrowserError as exc:
            assert "byte bound" in str(exc) and _gone(pgid, 5.0)
        else:
            body = next(r for r in snap.requests if r.url.endswith("/huge.bin"))
            assert snap.byte_limit_hit and body.failure and snap.bytes_loaded < 12_000_000, (snap.bytes_loaded, body)
    finally:
        session.close()


def test_inject_and_evaluate_a_script_like_axe(blab: Lab) -> None:
    """What the portal check does with axe-core: inject a library, await its promise."""
    basic = blab.site("br-basic")
    with _session(blab) as session, session.view(basic.url, settle=False) as view:
        view.add_script("window.labAxe = {run: () => new Promise(r => setTimeout(() => "
                        "r({violations: [{id: 'x', nodes: document.querySelectorAll('input').length}]}), 50))};")
        result = view.evaluate("() => window.labAxe.run()", seconds=10)
        view.phase("after-script")
        assert view.snapshot().requests[0].phase == "load"
    assert result == {"violations": [{"id": "x", "nodes": 1}]}
