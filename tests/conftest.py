"""Session-wide test set-up.

- No test may query DNS (the machine's resolver is not on loopback): AUDITOR_NO_DNS is set.
- No test writes to the user's default database: AUDITOR_DB points into a temp dir.
- The loopback lab (real TLS/HTTP servers, private CA made now) starts once per session.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

os.environ["AUDITOR_NO_DNS"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _isolated_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    path = tmp_path_factory.mktemp("db") / "session.db"
    old = os.environ.get("AUDITOR_DB")
    os.environ["AUDITOR_DB"] = str(path)
    yield
    if old is None:
        os.environ.pop("AUDITOR_DB", None)
    else:
        os.environ["AUDITOR_DB"] = old


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The full loopback lab on 127.0.0.10 upwards, started once per session."""
    from auditor.lab.sites import LAB_SITES, Lab

    lab = Lab(tmp_path_factory.mktemp("lab"), LAB_SITES, first_address="127.0.0.10")
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scratch PostgreSQL database: AUDITOR_TEST_PG_URL when given (it is wiped), else a
    throwaway server started on 127.0.0.1 for this session; skipped when neither is possible."""
    given = os.environ.get("AUDITOR_TEST_PG_URL")
    if given:
        yield given
        return
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install -e '.[postgres]')")
    from pg_server import PostgresServer, find_bindir

    if find_bindir() is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql)")
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="auditor-pg-")))
    try:
        url = server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        pytest.skip(f"cannot start a PostgreSQL server: {exc}")
    yield url
    server.stop()
    shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture()
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite file for one test."""
    return f"sqlite:///{tmp_path / 'audit.db'}"


class CLIResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CLIResult(code={self.code}, out={self.out[:2000]!r}, err={self.err[:2000]!r})"


def run_cli(*args: str) -> CLIResult:
    """Run the CLI in-process and capture what it prints."""
    from auditor.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return CLIResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cli():  # type: ignore[no-untyped-def]
    """The in-process CLI runner: ``cli("scan", ...)`` returns code, out, err."""
    return run_cli


def pytest_report_header(config: pytest.Config) -> str:
    return f"python {sys.version.split()[0]}; DNS disabled for the auditor (AUDITOR_NO_DNS=1)"
