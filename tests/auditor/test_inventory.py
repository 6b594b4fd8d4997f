"""Inventory: YAML and CSV import with validation (errors name the row and the field),
add/list/show/remove, site links, and scans of a system's sites linked to the system."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from project_paths import PROJECT
from sqlmodel import select

from auditor import storage
from auditor.check import Check, CheckContext, CheckOutcome
from auditor.errors import AuditorError
from auditor.inventory import ALL_FIELDS, InventoryError, parse_csv, parse_file, parse_yaml
from auditor.models import Attestation, InformationSystem, Scan, Site
from auditor.scanning import Auditor, ScanRequest
from auditor.targets import Target

EXAMPLES = PROJECT / "examples"


def _systems(db: str) -> dict[str, InformationSystem]:
    with storage.session_scope(db) as s:
        return {x.name: x for x in s.exec(select(InformationSystem))}


def _sites(db: str) -> dict[str, int | None]:
    with storage.session_scope(db) as s:
        return {x.url: x.system_id for x in s.exec(select(Site))}


# --- the documented examples ----------------------------------------------------------------


def test_example_yaml_imports_and_classifies(db_url: str, cli: Any) -> None:
    r = cli("systems", "import", str(EXAMPLES / "systems.yaml"), "--db", db_url, "--date", "2026-09-01")
    assert r.code == 0, r
    assert "5 system(s) imported" in r.out
    assert "created nha-thuoc-truc-tuyen: level 3 (decree-331-2026) — declared level 2 differs" in r.out
    systems = _systems(db_url)
    assert set(systems) == {"cong-dich-vu-cong-tinh", "cong-thong-tin-so", "nha-thuoc-truc-tuyen",
                            "quan-ly-van-ban", "trung-tam-du-lieu-tinh"}
    portal = systems["cong-dich-vu-cong-tinh"]
    assert (portal.owner, portal.category, portal.declared_level) == ("UBND tỉnh X", "citizen_business", 3)
    assert (portal.computed_level, portal.level_rules) == (3, "decree-331-2026")
    assert portal.allowed_ports == [443, 80]
    assert portal.attributes["personal_data_subjects"] == 250000
    assert portal.attributes["info_types"] == ["public", "personal"]
    assert systems["trung-tam-du-lieu-tinh"].computed_level == 3  # composite: highest component
    assert systems["quan-ly-van-ban"].computed_level == 2
    sites = _sites(db_url)
    assert sites["https://dichvucong.example.gov.vn/"] == portal.id
    assert sites["https://english.stttt.example.gov.vn/"] == systems["cong-thong-tin-so"].id

    # Importing again updates in place: same ids, no duplicate sites.
    r = cli("systems", "import", str(EXAMPLES / "systems.yaml"), "--db", db_url, "--date", "2026-09-01")
    assert r.code == 0 and r.out.count("updated ") == 5
    assert _systems(db_url)["cong-dich-vu-cong-tinh"].id == portal.id
    assert len(_sites(db_url)) == 5


def test_example_csv_matches_yaml() -> None:
    by_yaml = {r.name: r for r in parse_file(EXAMPLES / "systems.yaml")}
    by_csv = {r.name: r for r in parse_file(EXAMPLES / "systems.csv")}
    assert set(by_csv) == set(by_yaml) - {"trung-tam-du-lieu-tinh"}  # composites need YAML
    for name, rec in by_csv.items():
        y = by_yaml[name]
        assert (rec.owner, rec.contact, rec.category, rec.declared_level, rec.allowed_ports, rec.sites) == \
               (y.owner, y.contact, y.category, y.declared_level, y.allowed_ports, y.sites)
        assert rec.attributes == y.attributes, name


# --- validation errors name row and field -------------------------------------------------------

BAD_YAML = """\
systems:
  - name: good-one
    owner: Org A
    category: internal
    info_types: [public]
  - name: bad-category
    owner: Org B
    category: citizens
  - name: bad-many
    owner: Org C
    contact: not-an-email
    category: citizen_business
    info_types: [public, secret]
    personal_data_subjects: lots
    allowed_ports: [443, 70000]
    sites: [ftp://files.example.gov.vn/]
    declared_level: 7
    colour: blue
  - owner: Org D
    category: internal
"""


def test_yaml_errors_name_row_line_and_field() -> None:
    with pytest.raises(InventoryError) as info:
        parse_yaml(BAD_YAML, "inv.yaml")
    errors = info.value.errors
    expected = [
        "inv.yaml: row 2, line 6 (bad-category), field 'category': 'citizens' is not one of internal, "
        "citizen_business, infrastructure, industrial_control, other",
        "inv.yaml: row 3, line 9 (bad-many), field 'colour': unknown field",
        "inv.yaml: row 3, line 9 (bad-many), field 'contact': 'not-an-email' is not an e-mail address",
        "inv.yaml: row 3, line 9 (bad-many), field 'declared_level': expected a level 1..5, got 7",
        "inv.yaml: row 3, line 9 (bad-many), field 'allowed_ports': port 70000 is out of range 1..65535",
        "inv.yaml: row 3, line 9 (bad-many), field 'sites': unsupported URL scheme 'ftp'",
        "inv.yaml: row 3, line 9 (bad-many), field 'info_types': 'secret' is not one of public, private, "
        "personal, state_secret",
        "inv.yaml: row 3, line 9 (bad-many), field 'personal_data_subjects': expected a whole number, got 'lots'",
        "inv.yaml: row 4, line 19, field 'name': required",
    ]
    for want in expected:
        assert any(e.startswith(want) for e in errors), f"{want!r} not in {errors}"
    assert len(errors) == len(expected)
    assert not any("good-one" in e for e in errors)
    # the exception's own message is one line: the first error and how many more
    assert "\n" not in str(info.value) and str(info.value).endswith("(and 8 more error(s))")


def test_yaml_cross_row_and_consistency_errors() -> None:
    text = """\
systems:
  - {name: a, owner: X, category: citizen_business, sites: [https://a.example.gov.vn/]}
  - {name: a, owner: Y, category: internal}
  - {name: c, owner: Z, category: citizen_business, sites: ["https://A.example.gov.vn"]}
  - {name: d, owner: Z, category: citizen_business, personal_data_subjects: 10, sensitive_data_subjects: 11}
  - name: e
    owner: Z
    category: infrastructure
    components:
      - {name: part, infrastructure_scope: planet}
"""
    with pytest.raises(InventoryError) as info:
        parse_yaml(text, "x.yaml")
    errors = info.value.errors
    assert any(e.startswith("x.yaml: row 2, line 3 (a), field 'name': 'a' is already used by x.yaml: row 1")
               for e in errors), errors
    # URLs are normalised before comparing (host case, default path)
    assert any(e.startswith("x.yaml: row 3, line 4 (c), field 'sites': https://a.example.gov.vn/ is also listed")
               for e in errors), errors
    assert any(e.startswith("x.yaml: row 4, line 5 (d), field 'sensitive_data_subjects': 11 exceeds") for e in errors)
    assert any(e.startswith("x.yaml: row 5, line 6 (e), field 'components[1]'.infrastructure_scope: 'planet'")
               for e in errors), errors
    # a component's name is printed by `systems show` and `classify`: no terminal control characters
    with pytest.raises(InventoryError, match=r"field 'components\[1\]'.name: name contains control characters"):
        parse_yaml('systems:\n  - {name: f, owner: Z, category: other, components: [{name: "a\\u001b[2J"}]}\n', "x.yaml")


def test_yaml_structure_errors() -> None:
    with pytest.raises(AuditorError, match=r"inv.yaml: invalid YAML at line 3: found character '\\t'"):
        parse_yaml("systems:\n  - name: a\n\towner: b\n", "inv.yaml")
    with pytest.raises(AuditorError, match="expected a top-level 'systems:' list"):
        parse_yaml("sites: []\n", "inv.yaml")
    with pytest.raises(InventoryError, match=r"row 1, line 2: expected a mapping of fields, got str"):
        parse_yaml("systems:\n  - just-a-name\n", "inv.yaml")
    # every error is one terminal-safe line, even when it quotes a field name or a name from the file
    with pytest.raises(InventoryError) as info:
        parse_yaml('systems:\n  - {"na\\nme\\u001b": 1, name: "a\\u001b[2J", owner: b, category: other}\n', "inv.yaml")
    assert info.value.errors[0] == "inv.yaml: row 1, line 2 (a\\x1b[2J), field 'na me\\x1b': unknown field " \
        "(known: " + ", ".join(ALL_FIELDS) + ")"
    assert all("\n" not in e and "\x1b" not in e for e in info.value.errors)
    with pytest.raises(InventoryError, match=r"field 'na me\\x1b': unknown column"):
        parse_csv('name,owner,category,"na\nme\x1b"\na,b,other,1\n', "inv.csv")
    with pytest.raises(InventoryError, match=r"field 'owner': owner contains control characters"):
        parse_yaml('systems:\n  - {name: a, owner: "Org\\u001b[31m", category: other}\n', "inv.yaml")
    assert parse_yaml("", "empty.yaml") == []


def test_csv_errors_name_spreadsheet_row_and_field() -> None:
    text = (
        "name,owner,category,personal_data_subjects,info_types,sites\n"
        "ok,Org,citizen_business,100,public;personal,https://ok.example.gov.vn/\n"
        "bad-count,Org,citizen_business,1e5,public,\n"
        "\n"
        "bad-bool,Org,citizen_business,,public,https://x.example.gov.vn/;not a url\n"
        ",Org,internal,,,\n"
    )
    with pytest.raises(InventoryError) as info:
        parse_csv(text, "inv.csv")
    errors = info.value.errors
    assert errors[0] == "inv.csv: row 3 (bad-count), field 'personal_data_subjects': expected a whole number, got '1e5'"
    assert any(e.startswith("inv.csv: row 5 (bad-bool), field 'sites':") and "white space" in e for e in errors)
    assert "inv.csv: row 6, field 'name': required" in errors
    assert len(errors) == 3

    with pytest.raises(InventoryError, match=r"inv.csv: row 1, field 'users': unknown column"):
        parse_csv("name,owner,category,users\na,b,internal,5\n", "inv.csv")
    with pytest.raises(AuditorError, match="use ',' \\(or tab\\) between columns"):
        parse_csv("name;owner;category\na;b;internal\n", "inv.csv")
    with pytest.raises(InventoryError, match=r"inv.csv: row 2: 5 cells but only 3 columns"):
        parse_csv("name,owner,category\na,b,internal,x,y\n", "inv.csv")
    recs = parse_csv("name\towner\tcategory\tconditional_business\na\tb\tcitizen_business\tyes\n", "inv.tsv")
    assert recs[0].attributes == {"conditional_business": True}


def test_unreadable_files(tmp_path: Path, cli: Any, db_url: str) -> None:
    r = cli("systems", "import", str(tmp_path / "missing.yaml"), "--db", db_url)
    assert r.code == 2 and "inventory file not found" in r.err
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("name,owner,category\nx,S\xf4 Y,internal\n".encode("latin-1"))
    r = cli("systems", "import", str(bad), "--db", db_url)
    assert r.code == 2 and "not UTF-8 text" in r.err and "Traceback" not in r.err


def test_import_with_errors_writes_nothing(tmp_path: Path, cli: Any, db_url: str) -> None:
    f = tmp_path / "inv.yaml"
    f.write_text(BAD_YAML, encoding="utf-8")
    r = cli("systems", "import", str(f), "--db", db_url)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert lines[0].startswith("auditor: error: inv.yaml: row 2, line 6 (bad-category), field 'category'")
    assert lines[-1] == "auditor: nothing was imported (9 error(s))"
    assert _systems(db_url) == {}


# --- storage: sites, conflicts, re-import, add/list/show/remove ----------------------------------


def test_site_conflicts_and_unlinking(tmp_path: Path, cli: Any, db_url: str) -> None:
    one = tmp_path / "one.yaml"
    one.write_text("systems:\n  - {name: a, owner: X, category: citizen_business, "
                   "sites: [https://a.example.gov.vn/, https://shared.example.gov.vn/]}\n", encoding="utf-8")
    assert cli("systems", "import", str(one), "--db", db_url).code == 0
    two = tmp_path / "two.yaml"
    two.write_text("systems:\n  - {name: b, owner: Y, category: citizen_business, "
                   "sites: [https://shared.example.gov.vn]}\n", encoding="utf-8")
    r = cli("systems", "import", str(two), "--db", db_url)
    assert r.code == 2
    assert "two.yaml: row 1, line 2 (b), field 'sites': https://shared.example.gov.vn/ already belongs to system 'a'" in r.err
    assert "b" not in _systems(db_url)

    # Moving the URL from a to b in one file works: a is re-imported without it.
    both = tmp_path / "both.yaml"
    both.write_text("systems:\n  - {name: a, owner: X, category: citizen_business, sites: [https://a.example.gov.vn/]}\n"
                    "  - {name: b, owner: Y, category: citizen_business, sites: [https://shared.example.gov.vn/]}\n",
                    encoding="utf-8")
    r = cli("systems", "import", str(both), "--db", db_url)
    assert r.code == 0, r
    assert "updated a: level 2 (" in r.out and "unlinked 1" in r.out
    systems, sites = _systems(db_url), _sites(db_url)
    assert sites == {"https://a.example.gov.vn/": systems["a"].id, "https://shared.example.gov.vn/": systems["b"].id}


def test_add_list_show_remove(cli: Any, db_url: str) -> None:
    r = cli("systems", "add", "portal-x", "--db", db_url, "--owner", "Sở Y tế", "--category", "citizen_business",
            "--info-types", "public;personal", "--sensitive-data-subjects", "12000",
            "--personal-data-subjects", "15000", "--site", "https://yte.example.gov.vn/", "--allowed-ports", "443",
            "--contact", "attt@yte.example.gov.vn", "--declared-level", "2")
    assert r.code == 0, r
    assert "created portal-x: level 3" in r.out and "declared level 2 differs" in r.out
    r = cli("systems", "add", "portal-x", "--db", db_url, "--owner", "Z", "--category", "internal")
    assert r.code == 2 and "command line (portal-x), field 'name': a system named 'portal-x' already exists" in r.err
    r = cli("systems", "add", "portal-y", "--db", db_url, "--owner", "Z", "--category", "internal",
            "--info-types", "public;gossip")
    assert r.code == 2 and "field 'info_types': 'gossip' is not one of" in r.err
    r = cli("systems", "add", "portal-x", "--db", db_url, "--owner", "Sở Y tế", "--category", "internal",
            "--info-types", "public", "--replace")
    assert r.code == 0 and "updated portal-x: level 1" in r.out
    # the replaced record has no sites: the old site is unlinked, not deleted
    assert _sites(db_url) == {"https://yte.example.gov.vn/": None}

    cli("systems", "add", "portal-z", "--db", db_url, "--owner", "O", "--category", "citizen_business",
        "--site", "https://z.example.gov.vn/", "--allowed-ports", "443;8443")
    r = cli("systems", "list", "--db", db_url, "--format", "json")
    rows = {s["name"]: s for s in json.loads(r.out)["systems"]}
    assert set(rows) == {"portal-x", "portal-z"}
    assert rows["portal-z"]["allowed_ports"] == [443, 8443] and rows["portal-z"]["sites"] == ["https://z.example.gov.vn/"]
    assert rows["portal-z"]["attributes"]["conditional_business"] is False  # defaults shown
    r = cli("systems", "list", "--db", db_url)
    assert "portal-x" in r.out and "citizen_business" in r.out

    r = cli("systems", "show", "portal-z", "--db", db_url)
    assert r.code == 0 and "https://z.example.gov.vn/" in r.out and "(default)" in r.out
    r = cli("systems", "show", "portal-z", "--db", db_url, "--format", "json")
    assert json.loads(r.out)["computed_level"] == 2

    with storage.session_scope(db_url) as s:
        sysz = s.exec(select(InformationSystem).where(InformationSystem.name == "portal-z")).one()
        site = s.exec(select(Site).where(Site.system_id == sysz.id)).one()
        s.add(Scan(site_id=site.id or 0, url=site.url, host=site.host, port=443, status="completed",
                   system_id=sysz.id))
        s.add(Attestation(system_id=sysz.id or 0, requirement_id="d85.backup", evidence="tape", attested_by="me"))
    r = cli("systems", "remove", "portal-z", "--db", db_url)
    assert r.code == 0, r
    assert "unlinked 1 site(s), 1 scan(s), 0 certificate(s); deleted 1 attestation(s)" in r.out
    with storage.session_scope(db_url) as s:
        scans = list(s.exec(select(Scan)))
        assert len(scans) == 1 and scans[0].system_id is None  # history kept
        assert list(s.exec(select(Attestation))) == []
    assert "portal-z" not in _systems(db_url)
    r = cli("systems", "remove", "portal-z", "--db", db_url)
    assert r.code == 2 and "no information system named 'portal-z'" in r.err


class _SystemProbe(Check):
    """Records what the engine hands a check about the target's system."""

    id: ClassVar[str] = "sysprobe"
    title: ClassVar[str] = "system probe"
    seen: ClassVar[list[dict[str, Any] | None]] = []

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        type(self).seen.append(ctx.system)
        return CheckOutcome()


def test_scans_of_a_systems_sites_link_to_it(tmp_path: Path, cli: Any, db_url: str) -> None:
    f = tmp_path / "inv.yaml"
    f.write_text("systems:\n  - {name: lab-portal, owner: X, category: citizen_business, allowed_ports: [443, 8443],"
                 " sites: ['https://portal.lab.example.test/']}\n", encoding="utf-8")
    assert cli("systems", "import", str(f), "--db", db_url).code == 0
    _SystemProbe.seen.clear()
    results = Auditor(db=db_url).scan(ScanRequest(
        targets=["https://portal.lab.example.test/", "https://other.lab.example.test/"],
        checks=[_SystemProbe()], allow_dns=False,
        resolve=["portal.lab.example.test:443:127.0.2.40", "other.lab.example.test:443:127.0.2.41"],
    ))
    assert [r["error"] for r in results] == [None, None]
    seen = sorted(_SystemProbe.seen, key=lambda s: s is None)
    assert seen[0] is not None and seen[0]["name"] == "lab-portal" and seen[0]["allowed_ports"] == [443, 8443]
    assert seen[1] is None
    system = _systems(db_url)["lab-portal"]
    with storage.session_scope(db_url) as s:
        by_url = {x.url: x.system_id for x in s.exec(select(Scan))}
    assert by_url == {"https://portal.lab.example.test/": system.id, "https://other.lab.example.test/": None}
