"""Content Security Policy as CSP Level 3 browsers enforce it: parsing, sources, weaknesses.

Parsing follows CSP3 section 2.2: a header value splits on commas into serialized policies,
every one enforced; a serialized policy splits on ";" into directives. A directive token that
is empty or not ASCII is skipped, the name is lower-cased, the first occurrence of a name wins
(later ones are ignored, and reported), and a policy without directives is dropped. A
``<meta http-equiv>`` policy is one serialized policy (no comma split) and browsers drop its
``frame-ancestors``, ``report-uri`` and ``sandbox``. Report-only policies are parsed and
described, never counted.

Source expressions follow the CSP3 grammar. A nonce or hash that matches the grammar switches
``'unsafe-inline'`` off even when it can never match (a hash of the wrong length), as the
"does a source list allow all inline behavior" algorithm says; ``'strict-dynamic'`` switches
off host and scheme sources, ``'self'`` and ``'unsafe-inline'`` for scripts. All enforced
policies apply at once: a script weakness counts only when *every* script-restricting policy
has it, and a directive restricted by any one policy is restricted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from checks.http.hit import Hit, clip, hit

KEYWORDS = frozenset(
    {
        "'self'", "'none'", "'unsafe-inline'", "'unsafe-eval'", "'strict-dynamic'", "'unsafe-hashes'",
        "'report-sample'", "'unsafe-allow-redirects'", "'wasm-unsafe-eval'", "'inline-speculation-rules'",
        "'trusted-types-eval'", "'report-sha256'", "'report-sha384'", "'report-sha512'",
    }
)
_BARE_KEYWORDS = frozenset(k.strip("'") for k in KEYWORDS)
DIRECTIVES = frozenset(
    {
        "child-src", "connect-src", "default-src", "fenced-frame-src", "font-src", "frame-src", "img-src",
        "manifest-src", "media-src", "object-src", "prefetch-src", "script-src", "script-src-elem",
        "script-src-attr", "style-src", "style-src-elem", "style-src-attr", "worker-src", "base-uri",
        "sandbox", "form-action", "frame-ancestors", "navigate-to", "report-uri", "report-to",
        "upgrade-insecure-requests", "block-all-mixed-content", "require-trusted-types-for",
        "trusted-types", "require-sri-for", "plugin-types", "webrtc",
    }
)
# Directives whose value is not a source list (their tokens are not source expressions).
_NOT_SOURCE_LISTS = frozenset(
    {"sandbox", "report-uri", "report-to", "upgrade-insecure-requests", "block-all-mixed-content",
     "require-trusted-types-for", "trusted-types", "require-sri-for", "plugin-types", "webrtc"}
)
META_IGNORED = ("frame-ancestors", "report-uri", "sandbox")
# Infra "ASCII whitespace": tab, LF, FF, CR, space (not Python's wider str.split set).
_ASCII_WS = "\t\n\f\r "
_ASCII_WS_RE = re.compile(r"[\t\n\f\r ]+")
_BASE64 = r"[A-Za-z0-9+/\-_]+={0,2}"
_NONCE_RE = re.compile(rf"'nonce-{_BASE64}'", re.I)
_HASH_RE = re.compile(rf"'(sha256|sha384|sha512)-({_BASE64})'", re.I)
_DIRECTIVE_NAME_RE = re.compile(r"[a-z0-9-]+")
_HASH_LENGTHS = {"sha256": 44, "sha384": 64, "sha512": 88}  # base64 characters, padded
UNSAFE_SCRIPT_SOURCES = ("*", "http:", "data:")
ANY_HTTPS = ("https:", "https://*")
PERMISSIVE = frozenset({"*", "http:", "https:", "http://*", "https://*", "data:", "blob:", "filesystem:"})


@dataclass(frozen=True)
class CSPPolicy:
    """One serialized policy: directives (name to raw source tokens, first wins), where it came
    from (``header``, ``meta``, ``report-only``) and what browsers ignored in it."""

    directives: dict[str, list[str]]
    origin: str
    raw: str
    duplicates: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    meta_dropped: tuple[str, ...] = ()

    def sources(self, *names: str) -> list[str] | None:
        """The lower-cased sources of the first of ``names`` the policy has, else None."""
        for name in names:
            if name in self.directives:
                return [t.lower() for t in self.directives[name]]
        return None

    def lowered(self) -> dict[str, list[str]]:
        return {k: [t.lower() for t in v] for k, v in self.directives.items()}


def parse_serialized(text: str, origin: str) -> CSPPolicy | None:
    """CSP3 "parse a serialized CSP"; None for a policy without any directive."""
    directives: dict[str, list[str]] = {}
    duplicates: list[str] = []
    unknown: list[str] = []
    for chunk in text.split(";"):
        chunk = chunk.strip(_ASCII_WS)
        if not chunk or not chunk.isascii():
            continue
        tokens = _ASCII_WS_RE.split(chunk)
        name = tokens[0].lower()
        if name in directives:
            if name not in duplicates:
                duplicates.append(clip(name, 60))
            continue
        directives[name] = tokens[1:]
        if name not in DIRECTIVES or not _DIRECTIVE_NAME_RE.fullmatch(name):
            unknown.append(clip(name, 60))
    if not directives:
        return None
    dropped: tuple[str, ...] = ()
    if origin == "meta":
        dropped = tuple(d for d in META_IGNORED if d in directives)
        for d in dropped:
            del directives[d]
    return CSPPolicy(directives, origin, clip(text, 200), tuple(duplicates), tuple(unknown), dropped)


def header_policies(values: Sequence[str], origin: str = "header") -> list[CSPPolicy]:
    """Every policy of the CSP header lines ``values`` (comma-separated policies)."""
    out = []
    for value in values:
        for serialized in value.split(","):
            policy = parse_serialized(serialized, origin)
            if policy is not None:
                out.append(policy)
    return out


def meta_policies(values: Sequence[str]) -> list[CSPPolicy]:
    """The ``<meta http-equiv=Content-Security-Policy>`` policies: one policy per element."""
    return [p for p in (parse_serialized(v, "meta") for v in values) if p is not None]


# ---------------------------------------------------------------------------------------------
# Source expressions


def is_nonce_or_hash(token: str) -> bool:
    """Matches the nonce-source or hash-source grammar (what switches 'unsafe-inline' off)."""
    return bool(_NONCE_RE.fullmatch(token) or _HASH_RE.fullmatch(token))


def source_problem(token: str) -> str | None:
    """Why browsers ignore (or can never match) a source expression; None when well-formed."""
    low = token.lower()
    if low in KEYWORDS or low == "*":
        return None
    if low.startswith("'nonce-"):
        return None if _NONCE_RE.fullmatch(token) else f"malformed nonce {clip(token, 60)} (ignored)"
    if re.match(r"'sha\d*-", low):
        match = _HASH_RE.fullmatch(token)
        if match is None:
            return f"malformed or unsupported hash {clip(token, 60)} (sha256, sha384, sha512 only; ignored)"
        algorithm = match.group(1).lower()
        if len(match.group(2)) != _HASH_LENGTHS[algorithm]:
            return f"hash {clip(token, 60)} has the wrong length for {algorithm}, so it matches nothing"
        return None
    if low.startswith("'"):
        return f"unknown keyword {clip(token, 60)} (ignored)"
    if low in _BARE_KEYWORDS or low.startswith(("nonce-", "sha256-", "sha384-", "sha512-")):
        return f"{clip(token, 60)} without single quotes is read as a host name"
    if "," in token:
        return f"{clip(token, 60)} contains a comma"
    return None


@dataclass(frozen=True)
class ScriptView:
    """What one policy's script list lets through, as browsers apply it."""

    issues: frozenset[str]  # the http.csp.unsafe issues
    any_https: bool
    nonce_based: bool
    strict_dynamic_without_nonce: bool
    directive: str


def script_view(policy: CSPPolicy) -> ScriptView | None:
    """None when the policy does not restrict scripts (no script-src, no default-src)."""
    directive = "script-src" if "script-src" in policy.directives else "default-src"
    low = policy.sources("script-src", "default-src")
    if low is None:
        return None
    raw = policy.directives[directive]
    nonce = any(is_nonce_or_hash(s) for s in raw)
    strict_dynamic = "'strict-dynamic'" in low
    issues: set[str] = set()
    if "'unsafe-inline'" in low and not nonce and not strict_dynamic:
        issues.add("'unsafe-inline'")
    if "'unsafe-eval'" in low:
        issues.add("'unsafe-eval'")
    if not strict_dynamic:
        issues.update(s for s in UNSAFE_SCRIPT_SOURCES if s in low)
    any_https = not strict_dynamic and any(s in low for s in ANY_HTTPS)
    return ScriptView(frozenset(issues), any_https, nonce or strict_dynamic, strict_dynamic and not nonce, directive)


def restricts(policy: CSPPolicy, *names: str) -> bool | None:
    """True when the directive (with its fallbacks) limits loads to less than "anywhere";
    False when it is set but permissive; None when the policy does not set it."""
    low = policy.sources(*names)
    if low is None:
        return None
    if low == ["'none'"] or not low:
        return True
    return not any(s in PERMISSIVE for s in low)


def _which(policy: CSPPolicy, *names: str) -> str:
    for name in names:
        if name in policy.directives:
            return f"{name} {' '.join(policy.directives[name])}".strip()
    return "not set"


# ---------------------------------------------------------------------------------------------
# Verdicts


@dataclass
class CSPVerdicts:
    """The CSP findings of one page, computed together so each reads the same policies."""

    url: str
    enforced: list[CSPPolicy]
    report_only: list[CSPPolicy] = field(default_factory=list)

    def _raw(self) -> list[str]:
        return [p.raw for p in self.enforced][:5]

    def script_views(self) -> list[ScriptView]:
        return [v for v in (script_view(p) for p in self.enforced) if v is not None]

    def unsafe_hit(self) -> Hit | None:
        """http.csp.unsafe as it always meant: every script-restricting policy allows one of
        'unsafe-inline' (not neutralised), 'unsafe-eval', *, http:, data:; or none restricts."""
        views = self.script_views()
        raw = self._raw()
        if not views:
            return hit(
                "http.csp.unsafe",
                f"CSP has no script-src or default-src, so scripts are unrestricted: {raw[0]}",
                url=self.url,
                issues=["no script-src/default-src"],
                policies=raw,
            )
        common = set(views[0].issues)
        for v in views[1:]:
            common &= v.issues
        if not common:
            return None
        ordered = sorted(common)
        return hit(
            "http.csp.unsafe",
            f"CSP {views[0].directive} allows {', '.join(ordered)}: {raw[0]}",
            url=self.url,
            issues=ordered,
            policies=raw,
        )

    def any_https_hit(self) -> Hit | None:
        views = self.script_views()
        if not views or not all(v.any_https for v in views):
            return None
        return hit(
            "http.csp.script_any_https",
            f"CSP {views[0].directive} allows scripts from any HTTPS host (https: or https://*), "
            f"without 'strict-dynamic': {self._raw()[0]}",
            url=self.url,
            policies=self._raw(),
        )

    def object_hit(self) -> Hit | None:
        states = [restricts(p, "object-src", "default-src") for p in self.enforced]
        if any(s is True for s in states):
            return None
        if any(s is False for s in states):
            shown = next(_which(p, "object-src", "default-src") for p, s in zip(self.enforced, states, strict=True) if s is False)
            why = f"'{clip(shown, 120)}' allows plugins from anywhere"
        else:
            why = "neither object-src nor default-src is set"
        return hit(
            "http.csp.object_src",
            f"plugins (<object>, <embed>) are not restricted: {why}; want object-src 'none'",
            url=self.url,
            policies=self._raw(),
        )

    def base_uri_hit(self) -> Hit | None:
        states = [restricts(p, "base-uri") for p in self.enforced]
        if any(s is True for s in states):
            return None
        if any(s is False for s in states):
            shown = next(_which(p, "base-uri") for p, s in zip(self.enforced, states, strict=True) if s is False)
            why = f"'{clip(shown, 120)}' allows any URL"
        elif any(v.nonce_based for v in self.script_views()):
            why = "base-uri is not set (it has no default-src fallback) and scripts are allowed by nonce or hash"
        else:
            return None
        return hit(
            "http.csp.base_uri",
            f"an injected <base> can move the page's relative script URLs: {why}; want base-uri 'self' or 'none'",
            url=self.url,
            policies=self._raw(),
        )

    def form_action_hit(self) -> Hit | None:
        states = [restricts(p, "form-action") for p in self.enforced]
        if any(s is True for s in states) or not any(s is False for s in states):
            return None
        shown = next(_which(p, "form-action") for p, s in zip(self.enforced, states, strict=True) if s is False)
        return hit(
            "http.csp.form_action",
            f"'{clip(shown, 120)}' lets an injected form post to any site (form-action has no "
            "default-src fallback)",
            url=self.url,
            policies=self._raw(),
        )

    def malformed_hit(self) -> Hit | None:
        problems: list[str] = []
        for p in self.enforced:
            problems.extend(f"unknown directive {name} (ignored)" for name in p.unknown)
            for name, sources in p.directives.items():
                if name in _NOT_SOURCE_LISTS or name in p.unknown:
                    continue
                for token in sources:
                    problem = source_problem(token)
                    if problem is not None:
                        problems.append(f"{name}: {problem}")
                if "'none'" in [s.lower() for s in sources] and len(sources) > 1:
                    problems.append(f"{name}: 'none' next to other sources is ignored")
            view = script_view(p)
            if view is not None and view.strict_dynamic_without_nonce:
                problems.append(f"{view.directive}: 'strict-dynamic' without a nonce or hash blocks every script")
        if not problems:
            return None
        unique = list(dict.fromkeys(problems))
        return hit(
            "http.csp.malformed",
            "browsers ignore or never match parts of the CSP: " + "; ".join(unique[:4]),
            url=self.url,
            problems=unique[:20],
            policies=self._raw(),
        )

    def duplicate_hit(self) -> Hit | None:
        names = list(dict.fromkeys(d for p in self.enforced for d in p.duplicates))
        if not names:
            return None
        return hit(
            "http.csp.duplicate_directive",
            f"directive(s) repeated in one policy, browsers keep the first and ignore the rest: {', '.join(names[:10])}",
            url=self.url,
            directives=names[:20],
            policies=self._raw(),
        )

    def hits(self) -> list[Hit]:
        found = [
            self.unsafe_hit(),
            self.any_https_hit(),
            self.object_hit(),
            self.base_uri_hit(),
            self.form_action_hit(),
            self.malformed_hit(),
            self.duplicate_hit(),
        ]
        return [h for h in found if h is not None]


def meta_ignored_hit(url: str, policies: Sequence[CSPPolicy]) -> Hit | None:
    """<meta> policies carrying directives browsers ignore there."""
    dropped = list(dict.fromkeys(d for p in policies for d in p.meta_dropped))
    if not dropped:
        return None
    return hit(
        "http.csp.meta_ignored",
        f"<meta> CSP carries {', '.join(dropped)}, which browsers ignore in <meta>; send it as a header",
        url=url,
        directives=dropped,
    )


def report_only_hit(url: str, report_only: Sequence[CSPPolicy]) -> Hit | None:
    """What the report-only policies would flag: reported (info), never counted as enforced."""
    if not report_only:
        return None
    probe = CSPVerdicts(url, list(report_only))
    flagged = [h for h in probe.hits() if h is not None]
    summary = "; ".join(f"{h.id.removeprefix('http.csp.')}: {h.evidence}" for h in flagged[:3])
    text = f"Content-Security-Policy-Report-Only is not enforced: {report_only[0].raw}"
    if summary:
        text += f" (it would flag {summary})"
    return hit(
        "http.csp.report_only",
        text,
        url=url,
        policies=[p.raw for p in report_only][:5],
        would_flag=sorted({h.id for h in flagged}),
    )
