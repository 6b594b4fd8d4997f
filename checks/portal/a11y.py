"""Accessibility of a portal: axe-core (WCAG 2.0 A/AA rules) run in headless Chromium.

Circular 22/2023/TT-BTTTT asks at least WCAG 2.0 of state portals [U]. axe-core is the npm
package ``axe-core`` (version 4), installed by ``scripts/install.sh`` under the tool's data
directory; it is found at run time from ``$AUDITOR_AXE_JS`` (the path of ``axe.min.js``), else
``$XDG_DATA_HOME/auditor/node_modules/axe-core/axe.min.js`` (``~/.local/share/...``). When it
is missing the accessibility row is "could not judge" with the command that installs it.

The browser is the shared launcher :mod:`checks.web.browser` (pinned host resolution, scoped CA
trust, guaranteed kill); this module never starts Chromium itself. The home page and a sample of
the pages the crawl read (``sample_pages`` in the checklist file) are rendered, axe-core is
injected as a script and run with only the checklist's tags (``wcag2a``, ``wcag2aa``); each
violation is kept with its rule, impact, help text, tags and the CSS selectors of at most a few
elements (the evidence), every string cut.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from auditor.check import CheckContext
from auditor.targets import Target
from checks.portal.analyse import Observed
from checks.portal.rules import Decree
from checks.web.crawl import canonical_url, url_host
from checks.web.net import one_line

AXE_ENV = "AUDITOR_AXE_JS"
INSTALL_HINT = ("install it with scripts/install.sh, or: npm install --prefix ~/.local/share/auditor axe-core@4 "
                f"(or point ${AXE_ENV} at axe.min.js)")
MAX_TARGETS = 5
MAX_SCRIPT_BYTES = 5_000_000


def axe_path() -> Path | None:
    """Where axe.min.js is (see the module docstring), or None."""
    env = os.environ.get(AXE_ENV)
    if env:
        path = Path(env).expanduser()
        return path if path.is_file() else None
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    path = data / "auditor" / "node_modules" / "axe-core" / "axe.min.js"
    return path if path.is_file() else None


class Browser:
    """The shared Chromium (:mod:`checks.web.browser`) for one portal check, launched on first use.

    ``ok`` is False (with ``reason``) when Chromium or the launcher is not installed; a launch or
    page failure raises :class:`~auditor.errors.AuditorError` from the call that needed it.
    Not thread-safe (the launcher's sessions are not): use it from the check's thread.
    """

    def __init__(self, target: Target | None, ctx: CheckContext | None, *, ok: bool = True, reason: str = "") -> None:
        self.target = target
        self.ctx = ctx
        self.ok = ok and target is not None and ctx is not None
        self.reason = reason
        self._session: Any = None
        self.used = False
        self.last_evidence: dict[str, Any] | None = None

    def _open(self) -> Any:
        if self._session is None:
            from checks.web.browser import BrowserLimits, BrowserSession

            assert self.target is not None and self.ctx is not None
            page = max(5.0, min(20.0, 3 * self.ctx.timeout))
            self.used = True
            self._session = BrowserSession.for_target(
                self.target, self.ctx, limits=BrowserLimits(page_seconds=page, total_seconds=max(10.0, min(
                    120.0, self.ctx.remaining() - 2.0)), settle_seconds=1.0))
        return self._session

    def render_html(self, url: str) -> tuple[str, str]:
        """The DOM of ``url`` after its scripts ran, and the URL it ended on."""
        snap = self._open().render(url)
        return snap.html, snap.final_url

    def axe(self, url: str, source: str, tags: list[str]) -> list[dict[str, Any]]:
        """axe-core's violations on ``url`` for the rules tagged ``tags`` (bounded, JSON-able)."""
        with self._open().view(url) as view:
            view.add_script(source)
            raw = view.evaluate(AXE_RUN, tags)
        return clean_violations(raw)

    def evidence(self) -> dict[str, Any] | None:
        return self._session.evidence() if self._session is not None else None

    def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            try:
                session.close()
            finally:
                self.last_evidence = session.evidence()


# Runs in the page: only the given tags' rules, only violations, at most a few nodes each.
AXE_RUN = """async (tags) => {
  const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return r.violations.slice(0, 100).map(v => ({id: v.id, impact: v.impact, help: v.help, tags: v.tags,
    count: v.nodes.length, nodes: v.nodes.slice(0, 5).map(n => ({target: n.target}))}));
}"""


def browser_or_reason(target: Target | None = None, ctx: CheckContext | None = None) -> Browser:
    """The lazily launched browser, or one that says why there is none."""
    try:
        from checks.web.browser import BrowserUnavailable, find_chromium
    except ImportError:
        return Browser(None, None, ok=False, reason="the shared browser launcher (checks.web.browser) is not installed")
    try:
        find_chromium(ctx.options.get("chromium") if ctx is not None else None)
    except BrowserUnavailable as exc:
        return Browser(None, None, ok=False, reason=str(exc))
    return Browser(target, ctx)


def _sample(obs: Observed, count: int) -> list[str]:
    urls = [obs.home_url]
    for page in obs.pages:
        if len(urls) >= count:
            break
        if page.ok and page.via in ("crawl", "fetch") and url_host(page.url) == obs.host and \
                canonical_url(page.url) not in {canonical_url(u) for u in urls}:
            urls.append(page.url)
    return urls


def summarise(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Violations of every page merged per axe rule (count of elements, pages, first targets)."""
    rules: dict[str, dict[str, Any]] = {}
    for page in pages:
        for v in page.get("violations") or []:
            rid = str(v.get("id"))
            entry = rules.setdefault(rid, {"id": rid, "impact": v.get("impact"), "help": v.get("help", ""),
                                           "tags": v.get("tags", []), "count": 0, "targets": [],
                                           "url": page["url"], "pages": []})
            entry["count"] += int(v.get("count", 0))
            entry["pages"].append(page["url"])
            for t in v.get("targets") or []:
                if len(entry["targets"]) < MAX_TARGETS:
                    entry["targets"].append(t)
    order = {"critical": 0, "serious": 1, "moderate": 2, "minor": 3}
    return sorted(rules.values(), key=lambda r: (order.get(str(r["impact"]), 9), r["id"]))


def clean_violations(raw: Any) -> list[dict[str, Any]]:
    """axe's ``violations`` array reduced to bounded, JSON-able facts (hostile page text cut)."""
    out: list[dict[str, Any]] = []
    for v in (raw if isinstance(raw, list) else [])[:100]:
        if not isinstance(v, dict):
            continue
        nodes = v.get("nodes") if isinstance(v.get("nodes"), list) else []
        targets = []
        for node in nodes[:MAX_TARGETS]:
            target = node.get("target") if isinstance(node, dict) else None
            if isinstance(target, list):
                targets.append(one_line(" ".join(str(t) for t in target), 200))
        out.append({"id": one_line(str(v.get("id", "")), 80), "impact": one_line(str(v.get("impact") or ""), 20),
                    "help": one_line(str(v.get("help", "")), 200),
                    "tags": [one_line(str(t), 40) for t in (v.get("tags") or [])[:12]],
                    "count": int(v.get("count") or len(nodes)), "targets": targets})
    return out


def audit(target: Target, ctx: CheckContext, obs: Observed, decree: Decree, browser: Browser) -> dict[str, Any]:
    """axe-core results for the sampled pages, or ``{"error": why}``."""
    spec = decree.accessibility
    tags = [str(t) for t in spec.get("tags") or ["wcag2a", "wcag2aa"]]
    script = axe_path()
    if script is None:
        return {"error": f"axe-core not found: {INSTALL_HINT}", "tags": tags}
    if not browser.ok:
        return {"error": f"no browser for axe-core: {browser.reason}", "tags": tags}
    if obs.home_problem and not obs.pages:
        return {"error": obs.home_problem, "tags": tags}
    urls = _sample(obs, int(spec.get("sample_pages", 3)))
    return run_axe(browser, script, urls, tags)


def run_axe(browser: Browser, script: Path, urls: list[str], tags: list[str]) -> dict[str, Any]:
    """axe-core on each URL; a page that fails is listed with its error (and judged unjudged)."""
    try:
        source = script.read_text(encoding="utf-8")[:MAX_SCRIPT_BYTES]
    except OSError as exc:
        return {"error": f"cannot read axe-core ({script}): {exc.strerror}", "tags": tags}
    version = ""
    head = source[:300]
    if "axe v" in head:
        version = one_line(head.split("axe v", 1)[1].split()[0], 20)
    pages: list[dict[str, Any]] = []
    errors: list[str] = []
    for url in urls:
        try:
            pages.append({"url": url, "violations": browser.axe(url, source, tags)})
        except Exception as exc:  # a browser error on one page: that page is not judged
            errors.append(f"{url}: {one_line(str(exc), 200)}")
    out: dict[str, Any] = {"engine": f"axe-core {version}".strip(), "tags": tags, "pages": pages,
                           "rules": summarise(pages)}
    if errors:
        out["error"] = "axe-core could not run on " + "; ".join(errors[:3])
    return out
