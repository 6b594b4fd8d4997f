"""A bounded, pinned headless Chromium for checks that must see a page as a browser does.

Why: many sites build their forms, consent banners, tracker tags and cookies with JavaScript,
so reading the HTML the server sends misses them. This module drives Debian's ``chromium``
(never a downloaded build) through Playwright's CDP client, under the same rules as every
other network client of the scanner:

- **Pinned names.** Chromium's ``--host-resolver-rules`` map the audited host and every
  ``--resolve`` override to their pinned addresses; with ``allow_other_hosts=False`` (the
  default, and always under ``--no-dns`` / ``AUDITOR_NO_DNS``) every other name is
  ``~NOTFOUND`` and a request or WebSocket to another name or to an unmapped IP literal is
  aborted before it leaves the browser (WebRTC gets no non-proxied UDP). Background networking (updates, safe browsing, sync, metrics, DNS
  prefetch, translate...) is switched off.
- **Scoped trust.** No blanket "ignore certificate errors": when a ``ca_file`` is given, the
  audited host's certificate is fetched at its pinned address and validated against that file
  *for that host name* in Python; only then is the SPKI hash of that leaf key passed to
  ``--ignore-certificate-errors-spki-list``, so Chromium accepts exactly that key (the audited
  host's) and still validates every other host against its own store.
- **Nothing of the scanner reachable.** Each session has a fresh temporary profile that is
  deleted afterwards; only ``http(s)``, ``data:`` and ``blob:`` requests pass; downloads are
  refused, dialogs dismissed, service workers blocked, popups closed. When the scanner runs as
  root, Chromium runs as ``nobody`` (profile owned by it) *with* its own sandbox (user
  namespaces); only where that is impossible (no ``nobody`` user) does it fall back to
  ``--no-sandbox``, which Chromium demands for root, and the session records
  ``sandbox: false`` so a report can say so. The DevTools port listens on 127.0.0.1 only and
  page requests to it are aborted.
- **Hard bounds, guaranteed kill.** Chromium starts in its own session/process group with
  ``PR_SET_PDEATHSIG=SIGKILL`` (it dies with the scanner thread that launched it: timeout,
  Ctrl-C, SIGTERM, SIGKILL or crash), a watchdog thread kills the whole group when the session
  deadline or an operation's deadline (+ grace) passes, when the group's resident memory
  exceeds ``memory_mb`` or its process count ``max_processes``; ``close()`` and an ``atexit``
  hook kill the group too, and ``close()`` waits until no process of the group is left.
  A global semaphore bounds how many browsers run at once (``set_max_browsers``).

API (stable; later versions add, never break):

- :func:`find_chromium` -> path, or :class:`BrowserUnavailable` saying how to install it.
- :class:`BrowserLimits` (per-page seconds, session seconds, bytes, memory, processes, settle and
  grace seconds).
- :class:`BrowserSession` (a context manager): ``BrowserSession(host_map, deadline=...,
  limits=..., allow_other_hosts=..., ca_file=..., pin_host=..., executable=...)``;
  :meth:`BrowserSession.for_target` builds one for a scanner ``Target`` and ``CheckContext``.

  * ``session.render(url) -> PageSnapshot``: open ``url`` in a fresh profile, wait for it to
    settle, return the rendered DOM, requests, cookies and storage keys.
  * ``with session.view(url) as view:`` the same fresh-profile page kept open:
    ``view.snapshot()``, ``view.evaluate(js, arg)``, ``view.add_script(source)`` (e.g. axe-core),
    ``view.phase(name)`` (label the requests that follow, e.g. ``"after-refuse"``),
    ``view.click(selector_or_locator)``, ``view.settle()``, ``view.page`` (the raw Playwright
    page; not part of the stable API).
  * ``session.evidence()``: how the browser was run (version, sandbox, user, rules, killed?).
  * ``session.kill(reason)`` / ``session.request_kill(reason)`` (from an event handler),
    ``session.close()``, ``session.pgid``, ``session.killed``.
- :func:`set_max_browsers` (default 2 per process). Errors: :class:`BrowserError` (a bound hit,
  the browser died, a page failed) and its subclass :class:`BrowserUnavailable`.

  Example (axe-core): ``with BrowserSession.for_target(target, ctx) as s, s.view(url) as v:
  v.add_script(axe_source); result = v.evaluate("() => axe.run()", seconds=30)``.
- :class:`PageSnapshot` / :class:`RequestRecord` / :class:`CookieRecord` (plain data with
  ``to_dict()``).
"""

from __future__ import annotations

from checks.web.browser.page import PageView
from checks.web.browser.process import (
    find_chromium,
    host_resolver_rules,
    set_max_browsers,
    spki_pin,
)
from checks.web.browser.records import (
    INSTALL_HINT,
    BrowserError,
    BrowserLimits,
    BrowserUnavailable,
    CookieRecord,
    PageSnapshot,
    RequestRecord,
)
from checks.web.browser.session import BrowserSession, default_user_agent, run_in_browser

__all__ = [
    "INSTALL_HINT", "BrowserError", "BrowserLimits", "BrowserSession", "BrowserUnavailable", "CookieRecord",
    "PageSnapshot", "PageView", "RequestRecord", "default_user_agent", "find_chromium", "host_resolver_rules",
    "run_in_browser", "set_max_browsers", "spki_pin",
]
