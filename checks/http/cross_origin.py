"""Cross-origin isolation and resource policies (COOP, COEP, CORP) and CORS, as browsers read them.

COOP and COEP are structured-field items (RFC 8941): one token, optional parameters
(``same-origin; report-to="x"``). Anything else (two header lines combined into a list, an
unknown or mis-cased token, a string) is ignored and the default ``unsafe-none`` applies.
CORP is compared byte for byte with ``same-origin``, ``same-site`` or ``cross-origin``
(Fetch, "cross-origin resource policy internal check"); two lines combined are invalid.

CORS is judged from what the server answers to a request carrying an ``Origin`` the site
cannot know (``https://auditor-probe.invalid``) and one carrying ``Origin: null`` (sandboxed
frames, ``data:`` and ``file:`` documents): an echo of either, with
``Access-Control-Allow-Credentials: true``, lets any site read the visitor's authenticated
responses. ``Access-Control-Allow-Origin: *`` with credentials is refused by browsers and
shows a server that meant to allow more than it does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checks.http.hit import Hit, clip, hit

COOP_VALUES = ("same-origin", "same-origin-allow-popups", "noopener-allow-popups", "unsafe-none")
COEP_VALUES = ("require-corp", "credentialless", "unsafe-none")
CORP_VALUES = ("same-origin", "same-site", "cross-origin")
PROBE_ORIGIN = "https://auditor-probe.invalid"
NULL_ORIGIN = "null"

_SF_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_SF_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_SF_BARE = re.compile(r'"(?:[^"\\\x00-\x1f\x7f]|\\["\\])*"|[A-Za-z*][!#$%&\'*+\-.^_`|~0-9A-Za-z:/]*|-?[0-9]+(?:\.[0-9]+)?|\?[01]')


def parse_sf_token_item(values: Sequence[str]) -> tuple[str | None, str | None]:
    """``(token, None)`` for a structured-field item that is a token, else ``(None, why)``."""
    if not values:
        return None, "not sent"
    if len(values) > 1:
        return None, f"{len(values)} header lines, which combine into a list, not one item"
    text = values[0].strip(" ")
    match = _SF_TOKEN.match(text)
    if match is None:
        return None, f"'{clip(text, 80)}' is not a token"
    token, i = match.group(), match.end()
    while i < len(text):
        if text[i] != ";":
            what = "a comma (a list, not one item)" if text[i] == "," else repr(text[i])
            return None, f"{what} after '{clip(token, 40)}'"
        i += 1
        while i < len(text) and text[i] == " ":
            i += 1
        key = _SF_KEY.match(text, i)
        if key is None:
            return None, f"bad parameter in '{clip(text, 80)}'"
        i = key.end()
        if i < len(text) and text[i] == "=":
            bare = _SF_BARE.match(text, i + 1)
            if bare is None:
                return None, f"bad parameter value in '{clip(text, 80)}'"
            i = bare.end()
    return token, None


@dataclass(frozen=True)
class PolicyValue:
    """One cross-origin header as parsed: the value in force and why a sent value was ignored."""

    header: str
    sent: str
    value: str | None  # the valid value, None when absent or ignored
    problem: str | None

    def describe(self) -> str:
        if not self.sent:
            return f"no {self.header}"
        if self.value is None:
            return f"{self.header} '{clip(self.sent, 80)}' ignored: {self.problem}"
        return f"{self.header}: {self.value}"


def parse_coop(values: Sequence[str]) -> PolicyValue:
    return _token_policy("Cross-Origin-Opener-Policy", values, COOP_VALUES)


def parse_coep(values: Sequence[str]) -> PolicyValue:
    return _token_policy("Cross-Origin-Embedder-Policy", values, COEP_VALUES)


def _token_policy(header: str, values: Sequence[str], known: tuple[str, ...]) -> PolicyValue:
    sent = ", ".join(values)
    token, problem = parse_sf_token_item(values)
    if token is None:
        return PolicyValue(header, sent, None, problem if values else None)
    if token not in known:
        hint = " (values are case-sensitive)" if token.lower() in known else ""
        return PolicyValue(header, sent, None, f"unknown value '{clip(token, 40)}'{hint}")
    return PolicyValue(header, sent, token, None)


def parse_corp(values: Sequence[str]) -> PolicyValue:
    header = "Cross-Origin-Resource-Policy"
    sent = ", ".join(values)
    if not values:
        return PolicyValue(header, "", None, None)
    if len(values) > 1:
        return PolicyValue(header, sent, None, f"{len(values)} header lines combine into '{clip(sent, 60)}'")
    value = values[0].strip(" \t")
    if value not in CORP_VALUES:
        hint = " (values are case-sensitive)" if value.lower() in CORP_VALUES else ""
        return PolicyValue(header, sent, None, f"unknown value '{clip(value, 40)}'{hint}")
    return PolicyValue(header, sent, value, None)


def isolation_hits(url: str, coop_values: list[str], coep_values: list[str], corp_values: list[str]) -> list[Hit]:
    """http.coop.missing, http.coep.missing and http.corp.missing for the landing page."""
    coop, coep, corp = parse_coop(coop_values), parse_coep(coep_values), parse_corp(corp_values)
    hits: list[Hit] = []
    if coop.value in (None, "unsafe-none"):
        why = coop.describe() + (" (the default, no isolation)" if coop.value else "")
        hits.append(hit("http.coop.missing", f"{why}; want same-origin", url=url, parsed=coop.value,
                        sent=clip(coop.sent, 200), problem=coop.problem))
    if coep.value in (None, "unsafe-none"):
        isolated = "so the page is not cross-origin isolated" if coop.value == "same-origin" else "(no isolation)"
        hits.append(hit("http.coep.missing", f"{coep.describe()} {isolated}; want require-corp or credentialless",
                        url=url, parsed=coep.value, sent=clip(coep.sent, 200), problem=coep.problem))
    if corp.value is None:
        hits.append(hit("http.corp.missing", f"{corp.describe()}; want same-origin or same-site", url=url,
                        parsed=None, sent=clip(corp.sent, 200), problem=corp.problem))
    return hits


# ---------------------------------------------------------------------------------------------
# CORS


@dataclass(frozen=True)
class CORSProbe:
    """The answer to one request sent with ``Origin: origin`` (``error`` when none came)."""

    origin: str
    url: str
    status: int | None = None
    allow_origin: list[str] | None = None
    allow_credentials: list[str] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "url": self.url[:1024],
            "status": self.status,
            "allow_origin": [clip(v, 300) for v in (self.allow_origin or [])][:5],
            "allow_credentials": [clip(v, 100) for v in (self.allow_credentials or [])][:5],
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CORSProbe:
        status = data.get("status")
        return cls(
            origin=str(data.get("origin", "")),
            url=str(data.get("url", "")),
            status=None if status is None else int(status),
            allow_origin=[str(v) for v in data.get("allow_origin") or []],
            allow_credentials=[str(v) for v in data.get("allow_credentials") or []],
            error=None if data.get("error") is None else str(data.get("error")),
        )

    @property
    def acao(self) -> str | None:
        """The one Access-Control-Allow-Origin value browsers accept (None: none or several)."""
        values = self.allow_origin or []
        if len(values) != 1 or "," in values[0]:
            return None
        return values[0].strip(" \t")

    @property
    def credentials(self) -> bool:
        """Fetch: credentials are allowed only by exactly ``true`` (case-sensitive)."""
        values = self.allow_credentials or []
        return len(values) == 1 and values[0].strip(" \t") == "true"


def cors_hits(probes: Sequence[CORSProbe]) -> list[Hit]:
    """Reflected arbitrary origin, allowed ``null`` origin, and ``*`` with credentials."""
    hits: list[Hit] = []
    wildcard_seen = False
    for probe in probes:
        if probe.error is not None or probe.status is None:
            continue
        acao, creds = probe.acao, probe.credentials
        shown = f"Access-Control-Allow-Origin: {clip(acao or '', 100)}" + (
            ", Access-Control-Allow-Credentials: true" if creds else ""
        )
        if acao == "*" and creds and not wildcard_seen:
            wildcard_seen = True
            hits.append(hit("http.cors.wildcard_credentials",
                            f"{probe.url} answers {shown}: browsers refuse '*' with credentials, so the "
                            "server is set up to allow more than it can", url=probe.url, origin_sent=probe.origin))
        if probe.origin == PROBE_ORIGIN and acao == PROBE_ORIGIN:
            finding = "http.cors.origin_reflected" if creds else "http.cors.origin_reflected_public"
            reach = "read the visitor's authenticated responses" if creds else "read the responses"
            hits.append(hit(finding, f"{probe.url} echoes an arbitrary Origin ({PROBE_ORIGIN}) as {shown}: "
                            f"any site can {reach}", url=probe.url, origin_sent=probe.origin, credentials=creds))
        if probe.origin == NULL_ORIGIN and acao == NULL_ORIGIN:
            hits.append(hit("http.cors.null_origin", f"{probe.url} allows Origin: null ({shown}): sandboxed frames "
                            "and data: documents of any site can read the responses", url=probe.url,
                            origin_sent=probe.origin, credentials=creds))
    return hits
