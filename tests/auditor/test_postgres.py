"""Storage on PostgreSQL: the same scans, history and show as on SQLite, on a real server."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, text

from auditor import storage


def _wipe(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    storage._ENGINES.pop(storage.resolve_db_url(url), None)


def test_scans_are_stored_in_postgresql(lab, pg_url: str, cli) -> None:  # type: ignore[no-untyped-def]
    _wipe(pg_url)
    sites = [lab.site(n) for n in ("good", "hsts-missing", "cert-expired", "tls1-0")]
    args = ["scan", *[s.url for s in sites], "--checks", "tls,http", "--format", "json", "--db", pg_url,
            "--ca-file", str(lab.ca_file), "--concurrency", "4"]
    for s in sites:
        for r in s.resolve:
            args += ["--resolve", r]
    first = cli(*args)
    assert first.code == 0, first
    results = json.loads(first.out)["results"]
    assert [r["grade"] for r in results] == ["A", "A", "F", "C"]
    second = cli(*args)  # concurrent writers again, on the same server
    assert second.code == 0, second

    good = results[0]
    shown = cli("show", str(good["scan_id"]), "--format", "json", "--db", pg_url)
    assert json.loads(shown.out)["results"][0] == good
    hist = json.loads(cli("history", good["url"], "--format", "json", "--db", pg_url).out)["scans"]
    assert len(hist) == 2 and hist[1]["scan_id"] == good["scan_id"]
    with storage.session_scope(pg_url) as s:
        assert storage.count_scans(s) == 8
        runs = storage.check_runs_of(s, good["scan_id"])
        assert {r.check for r in runs} == {"tls", "http"} and all(r.evidence for r in runs)
        latest = storage.latest_scan(s, good["url"])
        assert latest is not None and latest.started_at.tzinfo is not None  # aware UTC round trip
