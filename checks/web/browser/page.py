"""One page in a fresh profile: routing (what may leave the browser), the records of its
requests and cookies, settling, scripts, clicks and the snapshot.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from checks.web.browser.records import (
    _MAX_COOKIES,
    _MAX_RECORDS,
    _MAX_STORAGE_KEYS,
    BYTE_KILL_FACTOR,
    QUIET_SECONDS,
    BrowserError,
    CookieRecord,
    PageSnapshot,
    RequestRecord,
)

if TYPE_CHECKING:
    from checks.web.browser.session import BrowserSession

class PageView:
    """One page in a fresh browser context; created by :meth:`BrowserSession.view`."""

    def __init__(self, session: BrowserSession, url: str) -> None:
        self.session = session
        self.url = url
        self.page: Any = None
        self._context: Any = None
        self._phase = "load"
        self._records: list[RequestRecord] = []
        self._by_request: dict[int, RequestRecord] = {}
        self._responses: list[Any] = []
        self._http_cookie_names: set[str] = set()
        self._cookie_phase: dict[tuple[str, str, str], str] = {}
        self._bytes = 0
        self._cdp: Any = None
        self._byte_limit_hit = False
        self._refused = {"downloads": 0, "dialogs": 0, "popups": 0}
        self._errors: list[str] = []
        self._status: int | None = None
        self._started = time.monotonic()
        self._inflight: set[int] = set()
        self._last_activity = self._started

    # -- set-up

    def _open(self, settle: bool) -> None:
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        s._guard(s.limits.page_seconds)
        try:
            ua = s.user_agent
            self._context = s._browser.new_context(
                accept_downloads=False, service_workers="block", user_agent=ua, java_script_enabled=True,
                locale="vi-VN", viewport={"width": 1280, "height": 900}, bypass_csp=False,
            )
            self._context.set_default_timeout(s._ms(s.limits.page_seconds))
            self._context.route("**/*", self._route)
            self._context.route_web_socket(re.compile(r".*"), self._route_ws)
            self._context.on("request", self._on_request)
            self._context.on("requestfailed", self._on_failed)
            self._context.on("requestfinished", self._on_finished)
            self._context.on("response", self._on_response)
            self._context.on("page", self._on_new_page)
            self.page = self._context.new_page()
            self.page.on("dialog", self._on_dialog)
            self.page.on("download", self._on_download)
            # Bytes as they arrive (chunked bodies included), from the DevTools network events.
            self._cdp = self._context.new_cdp_session(self.page)
            self._cdp.send("Network.enable")
            self._cdp.on("Network.dataReceived", self._on_data)
            try:
                response = self.page.goto(self.url, wait_until="load", timeout=s._ms(s.limits.page_seconds))
                self._status = response.status if response is not None else None
            except PlaywrightError as exc:
                if s.killed:
                    raise BrowserError(s._why(exc)) from None
                self._errors.append(f"navigation: {s._why(exc)}")
            if settle:
                self.settle()
        finally:
            s._unguard()

    def _close(self) -> None:
        if self._context is not None:
            with contextlib.suppress(Exception):
                self._context.close()
            self._context = None

    # -- event handlers (run inside Playwright's dispatcher)

    def _route(self, route: Any) -> None:
        request = route.request
        why = self.session.allowed(request.url)
        if why is None and self._byte_limit_hit:
            why = "page byte bound reached"
        if why is not None:
            record = self._by_request.get(id(request))
            if record is not None:
                record.blocked = why
            else:
                self._record(request, blocked=why)
            with contextlib.suppress(Exception):
                route.abort("blockedbyclient")
            return
        with contextlib.suppress(Exception):
            route.continue_()

    def _route_ws(self, ws: Any) -> None:
        url = str(ws.url)
        http_url = re.sub(r"^ws", "http", url, flags=re.I)
        why = self.session.allowed(http_url)
        if len(self._records) < _MAX_RECORDS:
            host = (urlsplit(url).hostname or "").lower().rstrip(".")
            self._records.append(RequestRecord(url=url[:2000], host=host, method="GET", resource_type="websocket",
                                               phase=self._phase, blocked=why))
        with contextlib.suppress(Exception):
            if why is None:
                ws.connect_to_server()
            else:
                ws.close(code=1008, reason="blocked by the audit")

    def _record(self, request: Any, blocked: str | None = None) -> RequestRecord | None:
        if id(request) in self._by_request:
            return self._by_request[id(request)]
        if len(self._records) >= _MAX_RECORDS:
            return None
        url = str(request.url)
        host = (urlsplit(url).hostname or "").lower().rstrip(".") if url.startswith(("http:", "https:")) else ""
        try:
            nav = bool(request.is_navigation_request())
        except Exception:
            nav = False
        rec = RequestRecord(url=url[:2000], host=host, method=str(request.method), resource_type=str(
            request.resource_type), phase=self._phase, navigation=nav, blocked=blocked)
        self._records.append(rec)
        self._by_request[id(request)] = rec
        return rec

    def _on_request(self, request: Any) -> None:
        self._inflight.add(id(request))
        self._last_activity = time.monotonic()
        self._record(request)

    def _on_finished(self, request: Any) -> None:
        self._inflight.discard(id(request))
        self._last_activity = time.monotonic()

    def _on_failed(self, request: Any) -> None:
        self._inflight.discard(id(request))
        self._last_activity = time.monotonic()
        rec = self._record(request)
        if rec is not None and rec.failure is None:
            rec.failure = str(request.failure or "failed")[:200]

    def _on_response(self, response: Any) -> None:
        rec = self._record(response.request)
        if rec is not None:
            rec.status = int(response.status)
        if len(self._responses) < 300:
            self._responses.append(response)

    def _on_data(self, params: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            self._bytes += int(params.get("dataLength") or 0)
        if self._bytes > BYTE_KILL_FACTOR * self.session.limits.page_bytes:
            # A body already in flight (a fetch() stopLoading cannot stop) ran far past the bound.
            self.session.request_kill(f"page byte bound ({self._bytes} bytes > {BYTE_KILL_FACTOR} x "
                                      f"{self.session.limits.page_bytes})")
        if self._bytes > self.session.limits.page_bytes and not self._byte_limit_hit:
            self._byte_limit_hit = True
            # Stop what is loading; new requests are aborted by the route handler from now on.
            with contextlib.suppress(Exception):
                self._cdp.send("Page.stopLoading")

    def _on_new_page(self, page: Any) -> None:
        if page is self.page or self.page is None:
            return
        self._refused["popups"] += 1
        with contextlib.suppress(Exception):
            page.close()

    def _on_dialog(self, dialog: Any) -> None:
        self._refused["dialogs"] += 1
        with contextlib.suppress(Exception):
            dialog.dismiss()

    def _on_download(self, download: Any) -> None:
        self._refused["downloads"] += 1
        with contextlib.suppress(Exception):
            download.cancel()

    # -- operations

    def phase(self, name: str) -> None:
        """Label the requests and cookies that appear from now on (e.g. ``"after-refuse"``)."""
        self._snapshot_cookie_phases()
        self._phase = name

    def settle(self, seconds: float | None = None) -> None:
        """Wait until no request has been in flight for ``QUIET_SECONDS`` (tag managers inject
        their tags from timers after ``load``), at most ``settle_seconds`` and the deadlines."""
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        wait = s._left(seconds if seconds is not None else s.limits.settle_seconds)
        if wait <= 0:
            return
        s._guard(wait + 1)
        until = time.monotonic() + wait
        self._last_activity = max(self._last_activity, time.monotonic())
        try:
            while time.monotonic() < until:
                # wait_for_timeout lets Playwright dispatch the page's events meanwhile
                self.page.wait_for_timeout(50)
                if not self._inflight and time.monotonic() - self._last_activity >= QUIET_SECONDS:
                    break
        except PlaywrightError as exc:
            if s.killed:
                raise BrowserError(s._why(exc)) from None
        finally:
            s._unguard()

    def evaluate(self, script: str, arg: Any = None, *, seconds: float | None = None) -> Any:
        """Run ``script`` (a JS expression or function) in the page; killed with the browser past
        its deadline (``seconds``, default the per-page bound)."""
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        s._guard(seconds if seconds is not None else s.limits.page_seconds)
        try:
            try:
                return self.page.evaluate(script, arg)
            except PlaywrightError as exc:
                # A late navigation (a redirect by script, a reload) replaced the page: once more on the new one.
                if s.killed or "context was destroyed" not in str(exc):
                    raise
                self.page.wait_for_load_state("load", timeout=s._ms(seconds or s.limits.page_seconds))
                return self.page.evaluate(script, arg)
        except PlaywrightError as exc:
            raise BrowserError(f"script failed: {s._why(exc)}") from None
        finally:
            s._unguard()

    def add_script(self, source: str, *, seconds: float | None = None) -> None:
        """Inject a script (e.g. axe-core's source) into the page."""
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        s._guard(seconds if seconds is not None else s.limits.page_seconds)
        try:
            self.page.add_script_tag(content=source)
        except PlaywrightError as exc:
            raise BrowserError(f"cannot inject script: {s._why(exc)}") from None
        finally:
            s._unguard()

    def click(self, target: Any, *, seconds: float = 5.0) -> bool:
        """Click a selector string or a Playwright locator; False when it could not be clicked."""
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        s._guard(seconds)
        try:
            loc = self.page.locator(target).first if isinstance(target, str) else target
            loc.click(timeout=s._ms(seconds), no_wait_after=False)
            return True
        except PlaywrightError as exc:
            if s.killed:
                raise BrowserError(s._why(exc)) from None
            self._errors.append(f"click: {s._why(exc)}")
            return False
        finally:
            s._unguard()

    def _snapshot_cookie_phases(self) -> None:
        with contextlib.suppress(Exception):
            for c in self._context.cookies():
                key = (str(c.get("name")), str(c.get("domain")), str(c.get("path")))
                self._cookie_phase.setdefault(key, self._phase)

    def _http_cookies(self) -> set[str]:
        names: set[str] = set()
        for response in self._responses:
            with contextlib.suppress(Exception):
                for value in response.header_values("set-cookie"):
                    for line in str(value).split("\n"):
                        name = line.split(";", 1)[0].split("=", 1)[0].strip()
                        if name:
                            names.add(name)
        return names

    def snapshot(self) -> PageSnapshot:
        """What the page is now: rendered DOM, requests so far, cookies, storage keys."""
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        s._guard(s.limits.page_seconds)
        try:
            html, title, final_url = "", "", self.url
            try:
                html = str(self.page.content())
                title = str(self.page.title())
                final_url = str(self.page.url)
            except PlaywrightError as exc:
                if s.killed:
                    raise BrowserError(s._why(exc)) from None
                self._errors.append(f"content: {s._why(exc)}")
            local: list[str] = []
            session: list[str] = []
            with contextlib.suppress(PlaywrightError):
                keys = self.page.evaluate(
                    "n => { const k = s => { try { return Object.keys(s).slice(0, n) } catch (e) { return [] } };"
                    " return [k(window.localStorage), k(window.sessionStorage)] }", _MAX_STORAGE_KEYS)
                local = [str(k)[:200] for k in keys[0]]
                session = [str(k)[:200] for k in keys[1]]
            self._snapshot_cookie_phases()
            http_names = self._http_cookies()
            cookies = []
            with contextlib.suppress(PlaywrightError):
                for c in self._context.cookies()[:_MAX_COOKIES]:
                    name = str(c.get("name"))
                    key = (name, str(c.get("domain")), str(c.get("path")))
                    cookies.append(CookieRecord(
                        name=name[:200], domain=str(c.get("domain"))[:200], path=str(c.get("path"))[:200],
                        http_only=bool(c.get("httpOnly")), secure=bool(c.get("secure")),
                        same_site=str(c.get("sameSite") or ""), expires=float(c.get("expires") or -1),
                        source="http" if (name in http_names or c.get("httpOnly")) else "script",
                        phase=self._cookie_phase.get(key, self._phase)))
            if s._kill_request or s.killed:
                s.kill(s._kill_request or s.killed or "killed")
                raise BrowserError(f"browser killed: {s.killed}")
            limit = s.limits.page_bytes
            return PageSnapshot(
                url=self.url, final_url=final_url, status=self._status, title=title, html=html[:limit],
                html_truncated=len(html) > limit, requests=list(self._records), cookies=cookies,
                local_storage_keys=local, session_storage_keys=session, bytes_loaded=self._bytes,
                byte_limit_hit=self._byte_limit_hit, refused=dict(self._refused), errors=list(self._errors),
                seconds=time.monotonic() - self._started,
            )
        finally:
            s._unguard()
