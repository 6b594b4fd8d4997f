"""Typed TLS evidence against the stored JSON shape.

``collected_evidence.json`` was recorded from the loopback lab by the collector as it was
before the evidence became typed: reading it with :meth:`TLSEvidence.from_dict` and writing
it back with :meth:`TLSEvidence.to_dict` must give the very same JSON, and the analysis must
judge the typed object and its JSON alike, so stored scans keep being re-judged the same way.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from project_paths import TESTS

from checks.tls.analysis import DEFAULT_PARAMS, analyse
from checks.tls.evidence import SCHEMA, CipherSuite, ProtocolResult, TLSEvidence, Vulnerabilities

FIXTURE = TESTS / "checks" / "tls" / "fixtures" / "collected_evidence.json"
RECORDED = json.loads(FIXTURE.read_text())
CASES = ["lab_ca_file", "mozilla_store"]


def _recorded_at(evidence: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(evidence["started_at"].replace("Z", "+00:00"))


@pytest.mark.parametrize("case", CASES)
def test_recorded_evidence_round_trips_exactly(case: str) -> None:
    stored = RECORDED[case]
    typed = TLSEvidence.from_dict(stored)
    assert typed.schema == SCHEMA == stored["schema"]
    assert typed.to_dict() == stored
    assert json.dumps(typed.to_dict(), sort_keys=True) == json.dumps(stored, sort_keys=True)
    assert list(typed.to_dict()) == list(stored)  # the same top-level key order, too
    assert TLSEvidence.from_dict(json.loads(json.dumps(typed.to_dict()))) == typed


@pytest.mark.parametrize("case", CASES)
def test_analysis_of_typed_and_stored_evidence_agree(case: str) -> None:
    stored = RECORDED[case]
    typed = TLSEvidence.from_dict(stored)
    kw: dict[str, Any] = {"host": RECORDED["host"], "params": DEFAULT_PARAMS, "now": _recorded_at(stored)}
    from_typed = analyse(typed, **kw)
    from_json = analyse(json.loads(json.dumps(typed.to_dict())), **kw)
    assert from_typed == from_json
    assert from_typed == analyse(stored, **kw)


def test_recorded_verdicts() -> None:
    """What the recorded scans say: the lab store trusts the good site, Mozilla's does not."""
    kw: dict[str, Any] = {"host": RECORDED["host"], "params": DEFAULT_PARAMS}
    lab = RECORDED["lab_ca_file"]
    found, errors = analyse(lab, now=_recorded_at(lab), **kw)
    assert errors == [] and not {fid for fid, _, _ in found} & {"tls.cert.untrusted", "tls.cert.self_signed"}
    mozilla = RECORDED["mozilla_store"]
    found, errors = analyse(mozilla, now=_recorded_at(mozilla), **kw)
    assert errors == [] and "tls.cert.untrusted" in {fid for fid, _, _ in found}


def test_old_minimal_evidence_reads_with_defaults() -> None:
    """Evidence without the optional keys (no scanner, preprobe, timings, rejected counts,
    trust-store path ...) still reads; what was absent stays untested, not passed."""
    old = {
        "schema": 1,
        "target": {"host": "a.test", "port": 443, "address": "127.0.0.5", "sni": "a.test"},
        "connectivity": {"status": "ok", "error": None, "highest_protocol": "TLS 1.2"},
        "protocols": {"tls1_2": {"accepted": [{"name": "TLS_RSA_WITH_AES_128_GCM_SHA256"}]}, "tls1_3": {}},
        "certificate": None,
        "vulnerabilities": {"heartbleed": False, "robot": None},
        "errors": {"certificate_info": "timed out"},
    }
    typed = TLSEvidence.from_dict(old)
    assert typed.preprobe is None and typed.scanner is None and typed.timings == {}
    assert typed.protocols == {
        "tls1_2": ProtocolResult(accepted=(CipherSuite(name="TLS_RSA_WITH_AES_128_GCM_SHA256"),))
    }
    assert typed.vulnerabilities == Vulnerabilities(heartbleed=False)
    written = typed.to_dict()
    assert written["protocols"] == {
        "tls1_2": {
            "accepted": [
                {
                    "name": "TLS_RSA_WITH_AES_128_GCM_SHA256",
                    "openssl_name": None,
                    "key_size": None,
                    "anonymous": False,
                    "kx": None,
                }
            ]
        }
    }
    assert written["vulnerabilities"] == {"heartbleed": False}
    assert "preprobe" not in written and "scanner" not in written
    now = datetime.fromisoformat("2026-11-23T10:00:00+00:00")
    kw: dict[str, Any] = {"host": "a.test", "params": DEFAULT_PARAMS, "now": now}
    assert analyse(typed, **kw) == analyse(old, **kw) == analyse(written, **kw)
    _, errors = analyse(old, **kw)
    assert "could not test: TLS 1.3 cipher suites (no result)" in errors
    assert "could not test: certificate (timed out)" in errors
