"""SQLModel tables: systems, sites, scans, findings, certificates, schedule runs.

Times are timezone-aware UTC datetimes (SQLModel's UTCDateTime stores them in UTC and gives
them back aware, on SQLite too); :func:`utcnow` gives one.
JSON columns hold structured evidence and declared attributes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class InformationSystem(SQLModel, table=True):
    """An inventoried information system (hệ thống thông tin) with its declared attributes."""

    __tablename__ = "information_system"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    owner: str = ""
    contact: str = ""
    category: str = "other"
    # Every declared attribute the level rules need (info_types, personal_data_subjects, ...).
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    declared_level: int | None = None
    computed_level: int | None = None
    level_rules: str | None = None
    allowed_ports: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Site(SQLModel, table=True):
    """A website (HTTPS origin + path) that is scanned; optionally part of a system."""

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(index=True, unique=True)
    host: str = Field(index=True)
    port: int = 443
    system_id: int | None = Field(default=None, foreign_key="information_system.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)


class Scan(SQLModel, table=True):
    """One audit of one site. Written as ``running`` before the checks start."""

    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    url: str
    host: str
    port: int
    address: str | None = None
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None
    status: str = "running"  # running | completed | failed | interrupted
    error: str | None = Field(default=None, sa_column=Column(Text))
    score: int | None = None
    grade: str | None = None
    policy_name: str = ""
    policy_version: str = ""
    tool_version: str = ""
    # {"tls": {"status": "ok", "error": null, "duration_s": 1.2}, ...}
    checks: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Scan parameters: checks asked for, resolve overrides, ca file, timeout, ...
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Counts of findings by severity.
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    system_id: int | None = Field(default=None, foreign_key="information_system.id", index=True)
    # SHA-256 over the canonical JSON result (what a certificate signs).
    result_hash: str | None = None


class FindingRecord(SQLModel, table=True):
    """A finding raised in a scan."""

    __tablename__ = "finding"
    __table_args__ = (Index("ix_finding_scan_fid", "scan_id", "finding_id"),)

    id: int | None = Field(default=None, primary_key=True)
    scan_id: int = Field(foreign_key="scan.id", index=True)
    finding_id: str = Field(index=True)
    check: str
    severity: str
    title: str
    evidence: str = Field(default="", sa_column=Column(Text, nullable=False))
    url: str | None = None
    references: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class CheckRun(SQLModel, table=True):
    """One check family's run within a scan, with its raw evidence."""

    __tablename__ = "check_run"

    id: int | None = Field(default=None, primary_key=True)
    scan_id: int = Field(foreign_key="scan.id", index=True)
    check: str
    status: str  # ok | error
    error: str | None = Field(default=None, sa_column=Column(Text))
    duration_s: float = 0.0
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Attestation(SQLModel, table=True):
    """An owner's attestation that a requirement which cannot be seen from outside is met."""

    id: int | None = Field(default=None, primary_key=True)
    system_id: int = Field(foreign_key="information_system.id", index=True)
    requirement_id: str = Field(index=True)
    evidence: str = Field(default="", sa_column=Column(Text, nullable=False))
    attested_by: str = ""
    attested_at: datetime = Field(default_factory=utcnow)


class Certificate(SQLModel, table=True):
    """A network-trust certificate issued for a site on the strength of one scan."""

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(index=True, unique=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    system_id: int | None = Field(default=None, foreign_key="information_system.id")
    scan_id: int = Field(foreign_key="scan.id")
    issued_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    grade: str
    status: str = "valid"  # valid | suspended | revoked | expired
    status_reason: str | None = Field(default=None, sa_column=Column(Text))
    status_changed_at: datetime | None = None
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    signature: str = ""


class ScheduleRun(SQLModel, table=True):
    """One scheduled re-audit: recorded before it starts, completed after it ends."""

    __tablename__ = "schedule_run"
    __table_args__ = (UniqueConstraint("site_url", "slot", name="uq_schedule_run_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    site_url: str = Field(index=True)
    # The scheduled time this run serves: one run per site and slot, whichever process wins.
    slot: datetime
    status: str = "queued"  # queued | started | finished | failed | interrupted
    queued_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    scan_id: int | None = Field(default=None, foreign_key="scan.id")
    worker: str = ""


# -- the Celery cluster (auditor.cluster): batches of jobs, their results, politeness leases --------
# New tables only: ``create_all`` adds them to an existing database and leaves every older
# table as it was, so a database written by an earlier version opens and upgrades in place.


class ClusterBatch(SQLModel, table=True):
    """One ``scan --broker`` run (or one scheduled run handed to the cluster): its request."""

    __tablename__ = "cluster_batch"

    id: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    # Where it came from: "scan" or "schedule-run:<id>".
    origin: str = ""
    total: int = 0
    # The scan request minus its targets (checks, resolve, ca_file, timeouts, options, ...).
    request: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The policy the client graded with; a worker under another policy refuses the job.
    policy_name: str = ""
    policy_version: str = ""
    # Sites started per second for this batch across the cluster (None: no limit).
    rate: float | None = None
    submitted_by: str = ""


class ClusterJob(SQLModel, table=True):
    """One site of a batch: its state as the workers move it on."""

    __tablename__ = "cluster_job"
    __table_args__ = (UniqueConstraint("batch_id", "position", name="uq_cluster_job_position"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="cluster_batch.id", index=True, max_length=64)
    position: int
    target: str = Field(sa_column=Column(Text, nullable=False))
    status: str = "queued"  # queued | running | done | failed
    attempts: int = 0
    # The scan of the newest attempt (while running) and then the one stored result.
    scan_id: int | None = Field(default=None, foreign_key="scan.id")
    # The result dict of an input that names no site (nothing stored as a scan), else None.
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text))
    worker: str = ""
    # Not started before this time: the batch's rate limit.
    not_before: datetime | None = None
    queued_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ClusterJobResult(SQLModel, table=True):
    """The idempotency key of a job: one row per finished job, inserted in the same transaction
    as the finished scan. A second delivery of the job fails on the primary key and its scan is
    not stored as finished."""

    __tablename__ = "cluster_job_result"

    job_key: str = Field(primary_key=True, max_length=100)
    scan_id: int | None = Field(default=None, foreign_key="scan.id", unique=True)
    stored_at: datetime = Field(default_factory=utcnow)
    worker: str = ""


class ClusterLease(SQLModel, table=True):
    """A politeness slot: at most N rows (slots 0..N-1) per target address across the cluster.
    A lease expires unless its holder renews it, so a dead worker frees its slot."""

    __tablename__ = "cluster_lease"
    __table_args__ = (UniqueConstraint("address", "slot", name="uq_cluster_lease_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=100)
    slot: int
    holder: str = ""
    job_key: str = ""
    expires_at: datetime
