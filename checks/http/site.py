"""Which hosts belong to the audited site: the registrable domain, from the Public Suffix List.

Real sites redirect ``example.gov.vn`` to ``www.example.gov.vn`` (or the reverse). Both are
one site: the same registrable domain ("eTLD+1") by the Public Suffix List, which the
``publicsuffixlist`` package keeps up to date (``gov.vn`` is a public suffix, so two agencies
under it are two sites). An IP literal or a host the list calls a public suffix is its own
site only. The list is loaded once per process.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from auditor.targets import is_ip_literal


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


@lru_cache(maxsize=4096)
def registrable_domain(host: str) -> str | None:
    """The eTLD+1 of ``host`` (lower-case, no trailing dot); None for IPs and public suffixes."""
    name = host.strip().rstrip(".").lower()
    if not name or is_ip_literal(name):
        return None
    result = _psl().privatesuffix(name)
    return str(result) if result else None


def is_public_suffix(domain: str) -> bool:
    """True when cookies may not be scoped to ``domain`` (``vn``, ``gov.vn``, ``github.io``)."""
    name = domain.strip().rstrip(".").lower()
    return bool(name) and not is_ip_literal(name) and bool(_psl().is_public(name))


def same_site(a: str, b: str) -> bool:
    """Two hosts of one site: equal, or of the same registrable domain."""
    ha, hb = a.strip().rstrip(".").lower(), b.strip().rstrip(".").lower()
    if ha == hb:
        return True
    rd = registrable_domain(ha)
    return rd is not None and rd == registrable_domain(hb)


def is_apex(host: str) -> bool:
    """True when ``host`` is its own registrable domain (``example.gov.vn``, not ``www.``...)."""
    name = host.strip().rstrip(".").lower()
    return registrable_domain(name) == name


def host_of(url: str) -> str:
    """The lower-case host of ``url``; empty when the URL has none or does not parse."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
