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
