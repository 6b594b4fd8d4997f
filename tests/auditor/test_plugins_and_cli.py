"""Entry-point discovery of a third-party check, and the CLI's input-error contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from project_paths import TESTS

HERE = TESTS
ROOT = HERE.parent


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Install the sample third-party plug-in package into a private directory."""
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(HERE / "fixtures" / "sample_plugin")],
        check=True, capture_output=True, timeout=180,
    )
    return str(target)


def _auditor(args: list[str], pythonpath: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=pythonpath, AUDITOR_DB=str(tmp / "p.db"), AUDITOR_NO_DNS="1")
    return subprocess.run([sys.executable, "-m", "auditor", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp)


def test_third_party_plugin_is_listed_and_runs(plugin_path: str, tmp_path: Path) -> None:
    listed = _auditor(["checks", "list", "--format", "json"], plugin_path, tmp_path)
    assert listed.returncode == 0, listed.stderr
    ids = {c["id"]: c for c in json.loads(listed.stdout)["checks"]}
    assert "sample" in ids and "tls" in ids and "http" in ids
    assert ids["sample"]["findings"][0]["id"] == "sample.address.seen"
    assert ids["sample"]["module"] == "auditor_sample_check"

    scanned = _auditor(["scan", "--checks", "sample", "--resolve", "plug.test:443:127.0.0.77",
                        "--format", "json", "https://plug.test/"], plugin_path, tmp_path)
    assert scanned.returncode == 0, scanned.stderr
    result = json.loads(scanned.stdout)["results"][0]
    assert result["address"] == "127.0.0.77"
    assert [f["id"] for f in result["findings"]] == ["sample.address.seen"]
    assert result["findings"][0]["evidence"] == "plug.test pinned to 127.0.0.77"


def test_without_the_plugin_it_is_absent(tmp_path: Path) -> None:
    listed = _auditor(["checks", "list", "--format", "json"], "", tmp_path)
    assert "sample" not in {c["id"] for c in json.loads(listed.stdout)["checks"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan", "--list", "/nonexistent/sites.txt"], "auditor: error: list file not found: /nonexistent/sites.txt"),
        (["scan"], "auditor: error: no targets"),
        (["scan", "--checks", "nope", "x.test"], "auditor: error: unknown check(s): nope"),
        (["scan", "--db", "nosuchdialect://x", "x.test"], "auditor: error: cannot open database"),
        (["scan", "--ca-file", "/nonexistent.pem", "x.test"], "auditor: error: CA file not found"),
        (["scan", "--resolve", "x.test:443:nope", "x.test"], "--resolve 'x.test:443:nope'"),
        (["scan", "--fail-on", "severe", "x.test"], "unknown severity 'severe'"),
        (["scan", "--timeout", "-1", "x.test"], "must be positive"),
        (["show", "999999"], "auditor: error: no scan with id 999999"),
        (["scan", "--policy", "/nonexistent", "x.test"], "policy directory not found"),
    ],
)
def test_input_errors_are_one_line_with_exit_2(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    res = cli(*args)
    assert res.code == 2, res
    assert message in res.err, res
    assert len(res.err.strip().splitlines()) == 1, res
    assert "Traceback" not in res.err


def test_history_of_unknown_site_is_empty(cli, db_url: str) -> None:  # type: ignore[no-untyped-def]
    res = cli("history", "https://never.test/", "--db", db_url)
    assert res.code == 0 and "no scans of https://never.test/" in res.out


def test_error_messages_escape_control_characters(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("scan", "--list", "/nonexistent/a\x1b[31mred\nsecond")
    assert res.code == 2
    assert res.err.count("\n") == 1, res
    assert "\x1b" not in res.err and "\\x1b[31mred" in res.err


def test_processes_opening_a_fresh_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Each creates the tables it finds missing; losers of that race must not fail."""
    db = tmp_path / "fresh.db"
    env = dict(os.environ, AUDITOR_NO_DNS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "auditor", "history", "https://a.test/", "--db", str(db)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outs
    assert all("no scans of https://a.test/" in out for out, _ in outs)
