"""Fuzz what a stranger hands to certificate verification: token text (the QR code's payload),
serials and base64url halves (``certificates.signing``, ``certificates.verify``).

Property: ``parse_token`` always returns a :class:`ParsedToken` (a payload or an error, one
line); ``unb64url`` returns bytes or raises ValueError; ``verify`` on any string returns a
:class:`VerifyResult` with a known status, or raises AuditorError for text that is neither a
token nor a serial; never anything else. Tokens signed with the real key but carrying random
payloads reach the register lookup too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzz_strategies import assert_one_line, mixed
from hypothesis import example, given
from hypothesis import strategies as st
from sqlmodel import Session

from auditor import storage
from auditor.errors import AuditorError
from certificates.signing import (
    TOKEN_PREFIX,
    ParsedToken,
    b64url,
    canonical_json,
    load_issuer_key,
    make_token,
    parse_token,
    sign_payload,
    unb64url,
)
from certificates.verify import VERIFY_STATUSES, VerifyResult, verify

b64_text = mixed("A", "a", "-", "_", "+", "/", "=", "==", "QQ", "QR", "e30", "W10", "bnVsbA", max_size=20)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=3), max_leaves=5)
payloads = st.dictionaries(st.sampled_from(["serial", "site", "expires", "v"]) | st.text(max_size=8), json_values,
                           max_size=5)
tokens = st.one_of(
    mixed(TOKEN_PREFIX, ".", "TNM1.", "e30", "W10", "=", " ", "\n", "\t", "-", "_", "+", "/", max_size=20),
    st.builds(lambda body, sig, sep: sep.join([TOKEN_PREFIX, body, sig]), b64_text, b64_text,
              st.sampled_from([".", ". ", "\n."])),
    st.builds(lambda raw, sig: f"{TOKEN_PREFIX}.{b64url(raw)}.{b64url(sig)}", st.binary(max_size=80),
              st.binary(max_size=70)),
    st.builds(lambda p: f"{TOKEN_PREFIX}.{b64url(json.dumps(p).encode())}.{b64url(bytes(64))}", payloads),
)


@pytest.fixture(scope="module")
def register(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Session, Path]]:
    base = tmp_path_factory.mktemp("fuzz-verify")
    key = base / "issuer.pem"
    load_issuer_key(key, create=True)
    with storage.session_scope(f"sqlite:///{base / 'verify.db'}") as session:
        yield session, key


@given(b64_text)
@example("QR")  # stray low bits: another spelling of b"A"
@example("QQ==")
@example("A")
def test_unb64url(text: str) -> None:
    try:
        data = unb64url(text)
    except ValueError:
        return
    assert b64url(data) == text


@given(tokens)
@example(f"{TOKEN_PREFIX}.{b64url(b'[' * 5000)}.{b64url(b'x')}")
@example(f"{TOKEN_PREFIX}.{b64url(b'1e99999')}.{b64url(b'x')}")
@example(TOKEN_PREFIX + "." + b64url(bytes([255])) + "." + b64url(b"x"))
def test_parse_token(token: str) -> None:
    parsed = parse_token(token)
    assert isinstance(parsed, ParsedToken)
    assert (parsed.payload is None) != (parsed.error is None)
    if parsed.error is not None:
        assert_one_line(parsed.error)
    else:
        assert isinstance(parsed.payload, dict)


def _check_verify(text: str, session: Session, key: Path) -> None:
    try:
        result = verify(text, session, key_path=key)
    except AuditorError as exc:
        assert_one_line(str(exc))
        return
    assert isinstance(result, VerifyResult)
    assert result.status in VERIFY_STATUSES and result.status != "VALID"
    assert_one_line(result.detail)


@given(tokens | st.text(max_size=120))
@example("")
@example("x" * 101)
@example("TNM1." + "A" * 9000)
def test_verify_any_text(register: tuple[Session, Path], text: str) -> None:
    session, key = register
    _check_verify(text, session, key)


@given(payloads)
@example({"serial": ["not", "text"]})
@example({"serial": "x" * 5000})
@example({"serial": float("inf")})
def test_verify_signed_random_payload(register: tuple[Session, Path], payload: dict) -> None:  # type: ignore[type-arg]
    session, key = register
    try:
        canonical_json(payload)
    except ValueError:
        return  # not JSON-serialisable (inf): no issuer would sign it
    token = make_token(payload, sign_payload(payload, load_issuer_key(key, create=False)))
    _check_verify(token, session, key)
