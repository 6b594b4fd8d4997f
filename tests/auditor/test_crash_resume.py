"""Nothing lost on a crash: ``kill -9`` of ``auditor scan --list`` midway, then ``--resume``.

A real ``python3 -m auditor scan --list FILE`` runs against lab sites with its own SQLite
file; the test polls that file until at least one scan is completed and one is running, kills
the process with SIGKILL, and then checks the database, the scans it left, the next command's
reaping of the orphans, and a resumed run that scans only what was left.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from auditor import storage
from auditor.results import result_hash
from reports import exports

CHECKS = "tls,http"
SITES = 6


def _statuses(db: Path) -> dict[str, list[int]]:
    """Scan ids by status, read straight from the file (None-safe while it is being created)."""
    out: dict[str, list[int]] = {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            for scan_id, status in conn.execute("SELECT id, status FROM scan ORDER BY id"):
                out.setdefault(status, []).append(scan_id)
    except sqlite3.OperationalError:
        pass  # no file or no table yet
    return out


def _scan_args(lab: Any, listfile: Path, db: Path, *extra: str) -> list[str]:  # type: ignore[no-untyped-def]
    args = ["scan", "--list", str(listfile), "--checks", CHECKS, "--format", "json", "--db", str(db),
            "--ca-file", str(lab.ca_file), "--timeout", "10", *extra]
    for r in lab.resolve_args:
        args += ["--resolve", r]
    return args


@pytest.fixture(scope="module")
def crashed(lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Run the scan, SIGKILL it once a scan is completed and another running; what it left."""
    work = tmp_path_factory.mktemp("crash")
    db, listfile = work / "crash.db", work / "sites.txt"
    urls = [s.url for s in lab.sites[:SITES]]
    listfile.write_text("# crash test\n" + "\n".join(urls) + "\n")
    env = dict(os.environ, AUDITOR_DB=str(db), AUDITOR_NO_DNS="1")
    proc = subprocess.Popen([sys.executable, "-m", "auditor", *_scan_args(lab, listfile, db, "--concurrency", "2")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=work)
    deadline = time.monotonic() + 60
    seen: dict[str, list[int]] = {}
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            seen = _statuses(db)
            if seen.get("completed") and seen.get("running"):
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"never saw a completed and a running scan together: {seen}, rc={proc.poll()}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    with sqlite3.connect(db) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    return {"db": db, "list": listfile, "urls": urls, "left": _statuses(db), "integrity": integrity}


def test_database_opens_intact_with_orphans_left_running(crashed: dict[str, Any]) -> None:
    assert crashed["integrity"] == "ok"
    left = crashed["left"]
    assert left.get("completed") and left.get("running"), left
    assert set(left) <= {"completed", "running", "failed"}


def test_finished_scans_are_whole(crashed: dict[str, Any]) -> None:
    url = f"sqlite:///{crashed['db']}"
    with storage.session_scope(url) as session:
        for scan_id in crashed["left"]["completed"]:
            scan = storage.get_scan(session, scan_id)
            assert scan is not None and scan.status == "completed" and scan.grade is not None
            runs = storage.check_runs_of(session, scan_id)
            assert sorted(r.check for r in runs) == sorted(CHECKS.split(","))
            assert set(scan.checks) == set(CHECKS.split(","))
            findings = storage.findings_of(session, scan_id)
            assert len({f.finding_id for f in findings}) == sum(scan.counts.values())
            result = storage.scan_result(session, scan_id)
            assert result is not None and result_hash(result) == scan.result_hash
            assert len(result["findings"]) == len(findings)


def test_next_command_marks_orphans_interrupted(crashed: dict[str, Any], cli) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{crashed['db']}"
    running = crashed["left"]["running"]
    with storage.session_scope(url) as session:
        scans = {i: storage.get_scan(session, i) for i in running}
    for scan_id, scan in scans.items():
        assert scan is not None
        res = cli("history", scan.url, "--db", url, "--format", "json")
        assert res.code == 0, res
        row = next(r for r in json.loads(res.out)["scans"] if r["scan_id"] == scan_id)
        assert row["status"] == "interrupted"
        assert "stopped before it finished" in row["error"]
        shown = cli("show", str(scan_id), "--db", url)
        assert shown.code == 0 and "stopped before it finished" in shown.out, shown
        result = json.loads(cli("show", str(scan_id), "--db", url, "--format", "json").out)["results"][0]
        assert result["grade"] is None and result["finished_at"]
        for fmt in ("csv", "sarif"):
            assert exports.render([result], fmt)
    assert not _statuses(crashed["db"]).get("running")


def test_resume_scans_only_the_rest(crashed: dict[str, Any], lab, cli) -> None:  # type: ignore[no-untyped-def]
    db = crashed["db"]
    before = _statuses(db)
    res = cli(*_scan_args(lab, crashed["list"], db, "--concurrency", "4", "--resume"))
    assert res.code in (0, 2), res
    assert "resuming the run" in res.err
    doc = json.loads(res.out)
    assert [r["url"] for r in doc["results"]] == crashed["urls"]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, url FROM scan WHERE status = 'completed' ORDER BY id").fetchall()
    done_before = set(before.get("completed", []))
    new = [(i, u) for i, u in rows if i not in done_before]
    old_urls = {u for i, u in rows if i in done_before}
    # Every target is stored exactly once as completed, the earlier ones were not scanned again.
    assert sorted(u for _, u in rows) == sorted(crashed["urls"])
    assert {u for _, u in new} == set(crashed["urls"]) - old_urls
    assert {r["scan_id"] for r in doc["results"]} == {i for i, _ in rows}
    assert not _statuses(db).get("running")
    # Resuming again finds nothing left to scan and stores nothing new.
    total = sum(len(v) for v in _statuses(db).values())
    again = cli(*_scan_args(lab, crashed["list"], db, "--resume"))
    assert f"{SITES} of {SITES} target(s) already completed, scanning 0" in again.err, again
    assert [r["scan_id"] for r in json.loads(again.out)["results"]] == [r["scan_id"] for r in doc["results"]]
    assert sum(len(v) for v in _statuses(db).values()) == total


def test_reaper_probes_owners_on_this_host_and_ages_out_the_rest(db_url: str) -> None:
    """Only scans that can no longer finish are reaped: a live owner's scan and a young scan
    of another host are left running."""
    from datetime import timedelta

    from auditor.models import utcnow
    from auditor.process_identity import ProcessId

    me = ProcessId.current()
    old = utcnow() - timedelta(hours=2)
    cases = {
        "live": ({storage.OWNER_KEY: str(me)}, utcnow()),
        "dead-pid": ({storage.OWNER_KEY: f"{me.host}:999999999:1"}, utcnow()),
        "recycled-pid": ({storage.OWNER_KEY: f"{me.host}:{me.pid}:not-my-start"}, utcnow()),
        "other-host-young": ({storage.OWNER_KEY: "elsewhere.example:12:34", "site_timeout": 180}, utcnow()),
        "other-host-old": ({storage.OWNER_KEY: "elsewhere.example:12:34", "site_timeout": 180}, old),
        "no-owner-old": ({}, old),
    }
    stamp = storage.ScanStamp("p", "1", {})
    ids: dict[str, int] = {}
    with storage.session_scope(db_url) as session:
        for name, (options, started) in cases.items():
            scan = storage.start_scan(session, f"https://{name}.example/", f"{name}.example", 443,
                                      storage.ScanStamp(stamp.policy_name, stamp.policy_version, options),
                                      started_at=started)
            ids[name] = scan.id or 0
    with storage.session_scope(db_url) as session:
        reaped = storage.reap_dead_scans(session)
    assert sorted(reaped) == sorted(ids[n] for n in ("dead-pid", "recycled-pid", "other-host-old", "no-owner-old"))
    with storage.session_scope(db_url) as session:
        status = {n: storage.get_scan(session, i).status for n, i in ids.items()}  # type: ignore[union-attr]
        assert storage.reap_dead_scans(session) == []  # a second look finds nothing more
    assert status["live"] == status["other-host-young"] == "running"
    assert status["dead-pid"] == status["no-owner-old"] == "interrupted"


def test_ctrl_c_marks_the_scans_under_way_interrupted_at_once(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SIGINT (Ctrl-C) is not a crash: the scans under way are marked before the process exits."""
    db, listfile = tmp_path / "int.db", tmp_path / "sites.txt"
    listfile.write_text("\n".join(s.url for s in lab.sites[:SITES]) + "\n")
    env = dict(os.environ, AUDITOR_DB=str(db), AUDITOR_NO_DNS="1")
    proc = subprocess.Popen([sys.executable, "-m", "auditor", *_scan_args(lab, listfile, db, "--concurrency", "2")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not _statuses(db).get("running"):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "interrupted" in err, err
    with sqlite3.connect(db) as conn:
        reasons = [e for (e,) in conn.execute("SELECT error FROM scan WHERE status = 'interrupted'")]
    assert reasons and all("KeyboardInterrupt" in e for e in reasons), reasons
