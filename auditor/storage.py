"""Storage: the database URL, the engine, and the queries the CLI needs.

SQLite by default (a file, WAL journal, a busy timeout so concurrent writers wait instead of
failing); any SQLAlchemy URL (PostgreSQL: ``postgresql+psycopg://...``) via ``--db`` or
``AUDITOR_DB``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine, select

from auditor import models  # noqa: F401  (registers the tables)
from auditor.errors import AuditorError
from auditor.models import CheckRun, FindingRecord, Scan, Site

ENV_VAR = "AUDITOR_DB"


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/auditor/auditor.db``, i.e. ``~/.local/share/auditor/auditor.db``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "auditor" / "auditor.db"


def resolve_db_url(db: str | None = None) -> str:
    """``--db`` wins, then ``AUDITOR_DB``, then the default SQLite file.

    A bare path (no ``://``) is taken as an SQLite file.
    """
    value = db or os.environ.get(ENV_VAR) or str(default_db_path())
    if "://" not in value:
        return "sqlite:///" + str(Path(value).expanduser().resolve())
    return value


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


_ENGINES: dict[str, Engine] = {}


def get_engine(db: str | None = None) -> Engine:
    """Create (once per URL per process) the engine and the tables."""
    url = resolve_db_url(db)
    if url in _ENGINES:
        return _ENGINES[url]
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise AuditorError(f"invalid database URL: {url}") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise AuditorError(f"cannot create database directory for {parsed.database}: {exc}") from None
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise AuditorError(f"cannot open database {parsed.render_as_string(hide_password=True)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    for attempt in range(3):
        try:
            SQLModel.metadata.create_all(engine)
            break
        except SQLAlchemyError as exc:
            # Two processes opening a fresh database may both find a table missing and both
            # create it; the loser sees "already exists" and succeeds on a second look.
            if attempt < 2 and "already exists" in str(exc):
                time.sleep(0.2)
                continue
            msg = str(exc.orig if hasattr(exc, "orig") and exc.orig else exc).splitlines()[0]
            raise AuditorError(f"cannot open database {parsed.render_as_string(hide_password=True)}: {msg}") from None
    _ENGINES[url] = engine
    return engine


@contextmanager
def session_scope(db: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = Session(get_engine(db), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        raise AuditorError(f"database error: {str(exc.orig).splitlines()[0]}") from None
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_or_create_site(session: Session, url: str, host: str, port: int) -> Site:
    site = session.exec(select(Site).where(Site.url == url)).first()
    if site is None:
        site = Site(url=url, host=host, port=port)
        session.add(site)
        session.flush()
    return site


def history(session: Session, url: str, limit: int = 50) -> list[Scan]:
    """Earlier scans of one site, newest first."""
    stmt = select(Scan).where(Scan.url == url).order_by(Scan.started_at.desc(), Scan.id.desc()).limit(limit)
    return list(session.exec(stmt))


def findings_of(session: Session, scan_id: int) -> list[FindingRecord]:
    return list(session.exec(select(FindingRecord).where(FindingRecord.scan_id == scan_id).order_by(FindingRecord.id)))


def check_runs_of(session: Session, scan_id: int) -> list[CheckRun]:
    return list(session.exec(select(CheckRun).where(CheckRun.scan_id == scan_id).order_by(CheckRun.id)))


FINISHED = ("completed", "failed")


def latest_scan(
    session: Session, url: str, *, statuses: tuple[str, ...] | None = FINISHED, before: datetime | None = None
) -> Scan | None:
    """The newest scan of a site with one of ``statuses`` (None: any), started before ``before``.

    By default a finished one: completed, or failed (the site could not be scanned). Running
    and interrupted scans are not results.
    """
    stmt = select(Scan).where(Scan.url == url)
    if statuses is not None:
        stmt = stmt.where(Scan.status.in_(statuses))  # type: ignore[attr-defined]
    if before is not None:
        stmt = stmt.where(Scan.started_at < before)
    return session.exec(stmt.order_by(Scan.started_at.desc(), Scan.id.desc())).first()


def count_scans(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Scan)).one())
