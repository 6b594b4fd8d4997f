"""A database written before the structural move still opens, reads and takes new scans.

``tests/data/pre-move.db`` was made by the code of commit 903371b (the last commit before the
move), never by the current code, so these tests catch a change to stored data:

    git worktree add /tmp/premove 903371b
    cd /tmp/premove
    python3 -m auditor demo --db /tmp/pre.db --address 127.0.9.10        # 9 loopback lab scans
    python3 -m auditor systems add cong-thu-nghiem --owner "So TTTT Lab" \\
        --category citizen_business --info-types "public;personal" \\
        --site https://priv-tracker.lab.auditor.test/ \\
        --site https://cookie-no-secure.lab.auditor.test/ --db /tmp/pre.db
    python3 -m auditor schedule add https://priv-preticked.lab.auditor.test/ --db /tmp/pre.db
    # then, in sqlite3: PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE; VACUUM;
    cp /tmp/pre.db tests/data/pre-move.db && git worktree remove /tmp/premove

(No certificate: the pre-move policy refuses one on the built-in sample feed.) Each test works
on a copy in its temp dir, so the file itself is never written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from project_paths import TESTS

from auditor.check import Check, CheckContext, CheckOutcome, Finding, Severity
from auditor.scanning import Auditor, ScanRequest
from auditor.targets import Target

PRE_MOVE_DB = TESTS / "data" / "pre-move.db"
GOOD = "https://good.lab.auditor.test/"
TLS1_0 = "https://tls1-0.lab.auditor.test/"


@pytest.fixture()
def old_db(tmp_path: Path) -> str:
    """A private copy of the pre-move database, as a path the CLI takes for ``--db``."""
    copy = tmp_path / "pre-move.db"
    shutil.copyfile(PRE_MOVE_DB, copy)
    return str(copy)


def test_history_lists_the_old_scans(cli, old_db: str) -> None:  # type: ignore[no-untyped-def]
    r = cli("history", GOOD, "--db", old_db)
    assert r.code == 0, r
    assert "1 scan(s)" in r.out and "completed" in r.out and " A " in r.out


def test_show_prints_an_old_scan_with_its_findings(cli, old_db: str) -> None:  # type: ignore[no-untyped-def]
    r = cli("show", "3", "--db", old_db)
    assert r.code == 0, r
    assert TLS1_0 in r.out and "grade C" in r.out and "tls.protocol.tls1_0" in r.out


def test_json_export_carries_every_old_site(cli, old_db: str) -> None:  # type: ignore[no-untyped-def]
    r = cli("export", "--format", "json", "--db", old_db)
    assert r.code == 0, r
    results = json.loads(r.out)["results"]
    assert len(results) == 9
    by_url = {x["url"]: x for x in results}
    assert by_url[GOOD]["grade"] == "A" and by_url[GOOD]["scan_id"] == 1
    assert [f["id"] for f in by_url[TLS1_0]["findings"]] == ["tls.protocol.tls1_0"]


def test_systems_list_shows_the_old_system(cli, old_db: str) -> None:  # type: ignore[no-untyped-def]
    r = cli("systems", "list", "--db", old_db)
    assert r.code == 0, r
    assert "cong-thu-nghiem" in r.out and "citizen_business" in r.out


class SeenCheck(Check):
    """A check that needs no server: it reports one low finding for any target."""

    id = "seen"
    title = "sees the site"

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        return CheckOutcome(findings=[Finding("probe.seen", self.id, Severity.LOW, "seen", target.host)])


def test_a_new_scan_is_stored_next_to_the_old_ones(cli, old_db: str) -> None:  # type: ignore[no-untyped-def]
    request = ScanRequest(
        targets=[GOOD], checks=[SeenCheck()], resolve=["good.lab.auditor.test:*:127.0.0.30"], allow_dns=False,
    )
    result = Auditor(db=old_db).scan(request)[0]
    assert result["scan_id"] == 10 and result["error"] is None
    r = cli("history", GOOD, "--db", old_db)
    assert r.code == 0, r
    assert "2 scan(s)" in r.out
    assert [line.split()[0] for line in r.out.splitlines()[2:4]] == ["10", "1"]
