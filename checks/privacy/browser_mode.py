"""The privacy check's browser mode: the first crawled pages as headless Chromium renders them.

Why: on sites that build pages with JavaScript the server's HTML holds no form, no tracker
loaded by a tag manager and no cookie set by ``document.cookie``. This module renders the
first ``privacy.browser_pages`` crawled pages in :mod:`checks.web.browser` (pinned, bounded,
fresh profile per visit) and hands back what the static analysis then judges with the same
code: rendered pages (their forms go through the same classifier), every request with its
phase (``load`` = before any consent), cookies (HTTP or script) and storage keys.

Consent: on the landing page it looks for a banner (a dialog or cookie/consent box) with an
accept control and a refuse control, by wording that is data (``consent.banner`` in
``privacy.yaml``), then makes three visits in fresh profiles: no interaction (the plain render),
"refuse" and "accept". What loads after refusing is judged by :func:`consent_findings`'s
caller; whether refusing is as easy as accepting (a control of the same kind and at least half
the size) too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.check import CheckContext
from auditor.datafiles import load_yaml
from auditor.targets import Target
from checks.privacy.personal_data import KeywordSet, normalize
from checks.web.browser import BrowserError, BrowserLimits, BrowserSession, PageSnapshot, PageView
from checks.web.crawl import Crawl, CrawledPage, read_page

PARAMETERS: dict[str, Any] = {
    "privacy.browser": False,               # the policy switch: browser mode by default
    "privacy.browser_pages": 5,             # first N crawled pages rendered
    "privacy.browser_page_seconds": 15.0,   # hard bound per page (the browser is killed past it + 5 s)
    "privacy.browser_total_seconds": 90.0,  # hard bound for all visits of one site
    "privacy.browser_page_bytes": 10_000_000,
}

_CONTROLS_JS = """
() => {
  const out = [];
  const boxSel = '[role=dialog],[role=alertdialog],[aria-modal=true],[id*=cookie i],[class*=cookie i],' +
                 '[id*=consent i],[class*=consent i],[id*=banner i],[class*=banner i],[id*=gdpr i],[class*=gdpr i]';
  const ctlSel = 'button, a, [role=button], input[type=button], input[type=submit]';
  // Controls in the document and in open shadow roots (consent managers often render in one).
  const roots = [document];
  for (let k = 0; k < roots.length && k < 50; k++) {
    for (const el of roots[k].querySelectorAll('*')) { if (el.shadowRoot) roots.push(el.shadowRoot); }
  }
  // The banner box: a consent-looking ancestor, else a fixed or sticky one (a bar over the page).
  const boxOf = (el) => {
    let node = el;
    for (let depth = 0; node && depth < 12; depth++) {
      if (node.matches && node.matches(boxSel)) return node;
      const host = node.parentNode && node.parentNode.host;
      node = node.parentElement || host || null;
    }
    node = el;
    for (let depth = 0; node && depth < 12; depth++) {
      const pos = node.nodeType === 1 ? getComputedStyle(node).position : '';
      if (pos === 'fixed' || pos === 'sticky') return node;
      node = node.parentElement || (node.parentNode && node.parentNode.host) || null;
    }
    return null;
  };
  let i = 0;
  for (const root of roots) {
    for (const el of root.querySelectorAll(ctlSel)) {
      const r = el.getBoundingClientRect();
      const st = getComputedStyle(el);
      if (r.width === 0 || r.height === 0 || st.visibility === 'hidden' || st.display === 'none') continue;
      const text = (el.innerText || el.value || el.getAttribute('aria-label') || '').trim().slice(0, 200);
      if (!text) continue;
      const box = boxOf(el);
      el.setAttribute('data-auditor-cid', String(i));
      out.push({cid: i, tag: el.tagName.toLowerCase(), text: text, width: r.width, height: r.height,
                font: parseFloat(st.fontSize) || 0, in_box: !!box,
                box_text: box ? (box.innerText || '').slice(0, 1500) : ''});
      i++;
      if (i >= 400) return out;
    }
  }
  return out;
}
"""


@dataclass(frozen=True)
class BannerWords:
    accept: KeywordSet
    refuse: KeywordSet
    banner: KeywordSet


def load_banner_words(files: list[Path]) -> BannerWords:
    """``consent.banner`` of the privacy vocabulary layers (a later layer's list replaces)."""
    merged: dict[str, list[str]] = {}
    for path in files:
        data = load_yaml(path)
        banner = ((data or {}).get("consent") or {}).get("banner") if isinstance(data, dict) else None
        if isinstance(banner, dict):
            for key in ("accept", "refuse", "banner"):
                words = banner.get(key)
                if isinstance(words, dict):
                    words = words.get("keywords")
                if isinstance(words, list):
                    merged[key] = [str(w) for w in words]
    return BannerWords(KeywordSet(merged.get("accept", [])), KeywordSet(merged.get("refuse", [])),
                       KeywordSet(merged.get("banner", [])))


@dataclass
class Banner:
    accept: dict[str, Any] | None
    refuse: dict[str, Any] | None
    text: str

    def equal_refusal(self) -> tuple[bool, str]:
        """Whether refusing is offered as plainly as accepting, and why not."""
        if self.accept is None:
            return True, ""
        if self.refuse is None:
            return False, f"the banner offers {self.accept['text']!r} but no control to refuse"
        a, r = self.accept, self.refuse
        reasons = []
        if r["tag"] == "a" and a["tag"] != "a":
            reasons.append(f"refusing is a link ({r['text']!r}) while accepting is a button ({a['text']!r})")
        area_a, area_r = a["width"] * a["height"], r["width"] * r["height"]
        if area_a and area_r < 0.5 * area_a:
            reasons.append(f"the refuse control is {area_r / area_a:.0%} of the accept control's size")
        if a["font"] and r["font"] < 0.8 * a["font"]:
            reasons.append(f"its text is {r['font']:g}px against {a['font']:g}px")
        return (not reasons), "; ".join(reasons)

    def to_dict(self) -> dict[str, Any]:
        keep = ("tag", "text", "width", "height", "font")
        return {"accept": {k: self.accept[k] for k in keep} if self.accept else None,
                "refuse": {k: self.refuse[k] for k in keep} if self.refuse else None,
                "text": self.text[:300]}


def find_banner(view: PageView, words: BannerWords) -> Banner | None:
    """The consent banner's accept and refuse controls on the page, or None when there is none."""
    try:
        controls = view.evaluate(_CONTROLS_JS, seconds=5.0) or []
    except BrowserError:
        return None
    accept = refuse = None
    text = ""
    for c in controls:
        if not isinstance(c, dict):
            continue
        label = normalize(str(c.get("text") or ""))
        box = normalize(str(c.get("box_text") or ""))
        in_banner = bool(c.get("in_box")) and (words.banner.find(box) is not None)
        if not in_banner:
            continue
        if refuse is None and words.refuse.find(label):
            refuse, text = c, text or str(c.get("box_text") or "")
        elif accept is None and words.accept.find(label) and not words.refuse.find(label):
            accept, text = c, text or str(c.get("box_text") or "")
    if accept is None and refuse is None:
        return None
    return Banner(accept, refuse, " ".join(text.split()))


@dataclass
class ConsentVisit:
    choice: str  # "refuse" or "accept"
    clicked: bool
    snapshot: PageSnapshot | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        snap = self.snapshot
        return {"choice": self.choice, "clicked": self.clicked, "error": self.error,
                **({"requests": [r.to_dict() for r in snap.requests[:200]],
                    "cookies": [c.to_dict() for c in snap.cookies[:100]],
                    "local_storage_keys": snap.local_storage_keys} if snap else {})}


@dataclass
class BrowserRun:
    """What the browser saw; ``error`` set when it could not run at all."""

    pages: list[CrawledPage] = field(default_factory=list)
    snapshots: list[PageSnapshot] = field(default_factory=list)
    banner: Banner | None = None
    visits: list[ConsentVisit] = field(default_factory=list)
    session: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    incomplete: str | None = None

    def evidence(self) -> dict[str, Any]:
        return {
            "session": self.session, "error": self.error, "incomplete": self.incomplete,
            "pages": [s.to_dict() for s in self.snapshots],
            "banner": self.banner.to_dict() if self.banner else None,
            "consent_visits": [v.to_dict() for v in self.visits],
        }


def enabled(ctx: CheckContext) -> bool:
    opt = ctx.options.get("browser")
    if opt is not None:
        return bool(opt)
    return bool(ctx.param("privacy.browser", False))


def _rendered_page(snap: PageSnapshot) -> CrawledPage:
    page = CrawledPage(url=snap.url, final_url=snap.final_url or snap.url, depth=0, status=snap.status or 0,
                       content_type="text/html", encoding="utf-8", truncated=snap.html_truncated,
                       size=len(snap.html))
    read_page(page, snap.html)
    return page


def _number(ctx: CheckContext, name: str) -> float:
    value = ctx.param(name, PARAMETERS[name])
    try:
        return float(value)
    except (TypeError, ValueError):
        from auditor.errors import AuditorError

        raise AuditorError(f"policy parameter {name} must be a number, got {value!r}") from None


def collect(target: Target, ctx: CheckContext, crawl: Crawl, words: BannerWords) -> BrowserRun:
    """Render the first pages, find the banner, make the refuse and accept visits."""
    run = BrowserRun()
    page_seconds = _number(ctx, "privacy.browser_page_seconds")
    total = min(_number(ctx, "privacy.browser_total_seconds"), max(1.0, ctx.remaining() - 5.0))
    limits = BrowserLimits(page_seconds=page_seconds, total_seconds=total,
                           page_bytes=int(_number(ctx, "privacy.browser_page_bytes")))
    urls = [p.final_url for p in crawl.html_pages if p.final_url.startswith(("https://", "http://"))]
    urls = urls[: max(1, int(_number(ctx, "privacy.browser_pages")))]
    if not urls:
        run.error = "no crawled page to render"
        return run
    try:
        session = BrowserSession.for_target(target, ctx, limits=limits)
    except BrowserError as exc:  # BrowserUnavailable included: says how to install Chromium
        run.error = str(exc)
        return run
    try:
        for i, url in enumerate(urls):
            if session._left() < min(3.0, page_seconds):
                run.incomplete = f"browser time bound spent after {i} of {len(urls)} pages"
                break
            with session.view(url) as view:
                snap = view.snapshot()
                if i == 0:
                    run.banner = find_banner(view, words)
            run.snapshots.append(snap)
            run.pages.append(_rendered_page(snap))
        if run.banner is not None and not run.incomplete:
            for choice in ("refuse", "accept"):
                control = run.banner.refuse if choice == "refuse" else run.banner.accept
                if control is None:
                    continue
                run.visits.append(_consent_visit(session, urls[0], choice, words))
    except BrowserError as exc:
        if not run.snapshots:
            run.error = str(exc)
        else:
            run.incomplete = str(exc)
    finally:
        session.close()
        run.session = session.evidence()
    if not run.error and run.snapshots and not any(s.status for s in run.snapshots):
        # Every navigation failed (a certificate the browser refuses, a reset...): nothing was tested.
        first = next((e for s in run.snapshots for e in s.errors), "no response")
        run.error = f"no page could be rendered: {first}"
    return run


def _consent_visit(session: BrowserSession, url: str, choice: str, words: BannerWords) -> ConsentVisit:
    """A fresh profile: load, find the banner again, click ``choice``, let it settle, snapshot."""
    with session.view(url) as view:
        banner = find_banner(view, words)
        control = None if banner is None else (banner.refuse if choice == "refuse" else banner.accept)
        if control is None:
            return ConsentVisit(choice, False, view.snapshot(), "banner not found again")
        view.phase(f"after-{choice}")
        clicked = view.click(f'[data-auditor-cid="{int(control["cid"])}"]')
        view.settle()
        return ConsentVisit(choice, clicked, view.snapshot(), None if clicked else "could not click")


__all__ = ["PARAMETERS", "Banner", "BannerWords", "BrowserRun", "ConsentVisit", "collect", "enabled",
           "find_banner", "load_banner_words"]
