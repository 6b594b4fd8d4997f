"""privacy: how a site collects personal data, judged from a bounded crawl (beautifulsoup4).

Reads every form of every crawled page (:mod:`checks.privacy.personal_data`), the links to the
personal-data protection policy and that policy's content, and what loads and what cookies
arrive on a first visit, before any consent (:mod:`checks.web.crawl`: the crawler never
consents). Vocabularies and the tracker list are data (``policies/default/privacy.yaml`` and
``trackers.yaml``); a user extends them with files of the same layout in their policy
directory or listed in the ``privacy.vocabulary_files`` / ``privacy.tracker_files`` policy
parameters.

Browser mode (:mod:`checks.privacy.browser_mode`, ``--browser`` or the ``privacy.browser`` policy
parameter) adds what the first pages do when they run: their rendered forms join the same form
analysis, their runtime requests and cookies the tracker and cookie findings, and a consent
banner is refused and accepted in fresh profiles (``privacy.consent.refusal_ignored``,
``privacy.consent.no_refusal``).

Findings follow ``findings.md``: a form finding is raised once per distinct form (the same
footer form on every page is one form) with its page, action, method and fields as details;
site-wide findings (trackers, cookies, the third-party inventory) are raised once per site.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bs4 import Tag

from auditor.catalogue import catalogue_of
from auditor.check import Check, CheckContext, CheckOutcome, Finding
from auditor.datafiles import load_yaml
from auditor.errors import AuditorError
from auditor.targets import Target
from checks.privacy import browser_mode
from checks.privacy.personal_data import FormInfo, Vocabulary, load_vocabulary, normalize, read_forms
from checks.web.browser import PageSnapshot
from checks.web.crawl import Crawl, CrawledPage, canonical_url, shared_crawl, url_host

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PHONE_RE = re.compile(r"(?<![\w.])\+?\d[\d .()-]{7,16}\d(?![\w])")
_MAX_POLICY_PAGES = 3
_MAX_LIST = 20


CATALOGUE = catalogue_of("checks.privacy")  # findings.yaml beside this file


# --------------------------------------------------------------------------------------------
# tracker list (data)


@dataclass(frozen=True)
class Tracker:
    name: str
    owner: str
    country: str
    category: str
    hosts: tuple[str, ...]
    cookies: tuple[str, ...]

    def matches_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == h or host.endswith("." + h) for h in self.hosts)

    def matches_cookie(self, name: str) -> bool:
        for pattern in self.cookies:
            if pattern.endswith("*"):
                if name.startswith(pattern[:-1]):
                    return True
            elif name == pattern:
                return True
        return False

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "owner": self.owner, "country": self.country, "category": self.category}


@dataclass(frozen=True)
class TrackerList:
    version: str
    trackers: tuple[Tracker, ...]

    def for_host(self, host: str) -> Tracker | None:
        for t in self.trackers:
            if t.matches_host(host):
                return t
        return None

    def for_cookie(self, name: str) -> Tracker | None:
        for t in self.trackers:
            if t.matches_cookie(name):
                return t
        return None


_tracker_cache: dict[tuple[str, ...], TrackerList] = {}
_tracker_lock = threading.Lock()


def load_trackers(files: Sequence[str | Path]) -> TrackerList:
    """The tracker lists ``files`` (the policy's layers first), a later same-named entry replacing; cached."""
    key = tuple(str(p) for p in files)
    with _tracker_lock:
        if key in _tracker_cache:
            return _tracker_cache[key]
    by_name: dict[str, Tracker] = {}
    version = ""
    for path in [Path(p) for p in files]:
        data = load_yaml(path)
        if not isinstance(data, dict) or not isinstance(data.get("trackers"), list):
            raise AuditorError(f"{path}: expected a mapping with a 'trackers' list")
        version = version or str(data.get("version", ""))
        for i, item in enumerate(data["trackers"], start=1):
            if not isinstance(item, dict) or not item.get("name") or not isinstance(item.get("hosts"), list):
                raise AuditorError(f"{path}: tracker #{i} needs a 'name' and a 'hosts' list")
            tracker = Tracker(
                name=str(item["name"]), owner=str(item.get("owner") or ""), country=str(item.get("country") or ""),
                category=str(item.get("category") or ""),
                hosts=tuple(str(h).lower().strip().rstrip(".") for h in item["hosts"] if str(h).strip()),
                cookies=tuple(str(c).strip() for c in item.get("cookies") or [] if str(c).strip()),
            )
            by_name[tracker.name] = tracker
    result = TrackerList(version, tuple(by_name.values()))
    with _tracker_lock:
        _tracker_cache[key] = result
    return result


def _layers(ctx: CheckContext, file_name: str, param: str) -> list[Path]:
    """The policy's layers of ``file_name`` (bundled, then the policy's own), then the parameter's list."""
    out = ctx.policy_files.layers(file_name)
    listed = ctx.param(param) or []
    if isinstance(listed, str):
        listed = [listed]
    if not isinstance(listed, list):
        raise AuditorError(f"policy parameter {param} must be a list of file paths")
    for item in listed:
        path = Path(str(item)).expanduser()
        if not path.is_file():
            raise AuditorError(f"policy parameter {param}: file not found: {path}")
        out.append(path)
    return out


# --------------------------------------------------------------------------------------------
# helpers


def _field_names(form: FormInfo, only: str = "personal,sensitive,credential", limit: int = 6) -> str:
    cats = only.split(",")
    names = [f.text.label or f.text.title or f.text.placeholder or f.text.context or f.text.name or f.kind
             for f in form.fields if f.category in cats]
    shown = ", ".join(" ".join(n.split())[:40] for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _where(form: FormInfo) -> str:
    return f"form #{form.index} ({form.method.upper()} {form.action_url or '?'})"


@dataclass
class _FormSeen:
    form: FormInfo
    page: CrawledPage
    pages: list[str]


@dataclass
class _PolicyLink:
    url: str
    text: str
    found_on: str


def policy_links(page: CrawledPage, vocab: Vocabulary) -> list[_PolicyLink]:
    """Links on ``page`` whose text, title or address names the personal-data policy."""
    if page.soup is None:
        return []
    out: list[_PolicyLink] = []
    seen: set[str] = set()
    try:
        anchors = page.soup.find_all("a", href=True, limit=5000)
    except (RecursionError, ValueError):
        return []
    from checks.web.crawl import absolute

    for a in anchors:
        if not isinstance(a, Tag):
            continue
        text = " ".join(a.get_text(" ").split())[:200]
        title = str(a.get("title") or "")[:200]
        url = absolute(page.base_url or page.final_url, str(a.get("href")))
        if not url:
            continue
        path = urlsplit(url).path + " " + urlsplit(url).query
        if (vocab.policy_link.find(normalize(f"{text} {title}"))
                or vocab.policy_href.find(normalize(path))):
            key = canonical_url(url)
            if key not in seen:
                seen.add(key)
                out.append(_PolicyLink(url, text, page.final_url))
    return out


def policy_gaps(page: CrawledPage, vocab: Vocabulary) -> list[dict[str, str]]:
    """Required notice items the policy page does not cover (empty when complete)."""
    raw = page.text()
    text = normalize(raw)
    missing: list[dict[str, str]] = []
    for item in vocab.notice_items:
        if item.name == "contact":
            ok = bool(_EMAIL_RE.search(raw) or _PHONE_RE.search(raw)) or _has_contact_link(page, vocab)
        else:
            ok = item.keywords.find(text) is not None
        if not ok:
            missing.append({"item": item.name, "label": item.label, "article": item.article})
    return missing


def _has_contact_link(page: CrawledPage, vocab: Vocabulary) -> bool:
    if page.soup is None:
        return False
    for a in page.soup.find_all("a", href=True, limit=5000):
        if not isinstance(a, Tag):
            continue
        href = str(a.get("href") or "").strip().lower()
        if href.startswith(("mailto:", "tel:")) or vocab.contact_link.find(normalize(a.get_text(" "))):
            return True
    return False


_NAVIGATION_RE = re.compile(r"/(?:share|sharer|intent|dialog)(?:[/.?]|$)|[?&](?:u|url)=", re.I)


def _tracker_loader(url: str, trackers: TrackerList) -> bool:
    """A URL named in inline code that loads a tracker (not a share link built in code)."""
    return trackers.for_host(url_host(url)) is not None and not _NAVIGATION_RE.search(url)


def _cookie_name(header: str) -> tuple[str, bool]:
    """(name, deleted?) of one Set-Cookie value."""
    first, _, attrs = header.partition(";")
    name = first.split("=", 1)[0].strip()
    low = attrs.lower().replace(" ", "")
    deleted = "max-age=0" in low or "max-age=-" in low
    return name, deleted


# --------------------------------------------------------------------------------------------
# the check


class PrivacyCheck(Check):
    id = "privacy"
    title = ("Personal-data collection (forms, consent, privacy notice, trackers, cookies; "
             "browser mode with --browser)")
    description = (
        "Crawls the site (same host; depth, pages and bytes bounded) and judges how it collects personal data: "
        "forms over HTTP or GET or to other hosts, consent controls, the personal-data policy and its content, "
        "sensitive data notices, trackers and tracking cookies before consent, and the third-party hosts pages "
        "load from. Vietnamese (with or without diacritics) and English. Browser mode (--browser, or policy "
        "privacy.browser: true) also renders the first pages in headless Debian Chromium: script-built forms, "
        "trackers and cookies that appear at run time, and the consent banner refused and accepted in fresh "
        "profiles."
    )
    catalogue = CATALOGUE
    parameters: dict[str, Any] = {"privacy.vocabulary_files": [], "privacy.tracker_files": [],
                                  **browser_mode.PARAMETERS}

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        vocab = load_vocabulary(_layers(ctx, "privacy.yaml", "privacy.vocabulary_files"))
        trackers = load_trackers(_layers(ctx, "trackers.yaml", "privacy.tracker_files"))
        crawl = shared_crawl(target, ctx)
        evidence: dict[str, Any] = {"crawl": crawl.evidence(), "vocabulary_version": vocab.version,
                                    "trackers_version": trackers.version}
        if not crawl.ok:
            return CheckOutcome.failed(f"the crawl reached no page of the site: {crawl.failure_reason()}", evidence)
        findings: list[Finding] = []
        browser: browser_mode.BrowserRun | None = None
        if browser_mode.enabled(ctx):
            vocab_files = _layers(ctx, "privacy.yaml", "privacy.vocabulary_files")
            browser = browser_mode.collect(target, ctx, crawl, browser_mode.load_banner_words(vocab_files))
            evidence["browser"] = browser.evidence()
            if browser.error:
                return CheckOutcome.failed(f"browser mode could not run: {browser.error}", evidence)
        rendered = browser.pages if browser else []
        forms, page_errors = self._forms(crawl, vocab, rendered)
        evidence["forms"] = [
            {"page": s.page.final_url[:300], **s.form.evidence(), "fields": len(s.form.fields),
             **({"seen_by": "browser (not in the HTML the server sent)"} if any(s.page is r for r in rendered) else {}),
             "personal": len(s.form.personal_fields), "sensitive": len(s.form.sensitive_fields),
             "consents": len(s.form.consents), "also_on": len(s.pages) - 1}
            for s in forms[:100]
        ]
        if page_errors:
            evidence["page_errors"] = page_errors[:_MAX_LIST]
        personal = [s for s in forms if s.form.role == "personal"]
        for seen in forms:
            findings.extend(self._transport(seen, target))
        home_links = policy_links(crawl.home, vocab) if crawl.home else []
        policies_checked: dict[str, dict[str, Any]] = {}
        for seen in personal:
            findings.extend(self._form_findings(seen, target, vocab))
            findings.extend(self._notice(seen, home_links, crawl, ctx, vocab, policies_checked))
        # A policy linked from the home page is judged even when no form was found.
        for link in home_links[:_MAX_POLICY_PAGES]:
            self._policy_status(link, crawl, ctx, vocab, policies_checked)
        findings.extend(self._incomplete_policies(policies_checked))
        evidence["policies"] = list(policies_checked.values())[:_MAX_LIST]
        runtime = browser.snapshots if browser else []
        findings.extend(self._trackers(crawl, target, trackers, evidence, runtime))
        findings.extend(self._cookies(crawl, trackers, evidence, runtime))
        if browser is not None:
            findings.extend(self._consent(browser, target, trackers))
        # Pages or consent visits the browser did not reach are untested, never a pass: the
        # check is an error that keeps what it did find.
        error = f"browser mode incomplete: {browser.incomplete}" if browser and browser.incomplete else None
        return CheckOutcome(findings=findings, evidence=evidence, error=error)

    # -- forms

    @staticmethod
    def _forms(crawl: Crawl, vocab: Vocabulary,
               rendered: Sequence[CrawledPage] = ()) -> tuple[list[_FormSeen], list[dict[str, str]]]:
        by_sig: dict[tuple[Any, ...], _FormSeen] = {}
        errors: list[dict[str, str]] = []
        for page in [*crawl.html_pages, *rendered]:
            assert page.soup is not None
            try:
                forms = read_forms(page.soup, page.final_url, vocab, base_url=page.base_url, page_title=page.title)
            except (RecursionError, ValueError, AttributeError) as exc:
                errors.append({"url": page.final_url[:300], "error": f"{type(exc).__name__} while reading forms"})
                continue
            for form in forms:
                sig = (urlsplit(page.final_url).scheme, *form.signature)
                if sig in by_sig:
                    if len(by_sig[sig].pages) < _MAX_LIST:
                        by_sig[sig].pages.append(page.final_url)
                    continue
                by_sig[sig] = _FormSeen(form, page, [page.final_url])
        return list(by_sig.values()), errors

    def _details(self, seen: _FormSeen, **more: Any) -> dict[str, Any]:
        return {"page": seen.page.final_url, "form": seen.form.evidence(), "fields": seen.form.field_dicts(),
                "pages": seen.pages, **more}

    def _transport(self, seen: _FormSeen, target: Target) -> list[Finding]:
        form = seen.form
        if form.role not in ("personal", "login") and not form.credential_fields:
            return []
        reasons = []
        if seen.page.scheme == "http":
            reasons.append("the page itself is plain HTTP")
        if form.action_url and urlsplit(form.action_url).scheme == "http":
            reasons.append(f"it posts to {form.action_url}")
        if not reasons:
            return []
        what = "account credentials" if form.role == "login" else "personal data"
        return [self.finding(
            "privacy.form.insecure_transport",
            f"{_where(form)} on {seen.page.final_url} sends {what} ({_field_names(form)}) unencrypted: "
            + "; ".join(reasons),
            url=seen.page.final_url, **self._details(seen, reasons=reasons),
        )]

    def _form_findings(self, seen: _FormSeen, target: Target, vocab: Vocabulary) -> list[Finding]:
        form, page = seen.form, seen.page
        out: list[Finding] = []
        url = page.final_url
        if form.method == "get":
            out.append(self.finding(
                "privacy.form.get_method",
                f"{_where(form)} on {url} submits personal data with GET: {_field_names(form)}",
                url=url, **self._details(seen),
            ))
        action_host = url_host(form.action_url)
        if action_host and action_host != target.host:
            out.append(self.finding(
                "privacy.form.third_party_action",
                f"{_where(form)} on {url} sends personal data ({_field_names(form)}) to {action_host}",
                url=url, **self._details(seen, recipient=action_host),
            ))
        consents = [c for c in form.consents if not c.refusal]
        if not consents:
            out.append(self.finding(
                "privacy.consent.missing",
                f"{_where(form)} on {url} collects personal data ({_field_names(form)}) with no consent control",
                url=url, **self._details(seen),
            ))
        ticked = [c for c in consents if c.checked]
        if ticked:
            out.append(self.finding(
                "privacy.consent.preticked",
                f"{_where(form)} on {url}: consent box ticked by default: " + "; ".join(
                    repr(" ".join(c.label.split())[:100]) for c in ticked[:3]),
                url=url, **self._details(seen, consents=[c.to_dict() for c in ticked]),
            ))
        bundled = [c for c in consents if len(set(c.purposes)) >= 2]
        if bundled:
            out.append(self.finding(
                "privacy.consent.bundled",
                f"{_where(form)} on {url}: one consent box covers " + "; ".join(
                    f"{' + '.join(c.purposes)} ({' '.join(c.label.split())[:80]!r})" for c in bundled[:3]),
                url=url, **self._details(seen, consents=[c.to_dict() for c in bundled]),
            ))
        sensitive = form.sensitive_fields
        if sensitive and vocab.sensitive_notice.find(normalize(page.text())) is None:
            out.append(self.finding(
                "privacy.sensitive.no_notice",
                f"{_where(form)} on {url} asks for sensitive data ({_field_names(form, 'sensitive')}) without "
                "saying it is sensitive",
                url=url, **self._details(seen, sensitive=form.field_dicts("sensitive")),
            ))
        return out

    # -- notice

    def _policy_status(self, link: _PolicyLink, crawl: Crawl, ctx: CheckContext, vocab: Vocabulary,
                       checked: dict[str, dict[str, Any]]) -> dict[str, Any]:
        key = canonical_url(link.url)
        if key in checked:
            return checked[key]
        status: dict[str, Any] = {"url": link.url[:500], "link_text": link.text[:120], "linked_from": link.found_on}
        if len(checked) >= _MAX_POLICY_PAGES:
            status["state"] = "not assessed (policy page limit)"
        elif not crawl.on_site(link.url):
            status["state"] = "not assessed (another host; the crawl never leaves the site)"
        else:
            page = crawl.fetch_extra(link.url, ctx)
            if page is None:
                failure = next((f for f in crawl.failures if canonical_url(f["url"]) == key), None)
                if failure is None or failure["kind"] in ("timeout", "deadline"):
                    # Untested is not missing: no answer in time says nothing about the page.
                    status["state"] = "not assessed (time budget)"
                else:
                    status["state"] = "unreachable"
                status["error"] = failure["error"] if failure else "not fetched (time or page budget)"
            elif page.status >= 400 or not page.is_html:
                status["state"] = "unreachable"
                status["error"] = f"HTTP {page.status} {page.content_type}".strip()
            else:
                status["state"] = "assessed"
                status["page_url"] = page.final_url
                status["missing"] = policy_gaps(page, vocab)
        checked[key] = status
        return status

    def _notice(self, seen: _FormSeen, home_links: list[_PolicyLink], crawl: Crawl, ctx: CheckContext,
                vocab: Vocabulary, checked: dict[str, dict[str, Any]]) -> list[Finding]:
        links = policy_links(seen.page, vocab) + home_links
        states = [self._policy_status(link, crawl, ctx, vocab, checked) for link in links[:_MAX_POLICY_PAGES]]
        if any(s["state"] != "unreachable" for s in states):
            return []
        url = seen.page.final_url
        if states:
            evidence = (f"{_where(seen.form)} on {url} collects personal data; the linked policy cannot be read: "
                        + "; ".join(f"{s['url']} ({s.get('error')})" for s in states))
        else:
            evidence = (f"{_where(seen.form)} on {url} collects personal data ({_field_names(seen.form)}); neither "
                        "this page nor the home page links a personal-data protection policy")
        return [self.finding("privacy.notice.missing", evidence, url=url,
                             **self._details(seen, policy_links=states))]

    def _incomplete_policies(self, checked: dict[str, dict[str, Any]]) -> list[Finding]:
        out = []
        reported: set[str] = set()
        for status in checked.values():
            if status.get("state") != "assessed" or not status.get("missing"):
                continue
            page_url = status.get("page_url") or status["url"]
            if canonical_url(page_url) in reported:
                continue
            reported.add(canonical_url(page_url))
            missing = status["missing"]
            out.append(self.finding(
                "privacy.notice.incomplete",
                f"the policy at {page_url} does not cover: " + ", ".join(m["label"] for m in missing),
                url=page_url, missing=missing, linked_from=status.get("linked_from"),
            ))
        return out

    # -- first visit: trackers, cookies, third-party hosts

    def _trackers(self, crawl: Crawl, target: Target, trackers: TrackerList,
                  evidence: dict[str, Any], runtime: Sequence[PageSnapshot] = ()) -> list[Finding]:
        hosts: dict[str, dict[str, Any]] = {}
        held: dict[str, set[str]] = {}
        for page in crawl.html_pages:
            for res in page.resources:
                host = res.host
                if not host or host == target.host:
                    continue
                if res.tag == "inline-script" and not _tracker_loader(res.url, trackers):
                    continue  # a URL in code is only counted when it is a tracker's loader
                if not res.loaded:
                    held.setdefault(host, set()).add(res.url[:300])
                    continue
                entry = hosts.setdefault(host, {"host": host, "tags": set(), "pages": [], "examples": []})
                entry["tags"].add(res.tag)
                if page.final_url not in entry["pages"] and len(entry["pages"]) < 10:
                    entry["pages"].append(page.final_url)
                if len(entry["examples"]) < 3 and res.url[:300] not in entry["examples"]:
                    entry["examples"].append(res.url[:300])
        runtime_only: set[str] = set()
        for snap in runtime:  # what the browser asked for before any consent ("load" phase)
            for req in snap.requests:
                if req.phase != "load" or not req.host or req.host == target.host:
                    continue
                if req.host not in hosts:
                    runtime_only.add(req.host)
                entry = hosts.setdefault(req.host, {"host": req.host, "tags": set(), "pages": [], "examples": []})
                entry["tags"].add(f"browser:{req.resource_type}")
                if snap.final_url not in entry["pages"] and len(entry["pages"]) < 10:
                    entry["pages"].append(snap.final_url)
                if len(entry["examples"]) < 3 and req.url[:300] not in entry["examples"]:
                    entry["examples"].append(req.url[:300])
        for host in runtime_only:
            hosts[host]["seen_by"] = "browser only (requested at run time, not in the HTML the server sent)"
        inventory = []
        for host in sorted(hosts):
            entry = hosts[host]
            tracker = trackers.for_host(host)
            inventory.append({**entry, "tags": sorted(entry["tags"]),
                              **({"tracker": tracker.describe()} if tracker else {})})
        evidence["third_party_hosts"] = inventory[:100]
        if held:
            evidence["held_until_consent"] = {h: sorted(u)[:5] for h, u in sorted(held.items())[:50]}
        out: list[Finding] = []
        tracked = [e for e in inventory if "tracker" in e]
        if tracked:
            names = sorted({e["tracker"]["name"] for e in tracked})
            first = tracked[0]["pages"][0] if tracked[0]["pages"] else crawl.start_url
            late = [e["host"] for e in tracked if e["host"] in runtime_only]
            out.append(self.finding(
                "privacy.tracker.before_consent",
                f"on first visit, before any consent, pages load {', '.join(names)} from "
                + ", ".join(e["host"] for e in tracked[:8])
                + (f" (seen only at run time, in the browser: {', '.join(late[:8])})" if late else ""),
                url=first, hosts=tracked[:_MAX_LIST],
            ))
        if inventory:
            out.append(self.finding(
                "privacy.third_party.hosts",
                f"{len(inventory)} third-party host(s) receive visitors' requests: "
                + ", ".join(e["host"] for e in inventory[:10]) + (" ..." if len(inventory) > 10 else ""),
                url=crawl.start_url, hosts=inventory[:100],
            ))
        return out

    def _cookies(self, crawl: Crawl, trackers: TrackerList, evidence: dict[str, Any],
                 runtime: Sequence[PageSnapshot] = ()) -> list[Finding]:
        set_on_first_visit: list[dict[str, Any]] = []
        flagged: dict[str, dict[str, Any]] = {}
        for url, header in crawl.cookies():
            name, deleted = _cookie_name(header)
            if not name:
                continue
            tracker = trackers.for_cookie(name)
            set_on_first_visit.append({"url": url[:300], "name": name[:100], "deleted": deleted,
                                       **({"tracker": tracker.name} if tracker else {})})
            if tracker is not None and not deleted and name not in flagged:
                flagged[name] = {"name": name[:100], "url": url[:300], "tracker": tracker.describe()}
        evidence["first_visit_cookies"] = set_on_first_visit[:50]
        for snap in runtime:  # cookies in the browser before any consent, set by HTTP or by script
            for c in snap.cookies:
                tracker = trackers.for_cookie(c.name)
                if c.phase != "load" or tracker is None or c.name in flagged:
                    continue
                flagged[c.name] = {"name": c.name[:100], "url": snap.final_url[:300], "tracker": tracker.describe(),
                                   "domain": c.domain, "set_by": c.source, "seen_by": "browser"}
        if not flagged:
            return []
        items = list(flagged.values())
        return [self.finding(
            "privacy.cookie.before_consent",
            "tracking cookie(s) set on first visit, before any consent: "
            + ", ".join(f"{c['name']} ({c['tracker']['name']}"
                        + (f"; set by {'script' if c['set_by'] == 'script' else 'HTTP'}, seen at run time in the browser"
                           if c.get("seen_by") else "") + ")" for c in items[:8]),
            url=items[0]["url"], cookies=items[:_MAX_LIST],
        )]


    # -- consent banner: three visits (no interaction, refuse, accept)

    def _consent(self, browser: browser_mode.BrowserRun, target: Target, trackers: TrackerList) -> list[Finding]:
        banner = browser.banner
        if banner is None:
            return []
        out: list[Finding] = []
        home = browser.snapshots[0].final_url if browser.snapshots else target.url
        equal, why = banner.equal_refusal()
        if not equal:
            out.append(self.finding(
                "privacy.consent.no_refusal", f"consent banner on {home}: {why}", url=home, banner=banner.to_dict()))
        for visit in browser.visits:
            if visit.choice != "refuse" or not visit.clicked or visit.snapshot is None:
                continue
            phase = "after-refuse"
            loaded = sorted({r.host for r in visit.snapshot.requests
                             if r.phase == phase and r.host and trackers.for_host(r.host) is not None})
            cookies = sorted({c.name for c in visit.snapshot.cookies
                              if c.phase == phase and trackers.for_cookie(c.name) is not None})
            if not loaded and not cookies:
                continue
            what = []
            if loaded:
                what.append("trackers requested: " + ", ".join(loaded[:8]))
            if cookies:
                what.append("tracking cookies set: " + ", ".join(cookies[:8]))
            out.append(self.finding(
                "privacy.consent.refusal_ignored",
                f"after clicking {banner.refuse['text'][:60]!r} on {home} (fresh profile): " + "; ".join(what),
                url=home, banner=banner.to_dict(), trackers=loaded[:_MAX_LIST], cookies=cookies[:_MAX_LIST],
            ))
        return out


__all__ = ["CATALOGUE", "PrivacyCheck", "Tracker", "TrackerList", "load_trackers", "policy_gaps", "policy_links"]
