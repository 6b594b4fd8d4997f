"""The re-audit scheduler, for real: scheduler processes, loopback sites, SQLite, SMTP.

Servers live on 127.0.5.x only (this file's address range): lab sites on .1-.3, a site whose
certificate is switched between valid and expired on .20, a tarpit that holds scans open on
.30 and an aiosmtpd server on .250.
"""

from __future__ import annotations

import email
import email.policy
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from project_paths import PROJECT
from sqlalchemy.engine import make_url
from sqlmodel import select

from auditor import storage
from auditor.cli import build_parser
from auditor.cli.scan_cmds import scan_request_from_args
from auditor.errors import AuditorError
from auditor.lab.pki import LabPKI
from auditor.lab.server import LabHTTPServer, TLSConfig, build_tls_context
from auditor.lab.sites import GOOD_SITE, Lab, good_pages, variant
from auditor.models import Certificate, InformationSystem, Scan, ScheduleRun, Site
from auditor.targets import origin_of, parse_target
from scheduler import runs
from scheduler import store as scheduler_store
from scheduler.admin import paused_scheduler
from scheduler.events import EventLog
from scheduler.jobs import job_id
from scheduler.service import Service, ServiceConfig
from scheduler.spec import describe, make_spec, misfire_grace_seconds, parse_duration
from scheduler.store import scheduler_engine
from scheduler.triggers import EPOCH, SpreadIntervalTrigger, spread_offset, trigger_for

ROOT = PROJECT
SMTP_ADDR = "127.0.5.250"
FLIP_ADDR = "127.0.5.20"
TARPIT_ADDR = "127.0.5.30"
OWNER = "chu.quan@so-thu-nghiem.example"


# -- fixtures -----------------------------------------------------------------------------


class FlipSite:
    """A good site whose certificate can be switched between valid and expired (the HTTPS
    server is restarted on the same address and port with the other certificate)."""

    host = "flip.lab.auditor.test"

    def __init__(self, directory: Path) -> None:
        self.pki = LabPKI(directory)
        now = datetime.now(UTC)
        valid = self.pki.issue("flip-valid", [self.host])
        expired = self.pki.issue("flip-expired", [self.host], not_before=now - timedelta(days=400),
                                 not_after=now - timedelta(days=10))
        self.contexts = {
            "valid": build_tls_context(TLSConfig(), valid.cert, valid.key),
            "expired": build_tls_context(TLSConfig(), expired.cert, expired.key),
        }
        self.pages = good_pages()
        self.https = self._serve(443, "valid")
        self.serving = "valid"
        self.https_port = self.https.port
        self.http = LabHTTPServer(FLIP_ADDR, self._free(80), redirect_to=origin_of(self.host, self.https_port)).start()
        self.url = origin_of(self.host, self.https_port) + "/"
        self.resolve = [f"{self.host}:{self.https_port}:{FLIP_ADDR}", f"{self.host}:{self.http.port}:{FLIP_ADDR}"]
        self.ca_file = self.pki.ca_file

    @staticmethod
    def _free(port: int) -> int:
        with socket.socket() as s:
            try:
                s.bind((FLIP_ADDR, port))
                return port
            except OSError:
                return 0

    def _serve(self, port: int, which: str) -> LabHTTPServer:
        return LabHTTPServer(FLIP_ADDR, self._free(port) if port == 443 else port,
                             pages=self.pages, tls=self.contexts[which]).start()

    def switch(self, which: str) -> None:
        """Serve the ``which`` certificate; a no-op when it is served already (a restart would
        refuse connections for a moment, which a re-audit under way rightly takes as an outage)."""
        if which == self.serving:
            return
        self.serving = which
        self.https.stop()
        self.https = LabHTTPServer(FLIP_ADDR, self.https_port, pages=self.pages, tls=self.contexts[which]).start()

    def stop(self) -> None:
        self.https.stop()
        self.http.stop()


class Tarpit:
    """Accepts TCP connections on 443 and 80 and never answers: holds a scan open until the
    scanner's own timeouts end it, so that a test can kill the scheduler mid-scan."""

    host = "slow.lab.auditor.test"

    def __init__(self) -> None:
        self.socks = []
        self.ports = []
        for port in (443, 80):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((TARPIT_ADDR, port))
            except OSError:
                s.bind((TARPIT_ADDR, 0))
            s.listen(64)
            self.socks.append(s)
            self.ports.append(s.getsockname()[1])
        self.url = origin_of(self.host, self.ports[0]) + "/"
        self.resolve = [f"{self.host}:{p}:{TARPIT_ADDR}" for p in self.ports]

    def stop(self) -> None:
        for s in self.socks:
            s.close()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.rcpts: list[list[str]] = []
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.rcpts.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("sched-sites")
    lab = Lab(base / "lab", [GOOD_SITE, variant("good-b", (), "second good site"),
                             variant("good-c", (), "third good site")], first_address="127.0.5.1").start()
    flip = FlipSite(base / "flip")
    tarpit = Tarpit()
    try:
        yield {"lab": lab, "flip": flip, "tarpit": tarpit}
    finally:
        lab.stop()
        flip.stop()
        tarpit.stop()


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    box = Inbox()
    # A free port, so that two runs of this file on one machine do not collide.
    with socket.socket() as probe:
        probe.bind((SMTP_ADDR, 0))
        box.port = probe.getsockname()[1]
    controller = Controller(box, hostname=SMTP_ADDR, port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled policy, but certificates judged on the tls and http checks alone (the level
    requirements, and the privacy and reputation checks, need pages, feeds and attestations
    that these tests do not exercise: the sites are scanned with tls and http)."""
    target = tmp_path_factory.mktemp("policy") / "default"
    shutil.copytree(ROOT / "policies" / "default", target)
    path = target / "policy.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["certificate"]["require_level_requirements"] = False
    data["certificate"]["require_checks"] = ["tls", "http"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return target


# -- helpers --------------------------------------------------------------------------------


class SchedulerProcess:
    """``python -m auditor schedule run ...`` with its JSON log lines collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "auditor", "schedule", "run", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT),
        )
        self._threads = [
            threading.Thread(target=self._read_events, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            record = json.loads(line)  # every line must be one JSON event
            with self._lock:
                self.events.append(record)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def of(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["event"] == name]

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            with self._lock:
                batch = self.events[seen:]
                seen += len(batch)
            for e in batch:
                if pred(e):
                    return e
            if self.proc.poll() is not None and not batch:
                break
            time.sleep(0.05)
        raise AssertionError(f"event not seen in {timeout}s; events: {self.events[-15:]}; stderr: {''.join(self.stderr)[-2000:]}")

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=5)
        return code

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        for t in self._threads:
            t.join(timeout=5)


def scan_args(db: str, ca_file: Path, resolve: list[str], *extra: str) -> list[str]:
    out = ["--db", db, "--ca-file", str(ca_file), "--checks", "tls,http", "--no-dns"]
    for r in resolve:
        out += ["--resolve", r]
    return out + list(extra)


def add_system(db: str, name: str, urls: list[str], *, contact: str = OWNER, level: int = 2) -> None:
    with storage.session_scope(db) as session:
        system = InformationSystem(name=name, owner="Sở Thử nghiệm", contact=contact, declared_level=level)
        session.add(system)
        session.flush()
        for url in urls:
            full, host, port, _, _ = parse_target(url)
            session.add(Site(url=full, host=host, port=port, system_id=system.id))


def rows(db: str, model: Any) -> list[Any]:
    with storage.session_scope(db) as session:
        return list(session.exec(select(model).order_by(model.id)))


def env_for(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, AUDITOR_NO_DNS="1", AUDITOR_ISSUER_KEY=str(tmp_path / "issuer.pem"),
                PYTHONPATH=str(ROOT))


def assert_no_overlap(all_runs: list[ScheduleRun]) -> None:
    """No site ever had two runs at the same time."""
    by_site: dict[str, list[ScheduleRun]] = {}
    for r in all_runs:
        if r.started_at is not None:
            by_site.setdefault(r.site_url, []).append(r)
    for site, lst in by_site.items():
        lst.sort(key=lambda r: r.started_at)
        for a, b in zip(lst, lst[1:], strict=False):
            assert a.finished_at is not None and a.finished_at <= b.started_at, (site, a, b)


def assert_books_balance(db: str, manual: frozenset[int] = frozenset()) -> None:
    """Every scan (but the ``manual`` ones, made by `auditor scan`) belongs to exactly one run,
    no scan is left running, slots are unique, runs of a site never overlap."""
    all_runs = rows(db, ScheduleRun)
    scans = [s for s in rows(db, Scan) if s.id not in manual]
    linked = [r.scan_id for r in all_runs if r.scan_id is not None]
    assert len(linked) == len(set(linked)), "a scan is linked to two runs"
    assert sorted(linked) == sorted(s.id for s in scans), "a scan without its run, or a run's scan missing"
    assert not [s for s in scans if s.status == "running"]
    assert len({(r.site_url, r.slot) for r in all_runs}) == len(all_runs)
    status_of = {s.id: s.status for s in scans}
    for r in all_runs:
        if r.status == "finished":
            assert status_of[r.scan_id] == "completed", r
        if r.status == "interrupted" and r.scan_id is not None:
            assert status_of[r.scan_id] == "interrupted", r
    assert_no_overlap(all_runs)


# -- schedule specs and triggers (no network) ---------------------------------------------------


def test_specs_parse_and_reject_with_one_line_errors() -> None:
    assert parse_duration("10s") == 10 and parse_duration("15m") == 900
    assert parse_duration("1h") == 3600 and parse_duration("7d") == 604800
    assert make_spec(interval="7d") == "interval:604800"
    assert make_spec(cron="0  3 * * 1") == "cron:0 3 * * 1"
    assert describe("interval:604800") == "every 1w" and describe("interval:90") == "every 90s"
    assert misfire_grace_seconds("interval:10") == 60
    for bad in ("10x", "0s", "", "-5m", "400d", "²", "²h", "1" * 5000):
        with pytest.raises(AuditorError):
            parse_duration(bad)
    for bad in ("* * *", "61 * * * *", "0 3 * * funday"):
        with pytest.raises(AuditorError):
            make_spec(cron=bad)
    with pytest.raises(AuditorError):
        make_spec(interval="1h", cron="0 3 * * 1")


def test_weekly_jobs_spread_over_the_week_on_a_stable_grid() -> None:
    week = 7 * 86400
    urls = [f"https://site{i}.example.gov.vn/" for i in range(5000)]
    offsets = [spread_offset(u, week) for u in urls]
    per_hour: dict[int, int] = {}
    for off in offsets:
        per_hour[off // 3600] = per_hour.get(off // 3600, 0) + 1
    # 5000 sites over 168 hours: about 30 an hour; a start-at-once herd would put 5000 in one.
    assert len(per_hour) == 168
    assert max(per_hour.values()) < 60
    trig = trigger_for("interval:604800", urls[0])
    assert isinstance(trig, SpreadIntervalTrigger)
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    first = trig.get_next_fire_time(None, now)
    assert now <= first < now + timedelta(days=7)
    assert (first - EPOCH).total_seconds() % week == offsets[0]
    # A first run off the grid (a never-assessed site at start-up) does not move the grid.
    assert trig.get_next_fire_time(now, now) == first
    assert trig.get_next_fire_time(first, first) == first + timedelta(days=7)
    # Same answer in another "process" (a fresh trigger from the stored state).
    clone = SpreadIntervalTrigger.__new__(SpreadIntervalTrigger)
    clone.__setstate__(trig.__getstate__())
    assert clone.get_next_fire_time(None, now) == first


def test_a_job_store_error_does_not_end_the_scheduler_thread(db_url: str) -> None:
    """An UPDATE of the job store failing (database locked) is retried: the slot is claimed
    again, later slots still come (APScheduler alone would let its thread die)."""
    from sqlalchemy.exc import OperationalError

    from scheduler.executor import SlotExecutor
    from scheduler.jobs import SiteJobStore
    from scheduler.service import _ServiceScheduler

    class FlakyStore(SiteJobStore):
        failures = 1

        def update_job(self, job: Any) -> None:
            if self.failures:
                self.failures -= 1
                raise OperationalError("UPDATE apscheduler_jobs", {}, Exception("database is locked"))
            super().update_job(job)

    claimed: list[datetime] = []
    errors: list[Exception] = []
    executor = SlotExecutor(claim=lambda url, slot: claimed.append(slot), execute=lambda *a: None,
                            missed=lambda *a: True, workers=1)
    sched = _ServiceScheduler(on_error=errors.append, jobstores={"default": FlakyStore(engine=scheduler_engine(db_url))},
                              executors={"default": executor}, timezone=UTC, jobstore_retry_interval=0.1)
    sched.add_job(print, trigger=SpreadIntervalTrigger(1), args=["https://x.example.gov.vn/"], id="j",
                  coalesce=True, max_instances=1, misfire_grace_time=60)
    sched.start()
    try:
        deadline = time.monotonic() + 10
        while len(claimed) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sched.shutdown(wait=False)
    assert len(errors) == 1 and "database is locked" in str(errors[0])
    assert len(claimed) >= 3 and claimed[0] == claimed[1] < claimed[2]


# -- run bookkeeping in the database -------------------------------------------------------------


def test_scheduler_tables_come_first_and_the_shared_engine_stays_open(db_url: str) -> None:
    engine = scheduler_engine(db_url)
    with engine.connect() as conn:  # before any job store started (two processes may start at once)
        assert conn.exec_driver_sql("SELECT count(*) FROM apscheduler_jobs").scalar() == 0
    pool = engine.pool
    with paused_scheduler(db_url):
        pass
    assert engine.pool is pool  # the job store's shutdown did not dispose the tool's engine


def test_claims_deduplicate_slots_and_refuse_a_second_active_run(db_url: str) -> None:
    engine = scheduler_engine(db_url)
    url = "https://portal.example.gov.vn/"
    slot = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    first = runs.claim(engine, url, slot, "host-a:1:1")
    assert first.run_id is not None
    assert runs.claim(engine, url, slot, "host-b:2:2") == runs.Claim(None, "slot-taken")
    later = runs.claim(engine, url, slot + timedelta(hours=1), "host-b:2:2")
    assert later == runs.Claim(None, "site-busy")  # one active run per site, whatever the slot
    assert runs.mark_started(engine, first.run_id)
    assert not runs.mark_started(engine, first.run_id)
    assert runs.mark_done(engine, first.run_id, "finished", scan_id=None, error=None)
    assert runs.claim(engine, url, slot + timedelta(hours=1), "host-b:2:2").run_id is not None


def test_dead_workers_runs_are_interrupted_and_retried_once(db_url: str) -> None:
    engine = scheduler_engine(db_url)
    url = "https://portal.example.gov.vn/"
    slot = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    dead = f"{socket.gethostname()}:999999999:1"  # no such pid
    live = str(runs.Worker.current())
    claim = runs.claim(engine, url, slot, dead)
    assert claim.run_id is not None and runs.mark_started(engine, claim.run_id)
    # Killed after its scan row was written but before the run was linked to it.
    with storage.session_scope(db_url) as session:
        site = Site(url=url, host="portal.example.gov.vn", port=443)
        session.add(site)
        session.flush()
        session.add(Scan(site_id=site.id, url=url, host=site.host, port=443, status="running"))
    other = runs.claim(engine, "https://other.example.gov.vn/", slot, live)
    assert other.run_id is not None
    reaped = runs.reap_dead(engine, stale_after=timedelta(hours=1))
    assert [r.run_id for r in reaped] == [claim.run_id]  # this process's own run is alive
    run = rows(db_url, ScheduleRun)[0]
    assert run.status == "interrupted" and "999999999" in (run.error or "")
    scan = rows(db_url, Scan)[0]
    assert scan.status == "interrupted" and run.scan_id == scan.id
    cands = runs.retry_candidates(engine)
    assert [(c.site_url, c.slot) for c in cands] == [(url, slot + timedelta(microseconds=1))]
    # Two processes noticing the same interruption: one retry.
    retry = runs.claim(engine, url, cands[0].slot, live)
    assert retry.run_id is not None
    assert runs.claim(engine, url, cands[0].slot, "x:1:1").run_id is None
    assert runs.retry_candidates(engine) == []
    # A slot interrupted three times running is left to the regular schedule (no crash loop).
    assert runs.interrupt(engine, retry.run_id, "crashed again")
    (again,) = runs.retry_candidates(engine)
    assert again.slot == slot + timedelta(microseconds=2)
    third = runs.claim(engine, url, again.slot, live)
    assert third.run_id is not None and runs.interrupt(engine, third.run_id, "and again")
    assert runs.retry_candidates(engine) == []
    # A worker on another host is presumed alive until the stale bound.
    far = runs.claim(engine, "https://far.example.gov.vn/", slot, "elsewhere:42:42")
    assert far.run_id is not None
    assert runs.reap_dead(engine, stale_after=timedelta(hours=1)) == []


# -- schedule list|add|pause|resume|remove ---------------------------------------------------------


def test_schedule_commands_edit_the_persistent_job_store(db_url: str, cli: Any) -> None:
    add_system(db_url, "Hệ thống A", ["https://a.example.gov.vn/", "https://b.example.gov.vn/"])
    r = cli("schedule", "list", "--format", "json", "--db", db_url)
    assert r.code == 0, r
    listed = {s["url"]: s for s in json.loads(r.out)["sites"]}
    assert set(listed) == {"https://a.example.gov.vn/", "https://b.example.gov.vn/"}
    assert all(s["schedule"] == "interval:604800" and s["source"] == "default" for s in listed.values())
    # Never assessed: due at once.
    assert all(datetime.fromisoformat(s["next_run"].replace("Z", "+00:00")) <= datetime.now(UTC)
               for s in listed.values())

    r = cli("schedule", "add", "--system", "Hệ thống A", "--cron", "0 3 * * 1", "--db", db_url)
    assert r.code == 0, r
    r = cli("schedule", "add", "https://b.example.gov.vn", "--interval", "15m", "--db", db_url)
    assert r.code == 0 and "every 15m" in r.out, r
    r = cli("schedule", "add", "https://adhoc.example.gov.vn/x", "--interval", "1h", "--db", db_url)
    assert r.code == 0, r
    r = cli("schedule", "pause", "https://a.example.gov.vn/", "--db", db_url)
    assert r.code == 0, r
    listed = {s["url"]: s for s in json.loads(cli("schedule", "list", "--format", "json", "--db", db_url).out)["sites"]}
    assert listed["https://a.example.gov.vn/"]["schedule"] == "cron:0 3 * * 1"
    assert listed["https://a.example.gov.vn/"]["source"] == "system"
    assert listed["https://a.example.gov.vn/"]["state"] == "paused"
    assert listed["https://a.example.gov.vn/"]["next_run"] is None
    assert listed["https://b.example.gov.vn/"]["schedule"] == "interval:900"
    assert listed["https://adhoc.example.gov.vn/x"]["state"] == "active"

    # The job store itself (what a scheduler process reads) agrees.
    engine = scheduler_engine(db_url)
    with engine.connect() as conn:
        stored = dict(conn.exec_driver_sql("SELECT id, next_run_time FROM apscheduler_jobs").all())
    assert len(stored) == 3 and sum(1 for v in stored.values() if v is None) == 1

    assert cli("schedule", "resume", "https://a.example.gov.vn/", "--db", db_url).code == 0
    assert cli("schedule", "remove", "https://adhoc.example.gov.vn/x", "--db", db_url).code == 0
    listed = {s["url"]: s for s in json.loads(cli("schedule", "list", "--format", "json", "--db", db_url).out)["sites"]}
    assert listed["https://a.example.gov.vn/"]["next_run"] is not None
    assert listed["https://adhoc.example.gov.vn/x"]["state"] == "removed"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM apscheduler_jobs").scalar() == 2
    table = cli("schedule", "list", "--db", db_url)
    assert table.code == 0 and "cron 0 3 * * 1 (system)" in table.out

    # Bad input: one line, exit 2, nothing changed.
    for args in (("add", "https://a.example.gov.vn/", "--interval", "10x"),
                 ("add", "https://a.example.gov.vn/", "--cron", "bad cron"),
                 ("pause", "https://unknown.example.gov.vn/"),
                 ("add", "--system", "no such system", "--interval", "1h"),
                 ("add", "ftp://a.example.gov.vn/")):
        r = cli("schedule", *args, "--db", db_url)
        assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, (args, r)
    after = {s["url"]: s for s in json.loads(cli("schedule", "list", "--format", "json", "--db", db_url).out)["sites"]}
    assert {u: (s["schedule"], s["state"]) for u, s in after.items()} == \
        {u: (s["schedule"], s["state"]) for u, s in listed.items()}


# -- the service, for real --------------------------------------------------------------------------


def test_certificate_suspended_owner_mailed_then_reinstated(
    tmp_path: Path, sites: dict[str, Any], inbox: Inbox, policy_dir: Path, cli: Any
) -> None:
    flip: FlipSite = sites["flip"]
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    env = env_for(tmp_path)
    add_system(db, "Cổng dịch vụ công thử nghiệm", [flip.url])
    args = scan_args(db, flip.ca_file, flip.resolve)
    # An assessed site with a valid certificate, as `auditor scan` + `auditor certify` leave it.
    r = cli("scan", flip.url, *args, "--policy", str(policy_dir))
    assert r.code == 0, r
    r = cli("certify", flip.url, "--db", db, "--policy", str(policy_dir), "--key", env["AUDITOR_ISSUER_KEY"])
    assert r.code == 0, r
    serial = rows(db, Certificate)[0].serial
    manual = frozenset(s.id for s in rows(db, Scan))
    assert cli("schedule", "add", flip.url, "--interval", "2s", "--db", db).code == 0
    registry = tmp_path / "registry"
    before = len(inbox.messages)

    proc = SchedulerProcess(
        [*args, "--policy", str(policy_dir), "--sync-interval", "1", "--registry-out", str(registry),
         "--smtp-host", SMTP_ADDR, "--smtp-port", str(inbox.port), "--smtp-from", "auditor@ncsc.example"],
        env,
    )
    try:
        proc.wait_for(lambda e: e["event"] == "run_finished" and e.get("certificate") == "keep", 30)
        flip.switch("expired")
        suspended = proc.wait_for(lambda e: e["event"] == "certificate" and e["action"] == "suspend", 30)
        assert suspended["serial"] == serial and suspended["new_status"] == "suspended"
        assert any("tls.cert.expired" in reason for reason in suspended["reasons"])
        proc.wait_for(lambda e: e["event"] == "notify_sent" and e["new_status"] == "suspended", 30)
        proc.wait_for(lambda e: e["event"] == "run_finished" and e.get("certificate") == "suspend", 30)
        assert json.loads((registry / "registry.json").read_text())["sites"][0]["certificate"]["status"] == "suspended"
        flip.switch("valid")
        proc.wait_for(lambda e: e["event"] == "certificate" and e["action"] == "reinstate", 30)
        proc.wait_for(lambda e: e["event"] == "notify_sent" and e["new_status"] == "valid", 30)
    finally:
        flip.switch("valid")
        code = proc.terminate()
    assert code == 0, proc.stderr
    assert proc.of("scheduler_stopped")
    for e in proc.events:
        print(e["ts"], e["event"], e.get("run_id"), e.get("action"), e.get("duration_s"), e.get("reasons"), e.get("error"))

    # The owner's mail: to the system's contact, bilingual, the report PDF attached.
    mails = inbox.messages[before:]
    assert [m["To"] for m in mails] == [OWNER, OWNER]
    suspended_mail = mails[0]
    assert "bị tạm đình chỉ" in suspended_mail["Subject"] and flip.url in suspended_mail["Subject"]
    body = suspended_mail.get_body(("plain",)).get_content()
    assert serial in body and "tls.cert.expired" in body and "The weekly re-audit" in body
    pdfs = [p for p in suspended_mail.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1 and pdfs[0].get_content().startswith(b"%PDF")
    assert "còn hiệu lực" in mails[1]["Subject"]

    cert = rows(db, Certificate)[0]
    assert cert.status == "valid" and "reinstated" in (cert.status_reason or "")
    assert json.loads((registry / "registry.json").read_text())["sites"][0]["certificate"]["status"] == "valid"
    all_runs = rows(db, ScheduleRun)
    assert len(all_runs) >= 3 and {r.status for r in all_runs} <= {"finished", "failed", "interrupted"}
    assert_books_balance(db, manual)
    # One JSON line per event, each with a time stamp and the worker.
    assert all({"ts", "event", "worker"} <= set(e) for e in proc.events)


def test_kill9_mid_scan_then_restart_resumes_without_loss_or_duplicates(
    tmp_path: Path, sites: dict[str, Any], policy_dir: Path, cli: Any
) -> None:
    tarpit: Tarpit = sites["tarpit"]
    lab: Lab = sites["lab"]
    good = lab.site("good")
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    env = env_for(tmp_path)
    add_system(db, "Hệ thống chậm", [tarpit.url, good.url])
    assert cli("schedule", "add", tarpit.url, "--interval", "1h", "--db", db).code == 0
    assert cli("schedule", "add", good.url, "--interval", "1h", "--db", db).code == 0
    args = [*scan_args(db, lab.ca_file, tarpit.resolve + good.resolve, "--timeout", "2", "--site-timeout", "4"),
            "--policy", str(policy_dir), "--sync-interval", "1"]

    first = SchedulerProcess(args, env)
    # Both never-assessed sites run at once; the good one finishes in about a second while
    # the tarpit holds the other scan open for seconds: kill -9 then.
    first.wait_for(lambda e: e["event"] == "run_started" and e["site"] == tarpit.url, 30)
    first.wait_for(lambda e: e["event"] == "run_finished" and e["site"] == good.url, 30)
    assert not [e for e in first.of("run_finished") if e["site"] == tarpit.url]
    first.kill9()
    killed_pid = first.proc.pid
    stuck = [r for r in rows(db, ScheduleRun) if r.site_url == tarpit.url]
    assert [r.status for r in stuck] == ["started"]
    assert [s.status for s in rows(db, Scan) if s.url == tarpit.url] == ["running"]

    second = SchedulerProcess(args, env)
    try:
        reaped = second.wait_for(lambda e: e["event"] == "run_interrupted", 30)
        assert reaped["site"] == tarpit.url and f":{killed_pid}:" in reaped["dead_worker"]
        retry = second.wait_for(lambda e: e["event"] == "run_queued" and e.get("retry_of") == stuck[0].id, 30)
        second.wait_for(lambda e: e["event"] in ("run_finished", "run_failed") and e["run_id"] == retry["run_id"], 30)
    finally:
        code = second.terminate()
    assert code == 0

    tarpit_runs = [r for r in rows(db, ScheduleRun) if r.site_url == tarpit.url]
    assert [r.status for r in tarpit_runs][:1] == ["interrupted"]
    assert tarpit_runs[1].slot == tarpit_runs[0].slot + timedelta(microseconds=1)
    assert tarpit_runs[1].status in ("finished", "failed") and tarpit_runs[1].scan_id is not None
    # The good site ran once across both processes (its hourly slot is far ahead).
    good_runs = [r for r in rows(db, ScheduleRun) if r.site_url == good.url]
    assert len([r for r in good_runs if r.status == "finished"]) == 1
    assert_books_balance(db)


def _two_processes_share_one_database(db: str, tmp_path: Path, sites: dict[str, Any], policy_dir: Path,
                                      cli: Any) -> None:
    lab: Lab = sites["lab"]
    urls = [s.url for s in lab.sites]
    env = env_for(tmp_path)
    add_system(db, "Hệ thống dùng chung", urls)
    assert cli("schedule", "add", "--system", "Hệ thống dùng chung", "--interval", "2s", "--db", db).code == 0
    args = [*scan_args(db, lab.ca_file, lab.resolve_args), "--policy", str(policy_dir), "--sync-interval", "1"]
    procs = [SchedulerProcess(args, env), SchedulerProcess(args, env)]
    try:
        time.sleep(9)
    finally:
        codes = [p.terminate() for p in procs]
    assert codes == [0, 0], [p.stderr for p in procs]

    all_runs = rows(db, ScheduleRun)
    queued = [e for p in procs for e in p.of("run_queued")]
    skipped = [e for p in procs for e in p.of("run_skipped")]
    # Both processes wanted the same slots; the database let one have each.
    assert skipped and {e["reason"] for e in skipped} <= {"slot-taken", "site-busy", "running-here"}
    assert len(queued) == len(all_runs)
    assert {r.site_url for r in all_runs} == set(urls)
    assert len([r for r in all_runs if r.status == "finished"]) >= 2 * len(urls)
    assert_books_balance(db)


def test_two_scheduler_processes_never_run_a_site_twice(
    tmp_path: Path, sites: dict[str, Any], policy_dir: Path, cli: Any
) -> None:
    _two_processes_share_one_database(f"sqlite:///{tmp_path / 'shared.db'}", tmp_path, sites, policy_dir, cli)


def test_two_scheduler_processes_on_postgresql(tmp_path: Path, sites: dict[str, Any], policy_dir: Path,
                                               cli: Any, pg_url: str) -> None:
    """Same proof on PostgreSQL (a throwaway server, or AUDITOR_TEST_PG_URL), wiped first."""
    from sqlalchemy import create_engine, text

    db = pg_url
    scratch = create_engine(db)
    with scratch.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    scratch.dispose()
    storage._ENGINES.pop(storage.resolve_db_url(db), None)
    scheduler_store._READY.discard(str(make_url(db)))
    _two_processes_share_one_database(db, tmp_path, sites, policy_dir, cli)


def test_sigterm_interrupts_a_run_cleanly_and_exits_0(
    tmp_path: Path, sites: dict[str, Any], policy_dir: Path, cli: Any
) -> None:
    tarpit: Tarpit = sites["tarpit"]
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    add_system(db, "Hệ thống chậm", [tarpit.url])
    args = [*scan_args(db, sites["lab"].ca_file, tarpit.resolve, "--timeout", "20", "--site-timeout", "60"),
            "--policy", str(policy_dir), "--stop-timeout", "1"]
    proc = SchedulerProcess(args, env_for(tmp_path))
    started = proc.wait_for(lambda e: e["event"] == "run_started", 30)
    time.sleep(0.3)
    t0 = time.monotonic()
    code = proc.terminate(timeout=15)
    assert code == 0, proc.stderr
    assert time.monotonic() - t0 < 6  # the scan alone would hold it for up to 60 s
    stopped = proc.of("run_interrupted")
    assert [(e["run_id"], e["by"]) for e in stopped] == [(started["run_id"], "stop")]
    assert proc.of("scheduler_stopped")[0]["interrupted"] == 1
    (run,) = rows(db, ScheduleRun)
    (scan,) = rows(db, Scan)
    assert run.status == "interrupted" and run.scan_id == scan.id and scan.status == "interrupted"
    assert run.finished_at is not None and "stopped during the run" in (run.error or "")


def test_after_downtime_missed_slots_run_once(tmp_path: Path, sites: dict[str, Any], policy_dir: Path, cli: Any) -> None:
    """Three hourly slots missed while no scheduler ran: one coalesced run, on the last one.
    A never-assessed site whose yearly cron slot passed 20 days ago (past the 7-day misfire
    grace) still runs."""
    good = sites["lab"].site("good-b")
    fresh = sites["lab"].site("good-c")
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    add_system(db, "Hệ thống B", [good.url, fresh.url])
    args = scan_args(db, sites["lab"].ca_file, good.resolve + fresh.resolve)
    assert cli("scan", good.url, *args).code == 0  # assessed: follows its grid, not "at once"
    manual = frozenset(s.id for s in rows(db, Scan))
    assert cli("schedule", "add", good.url, "--interval", "1h", "--db", db).code == 0
    now = datetime.now(UTC)
    due = now - timedelta(days=20)
    yearly = f"0 3 {due.day} {due.month} *"
    assert cli("schedule", "add", fresh.url, "--cron", yearly, "--db", db).code == 0
    trigger = trigger_for("interval:3600", good.url)
    last_slot = trigger.latest_at_or_before(now)
    with paused_scheduler(db) as sched:
        sched.modify_job(job_id(good.url), next_run_time=last_slot - timedelta(hours=2))
        sched.modify_job(job_id(fresh.url), next_run_time=now - timedelta(days=40))

    ns = build_parser().parse_args(["schedule", "run", *args])
    log = io.StringIO()
    service = Service(ServiceConfig(db=db, request=scan_request_from_args(ns, []), policy_dir=str(policy_dir),
                                    sync_interval=0.3), EventLog(log))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and log.getvalue().count('"run_finished"') < 2:
            time.sleep(0.1)
        time.sleep(1)  # room for a wrong extra run to show up
    finally:
        stop.set()
        thread.join(timeout=30)
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    by_site = {url: [r for r in rows(db, ScheduleRun) if r.site_url == url] for url in (good.url, fresh.url)}
    assert [(r.slot, r.status) for r in by_site[good.url]] == [(last_slot, "finished")], events
    assert [(r.slot, r.status) for r in by_site[fresh.url]] == [
        (datetime(due.year, due.month, due.day, 3, tzinfo=UTC), "finished")], events
    assert [e["site"] for e in events if e["event"] == "run_late"] == [fresh.url]
    assert not [e for e in events if e["event"] == "run_missed"]
    with paused_scheduler(db) as sched:
        assert sched.get_job(job_id(good.url)).next_run_time == last_slot + timedelta(hours=1)
        assert sched.get_job(job_id(fresh.url)).next_run_time > now + timedelta(days=300)  # next year
    assert_books_balance(db, manual)


def test_a_claim_is_retried_when_the_database_is_briefly_unavailable(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A claim that cannot be written would lose the slot until the next one: it is tried again."""
    from sqlalchemy.exc import OperationalError

    from scheduler import runs as scheduler_runs
    from scheduler import service as scheduler_service

    db = f"sqlite:///{tmp_path / 'claim.db'}"
    events: list[dict[str, Any]] = []
    svc = scheduler_service.Service(scheduler_service.ServiceConfig(db=db))
    monkeypatch.setattr(svc.log, "emit", lambda event, **kw: events.append({"event": event, **kw}))
    monkeypatch.setattr(scheduler_service, "CLAIM_RETRY_DELAY_S", 0.01)
    real_claim = scheduler_runs.claim
    failures = iter([OperationalError("INSERT", {}, Exception("database is locked"))])

    def flaky(*args: Any, **kwargs: Any) -> Any:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(scheduler_runs, "claim", flaky)
    slot = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    run_id = svc._claim("https://claim.example.test/", slot)
    assert run_id is not None
    assert [e["event"] for e in events] == ["claim_retry", "run_queued"]
    with storage.session_scope(db) as s:
        run = s.get(ScheduleRun, run_id)
        assert run is not None and run.status == "queued"
