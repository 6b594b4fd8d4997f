"""The Celery application: broker URL, queue, and every delivery setting with its reason.

Both sides build the app from the same function: the client only publishes (by task name,
without importing the task code), the worker also registers the task
(:mod:`auditor.cluster.worker`). Results never travel through Celery: workers store them in
the database and the client reads them there, so no result backend is configured.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from auditor.errors import AuditorError

if TYPE_CHECKING:  # imported when used: every other command starts without Celery (~0.4 s)
    from celery import Celery

BROKER_ENV = "AUDITOR_BROKER"
QUEUE = "auditor.scans"
TASK_NAME = "auditor.scan_site"
# How long a worker may hold a message before Redis hands it to another worker (see below):
# the default site time bound (180 s) plus the margin fits with room to spare, and a dead
# worker's sites come back within about 11 minutes. Longer --site-timeout needs a longer one.
DEFAULT_VISIBILITY_TIMEOUT_S = 600.0
# What a task may spend beyond its site time bound while holding its message: waiting for a
# politeness slot or its rate slot (each at most HOLD_WAIT_S before the task is re-queued),
# resolving the target and storing the result.
HOLD_WAIT_S = 5.0
HOLD_MARGIN_S = HOLD_WAIT_S + 5.0
BROKER_CONNECT_TIMEOUT_S = 4.0


def broker_url(value: str | None) -> str:
    """``--broker`` wins, then ``AUDITOR_BROKER``; a one-line error when neither is set."""
    url = value or os.environ.get(BROKER_ENV) or ""
    if not url:
        raise AuditorError(f"no broker: give --broker URL or set {BROKER_ENV} (e.g. redis://127.0.0.1:6379/0)")
    if "://" not in url:
        raise AuditorError(f"invalid broker URL {url!r}: expected redis://, rediss://, amqp:// or pyamqp://")
    return url


def is_redis(url: str) -> bool:
    return urlsplit(url).scheme in ("redis", "rediss", "redis+socket")


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def transport_options(url: str, visibility_timeout: float) -> dict[str, Any]:
    """Broker transport options; the Redis ones are meaningless (and unused) on RabbitMQ."""
    if not is_redis(url):
        return {}
    return {
        # Redis has no acknowledgements of its own: kombu keeps a delivered message in an
        # "unacked" set and gives it to another consumer once it has been out longer than the
        # visibility timeout. It must exceed the longest time a worker holds a message (the
        # site time bound plus HOLD_MARGIN_S, checked per task), or a slow scan still under way
        # would be handed out a second time; too long only delays recovery from a dead worker.
        "visibility_timeout": visibility_timeout,
        # How often a live worker looks for messages whose holder died (the sweep that
        # redelivers them): a tenth of the visibility timeout, at most every 30 s, and every
        # sweep really scans (throttle 1), so a lost message comes back within ~1.1 x timeout.
        "unacked_restore_interval": max(1, min(30, int(visibility_timeout / 10))),
        "unacked_restore_throttle": 1,
        # A broker that vanishes without closing the TCP connection must not hang a publish or
        # a poll forever.
        "socket_timeout": 15,
        "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
    }


def make_app(url: str, *, visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT_S) -> Celery:
    """The Celery app for ``url``; nothing is connected yet."""
    from celery import Celery

    app = Celery("auditor", broker=url, set_as_current=False)
    app.conf.update(
        # A task is acknowledged only after it returns, i.e. after its scan is stored: a worker
        # that dies mid-scan leaves the message unacknowledged and the broker redelivers it.
        task_acks_late=True,
        # With a process pool, a child killed under a task (OOM, kill -9) would otherwise count
        # as a finished task and be acked; reject it instead, so it is redelivered. (The worker
        # runs a thread pool, where a kill takes the whole process and the broker redelivers.)
        # Endless redelivery of a task that kills its worker each time is bounded by the job's
        # attempt counter in the database (worker.MAX_ATTEMPTS), not by Celery.
        task_reject_on_worker_lost=True,
        # A task that raised has recorded its failure in the database (or given up on it):
        # acknowledge it rather than redeliver it forever.
        task_acks_on_failure_or_timeout=True,
        # Each pool process reserves one message at a time: a busy worker does not sit on
        # messages other workers could run, and a dead worker takes few down with it.
        worker_prefetch_multiplier=1,
        # JSON only: a pickled message from anyone who can reach the broker is code execution.
        task_serializer="json",
        accept_content=["json"],
        # Results live in the database (the scan rows); Celery keeps none.
        task_ignore_result=True,
        task_default_queue=QUEUE,
        broker_transport_options=transport_options(url, visibility_timeout),
        broker_connection_timeout=BROKER_CONNECT_TIMEOUT_S,
        # A worker started before the broker keeps trying to reach it (systemd/compose start
        # order); the client never waits like this: it checks the broker first (check_broker).
        broker_connection_retry_on_startup=True,
        # On a lost broker connection, let running scans finish and store their results: the
        # broker redelivers their messages anyway, and the redelivered copies find the job's
        # result row and stop there.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # Scans can take minutes; events and the remote-control mailbox are not needed for it.
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


def check_broker(url: str, timeout: float = BROKER_CONNECT_TIMEOUT_S) -> None:
    """Connect to the broker once, or raise a one-line :class:`AuditorError`."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=timeout,
                        transport_options={"socket_timeout": timeout, "socket_connect_timeout": timeout}
                        if is_redis(url) else {}) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
            if is_redis(url):
                # ensure_connection is lazy on Redis: a command proves the server answers.
                conn.default_channel.client.ping()
    except AuditorError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuditorError(f"cannot reach the broker {shown(url)}: {first}") from None
