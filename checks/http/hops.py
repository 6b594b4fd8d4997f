"""HSTS judged hop by hop over a redirect chain that crosses hosts of one site.

A site whose bare domain redirects to ``www`` (``https://example.gov.vn/`` →
``https://www.example.gov.vn/``) is followed to the ``www`` page (:mod:`checks.http.site`
decides what is one site), so the landing page's own HSTS is judged as always. What the
visitor's browser learns on the *earlier* hosts matters too: a redirect answered without
HSTS on the bare domain leaves every typed ``example.gov.vn`` open to SSL stripping, whatever
``www`` sends. On the registrable domain itself (the apex), ``includeSubDomains`` and the
preload rules (hstspreload.org: ``preload``, one year, ``includeSubDomains``, served on the
apex, whose plain-HTTP URL first redirects to HTTPS on the same host) are judged as well.

The stored evidence keeps each HTTPS response's URL, status and STS lines
(:class:`HopHeaders`), so a stored scan is judged again the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from checks.http.hit import Hit, clip, hit
from checks.http.hsts import first_sts
from checks.http.site import host_of, is_apex

MAX_HOPS = 12


class _Headers(Protocol):
    @property
    def url(self) -> str: ...

    def header_values(self, name: str) -> list[str]: ...


@dataclass(frozen=True)
class HopHeaders:
    """One HTTPS response of the landing chain as stored: URL, status and its STS lines."""

    url: str
    status: int
    sts: list[str] = field(default_factory=list)

    def header_values(self, name: str) -> list[str]:
        return list(self.sts) if name.lower() == "strict-transport-security" else []

    @classmethod
    def of(cls, response: _Headers, status: int) -> HopHeaders:
        return cls(response.url[:1024], status, [v[:1024] for v in response.header_values("Strict-Transport-Security")[:3]])

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "status": self.status, "sts": list(self.sts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HopHeaders:
        return cls(str(data.get("url", "")), int(data.get("status", 0)), [str(v) for v in data.get("sts") or []])


def _host(url: str) -> str:
    return host_of(url)


def _by_host(hops: Sequence[_Headers]) -> dict[str, list[_Headers]]:
    groups: dict[str, list[_Headers]] = {}
    for response in hops:
        groups.setdefault(_host(response.url), []).append(response)
    return groups


def _judged(responses: list[_Headers]) -> _Headers:
    """The response whose STS a browser keeps for that host: the first one that sends it."""
    return next((r for r in responses if r.header_values("Strict-Transport-Security")), responses[-1])


def hop_hits(hops: Sequence[_Headers], plain_chain: Sequence[tuple[str, str | None]] | None) -> list[Hit]:
    """http.hsts.redirect_hop, http.hsts.no_include_subdomains, http.hsts.preload_not_ready.

    ``hops`` are the HTTPS responses in order; ``plain_chain`` the plain-HTTP probe's
    ``(url, location)`` pairs (None when not probed).
    """
    if not hops:
        return []
    groups = _by_host(hops)
    final_host = _host(hops[-1].url)
    hits: list[Hit] = []
    unprotected: list[str] = []
    for host, responses in groups.items():
        if host == final_host:
            continue
        judged = _judged(responses)
        raw, policy, problem = first_sts(judged.header_values("Strict-Transport-Security"))
        if policy is None or problem is not None:
            sent = f" ('{clip(raw, 80)}': {problem})" if raw is not None else " (no Strict-Transport-Security)"
            unprotected.append(f"{judged.url}{sent}")
    if unprotected:
        hits.append(hit(
            "http.hsts.redirect_hop",
            f"redirect on the way to {final_host} sets no valid HSTS: {'; '.join(unprotected[:3])}; a browser "
            "that reaches that host first is never told to use HTTPS there",
            url=hops[0].url,
            hops=unprotected[:MAX_HOPS],
        ))
    apex = next((h for h in groups if is_apex(h)), None)
    if apex is None:
        return hits
    judged = _judged(groups[apex])
    _raw, policy, problem = first_sts(judged.header_values("Strict-Transport-Security"))
    if policy is None or problem is not None:
        return hits  # already http.hsts.missing (final host) or http.hsts.redirect_hop
    if not policy.include_subdomains:
        hits.append(hit(
            "http.hsts.no_include_subdomains",
            f"HSTS on the registrable domain {apex} ({policy.describe()}) lacks includeSubDomains: its "
            "subdomains stay open to SSL stripping and cookie injection",
            url=judged.url,
            parsed=policy.describe(),
        ))
    if policy.preload:
        problems = policy.preload_problems()
        if plain_chain:
            first_url, location = plain_chain[0]
            same_host_https = location is not None and location.startswith("https://") and _host(location) == apex
            if _host(first_url) == apex and not same_host_https:
                problems.append(f"http://{apex}/ does not redirect to https://{apex}/ first")
        if problems:
            hits.append(hit(
                "http.hsts.preload_not_ready",
                f"HSTS on {apex} asks for preload ({policy.describe()}) but the preload list would refuse it: "
                + "; ".join(problems),
                url=judged.url,
                problems=problems,
            ))
    return hits
