"""SPF (RFC 7208) and DMARC (RFC 7489) records, parsed and judged without the network.

The collect step hands over the TXT records it fetched (the domain's own and those of every
``include:`` and ``redirect=`` it followed); everything here is a pure function of them, so
a stored scan can be judged again offline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SPF_LOOKUP_LIMIT = 10  # RFC 7208 §4.6.4
_LOOKUP_MECHS = {"include", "a", "mx", "ptr", "exists"}
_ALL_MECHS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_QUALIFIERS = "+-~?"


@dataclass
class SPFRecord:
    """One ``v=spf1`` record: its terms, what it points to, and what is wrong with its syntax."""

    text: str
    all_qualifier: str | None = None  # "+", "-", "~", "?" or None when there is no "all"
    includes: list[str] = field(default_factory=list)
    redirect: str | None = None
    lookups: int = 0  # DNS-querying terms in this record alone
    errors: list[str] = field(default_factory=list)


def spf_records(txts: list[str]) -> list[str]:
    """The TXT strings that are SPF records (``v=spf1`` followed by a space or the end)."""
    return [t for t in txts if re.match(r"(?i)^v=spf1(\s|$)", t.strip())]


def parse_spf(text: str) -> SPFRecord:
    rec = SPFRecord(text=text)
    terms = text.strip().split()[1:]
    for term in terms:
        if "=" in term.split(":", 1)[0]:
            name, _, value = term.partition("=")
            name = name.lower()
            if name == "redirect":
                if rec.redirect is not None:
                    rec.errors.append("more than one redirect= modifier")
                rec.redirect = value.lower().rstrip(".")
                rec.lookups += 1
            elif not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", name):
                rec.errors.append(f"malformed modifier {term[:60]!r}")
            continue
        qualifier = "+"
        body = term
        if body[:1] in _QUALIFIERS:
            qualifier, body = body[0], body[1:]
        mech = re.split(r"[:/]", body, maxsplit=1)[0].lower()
        arg_text = body[len(mech):]
        if mech not in _ALL_MECHS:
            rec.errors.append(f"unknown mechanism {term[:60]!r}")
            continue
        if mech in _LOOKUP_MECHS:
            rec.lookups += 1
        if mech == "all":
            if arg_text:
                rec.errors.append(f"'all' takes no argument: {term[:60]!r}")
            rec.all_qualifier = qualifier
        elif mech == "include":
            if not arg_text.startswith(":") or len(arg_text) < 2:
                rec.errors.append(f"include without a domain: {term[:60]!r}")
            else:
                rec.includes.append(arg_text[1:].lower().rstrip("."))
        elif mech in ("ip4", "ip6") and not arg_text.startswith(":"):
            rec.errors.append(f"{mech} without an address: {term[:60]!r}")
        elif mech == "exists" and not arg_text.startswith(":"):
            rec.errors.append(f"exists without a domain: {term[:60]!r}")
    return rec


@dataclass
class SPFVerdict:
    record: str | None
    count: int  # SPF records published at the domain
    errors: list[str]
    all_qualifier: str | None
    lookups: int
    unresolved: list[str]  # include/redirect targets not fetched (budget) or without SPF


def judge_spf(domain: str, tree: dict[str, list[str]]) -> SPFVerdict:
    """Judge ``domain``'s SPF with ``tree`` = {domain: its TXT strings} for the domain and
    every include/redirect target the collector fetched. Lookups are counted over the whole
    evaluation (includes and redirects recursively, each counted where it is reached)."""
    own = spf_records(tree.get(domain, []))
    if not own:
        return SPFVerdict(None, 0, [], None, 0, [])
    top = parse_spf(own[0])
    errors = list(top.errors)
    if len(own) > 1:
        errors.append(f"{len(own)} SPF records published (a receiver treats that as a permanent error)")
    unresolved: list[str] = []

    def count(rec: SPFRecord, path: tuple[str, ...]) -> int:
        # A receiver evaluates every include and redirect where it is reached, so a domain
        # included twice costs twice; only a loop (a domain already on the path) is cut.
        total = rec.lookups
        for target in rec.includes + ([rec.redirect] if rec.redirect else []):
            if target in path or len(path) > 12 or total > 4 * SPF_LOOKUP_LIMIT:
                continue
            sub = spf_records(tree.get(target, []))
            if not sub:
                if target not in unresolved:
                    unresolved.append(target)
                continue
            total += count(parse_spf(sub[0]), (*path, target))
        return total

    lookups = count(top, (domain,))
    qualifier = top.all_qualifier
    if qualifier is None and top.redirect:
        sub = spf_records(tree.get(top.redirect, []))
        qualifier = parse_spf(sub[0]).all_qualifier if sub else None
    return SPFVerdict(own[0], len(own), errors, qualifier, lookups, unresolved)


def is_null_spf(text: str) -> bool:
    """``v=spf1 -all``: the domain sends no mail."""
    return [t.lower() for t in text.split()] == ["v=spf1", "-all"]


@dataclass
class DMARCVerdict:
    record: str | None
    count: int
    tags: dict[str, str]
    errors: list[str]


def dmarc_records(txts: list[str]) -> list[str]:
    return [t for t in txts if re.match(r"(?i)^v\s*=\s*DMARC1\s*(;|$)", t.strip())]


def judge_dmarc(txts: list[str]) -> DMARCVerdict:
    """Parse the DMARC record among ``txts`` (the TXT strings of ``_dmarc.<domain>``)."""
    recs = dmarc_records(txts)
    if not recs:
        return DMARCVerdict(None, 0, {}, [])
    tags: dict[str, str] = {}
    errors: list[str] = []
    for part in recs[0].split(";"):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        if not eq:
            errors.append(f"malformed tag {part.strip()[:60]!r}")
            continue
        tags[name.strip().lower()] = value.strip()
    if len(recs) > 1:
        errors.append(f"{len(recs)} DMARC records published (receivers ignore them all)")
    p = tags.get("p", "").lower()
    if p not in ("none", "quarantine", "reject"):
        errors.append("p= missing or not none|quarantine|reject" if not p else f"p={p[:30]!r} is not valid")
    sp = tags.get("sp")
    if sp is not None and sp.lower() not in ("none", "quarantine", "reject"):
        errors.append(f"sp={sp[:30]!r} is not valid")
    return DMARCVerdict(recs[0], len(recs), tags, errors)
