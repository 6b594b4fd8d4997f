"""Finding catalogues as data: each family's findings.yaml and the one references table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from project_paths import PROJECT

from auditor import registry
from auditor.catalogue import catalogue_of, load_findings, load_references
from auditor.check import Severity
from auditor.errors import AuditorError

FAMILIES = ("tls", "http", "privacy", "reputation", "ports", "portal")


def test_every_family_reads_its_catalogue_from_its_own_findings_yaml() -> None:
    checks, broken = registry.discover()
    assert not broken
    seen: set[str] = set()
    for family in FAMILIES:
        assert (PROJECT / "checks" / family / "findings.yaml").is_file()
        specs = catalogue_of(f"checks.{family}")
        assert [s.id for s in specs] == [s.id for s in checks[family].catalogue]
        for spec in specs:
            assert spec.id.startswith(f"{family}."), spec.id
            assert spec.id not in seen, spec.id
            seen.add(spec.id)
            assert spec.title and spec.rationale and spec.remediation and spec.references, spec.id
            assert all(spec.translations["vi"].get(f) for f in ("title", "rationale", "remediation")), spec.id
    assert len(seen) >= 59


def test_references_are_spelled_once() -> None:
    table = load_references()
    titles = [r.title for r in table.values()]
    assert len(titles) == len(set(titles))
    cited = {ref for family in FAMILIES for spec in catalogue_of(f"checks.{family}") for ref in spec.references}
    # One spelling of Decree 137 (the ASCII 'ND-CP' variant is gone) ...
    assert not [r for r in cited if "ND-CP" in r]
    assert any(r.startswith("Decree 137/2024/NĐ-CP") for r in cited)
    # ... an unverified source carries its [U] mark from the table ...
    assert "TCVN 14423:2026 4.5.2.1(c) [U]" in cited
    # ... and no check module re-types a legal source as a string constant.
    legal = re.compile(r"""["'][^"'\n]*(?:NĐ-CP|ND-CP|TT-BTTTT|QH15|TCVN \d)""")
    offenders = [str(p.relative_to(PROJECT)) for p in (PROJECT / "checks").rglob("*.py") if legal.search(p.read_text())]
    assert not offenders


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "findings.yaml"
    path.write_text(body, encoding="utf-8")
    return path


GOOD = """check: demo
findings:
  - id: demo.thing.missing
    severity: medium
    title: {en: The thing is missing, vi: Thiếu thứ đó}
    rationale: {en: Because., vi: Vì vậy.}
    remediation:
      en: >-
        Add the
        thing.
    references:
      - rfc6797
      - d137-2024: ", network-trust criteria"
      - tcvn-14423: 3.6.2.4
"""


def test_a_catalogue_entry_becomes_a_spec_with_citations_and_fallbacks(tmp_path: Path) -> None:
    (spec,) = load_findings(_write(tmp_path, GOOD), check_id="demo")
    assert spec.severity is Severity.MEDIUM
    assert spec.remediation == "Add the thing."
    assert spec.references == ("RFC 6797", "Decree 137/2024/NĐ-CP, network-trust criteria", "TCVN 14423:2026 3.6.2.4 [U]")
    assert spec.text("title", "vi") == "Thiếu thứ đó"
    assert spec.text("remediation", "vi") == "Add the thing."  # untranslated: English


@pytest.mark.parametrize(("edit", "message"), [
    (("rfc6797", "rfc9999"), "unknown reference 'rfc9999'"),
    (("severity: medium", "severity: dire"), "unknown severity 'dire'"),
    (("title: {en: The thing is missing, vi: Thiếu thứ đó}", "title: {vi: Thiếu thứ đó}"), "title has no English text"),
    (("    severity: medium", "    severity: medium\n    sevrity: low"), "unknown field(s) sevrity"),
    (("check: demo", "check: other"), "catalogue of check 'other', expected 'demo'"),
    (("vi: Vì vậy.", "fr: Parce que."), "rationale has unknown language(s) fr"),
])
def test_a_bad_catalogue_is_one_line_naming_file_and_finding(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = _write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(AuditorError) as info:
        load_findings(path, check_id="demo")
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


def test_a_duplicate_id_is_refused(tmp_path: Path) -> None:
    body = GOOD + GOOD.split("findings:\n", 1)[1]
    with pytest.raises(AuditorError, match="duplicate finding id"):
        load_findings(_write(tmp_path, body), check_id="demo")
