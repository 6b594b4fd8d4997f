"""The table of header cases served black-box by the header-depth lab (test_header_depth.py).

Each case changes one thing on a well-configured page and names every finding id the http
check must then raise (short ids, without ``http.``): exactly those, no more. The rules come
from RFC 6797 (HSTS), CSP Level 3, the HTML and Fetch standards (X-Frame-Options,
X-Content-Type-Options, COOP/COEP, CORP, CORS), the Referrer Policy spec, RFC 8941
(structured fields) and RFC 6265bis (cookies), as browsers apply them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

H = "hdr.test"  # the audited host: a registrable domain of its own (".test" is not in the PSL)
SUB = "app.hdr.test"
GOOD_STS = "max-age=63072000; includeSubDomains; preload"
GOOD_CSP = (
    "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'self'"
)
NO_FA_CSP = "default-src 'self'; base-uri 'self'"  # no frame-ancestors: X-Frame-Options decides
P = "object-src 'none'; base-uri 'self'; "  # CSP prefix isolating the script-src rules
NONCE = "'nonce-R4nd0mN0nc3Value+/=='"
SHA256 = "'sha256-" + "A" * 43 + "='"
SHA384 = "'sha384-" + "B" * 64 + "'"
BASE_HEADERS: list[tuple[str, str]] = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Strict-Transport-Security", GOOD_STS),
    ("Content-Security-Policy", GOOD_CSP),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Set-Cookie", "__Host-sid=s3cr3t; Path=/; Secure; HttpOnly; SameSite=Lax"),
]


@dataclass
class HeaderCase:
    """One served page: ``headers`` replace every baseline line of the same name (an empty
    list drops it), ``meta`` goes into <head>, ``cors`` picks how the server answers Origin."""

    family: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    expected: set[str] = field(default_factory=set)
    meta: str = ""
    evidence: str | None = None  # a text the evidence of one expected finding must contain
    host: str = H
    cors: str | None = None

    def served_headers(self) -> list[tuple[str, str]]:
        names = {n.lower() for n in self.headers}
        out = [h for h in BASE_HEADERS if h[0].lower() not in names]
        for name, lines in self.headers.items():
            out.extend((name, line) for line in lines)
        return out

    def full_ids(self) -> set[str]:
        return {f"http.{e}" for e in self.expected}


CASES: dict[str, HeaderCase] = {"baseline": HeaderCase("baseline")}


def _add(family: str, name: str, case: HeaderCase) -> None:
    key = f"{family}_{name}"
    assert key not in CASES, key
    CASES[key] = case


def hsts(name: str, *lines: str, expect: set[str] | None = None, ev: str | None = None) -> None:
    _add("hsts", name, HeaderCase("hsts", {"Strict-Transport-Security": list(lines)}, expect or set(), evidence=ev))


def csp(name: str, *lines: str, expect: set[str] | None = None, ev: str | None = None, meta: str = "",
        report_only: list[str] | None = None) -> None:
    headers = {"Content-Security-Policy": list(lines)}
    if report_only is not None:
        headers["Content-Security-Policy-Report-Only"] = report_only
    _add("csp", name, HeaderCase("csp", headers, {f"csp.{e}" for e in expect or set()}, meta=meta, evidence=ev))


def meta_csp(content: str) -> str:
    return f'<meta http-equiv="Content-Security-Policy" content="{content}">'


def xfo(name: str, *lines: str, csp_lines: list[str] | None = None, expect: bool, ev: str | None = None,
        meta: str = "", also: frozenset[str] = frozenset()) -> None:
    headers = {"X-Frame-Options": list(lines), "Content-Security-Policy": csp_lines or [NO_FA_CSP]}
    expected = ({"clickjacking"} if expect else set()) | set(also)
    _add("framing", name, HeaderCase("framing", headers, expected, meta=meta, evidence=ev))


def xcto(name: str, *lines: str, expect: bool, ev: str | None = None) -> None:
    _add("xcto", name, HeaderCase("xcto", {"X-Content-Type-Options": list(lines)},
                                  {"xcto.missing"} if expect else set(), evidence=ev))


def referrer(name: str, *lines: str, meta: str | None = None, expect: bool, ev: str | None = None) -> None:
    tag = f'<meta name="referrer" content="{meta}">' if meta is not None else ""
    _add("referrer", name, HeaderCase("referrer", {"Referrer-Policy": list(lines)},
                                      {"referrer_policy.weak"} if expect else set(), meta=tag, evidence=ev))


def cross(header: str, family: str, finding: str, name: str, *lines: str, expect: bool, ev: str | None = None) -> None:
    _add(family, name, HeaderCase(family, {header: list(lines)}, {finding} if expect else set(), evidence=ev))


def cors(name: str, mode: str, expect: set[str], ev: str | None = None) -> None:
    _add("cors", name, HeaderCase("cors", {}, {f"cors.{e}" for e in expect}, cors=mode, evidence=ev))


def cookie(name: str, *lines: str, expect: set[str] | None = None, host: str = H, ev: str | None = None) -> None:
    _add("cookie", name, HeaderCase("cookie", {"Set-Cookie": list(lines)},
                                    {f"cookie.{e}" for e in expect or set()}, host=host, evidence=ev))


# ----------------------------------------------------------------------------- HSTS (RFC 6797 6.1)
M, SHORT, ISD, PRE = "hsts.missing", "hsts.short_max_age", "hsts.no_include_subdomains", "hsts.preload_not_ready"
hsts("comma_pasted_twice", "max-age=15768000; includeSubDomains, max-age=15768000; includeSubDomains",
     expect={M}, ev="comma")
hsts("comma_between_directives", "max-age=31536000, includeSubDomains", expect={M}, ev="comma")
hsts("comma_leading", "max-age=31536000; ,includeSubDomains", expect={M})
hsts("absent", expect={M}, ev="no Strict-Transport-Security")
hsts("max_age_zero", "max-age=0", expect={M}, ev="max-age=0")
hsts("max_age_letters", "max-age=abc; includeSubDomains", expect={M}, ev="not a number")
hsts("max_age_negative", "max-age=-1; includeSubDomains", expect={M})
hsts("max_age_fraction", "max-age=1.5; includeSubDomains", expect={M})
hsts("max_age_plus", "max-age=+31536000; includeSubDomains", expect={M})
hsts("max_age_hex", "max-age=0x1E13380; includeSubDomains", expect={M})
hsts("max_age_single_quotes", "max-age='31536000'; includeSubDomains", expect={M})
hsts("max_age_empty", "max-age=; includeSubDomains", expect={M})
hsts("max_age_no_value", "max-age; includeSubDomains", expect={M})
hsts("no_max_age", "includeSubDomains; preload", expect={M}, ev="no max-age")
hsts("duplicate_max_age", "max-age=31536000; max-age=31536000; includeSubDomains", expect={M}, ev="twice")
hsts("duplicate_case_insensitive", "MAX-AGE=31536000; max-age=1; includeSubDomains", expect={M}, ev="twice")
hsts("duplicate_include_subdomains", "max-age=31536000; includeSubDomains; includesubdomains", expect={M})
hsts("duplicate_preload", "max-age=31536000; includeSubDomains; preload; preload", expect={M})
hsts("unterminated_quote", 'max-age="31536000; includeSubDomains', expect={M}, ev="unterminated")
hsts("missing_semicolon", "max-age=31536000 includeSubDomains", expect={M}, ev="only ';'")
hsts("missing_semicolon_flags", "max-age=31536000; includeSubDomains preload", expect={M})
hsts("include_subdomains_value", "max-age=31536000; includeSubDomains=yes; preload", expect={M}, ev="takes none")
hsts("preload_value", "max-age=31536000; includeSubDomains; preload=1", expect={M})
hsts("first_line_invalid", "max-age=x", GOOD_STS, expect={M})
hsts("first_line_short", "max-age=600; includeSubDomains", GOOD_STS, expect={SHORT}, ev="first of 2 header lines")
hsts("quoted_max_age", 'max-age="31536000"; includeSubDomains; preload')
hsts("spaces_around_semicolons", "max-age=31536000 ; includeSubDomains ; preload")
hsts("no_spaces", "max-age=31536000;includeSubDomains;preload")
hsts("empty_directives", "max-age=31536000;; includeSubDomains;;preload;")
hsts("leading_semicolon", "; max-age=31536000; includeSubDomains; preload")
hsts("spaces_around_equals", "max-age = 31536000; includeSubDomains; preload")
hsts("tabs", "max-age=31536000;\tincludeSubDomains;\tpreload")
hsts("unknown_directive", "max-age=31536000; includeSubDomains; preload; report-uri=x")
hsts("unknown_quoted_semicolon", 'max-age=31536000; includeSubDomains; preload; note="a;b,c"')
hsts("mixed_case_names", "Max-Age=31536000; INCLUDESUBDOMAINS; Preload")
hsts("huge_max_age", "max-age=99999999999999999999; includeSubDomains; preload")
hsts("short_day", "max-age=86400; includeSubDomains", expect={SHORT}, ev="below")
hsts("short_by_one", "max-age=15767999; includeSubDomains", expect={SHORT})
hsts("six_months", "max-age=15768000; includeSubDomains")
hsts("no_include_subdomains", "max-age=31536000", expect={ISD}, ev="includeSubDomains")
hsts("preload_without_subdomains", "max-age=31536000; preload", expect={ISD, PRE})
hsts("preload_short", "max-age=15768000; includeSubDomains; preload", expect={PRE}, ev="below one year")
hsts("preload_ready", "max-age=31536000; includeSubDomains; preload")

# ----------------------------------------------------------------------------- CSP Level 3
csp("absent", expect={"missing"})
csp("report_only_alone", report_only=[GOOD_CSP], expect={"missing", "report_only"}, ev="not enforced")
csp("report_only_beside_enforced", GOOD_CSP, report_only=["script-src *"], expect={"report_only"}, ev="would flag")
csp("empty_header", " ", expect={"missing"})
csp("only_semicolons", ";;;", expect={"missing"})
csp("unsafe_inline", P + "script-src 'self' 'unsafe-inline'", expect={"unsafe"}, ev="'unsafe-inline'")
csp("unsafe_inline_nonce", P + f"script-src 'unsafe-inline' {NONCE}")
csp("unsafe_inline_hash", P + f"script-src 'unsafe-inline' {SHA256}")
csp("unsafe_inline_hash_uppercase_algo", P + "script-src 'unsafe-inline' 'SHA256-" + "A" * 43 + "='")
csp("hash_sha384", P + f"script-src 'self' {SHA384}")
csp("hash_wrong_length", P + "script-src 'unsafe-inline' 'sha256-abc'", expect={"malformed"}, ev="wrong length")
csp("hash_sha512_wrong_length", P + "script-src 'self' 'sha512-" + "C" * 43 + "='", expect={"malformed"})
csp("hash_sha1", P + "script-src 'unsafe-inline' 'sha1-abcd'", expect={"unsafe", "malformed"}, ev="unsupported")
csp("nonce_empty", P + "script-src 'unsafe-inline' 'nonce-'", expect={"unsafe", "malformed"}, ev="malformed nonce")
csp("nonce_bad_char", P + "script-src 'unsafe-inline' 'nonce-ab$cd'", expect={"unsafe", "malformed"})
csp("nonce_unquoted", P + "script-src 'self' nonce-abcdef", expect={"malformed"}, ev="without single quotes")
csp("self_unquoted", P + "script-src self", expect={"malformed"})
csp("unknown_keyword", P + "script-src 'self' 'unsafe-dynamic'", expect={"malformed"}, ev="unknown keyword")
csp("unsafe_eval", P + "script-src 'self' 'unsafe-eval'", expect={"unsafe"})
csp("unsafe_eval_uppercase", P + "script-src 'self' 'UNSAFE-EVAL'", expect={"unsafe"})
csp("wasm_unsafe_eval", P + "script-src 'self' 'wasm-unsafe-eval'")
csp("unsafe_hashes", P + f"script-src 'self' 'unsafe-hashes' {SHA256}")
csp("wildcard", P + "script-src *", expect={"unsafe"})
csp("http_scheme", P + "script-src 'self' http:", expect={"unsafe"})
csp("data_scheme", P + "script-src 'self' data:", expect={"unsafe"})
csp("https_scheme", P + "script-src 'self' https:", expect={"script_any_https"}, ev="any HTTPS host")
csp("https_wildcard_host", P + "script-src https://*", expect={"script_any_https"})
csp("blob_scheme", P + "script-src 'self' blob:")
csp("host_sources", P + "script-src 'self' https://cdn.example.net https://*.example.org")
csp("strict_dynamic_nonce", P + f"script-src {NONCE} 'strict-dynamic' https: http: 'unsafe-inline'")
csp("strict_dynamic_hash", P + f"script-src {SHA256} 'strict-dynamic' *")
csp("strict_dynamic_alone", P + "script-src 'strict-dynamic'", expect={"malformed"}, ev="blocks every script")
csp("strict_dynamic_inline", P + "script-src 'strict-dynamic' 'unsafe-inline'", expect={"malformed"})
csp("strict_dynamic_keeps_eval", P + f"script-src {NONCE} 'strict-dynamic' 'unsafe-eval'", expect={"unsafe"})
csp("default_src_unsafe_inline", "default-src 'self' 'unsafe-inline'; base-uri 'self'", expect={"unsafe"})
csp("default_src_wildcard", "default-src *; base-uri 'self'", expect={"unsafe", "object_src"})
csp("default_src_self", "default-src 'self'; base-uri 'self'")
csp("default_src_none", "default-src 'none'")
csp("default_src_https", "default-src https:; object-src 'none'; base-uri 'self'", expect={"script_any_https"})
csp("script_src_overrides_default", "default-src * 'unsafe-inline'; script-src 'self'; object-src 'none'")
csp("object_falls_back_to_default_wildcard", "default-src *; script-src 'self'; base-uri 'self'",
    expect={"object_src"}, ev="default-src *")
csp("object_src_unset", "script-src 'self'; base-uri 'self'", expect={"object_src"}, ev="neither object-src")
csp("object_src_wildcard", "script-src 'self'; object-src *; base-uri 'self'", expect={"object_src"})
csp("object_src_data", "script-src 'self'; object-src data:; base-uri 'self'", expect={"object_src"})
csp("object_src_https", "script-src 'self'; object-src https:; base-uri 'self'", expect={"object_src"})
csp("object_src_self", "script-src 'self'; object-src 'self'; base-uri 'self'")
csp("object_src_empty", "script-src 'self'; object-src; base-uri 'self'")
csp("base_uri_unset_nonce", f"object-src 'none'; script-src {NONCE}", expect={"base_uri"}, ev="no default-src fallback")
csp("base_uri_unset_hash", f"object-src 'none'; script-src {SHA256}", expect={"base_uri"})
csp("base_uri_unset_allowlist", "object-src 'none'; script-src 'self'")
csp("base_uri_wildcard", "object-src 'none'; script-src 'self'; base-uri *", expect={"base_uri"}, ev="base-uri *")
csp("base_uri_https", "object-src 'none'; script-src 'self'; base-uri https:", expect={"base_uri"})
csp("base_uri_none_nonce", f"object-src 'none'; script-src {NONCE}; base-uri 'none'")
csp("form_action_wildcard", P + "script-src 'self'; form-action *", expect={"form_action"}, ev="form-action *")
csp("form_action_https", P + "script-src 'self'; form-action https:", expect={"form_action"})
csp("form_action_self", P + "script-src 'self'; form-action 'self' https://sso.example.net")
csp("duplicate_safe_first", P + "script-src 'self'; script-src *", expect={"duplicate_directive"}, ev="keep the first")
csp("duplicate_unsafe_first", P + "script-src *; script-src 'self'", expect={"unsafe", "duplicate_directive"})
csp("duplicate_case_insensitive", P + "script-src 'self'; SCRIPT-SRC *", expect={"duplicate_directive"})
csp("uppercase_names", "OBJECT-SRC 'none'; BASE-URI 'self'; SCRIPT-SRC 'self'")
csp("uppercase_keyword", P + "script-src 'SELF'")
csp("unknown_directive_typo", P + "script-src 'self'; scirpt-src *", expect={"malformed"}, ev="unknown directive")
csp("none_with_sources", P + "script-src 'none' https://cdn.example.net", expect={"malformed"}, ev="'none' next to")
csp("non_ascii_directive_skipped", P + "script-src 'self'; scr\u00efpt-src *")
csp("two_policies_comma", "script-src * 'unsafe-inline', " + P + "script-src 'self'")
csp("two_lines_disjoint_weaknesses", P + "script-src 'self' 'unsafe-inline'", "script-src 'self' 'unsafe-eval'")
csp("two_lines_same_weakness", P + "script-src 'self' 'unsafe-eval'", "script-src 'unsafe-eval' 'self'",
    expect={"unsafe"})
csp("second_policy_without_scripts", "frame-ancestors 'none'", P + "script-src 'self'")
csp("no_script_restriction", "upgrade-insecure-requests; frame-ancestors 'self'", expect={"unsafe", "object_src"},
    ev="no script-src or default-src")
csp("script_src_elem_only", "object-src 'none'; script-src-elem 'self'", expect={"unsafe"})
csp("header_comma_two_policies", "default-src 'self', script-src *")
csp("meta_good", meta=meta_csp("default-src 'self'; base-uri 'self'"))
csp("meta_comma_is_one_policy", meta=meta_csp("default-src 'self', script-src *"),
    expect={"unsafe", "object_src", "malformed"})
csp("meta_frame_ancestors", meta=meta_csp("default-src 'self'; frame-ancestors 'none'"),
    expect={"meta_ignored"}, ev="frame-ancestors")
csp("meta_only_frame_ancestors", meta=meta_csp("frame-ancestors 'none'"), expect={"missing", "meta_ignored"})
csp("meta_report_uri", meta=meta_csp("default-src 'self'; report-uri /csp"), expect={"meta_ignored"})
csp("meta_sandbox", meta=meta_csp("default-src 'self'; sandbox"), expect={"meta_ignored"})
csp("meta_restricts_header", P + "script-src 'self' 'unsafe-inline'", meta=meta_csp("script-src 'self'"))
csp("meta_unsafe_eval", meta=meta_csp("default-src 'self' 'unsafe-eval'"), expect={"unsafe"})

# ----------------------------------------------------------------------------- X-Frame-Options / frame-ancestors
xfo("deny", "DENY", expect=False)
xfo("sameorigin", "SAMEORIGIN", expect=False)
xfo("lowercase", "deny", expect=False)
xfo("mixed_case_spaces", " SameOrigin ", expect=False)
xfo("allow_from", "ALLOW-FROM https://partner.example", expect=True, ev="ALLOW-FROM is obsolete")
xfo("allowall", "ALLOWALL", expect=True, ev="ALLOWALL")
xfo("conflict_blocks", "DENY, SAMEORIGIN", expect=False, ev=None)
xfo("repeated_value", "DENY, DENY", expect=False)
xfo("two_lines_conflict", "DENY", "SAMEORIGIN", expect=False)
xfo("sameorigin_and_allow_from", "SAMEORIGIN, ALLOW-FROM https://x.example", expect=False)
xfo("two_allow_from", "ALLOW-FROM https://a.example, ALLOW-FROM https://b.example", expect=True,
    ev="several invalid values")
xfo("none_value", "none", expect=True, ev="not DENY or SAMEORIGIN")
xfo("semicolon", "DENY;", expect=True)
xfo("absent", expect=True, ev="no X-Frame-Options")
xfo("ancestors_none", csp_lines=["frame-ancestors 'none'; " + NO_FA_CSP], expect=False)
xfo("ancestors_self_partner", csp_lines=["frame-ancestors 'self' https://partner.example; " + NO_FA_CSP],
    expect=False)
xfo("ancestors_empty", csp_lines=["frame-ancestors; " + NO_FA_CSP], expect=False)
xfo("ancestors_star_overrides_xfo", "DENY", csp_lines=["frame-ancestors *; " + NO_FA_CSP], expect=True,
    ev="X-Frame-Options 'DENY' is ignored")
xfo("ancestors_https", csp_lines=["frame-ancestors https:; " + NO_FA_CSP], expect=True, ev="frame-ancestors https:")
xfo("ancestors_http_wildcard", csp_lines=["frame-ancestors http://*; " + NO_FA_CSP], expect=True)
xfo("ancestors_second_policy_strict", csp_lines=["frame-ancestors *; " + NO_FA_CSP, "frame-ancestors 'self'"],
    expect=False)
xfo("ancestors_in_meta_ignored", meta=meta_csp("frame-ancestors 'none'"), expect=True,
    also=frozenset({"csp.meta_ignored"}))
_add("framing", "ancestors_report_only", HeaderCase(
    "framing", {"X-Frame-Options": [], "Content-Security-Policy": [NO_FA_CSP],
                "Content-Security-Policy-Report-Only": ["frame-ancestors 'none'"]},
    {"clickjacking", "csp.report_only"}))

# ----------------------------------------------------------------------------- X-Content-Type-Options
xcto("nosniff", "nosniff", expect=False)
xcto("uppercase", "NOSNIFF", expect=False)
xcto("spaces", "  nosniff  ", expect=False)
xcto("repeated", "nosniff, nosniff", expect=False)
xcto("first_counts", "nosniff, other", expect=False)
xcto("second_does_not_count", "other, nosniff", expect=True, ev="only the first value counts")
xcto("two_lines_second", "sniff", "nosniff", expect=True)
xcto("hyphenated", "no-sniff", expect=True, ev="not nosniff")
xcto("semicolon", "nosniff;", expect=True)
xcto("absent", expect=True, ev="no X-Content-Type-Options")
xcto("empty", "", expect=True)

# ----------------------------------------------------------------------------- Referrer-Policy
for _token in ("no-referrer", "same-origin", "origin", "strict-origin", "origin-when-cross-origin",
               "strict-origin-when-cross-origin"):
    referrer(_token.replace("-", "_"), _token, expect=False)
referrer("unsafe_url", "unsafe-url", expect=True, ev="unsafe-url")
referrer("no_referrer_when_downgrade", "no-referrer-when-downgrade", expect=True)
referrer("uppercase", "NO-REFERRER", expect=False)
referrer("last_token_wins_weak", "no-referrer, unsafe-url", expect=True)
referrer("last_token_wins_strict", "unsafe-url, no-referrer", expect=False)
referrer("unknown_last_ignored", "strict-origin, x-future", expect=False)
referrer("unknown_after_weak", "unsafe-url, x-future", expect=True, ev="unknown header token")
referrer("only_unknown", "x-future", expect=True, ev="no recognised policy token")
referrer("two_lines", "unsafe-url", "strict-origin", expect=False)
referrer("legacy_name_in_header", "never", expect=True)
referrer("absent", expect=True, ev="no Referrer-Policy")
referrer("empty", "", expect=True)
referrer("meta_alone", meta="no-referrer", expect=False)
referrer("meta_legacy_never", meta="never", expect=False)
referrer("meta_legacy_default", meta="default", expect=False)
referrer("meta_legacy_always", meta="always", expect=True)
referrer("meta_legacy_crossorigin", meta="origin-when-crossorigin", expect=False)
referrer("meta_mixed_case", meta="Same-Origin", expect=False)
referrer("meta_list_ignored", meta="no-referrer, origin", expect=True, ev="single token")
referrer("meta_overrides_header_weaker", "strict-origin", meta="unsafe-url", expect=True, ev="from meta")
referrer("meta_overrides_header_stronger", "unsafe-url", meta="same-origin", expect=False)
referrer("meta_invalid_keeps_header", "strict-origin", meta="bogus", expect=False)

# ----------------------------------------------------------------------------- COOP / COEP / CORP
COOP, COEP, CORP = "Cross-Origin-Opener-Policy", "Cross-Origin-Embedder-Policy", "Cross-Origin-Resource-Policy"
for _v in ("same-origin", "same-origin-allow-popups", "noopener-allow-popups"):
    cross(COOP, "coop", "coop.missing", _v.replace("-", "_"), _v, expect=False)
cross(COOP, "coop", "coop.missing", "params", 'same-origin; report-to="coop"', expect=False)
cross(COOP, "coop", "coop.missing", "boolean_param", "same-origin; report-only", expect=False)
cross(COOP, "coop", "coop.missing", "unsafe_none", "unsafe-none", expect=True, ev="no isolation")
cross(COOP, "coop", "coop.missing", "absent", expect=True, ev="no Cross-Origin-Opener-Policy")
cross(COOP, "coop", "coop.missing", "wrong_case", "Same-Origin", expect=True, ev="case-sensitive")
cross(COOP, "coop", "coop.missing", "list", "same-origin, same-origin", expect=True, ev="comma")
cross(COOP, "coop", "coop.missing", "two_lines", "same-origin", "same-origin", expect=True, ev="header lines")
cross(COOP, "coop", "coop.missing", "string", '"same-origin"', expect=True, ev="not a token")
cross(COOP, "coop", "coop.missing", "underscore", "same_origin", expect=True, ev="unknown value")
cross(COOP, "coop", "coop.missing", "dangling_semicolon", "same-origin;", expect=True)
cross(COOP, "coop", "coop.missing", "space_before_param", "same-origin ;x", expect=True)
for _v in ("require-corp", "credentialless"):
    cross(COEP, "coep", "coep.missing", _v.replace("-", "_"), _v, expect=False)
cross(COEP, "coep", "coep.missing", "params", 'require-corp; report-to="e"', expect=False)
cross(COEP, "coep", "coep.missing", "unsafe_none", "unsafe-none", expect=True)
cross(COEP, "coep", "coep.missing", "absent", expect=True, ev="not cross-origin isolated")
cross(COEP, "coep", "coep.missing", "uppercase", "REQUIRE-CORP", expect=True, ev="case-sensitive")
cross(COEP, "coep", "coep.missing", "list", "require-corp, credentialless", expect=True)
cross(COEP, "coep", "coep.missing", "unknown", "corp", expect=True)
for _v in ("same-origin", "same-site", "cross-origin"):
    cross(CORP, "corp", "corp.missing", _v.replace("-", "_"), _v, expect=False)
cross(CORP, "corp", "corp.missing", "absent", expect=True, ev="no Cross-Origin-Resource-Policy")
cross(CORP, "corp", "corp.missing", "wrong_case", "Same-Origin", expect=True, ev="case-sensitive")
cross(CORP, "corp", "corp.missing", "list", "same-origin, same-site", expect=True)
cross(CORP, "corp", "corp.missing", "two_lines", "same-origin", "same-origin", expect=True, ev="header lines")
cross(CORP, "corp", "corp.missing", "none", "none", expect=True, ev="unknown value")
cross(CORP, "corp", "corp.missing", "structured_params", "same-origin; x=1", expect=True)

# ----------------------------------------------------------------------------- CORS (an Origin is sent)
cors("no_acao", "none", set())
cors("star", "star", set())
cors("star_credentials", "star_credentials", {"wildcard_credentials"}, ev="refuse '*' with credentials")
cors("reflect_all_credentials", "reflect_credentials", {"origin_reflected", "null_origin"},
     ev="auditor-probe.invalid")
cors("reflect_all_public", "reflect", {"origin_reflected_public", "null_origin"})
cors("reflect_https_credentials", "reflect_https_credentials", {"origin_reflected"}, ev="authenticated")
cors("reflect_https_public", "reflect_https", {"origin_reflected_public"})
cors("null_credentials", "null_credentials", {"null_origin"}, ev="Origin: null")
cors("allowlist", "allowlist", set())
cors("credentials_wrong_case", "reflect_https_true_uppercase", {"origin_reflected_public"})
cors("two_acao_lines", "reflect_twice", set())
cors("acao_list", "reflect_list", set())

# ----------------------------------------------------------------------------- Cookies (RFC 6265bis)
cookie("host_prefix_ok", "__Host-sid=1; Path=/; Secure; HttpOnly; SameSite=Lax")
cookie("host_prefix_no_secure", "__Host-sid=1; Path=/; HttpOnly; SameSite=Lax",
       expect={"prefix_violation", "no_secure"}, ev="no Secure")
cookie("host_prefix_domain", "__Host-sid=1; Path=/; Secure; HttpOnly; SameSite=Lax; Domain=hdr.test",
       expect={"prefix_violation"}, ev="Domain=hdr.test")
cookie("host_prefix_path", "__Host-sid=1; Path=/app; Secure; HttpOnly; SameSite=Lax",
       expect={"prefix_violation"}, ev="Path is not /")
cookie("host_prefix_no_path", "__Host-sid=1; Secure; HttpOnly; SameSite=Lax", expect={"prefix_violation"},
       ev="no Path=/")
cookie("host_prefix_uppercase", "__HOST-sid=1; Path=/; HttpOnly; SameSite=Lax",
       expect={"prefix_violation", "no_secure"})
cookie("secure_prefix_ok", "__Secure-id=1; Secure; SameSite=Lax")
cookie("secure_prefix_domain_ok", "__Secure-id=1; Secure; Domain=hdr.test; SameSite=Lax")
cookie("secure_prefix_no_secure", "__Secure-id=1; SameSite=Lax", expect={"prefix_violation", "no_secure"},
       ev="__Secure- cookie without Secure")
cookie("secure_prefix_lowercase", "__secure-id=1; SameSite=Lax", expect={"prefix_violation", "no_secure"})
cookie("not_a_prefix", "_Host-id=1; SameSite=Lax", expect={"no_secure"})
cookie("samesite_none_no_secure", "w=1; SameSite=None", expect={"samesite_none_insecure", "no_secure"},
       ev="SameSite=None without Secure")
cookie("samesite_none_secure", "w=1; SameSite=None; Secure")
cookie("samesite_none_lowercase", "w=1; samesite=none; secure")
cookie("samesite_last_wins_lax", "w=1; Secure; SameSite=None; SameSite=Lax")
cookie("samesite_last_wins_none", "w=1; SameSite=Lax; SameSite=None", expect={"samesite_none_insecure", "no_secure"})
cookie("samesite_invalid", "w=1; Secure; SameSite=Sometimes", expect={"no_samesite"})
cookie("deleted_prefix_ignored", "__Host-sid=; Max-Age=0")
_SESSION = "sessionid=1; Secure; HttpOnly; SameSite=Lax"
cookie("domain_registrable_from_sub", f"{_SESSION}; Domain=hdr.test", host=SUB, expect={"domain_broad"},
       ev="every subdomain")
cookie("domain_leading_dot", f"{_SESSION}; Domain=.hdr.test", host=SUB, expect={"domain_broad"})
cookie("domain_uppercase", f"{_SESSION}; Domain=HDR.TEST", host=SUB, expect={"domain_broad"})
cookie("domain_not_session", "theme=1; Secure; SameSite=Lax; Domain=hdr.test", host=SUB)
cookie("domain_own_host", f"{_SESSION}; Domain=app.hdr.test", host=SUB)
cookie("domain_apex_on_apex", f"{_SESSION}; Domain=hdr.test")
cookie("domain_empty_ignored", f"{_SESSION}; Domain=", host=SUB)
cookie("domain_public_suffix", f"{_SESSION}; Domain=test", host=SUB, expect={"domain_broad"}, ev="public suffix")
cookie("domain_foreign", f"{_SESSION}; Domain=other.test", host=SUB, expect={"domain_broad"}, ev="does not cover")
cookie("domain_gov_vn", f"{_SESSION}; Domain=gov.vn", host="portal.hdr.gov.vn", expect={"domain_broad"},
       ev="gov.vn is a public suffix")


def family_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for case in CASES.values():
        counts[case.family] = counts.get(case.family, 0) + 1
    return counts
