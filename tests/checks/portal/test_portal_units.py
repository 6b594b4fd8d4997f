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


@pytest.mark.parametrize(("text", "phone"), [
    ("Điện thoại: 0236 3821 000", True), ("+84 236 3821 001", True), ("(0236) 382.1000", True),
    ("0236.3821.000", True), ("Tổng đài 1900 1234", True),
    ("Quy hoạch thời kỳ 2021-2030", False), ("2021 - 2030", False), ("ngày 12.03.2026", False),
    ("số 01/2026/QĐ-UBND", False),
])
def test_phone_numbers_are_not_years_or_dates(text: str, phone: bool) -> None:
    from checks.portal.facts import has_phone

    assert has_phone(text) is phone


def _observed(**changes: object) -> object:
    from checks.portal.analyse import Observed
    from checks.portal.facts import PageFacts

    home = PageFacts(url="https://so.labtinh.gov.vn/", status=200, title="Cổng thông tin", links=[
        ("https://so.labtinh.gov.vn/van-ban", "Văn bản pháp luật"),
        ("https://so.labtinh.gov.vn/tin-tuc/a", "Tin A")])
    obs = Observed(host="so.labtinh.gov.vn", home_url=home.url, pages=[home])
    for key, value in changes.items():
        setattr(obs, key, value)
    return obs


def test_an_item_page_that_failed_is_could_not_judge_and_the_check_says_so() -> None:
    from checks.portal.check import judge

    decree = decree_for(PORTAL_DIR, date(2026, 12, 4))
    obs = _observed(failures={"https://so.labtinh.gov.vn/van-ban": "timed out after 5 s"})
    outcome = judge(PortalCheck(), obs, decree, {}, accessibility=False)  # type: ignore[arg-type]
    rows = {r["key"]: r for r in outcome.evidence["checklist"]}
    assert rows["legal_documents"]["state"] == "unjudged" and "timed out" in rows["legal_documents"]["reason"]
    assert outcome.error and "legal_documents" in outcome.error
    # the items no page names are still missing, and the search form is missing (never submitted)
    ids = [f.id for f in outcome.findings]
    assert "portal.search.missing" in ids and "portal.section.missing" in ids
    assert "legal_documents" not in {f.details["item"] for f in outcome.findings}


def test_an_item_page_answering_404_is_missing() -> None:
    from checks.portal.analyse import judge_item
    from checks.portal.facts import PageFacts

    decree = decree_for(PORTAL_DIR, date(2026, 12, 4))
    obs = _observed()
    obs.pages.append(PageFacts(url="https://so.labtinh.gov.vn/van-ban", status=404))  # type: ignore[attr-defined]
    item = next(i for i in decree.items if i.id == "legal_documents")
    row = judge_item(item, obs, decree, obs.pages)  # type: ignore[arg-type, attr-defined]
    assert row.state == "missing" and "404" in row.reason
