"""reputation: the site's names, addresses and links against local blocklist feeds.

Feeds are files in a directory (``--feeds DIR``, else ``$AUDITOR_FEEDS``, else the tiny
built-in sample); see :mod:`checks.reputation.feeds` for the formats. Nothing is downloaded during a
scan: ``auditor feeds update`` refreshes the directory separately. Links come from the shared
crawl (:func:`checks.web.crawl.shared_crawl`): every ``<a>``/``<area>`` link, every resource a page
loads or names in inline code, every form action and every off-site redirect.
"""

from __future__ import annotations

from typing import Any

from auditor.catalogue import catalogue_of
from auditor.check import Check, CheckContext, CheckOutcome, Finding
from auditor.errors import AuditorError
from auditor.targets import Target
from checks.reputation.feeds import FeedSet, Match, feeds_for
from checks.web.crawl import shared_crawl, url_host

_MAX_URLS = 50_000
_MAX_HITS = 50

CATALOGUE = catalogue_of("checks.reputation")  # findings.yaml beside this file


def _matches_text(matches: list[Match]) -> str:
    return "; ".join(f"{m.listed} in {m.entry.describe()}" for m in matches[:5])


class ReputationCheck(Check):
    id = "reputation"
    title = "Reputation (local blocklist feeds)"
    description = (
        "Looks up the site's host name, its addresses and every link, resource and form action the crawl "
        "finds in local blocklist feeds (domain lists, hosts files, URL lists, IP and CIDR lists). Feeds come "
        "from --feeds DIR or $AUDITOR_FEEDS (a tiny built-in sample otherwise); nothing is downloaded during "
        "a scan."
    )
    catalogue = CATALOGUE

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        feeds = feeds_for(ctx.options, ctx.policy_files.sample_feeds)
        evidence: dict[str, Any] = {"feeds": feeds.summary()}
        if feeds.builtin_sample:
            evidence["note"] = "built-in sample feed (not a real blocklist): give --feeds DIR or AUDITOR_FEEDS"
        findings: list[Finding] = []
        findings.extend(self._domain(target, feeds))
        findings.extend(self._addresses(target, ctx, feeds, evidence))
        try:
            crawl = shared_crawl(target, ctx)
        except AuditorError as exc:
            return CheckOutcome(findings=findings, evidence=evidence, error=f"links not checked: {exc}")
        evidence["crawl"] = {"pages": len(crawl.pages), "failures": crawl.failures[:10]}
        if not crawl.ok:
            return CheckOutcome(findings=findings, evidence=evidence,
                                error=f"links not checked: the crawl reached no page of the site: "
                                      f"{crawl.failure_reason()}")
        findings.extend(self._links(target, crawl, feeds, evidence))
        return CheckOutcome(findings=findings, evidence=evidence)

    def _domain(self, target: Target, feeds: FeedSet) -> list[Finding]:
        matches = feeds.match_domain(target.host)
        if not matches:
            return []
        return [self.finding(
            "reputation.domain.blocklisted",
            f"{target.host} is listed: {_matches_text(matches)}",
            url=target.url, matches=[m.to_dict() for m in matches[:_MAX_HITS]],
        )]

    def _addresses(self, target: Target, ctx: CheckContext, feeds: FeedSet,
                   evidence: dict[str, Any]) -> list[Finding]:
        addresses = [target.address]
        if ctx.resolver is not None:
            try:
                other = ctx.resolver.resolve(target.host, target.http_port)
            except AuditorError:
                other = None
            if other and other not in addresses:
                addresses.append(other)
        evidence["addresses"] = addresses
        matches = [m for a in addresses for m in feeds.match_ip(a)]
        if not matches:
            return []
        return [self.finding(
            "reputation.address.blocklisted",
            f"{target.host} resolves to a listed address: "
            + "; ".join(f"{m.item} in {m.listed} ({m.entry.describe()})" for m in matches[:5]),
            url=target.url, matches=[m.to_dict() for m in matches[:_MAX_HITS]],
        )]

    def _links(self, target: Target, crawl: Any, feeds: FeedSet, evidence: dict[str, Any]) -> list[Finding]:
        found: dict[str, tuple[str, str]] = {}  # url -> (how it appears, first page)

        def note(url: str, how: str, page: str) -> None:
            if len(found) < _MAX_URLS and url not in found:
                found[url] = (how, page)

        for page in crawl.pages:
            for link in page.links:
                note(link, "link", page.final_url)
            for res in page.resources:
                note(res.url, res.tag if res.loaded else f"{res.tag} (held until consent)", page.final_url)
            for action in page.form_actions:
                note(action, "form action", page.final_url)
        for location in crawl.offsite_redirects:
            note(location, "redirect", crawl.start_url)
        hits: list[dict[str, Any]] = []
        for url, (how, page_url) in found.items():
            if url_host(url) == target.host:
                continue  # the site's own pages: its own listing is reputation.domain.blocklisted
            for match in feeds.match_url(url):
                hits.append({"url": url[:500], "as": how, "page": page_url[:500], **match.to_dict()})
                break
        evidence["links_checked"] = len(found)
        if not hits:
            return []
        shown = "; ".join(f"{h['url'][:120]} ({h['as']}, {h['listed']} in {h['feed']}:{h['line']})" for h in hits[:4])
        more = f" and {len(hits) - 4} more" if len(hits) > 4 else ""
        return [self.finding(
            "reputation.link.malicious",
            f"{len(hits)} link(s) to listed URLs or domains: {shown}{more}",
            url=hits[0]["page"], hits=hits[:_MAX_HITS],
        )]


__all__ = ["CATALOGUE", "ReputationCheck"]
