"""Security-level rule sets: every article of Decree 85/2016 and Decree 331/2026, their
boundaries, the default rule set by date, composite systems and declared-level mismatches."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from project_paths import PROJECT

from auditor.errors import AuditorError
from policies.levels import classify, load_ruleset, ruleset_for

D85 = "decree-85-2016"
D331 = "decree-331-2026"

CB = {"category": "citizen_business", "info_types": ["public", "personal"]}
INTERNAL = {"category": "internal"}

# (rule set, attributes, expected level, rule ids that must match, rule ids that must not)
CASES: list[tuple[str, dict[str, Any], int, set[str], set[str]]] = [
    # ----------------------------------------------------------------- Decree 85, level 5
    (D85, {"category": "internal", "info_types": ["state_secret"], "defence_harm": "especially_serious"},
     5, {"11.1"}, set()),
    (D85, {"category": "infrastructure", "central_national_data": True}, 5, {"11.2"}, set()),
    (D85, {"category": "infrastructure", "infrastructure_scope": "international"}, 5, {"11.3"}, set()),
    (D85, {"category": "industrial_control", "construction_grade": "special"}, 5, {"11.4"}, set()),
    (D85, {"category": "industrial_control", "construction_grade": "national_security"}, 5, {"11.4"}, set()),
    (D85, {"category": "other", "pm_list": True}, 5, {"11.5"}, set()),
    # ----------------------------------------------------------------- Decree 85, level 4
    (D85, {"category": "internal", "info_types": ["state_secret"], "defence_harm": "serious"}, 4, {"10.1"}, set()),
    (D85, {**CB, "national_egov_24x7": True, "personal_data_subjects": 5_000_000}, 4, {"10.2", "9.2c"}, set()),
    (D85, {"category": "infrastructure", "infrastructure_scope": "nationwide_24x7"}, 4, {"10.3"}, set()),
    (D85, {"category": "industrial_control", "construction_grade": "I"}, 4, {"10.4"}, {"9.4"}),
    # ----------------------------------------------------------------- Decree 85, level 3
    (D85, {"category": "internal", "info_types": ["state_secret"], "defence_harm": "harm"}, 3, {"9.1"}, {"8.1"}),
    (D85, {**CB, "online_public_service_level": 3}, 3, {"9.2a", "8.2b", "8.2c"}, {"8.2a"}),
    (D85, {**CB, "online_public_service_level": 4}, 3, {"9.2a"}, {"8.2a"}),
    (D85, {**CB, "conditional_business": True}, 3, {"9.2b", "8.2a"}, {"8.2b"}),
    # boundary: 10,000 users → 9.2(c); 9,999 → 8.2(c)
    (D85, {**CB, "personal_data_subjects": 10_000}, 3, {"9.2c"}, {"8.2c"}),
    (D85, {**CB, "personal_data_subjects": 9_999}, 2, {"8.2c", "8.2a", "8.2b"}, {"9.2c"}),
    (D85, {"category": "infrastructure", "infrastructure_scope": "sector_or_provinces"}, 3, {"9.3"}, set()),
    (D85, {"category": "industrial_control", "construction_grade": "II"}, 3, {"9.4"}, set()),
    (D85, {"category": "industrial_control", "construction_grade": "III"}, 3, {"9.4"}, set()),
    (D85, {"category": "industrial_control", "construction_grade": "IV"}, 3, {"9.4"}, set()),
    # ----------------------------------------------------------------- Decree 85, level 2
    (D85, {"category": "internal", "info_types": ["private"]}, 2, {"8.1"}, {"7"}),
    (D85, {"category": "internal", "info_types": ["public", "personal"]}, 2, {"8.1"}, {"7"}),
    # state secrets without declared harm: 8.1 does not apply, nothing else does either
    (D85, {"category": "internal", "info_types": ["personal", "state_secret"]}, 0, set(), {"8.1"}),
    # a public information portal: 8.2(a) and 8.2(b), no personal data so not 8.2(c)
    (D85, {"category": "citizen_business", "info_types": ["public"]}, 2, {"8.2a", "8.2b"}, {"8.2c"}),
    (D85, {**CB, "online_public_service_level": 2}, 2, {"8.2a"}, {"9.2a"}),
    (D85, {"category": "infrastructure", "infrastructure_scope": "one_org"}, 2, {"8.3"}, set()),
    # ----------------------------------------------------------------- Decree 85, level 1
    (D85, {"category": "internal", "info_types": ["public"]}, 1, {"7"}, {"8.1"}),
    (D85, {"category": "internal", "info_types": []}, 0, set(), {"7"}),
    (D85, {"category": "other"}, 0, set(), set()),
    # Decree 331 criteria that Decree 85 does not know
    (D85, {**CB, "administrative_procedures": True, "sensitive_data_subjects": 0}, 2, {"8.2b"}, set()),
    (D85, {"category": "other", "risk_assessed_level": 4}, 0, set(), set()),

    # ----------------------------------------------------------------- Decree 331, level 5
    (D331, {"category": "internal", "info_types": ["state_secret"], "defence_harm": "especially_serious"},
     5, {"15.1"}, set()),
    (D331, {"category": "infrastructure", "central_national_data": True}, 5, {"15.2"}, set()),
    (D331, {"category": "infrastructure", "infrastructure_scope": "international"}, 5, {"15.3"}, set()),
    (D331, {"category": "industrial_control", "construction_grade": "special"}, 5, {"15.4"}, set()),
    (D331, {"category": "industrial_control", "construction_grade": "national_security"}, 5, {"15.4"}, set()),
    (D331, {"category": "internal", "info_types": ["private"], "pm_list": True}, 5, {"15.5-pm", "12.1"}, set()),
    (D331, {"category": "other", "risk_assessed_level": 5}, 5, {"15.5-risk"}, {"10.5-l5"}),
    # ----------------------------------------------------------------- Decree 331, level 4
    (D331, {"category": "internal", "info_types": ["state_secret"], "defence_harm": "serious"}, 4, {"14.1"}, set()),
    (D331, {**CB, "national_egov_24x7": True}, 4, {"14.2-egov"}, set()),
    (D331, {"category": "infrastructure", "infrastructure_scope": "nationwide_24x7"}, 4, {"14.2-infra"}, set()),
    (D331, {"category": "industrial_control", "construction_grade": "I"}, 4, {"14.3"}, {"13.4"}),
    (D331, {"category": "other", "risk_assessed_level": 4}, 4, {"14.4"}, {"10.5-l4"}),
    # ----------------------------------------------------------------- Decree 331, level 3
    (D331, {"category": "internal", "info_types": ["state_secret"], "defence_harm": "harm"}, 3, {"13.1"}, set()),
    (D331, {**CB, "conditional_business": True}, 3, {"13.2a"}, {"12.2a"}),
    (D331, {**CB, "administrative_procedures": True}, 3, {"13.2b", "12.2a"}, set()),
    # boundary: 100,000 basic-data subjects → 13.2(c); 99,999 → 12.2(b)
    (D331, {**CB, "personal_data_subjects": 100_000}, 3, {"13.2c-basic"}, {"12.2b"}),
    (D331, {**CB, "personal_data_subjects": 99_999}, 2, {"12.2b", "12.2a"}, {"13.2c-basic"}),
    # boundary: 10,000 sensitive-data subjects → 13.2(c); 9,999 → 12.2(b)
    (D331, {**CB, "personal_data_subjects": 20_000, "sensitive_data_subjects": 10_000}, 3,
     {"13.2c-sensitive"}, {"12.2b", "13.2c-basic"}),
    (D331, {**CB, "personal_data_subjects": 20_000, "sensitive_data_subjects": 9_999}, 2,
     {"12.2b"}, {"13.2c-sensitive"}),
    (D331, {"category": "infrastructure", "infrastructure_scope": "sector_or_provinces"}, 3, {"13.3"}, set()),
    (D331, {"category": "industrial_control", "construction_grade": "II"}, 3, {"13.4"}, set()),
    (D331, {"category": "industrial_control", "construction_grade": "III"}, 3, {"13.4"}, set()),
    (D331, {"category": "industrial_control", "construction_grade": "IV"}, 3, {"13.4"}, set()),
    (D331, {"category": "other", "risk_assessed_level": 3}, 3, {"13.5"}, {"10.5-l3"}),
    # ----------------------------------------------------------------- Decree 331, level 2
    (D331, {"category": "internal", "info_types": ["personal"]}, 2, {"12.1"}, {"11.1"}),
    (D331, {"category": "citizen_business", "info_types": ["public"]}, 2, {"12.2a"}, {"12.2b"}),
    # online public service levels are no longer a criterion
    (D331, {**CB, "online_public_service_level": 4, "personal_data_subjects": 50}, 2, {"12.2a", "12.2b"}, set()),
    (D331, {"category": "infrastructure", "infrastructure_scope": "one_org"}, 2, {"12.3"}, set()),
    (D331, {"category": "other", "risk_assessed_level": 2}, 2, {"12.4"}, {"10.5-l2"}),
    # ----------------------------------------------------------------- Decree 331, level 1
    (D331, {"category": "internal", "info_types": ["public"]}, 1, {"11.1"}, {"12.1"}),
    (D331, {"category": "other", "risk_assessed_level": 1}, 1, {"11.2"}, set()),
    (D331, {"category": "other"}, 0, set(), set()),
    # ----------------------------------------------------------------- Decree 331, Art. 10.5
    (D331, {"category": "internal", "info_types": ["public"], "risk_assessed_level": 2}, 2, {"10.5-l2", "11.1"}, set()),
    (D331, {"category": "internal", "info_types": ["public"], "risk_assessed_level": 3}, 3, {"10.5-l3"}, set()),
    (D331, {**CB, "risk_assessed_level": 4}, 4, {"10.5-l4", "12.2a"}, set()),
    (D331, {"category": "infrastructure", "infrastructure_scope": "one_org", "risk_assessed_level": 5}, 5,
     {"10.5-l5", "12.3"}, set()),
]


def _matched(cls_reasons: list[Any]) -> set[str]:
    return {r.rule for r in cls_reasons}


@pytest.mark.parametrize(("rules", "attrs", "level", "must", "must_not"), CASES,
                         ids=[f"{c[0][7:9]}-{i}" for i, c in enumerate(CASES)])
def test_rule_cases(rules: str, attrs: dict[str, Any], level: int, must: set[str], must_not: set[str]) -> None:
    cls = classify(attrs, name="s", rules=rules)
    matched = _matched(cls.reasons)
    assert cls.level == level, [(r.rule, r.level) for r in cls.reasons]
    assert must <= matched, f"missing {must - matched}; matched {matched}"
    assert not (must_not & matched), f"unexpected {must_not & matched}"
    assert cls.rules == rules
    # reasons are ordered highest level first and each cites its instrument
    assert [r.level for r in cls.reasons] == sorted((r.level for r in cls.reasons), reverse=True)
    doc = "Decree 85/2016" if rules == D85 else "Decree 331/2026"
    assert all(r.article.startswith(doc + " art. ") for r in cls.reasons)


@pytest.mark.parametrize("rules", [D85, D331])
def test_every_rule_of_every_article_is_exercised(rules: str) -> None:
    """The table above covers every rule (so every article's criteria) of both rule sets."""
    all_ids = {r.id for r in load_ruleset(rules).rules}
    covered: set[str] = set()
    for rs, attrs, _level, must, _ in CASES:
        if rs == rules:
            covered |= must
            covered |= _matched(classify(attrs, name="s", rules=rs).reasons)
    assert all_ids - covered == set()
    assert covered <= all_ids


def test_rule_set_data_is_sourced() -> None:
    d85, d331 = load_ruleset(D85), load_ruleset(D331)
    # Decree 85 is codified law [S-law]; Decree 331 is known from secondary sources only [U].
    assert d85.verified and all(r.verified for r in d85.rules)
    assert not d331.verified and not any(r.verified for r in d331.rules)
    for rs in (d85, d331):
        for r in rs.rules:
            assert r.text and r.text_vi and r.article, r.id
    articles85 = {r.article.split(" art. ")[1].split("(")[0] for r in d85.rules}
    assert articles85 == {"7", "8.1", "8.2", "8.3", "9.1", "9.2", "9.3", "9.4",
                          "10.1", "10.2", "10.3", "10.4", "11.1", "11.2", "11.3", "11.4", "11.5"}
    articles331 = {r.article.split(" art. ")[1].split("(")[0] for r in d331.rules}
    assert {"11.1", "11.2", "12.1", "12.2", "12.3", "12.4", "13.1", "13.2", "13.3", "13.4", "13.5",
            "14.1", "14.2", "14.3", "14.4", "15.1", "15.2", "15.3", "15.4", "15.5"} <= articles331


def test_default_rule_set_by_evaluation_date() -> None:
    assert ruleset_for(date(2016, 7, 1)) == D85
    assert ruleset_for(date(2026, 8, 18)) == D85
    assert ruleset_for(date(2026, 8, 19)) == D331
    assert ruleset_for(date(2030, 1, 1)) == D331
    with pytest.raises(AuditorError, match="no level rule set is in force on 2010-01-01"):
        ruleset_for(date(2010, 1, 1))
    shop = {**CB, "personal_data_subjects": 50_000}
    before = classify(shop, name="shop", on=date(2026, 8, 18))
    after = classify(shop, name="shop", on=date(2026, 8, 19))
    assert (before.rules, before.level) == (D85, 3)
    assert "Decree 85/2016 art. 9.2(c)" in [r.article for r in before.reasons]
    assert (after.rules, after.level) == (D331, 2)


def test_composite_system_takes_highest_component() -> None:
    attrs = {
        "category": "internal", "info_types": ["public"],
        "components": [
            {"name": "mail", "category": "internal", "info_types": ["private"]},
            {"name": "dc", "category": "infrastructure", "infrastructure_scope": "sector_or_provinces"},
        ],
    }
    cls = classify(attrs, name="composite", rules=D85)
    assert cls.level == 3
    top = cls.reasons[0]
    assert (top.level, top.component, top.article) == (3, "dc", "Decree 85/2016 art. 9.3")
    assert top.text.startswith("component dc: ")
    assert {r.rule for r in cls.reasons} == {"9.3", "8.1", "7"}


def test_declared_level_is_compared_never_replaced() -> None:
    cls = classify({**CB, "conditional_business": True, "declared_level": 2}, name="x", rules=D85)
    assert (cls.level, cls.declared_level, cls.mismatch) == (3, 2, True)
    assert cls.effective_level == 3
    same = classify({**CB, "declared_level": 2}, name="x", rules=D85)
    assert (same.level, same.mismatch) == (2, False)
    higher = classify({**CB, "declared_level": 4}, name="x", rules=D85)
    assert (higher.level, higher.mismatch, higher.effective_level) == (2, True, 4)


def test_unknown_rule_set_and_bad_attribute_values() -> None:
    with pytest.raises(AuditorError, match="unknown rule set 'decree-1-1999'"):
        classify(CB, name="x", rules="decree-1-1999")
    with pytest.raises(AuditorError, match="attribute 'infrastructure_scope'"):
        classify({"category": "infrastructure", "infrastructure_scope": "galactic"}, name="x", rules=D85)


def _policy_copy(tmp_path: Path) -> Path:
    root = PROJECT / "policies" / "default"
    dest = tmp_path / "policy"
    shutil.copytree(root, dest)
    return dest


def test_rule_set_typos_fail_loudly(tmp_path: Path) -> None:
    """A misspelt attribute or value in rule data is an error naming the rule, not a silent no-match."""
    pol = _policy_copy(tmp_path)
    path = pol / "rulesets" / f"{D85}.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("{attr: infrastructure_scope, eq: one_org}",
                                 "{attr: infrastructure_scope, eq: one_organisation}"), encoding="utf-8")
    with pytest.raises(AuditorError, match=r"rule 8\.3: when: infrastructure_scope: 'one_organisation'"):
        load_ruleset(D85, pol)
    path.write_text(text.replace("{attr: pm_list, eq: true}", "{attr: pm_listed, eq: true}"), encoding="utf-8")
    with pytest.raises(AuditorError, match=r"rule 11\.5: when: unknown attribute 'pm_listed'"):
        load_ruleset(D85, pol)


def test_user_policy_dir_changes_the_date_switch(tmp_path: Path) -> None:
    pol = _policy_copy(tmp_path)
    for name, old, new in ((D85, "effective_until: 2026-08-18", "effective_until: 2027-01-01"),
                           (D331, "effective_from: 2026-08-19", "effective_from: 2027-01-02")):
        p = pol / "rulesets" / f"{name}.yaml"
        p.write_text(p.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    assert ruleset_for(date(2026, 12, 31), pol) == D85
    assert ruleset_for(date(2027, 1, 2), pol) == D331


def test_rule_set_is_read_again_after_an_edit(tmp_path: Path) -> None:
    """Loaded rule sets are cached, but an edited file is read again."""
    pol = _policy_copy(tmp_path)
    attrs = {"category": "infrastructure", "infrastructure_scope": "one_org"}
    assert classify(attrs, name="s", rules=D85, policy_dir=pol).level == 2
    assert load_ruleset(D85, pol) is load_ruleset(D85, pol)
    p = pol / "rulesets" / f"{D85}.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace('id: "8.3"\n    level: 2', 'id: "8.3"\n    level: 4'),
                 encoding="utf-8")
    assert classify(attrs, name="s", rules=D85, policy_dir=pol).level == 4


# --- CLI ----------------------------------------------------------------------------------------

SYSTEM_YAML = """
systems:
  - name: cong-dvc
    owner: UBND tỉnh X
    contact: attt@example.gov.vn
    category: citizen_business
    info_types: [public, personal]
    personal_data_subjects: 10000
    online_public_service_level: 2
    declared_level: 2
    sites: [https://dvc.example.gov.vn/]
"""


def test_cli_classify_table_and_json(tmp_path: Path, db_url: str, cli: Any) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SYSTEM_YAML, encoding="utf-8")
    assert cli("systems", "import", str(f), "--db", db_url, "--date", "2026-08-01").code == 0

    r = cli("systems", "classify", "cong-dvc", "--db", db_url, "--rules", D85)
    assert r.code == 0, r
    assert "Level 3 — Decree 85/2016 art. 9.2(c): online service processing private or personal " \
           "information of ≥ 10,000 users" in r.out
    assert "declared level 2 differs from the computed level 3" in r.out

    r = cli("systems", "classify", "cong-dvc", "--db", db_url, "--date", "2026-08-18", "--format", "json")
    data = json.loads(r.out)
    assert {k: data[k] for k in ("system", "rules", "level")} == {"system": "cong-dvc", "rules": D85, "level": 3}
    assert data["reasons"][0] == {
        "level": 3, "article": "Decree 85/2016 art. 9.2(c)",
        "text": "online service processing private or personal information of ≥ 10,000 users",
    }
    assert all(set(x) == {"level", "article", "text"} for x in data["reasons"])
    assert (data["declared_level"], data["mismatch"], data["verified"]) == (2, True, True)

    r = cli("systems", "classify", "cong-dvc", "--db", db_url, "--date", "2026-08-19", "--format", "json")
    data = json.loads(r.out)
    assert (data["rules"], data["level"], data["mismatch"]) == (D331, 2, False)
    assert data["verified"] is False  # Decree 331 is known from secondary sources only [U]
    assert [x["article"] for x in data["reasons"]] == ["Decree 331/2026 art. 12.2(a)", "Decree 331/2026 art. 12.2(b)"]

    r = cli("systems", "classify", "cong-dvc", "--db", db_url, "--rules", "decree-0")
    assert r.code == 2 and "unknown rule set 'decree-0'" in r.err and "Traceback" not in r.err
    r = cli("systems", "classify", "nope", "--db", db_url)
    assert r.code == 2 and "no information system named 'nope'" in r.err
    r = cli("systems", "classify", "cong-dvc", "--db", db_url, "--date", "18/08/2026")
    assert r.code == 2 and "not a date" in r.err
