"""Storage: the database URL, the engine, and every write and read of sites, scans, findings
and check runs.

SQLite by default (a file, WAL journal, a busy timeout so concurrent writers wait instead of
failing); any SQLAlchemy URL (PostgreSQL: ``postgresql+psycopg://...``) via ``--db`` or
``AUDITOR_DB``.

The functions take the caller's session, so a caller decides what one transaction holds; the
orchestrator (:mod:`auditor.scanning`) opens one per step, which is what lets a scan be seen
as ``running`` while its checks run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, func, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine, select

from auditor import models  # noqa: F401  (registers the tables)
from auditor.check import Finding, Severity
from auditor.errors import AuditorError
from auditor.models import Attestation, CheckRun, FindingRecord, InformationSystem, Scan, Site, utcnow
from auditor.process_identity import ProcessId, alive_on_this_host
from auditor.results import jsonable, result_hash, scan_dict
from auditor.version import __version__

if TYPE_CHECKING:
    from auditor.engine import CheckRunResult

ENV_VAR = "AUDITOR_DB"
log = logging.getLogger("auditor.storage")


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
    _reap_on_open(engine)
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


# -- sites ------------------------------------------------------------------------------------


def find_site(session: Session, url: str) -> Site | None:
    return session.exec(select(Site).where(Site.url == url)).first()


def get_or_create_site(session: Session, url: str, host: str, port: int) -> Site:
    site = find_site(session, url)
    if site is None:
        site = Site(url=url, host=host, port=port)
        session.add(site)
        session.flush()
    return site


def system_of_site(session: Session, url: str) -> InformationSystem | None:
    """The information system a site belongs to, if the site is inventoried."""
    site = find_site(session, url)
    if site is None or site.system_id is None:
        return None
    return session.get(InformationSystem, site.system_id)


# -- scans: writes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanStamp:
    """What every scan row records about how it was made: the policy, the tool, the options."""

    policy_name: str
    policy_version: str
    options: dict[str, Any]
    tool_version: str = __version__


def start_scan(
    session: Session, url: str, host: str, port: int, stamp: ScanStamp,
    *, started_at: datetime, address: str | None = None,
) -> Scan:
    """A new ``running`` scan of ``url`` (its site created if new), flushed so it has an id."""
    site = get_or_create_site(session, url, host, port)
    scan = Scan(
        site_id=site.id or 0, url=url, host=host, port=port, address=address, status="running",
        started_at=started_at, policy_name=stamp.policy_name, policy_version=stamp.policy_version,
        tool_version=stamp.tool_version, options=stamp.options, system_id=site.system_id,
    )
    session.add(scan)
    session.flush()
    return scan


def record_outcome(
    session: Session, scan: Scan, *, checks: Iterable[CheckRunResult], findings: Sequence[Finding],
    finished_at: datetime, error: str | None, score: int | None = None, grade: str | None = None,
) -> None:
    """Store what a scan produced and finish it: ``failed`` with ``error``, else ``completed``
    with the policy's ``score`` and ``grade``.

    ``findings`` carry the severities the policy gave them. The counts count each finding id
    once, and ``result_hash`` seals the stored result as ``auditor show`` prints it.
    """
    scan_id = scan.id or 0
    runs = list(checks)
    for run in runs:
        session.add(CheckRun(
            scan_id=scan_id, check=run.check, status=run.status, error=run.outcome.error,
            duration_s=run.duration_s, evidence=jsonable(run.outcome.evidence),
        ))
    for f in findings:
        session.add(FindingRecord(
            scan_id=scan_id, finding_id=f.id, check=f.check, severity=f.severity.value, title=f.title,
            evidence=f.evidence, url=f.url, references=list(f.references), details=jsonable(f.details),
        ))
    scan.checks = {r.check: {"status": r.status, "error": r.outcome.error, "duration_s": r.duration_s} for r in runs}
    scan.finished_at = finished_at
    counts: dict[str, int] = {s.value: 0 for s in Severity}
    for severity in {f.id: f.severity for f in findings}.values():
        counts[severity.value] += 1
    scan.counts = counts
    if error:
        scan.status, scan.error = "failed", error
        scan.score = scan.grade = None
    else:
        scan.status, scan.score, scan.grade = "completed", score, grade
    session.add(scan)
    session.flush()
    scan.result_hash = result_hash(scan_dict(scan, findings_of(session, scan_id)))
    session.add(scan)


def mark_scan_failed(session: Session, scan_id: int, error: str) -> bool:
    """Finish a scan as ``failed`` with ``error`` (cut to 2000 characters); False if it is gone."""
    scan = session.get(Scan, scan_id)
    if scan is None:
        return False
    scan.status, scan.error = "failed", error[:2000]
    scan.score = scan.grade = None
    scan.finished_at = utcnow()
    session.add(scan)
    return True


# -- scans left running by a dead process --------------------------------------------------------

# The key of ``Scan.options`` that names the process running the scan (``host:pid:token``).
OWNER_KEY = "process"
# A scan whose owner cannot be probed (another host, or an old row with no owner) counts as
# dead once it has run this long beyond twice its site timeout: no live scan takes that long.
UNPROBED_GRACE = timedelta(minutes=10)


def owner_stamp() -> str:
    """This process, as recorded in ``Scan.options[OWNER_KEY]``."""
    return str(ProcessId.current())


def _why_dead(scan: Scan, me: ProcessId, now: datetime) -> str | None:
    """Why ``scan`` (still ``running``) can no longer finish, or None when it may."""
    options = scan.options or {}
    owner = ProcessId.parse(options.get(OWNER_KEY))
    if owner is not None:
        alive = alive_on_this_host(owner, me)
        if alive is False:
            return f"interrupted: the process that ran it ({owner}) stopped before it finished"
        if alive:
            return None
    try:
        site_timeout = float(options.get("site_timeout") or 180.0)
    except (TypeError, ValueError):
        site_timeout = 180.0
    limit = timedelta(seconds=2 * site_timeout) + UNPROBED_GRACE
    if scan.started_at is not None and now - scan.started_at > limit:
        return f"interrupted: still running {int((now - scan.started_at).total_seconds())} s after it started"
    return None


def mark_scan_interrupted(session: Session, scan_id: int, reason: str) -> bool:
    """``running`` → ``interrupted`` with ``reason``; False if the scan finished meanwhile."""
    result = session.execute(
        update(Scan).where(Scan.id == scan_id, Scan.status == "running")  # type: ignore[arg-type]
        .values(status="interrupted", error=reason[:2000], score=None, grade=None, finished_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def reap_dead_scans(session: Session) -> list[int]:
    """Mark ``interrupted`` every ``running`` scan whose process is gone; their ids.

    On this host the owner is probed exactly (pid and start time); otherwise a scan counts as
    dead only when it has run far longer than its site timeout allows (see ``UNPROBED_GRACE``).
    Each update is conditional on ``running``, so two processes reaping at once agree.
    """
    me, now = ProcessId.current(), utcnow()
    reaped = []
    for scan in session.exec(select(Scan).where(Scan.status == "running")).all():
        reason = _why_dead(scan, me, now)
        if reason and scan.id is not None and mark_scan_interrupted(session, scan.id, reason):
            reaped.append(scan.id)
    return reaped


def _reap_on_open(engine: Engine) -> None:
    """Run :func:`reap_dead_scans` when a process first opens a database (best effort)."""
    try:
        with Session(engine) as session:
            reaped = reap_dead_scans(session)
            session.commit()
    except SQLAlchemyError as exc:
        log.warning("could not check for interrupted scans: %s", str(exc).splitlines()[0])
        return
    if reaped:
        shown = ", ".join(map(str, reaped[:10])) + (", ..." if len(reaped) > 10 else "")
        log.warning("%d scan(s) left running by a stopped process marked interrupted (ids %s)", len(reaped), shown)


def unlink_scans_of_system(session: Session, system_id: int) -> int:
    """Keep a removed system's scans, no longer linked to it; how many there were."""
    count = 0
    for scan in session.exec(select(Scan).where(Scan.system_id == system_id)):
        scan.system_id = None
        session.add(scan)
        count += 1
    return count


# -- scans: reads -------------------------------------------------------------------------------


def get_scan(session: Session, scan_id: int) -> Scan | None:
    return session.get(Scan, scan_id)


def scan_result(session: Session, scan_id: int) -> dict[str, Any] | None:
    """The JSON-contract dict of a stored scan (see :func:`auditor.results.scan_dict`)."""
    scan = session.get(Scan, scan_id)
    if scan is None:
        return None
    return scan_dict(scan, findings_of(session, scan_id))


def assessed_urls(session: Session) -> set[str]:
    """URLs with at least one completed scan."""
    return set(session.exec(select(Scan.url).where(Scan.status == "completed").distinct()))


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


# The key of ``Scan.options`` that ties a scan to a ``--list`` run: {"path", "since"} (see
# :func:`latest_list_run`).
LIST_KEY = "list"


def latest_list_run(session: Session, path: str) -> datetime | None:
    """When the newest recorded run of the list file ``path`` began (its ``since``), or None.

    A resumed run records the ``since`` of the run it continues, so a chain of interrupted
    runs keeps the start of the first one.
    """
    column = Scan.__table__.c.options  # type: ignore[attr-defined]
    stmt = (select(Scan.options).where(column[LIST_KEY]["path"].as_string() == path)
            .order_by(Scan.id.desc()).limit(1))  # type: ignore[union-attr]
    options = session.exec(stmt).first()
    entry = (options or {}).get(LIST_KEY) if isinstance(options, dict) else None
    try:
        since = datetime.fromisoformat(str((entry or {})["since"]))
    except (KeyError, TypeError, ValueError):
        return None
    return since if since.tzinfo else since.replace(tzinfo=UTC)


def completed_since(session: Session, urls: Iterable[str], since: datetime) -> dict[str, int]:
    """For each of ``urls`` with a completed scan started at or after ``since``: the newest one's id."""
    wanted = sorted(set(urls))
    found: dict[str, int] = {}
    for i in range(0, len(wanted), 500):  # stay far below any bound-parameter limit
        stmt = (select(Scan.url, func.max(Scan.id))
                .where(Scan.url.in_(wanted[i:i + 500]), Scan.status == "completed",  # type: ignore[attr-defined]
                       Scan.started_at >= since)
                .group_by(Scan.url))
        found.update({url: int(scan_id) for url, scan_id in session.exec(stmt)})
    return found


def count_scans(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Scan)).one())


# -- attestations ---------------------------------------------------------------------------------


def latest_attestation(
    session: Session, system_id: int, requirement_id: str, before: datetime | None = None
) -> Attestation | None:
    """The owner's newest attestation of one requirement of a system, made before ``before``."""
    stmt = select(Attestation).where(Attestation.system_id == system_id, Attestation.requirement_id == requirement_id)
    if before is not None:
        stmt = stmt.where(Attestation.attested_at < before)
    return session.exec(stmt.order_by(Attestation.attested_at.desc(), Attestation.id.desc())).first()  # type: ignore[union-attr]


def add_attestation(session: Session, system_id: int, requirement_id: str, evidence: str, by: str) -> Attestation:
    """Store an attestation made now (the caller has checked evidence and author)."""
    att = Attestation(system_id=system_id, requirement_id=requirement_id, evidence=evidence,
                      attested_by=by, attested_at=utcnow())
    session.add(att)
    session.flush()
    return att


def delete_attestations_of_system(session: Session, system_id: int) -> int:
    """Delete a system's attestations (they mean nothing without it); how many there were."""
    count = 0
    for att in session.exec(select(Attestation).where(Attestation.system_id == system_id)):
        session.delete(att)
        count += 1
    return count
