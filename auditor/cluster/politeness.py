"""Politeness across the cluster: at most N scans of one target address at a time.

However many workers run, a host is never scanned by more than ``cluster.max_scans_per_address``
(policy parameter) of them at once. A scan holds a *lease*: a row of ``cluster_lease`` with
``UNIQUE(address, slot)`` for one of the slots 0..N-1, taken by an INSERT that fails when the
slot is held (so two workers can never hold the same slot, whatever the timing), renewed by
its holder while the scan runs, and free for others once it expires: a worker killed mid-scan
frees its slot after at most ``LEASE_TTL_S``. The database is the arbiter (not a Redis
semaphore), so the limit holds with any broker.

The per-batch rate limit is simpler: each job carries ``not_before`` (batch start + position /
rate) and a worker does not start it earlier.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError

from auditor import storage
from auditor.models import ClusterLease, utcnow

log = logging.getLogger("auditor.cluster.politeness")

PARAMETER = "cluster.max_scans_per_address"
DEFAULT_LIMIT = 2
LEASE_TTL_S = 60.0  # a dead holder's slot is free again after this
RENEW_EVERY_S = LEASE_TTL_S / 3
LEASES = ClusterLease.__table__  # type: ignore[attr-defined]


@dataclass
class Lease:
    id: int
    address: str
    slot: int


def limit_from(params: dict[str, object]) -> int:
    """The policy's limit (at least 1)."""
    try:
        return max(1, int(params.get(PARAMETER, DEFAULT_LIMIT)))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return DEFAULT_LIMIT


def try_acquire(db: str | None, address: str, limit: int, holder: str, job_key: str) -> Lease | None:
    """One pass over the slots: the first free (or expired) one, or None when all are held."""
    now = utcnow()
    for slot in range(limit):
        try:
            with storage.session_scope(db) as session:
                # An expired lease belongs to nobody: its holder stopped renewing it.
                session.execute(delete(LEASES).where(LEASES.c.address == address, LEASES.c.slot == slot,
                                                     LEASES.c.expires_at < now))
                result = session.execute(insert(LEASES).values(
                    address=address, slot=slot, holder=holder, job_key=job_key,
                    expires_at=now + timedelta(seconds=LEASE_TTL_S)))
                return Lease(int(result.inserted_primary_key[0]), address, slot)
        except IntegrityError:
            continue  # held by someone else
    return None


def acquire(db: str | None, address: str, limit: int, holder: str, job_key: str, *, wait: float) -> Lease | None:
    """A slot for ``address``, waiting up to ``wait`` seconds; None when none came free."""
    deadline = time.monotonic() + wait
    delay = 0.1
    while True:
        lease = try_acquire(db, address, limit, holder, job_key)
        if lease is not None or time.monotonic() >= deadline:
            return lease
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 1.0)


def renew(db: str | None, lease: Lease) -> bool:
    with storage.session_scope(db) as session:
        result = session.execute(update(LEASES).where(LEASES.c.id == lease.id)
                                 .values(expires_at=utcnow() + timedelta(seconds=LEASE_TTL_S)))
        return bool(result.rowcount)  # type: ignore[attr-defined]


def release(db: str | None, lease: Lease) -> None:
    with storage.session_scope(db) as session:
        session.execute(delete(LEASES).where(LEASES.c.id == lease.id))


class Held:
    """A lease renewed by a daemon thread until released (``with Held(db, lease): ...``)."""

    def __init__(self, db: str | None, lease: Lease) -> None:
        self.db, self.lease = db, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{lease.address}", daemon=True)

    def __enter__(self) -> Held:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        try:
            release(self.db, self.lease)
        except Exception:  # it expires by itself
            log.warning("could not release the lease on %s", self.lease.address, exc_info=True)

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_EVERY_S):
            try:
                renew(self.db, self.lease)
            except Exception:
                log.warning("could not renew the lease on %s", self.lease.address, exc_info=True)
