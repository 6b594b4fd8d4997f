"""The portal check's pure parts: text matching, the naming rule, the checklist data, applies()."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest

from auditor.check import CheckContext
from auditor.errors import AuditorError
from auditor.lab.privacy_sites import encode_cp1258
from checks.portal.analyse import MISSING, PRESENT, judge_domain
from checks.portal.check import PortalCheck
from checks.portal.rules import decree_for, load_decree
from checks.portal.text import Phrases, tokens
from policies import PolicyFiles
from policies.requirements import load_requirements

PORTAL_DIR = PolicyFiles().file("portal")


def test_text_matches_with_and_without_diacritics_and_in_windows_1258() -> None:
    phrases = Phrases(["cơ cấu tổ chức", "văn bản pháp luật"])
    assert phrases.find("CƠ CẤU TỔ CHỨC của Sở") == "cơ cấu tổ chức"
    assert phrases.find("Co cau to chuc") == "cơ cấu tổ chức"
    # windows-1258 keeps tone marks as combining characters: decoded, they are not NFC
    decoded = encode_cp1258("Văn bản pháp luật").decode("cp1258")
    assert decoded != "Văn bản pháp luật" and phrases.find(decoded) == "văn bản pháp luật"
    assert tokens("Đăng ký") == ("dang", "ky")
    assert Phrases(["en"]).find("Tiền lương") is None and Phrases(["en"]).find("VI | EN") == "en"
    assert phrases.find("cơ cấu") is None  # a phrase matches whole, as contiguous words


@pytest.mark.parametrize(("host", "kind", "state"), [
    ("labtinh.gov.vn", "province", PRESENT),
    ("www.labtinh.gov.vn", "province", PRESENT),
    ("sotttt.labtinh.gov.vn", "province", MISSING),
    ("sotttt.labtinh.gov.vn", "province_agency", PRESENT),
    ("labtinh.gov.vn", "province_agency", MISSING),
    ("cucatt.bolab.gov.vn", "ministry_unit", PRESENT),
    ("huyenlab.labtinh.gov.vn", "district", PRESENT),
    ("chinhphu.vn", "government", PRESENT),
    ("congthongtin-labtinh.vn", "", MISSING),
    ("labtinh.gov.vn.evil.example", "", MISSING),
    ("127.0.11.5", "", MISSING),
    ("anything.gov.vn", "", PRESENT),
])
def test_domain_naming_rule(host: str, kind: str, state: str) -> None:
    decree = decree_for(PORTAL_DIR, date(2026, 12, 4))
    assert judge_domain(host, kind, decree).state == state


def test_decree_in_force_by_date() -> None:
    assert decree_for(PORTAL_DIR, date(2022, 8, 15)).id == "decree-42-2022"
    assert decree_for(PORTAL_DIR, date(2026, 6, 30)).id == "decree-42-2022"
    d224 = decree_for(PORTAL_DIR, date(2026, 7, 1))
    assert d224.id == "decree-224-2026" and not d224.verified
    assert all(not i.verified and i.article.startswith("Decree 224/2026") for i in d224.items)
    d42 = load_decree(PORTAL_DIR, "decree-42-2022")
    assert {i.id: i.verified for i in d42.items}["legal_documents"] is True
    assert {i.id: i.verified for i in d42.items}["leaders"] is False  # [M] in vn-law.md §5.2
    with pytest.raises(AuditorError, match="in force"):
        decree_for(PORTAL_DIR, date(2011, 1, 1))
    assert decree_for(PORTAL_DIR, date(2011, 1, 1), "decree-42-2022").id == "decree-42-2022"


def test_checklist_data_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("decree: bad\nitems:\n  - id: x\n    title: {en: X}\n", encoding="utf-8")
    with pytest.raises(AuditorError, match="needs words or url_patterns"):
        load_decree(tmp_path, "bad")
    (tmp_path / "re.yaml").write_text("decree: re\nitems:\n  - id: x\n    url_patterns: ['(']\n", encoding="utf-8")
    with pytest.raises(AuditorError, match="bad pattern"):
        load_decree(tmp_path, "re")
    with pytest.raises(AuditorError, match="no portal checklist"):
        load_decree(tmp_path, "missing")


@pytest.mark.parametrize(("system", "applies"), [
    (None, False),
    ({"attributes": {}}, False),
    ({"attributes": {"state_portal": "none"}}, False),
    ({"attributes": {"state_portal": "province_agency"}}, True),
])
def test_applies_only_to_state_portals(system: dict | None, applies: bool) -> None:
    ctx = CheckContext(deadline=time.monotonic() + 5, system=system)
    assert PortalCheck().applies(None, ctx) is applies  # type: ignore[arg-type]


def test_requirement_rows_concern_state_portals_only() -> None:
    for rules in ("decree-85-2016", "decree-331-2026"):
        rows = [r for r in load_requirements(rules) if any(f.startswith("portal.") for f in r.finding_ids)]
        assert {r.id.split(".", 1)[1] for r in rows} == {
            "portal.content", "portal.functions", "portal.english", "portal.domain", "portal.accessibility"}
        for r in rows:
            assert not r.concerns({"category": "citizen_business"})
            assert r.concerns({"category": "citizen_business", "state_portal": "province"})
