"""Network-trust certificates: a signed, verifiable statement that a site met the policy.

Certificates are their own package because four different jobs meet in them, each with its
own reasons to change:

- :mod:`certificates.rules` judges one stored scan of a site against the policy's
  ``certificate:`` rules (grade, findings, checks, feeds, level requirements);
- :mod:`certificates.signing` holds the issuer's Ed25519 key and turns a payload into a
  token (``TNM1.<payload>.<signature>``) that anyone with the public key can check offline;
- :mod:`certificates.lifecycle` keeps the stored state: issue, renewal and suspension on
  re-audits, revocation, expiry, listing;
- :mod:`certificates.verify` answers a stranger holding a PDF, a serial or a token.

The names below are the surface the CLI, the reports and the scheduler use. New code should
import from the submodule (``from certificates.verify import read_pdf_token``); note that
``certificates.verify`` here is the function, so the module is reached with ``from``.
"""

from __future__ import annotations

from certificates.lifecycle import (
    STATUSES,
    Transition,
    certificate_dict,
    get_certificate,
    issue_certificate,
    list_certificates,
    reassess,
    refresh_expired,
    revoke,
)
from certificates.rules import (
    RULE_IDS,
    CertificationRefused,
    RuleCheck,
    certificate_rules,
    feeds_rule_applies,
    find_site,
    forbidden_severities,
    latest_finished_scan,
)
from certificates.signing import (
    canonical_json,
    certificate_token,
    key_id,
    load_issuer_key,
    make_token,
    parse_token,
    public_key_pem,
    resolve_key_path,
    sign_payload,
)
from certificates.verify import (
    PDF_META_PAYLOAD,
    PDF_META_SIGNATURE,
    PDF_META_TOKEN,
    VerifyResult,
    read_pdf_token,
    verify,
)

__all__ = [
    "PDF_META_PAYLOAD", "PDF_META_SIGNATURE", "PDF_META_TOKEN", "RULE_IDS", "STATUSES",
    "CertificationRefused", "RuleCheck", "Transition", "VerifyResult",
    "canonical_json", "certificate_dict", "certificate_rules", "certificate_token", "feeds_rule_applies",
    "find_site", "forbidden_severities", "get_certificate", "issue_certificate", "key_id",
    "latest_finished_scan", "list_certificates", "load_issuer_key", "make_token", "parse_token",
    "public_key_pem", "reassess", "read_pdf_token", "refresh_expired", "resolve_key_path", "revoke",
    "sign_payload", "verify",
]
