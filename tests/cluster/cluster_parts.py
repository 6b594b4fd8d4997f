"""Real parts for the cluster tests (used by conftest.py and the tests), on 127.0.7.x.

- Debian's ``redis-server`` on a free loopback port (no persistence), one per fixture that
  needs a broker of its own (the fault tests kill theirs or their workers);
- a database of its own on the session's throwaway PostgreSQL server (other tests wipe theirs);
- a loopback lab of 42 sites (the lab's specs in turn, renamed) on 127.0.7.10 upwards;
- real ``python -m auditor worker`` processes, run by this venv's interpreter (so they import
  this checkout), killed at the end by their own pids.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
BROKER_ADDRESS = "127.0.7.1"
LAB_FIRST = "127.0.7.10"
LAB_SITE_COUNT = 42


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``redis-server`` in the foreground on ``address:port``, no RDB/AOF files."""

    def __init__(self, workdir: Path, address: str = BROKER_ADDRESS) -> None:
        self.address, self.port, self.workdir = address, free_port(address), workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.address}:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "--bind", self.address, "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--daemonize", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Worker:
    """One ``python -m auditor worker`` process with its log file."""

    def __init__(self, broker: str, db: str, log: Path, *extra: str) -> None:
        self.log, self.broker = log, broker
        env = dict(os.environ, AUDITOR_NO_DNS="1", PYTHONUNBUFFERED="1")
        env.pop("AUDITOR_DEBUG", None)
        self.handle = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "auditor", "worker", "--broker", broker, "--db", db, *extra],
            cwd=ROOT, env=env, stdout=self.handle, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}: {self.text()[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready in {timeout} s: {self.text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.handle.close()


def stop_workers(workers: list[Worker]) -> None:
    """SIGTERM to all at once (each then finishes its tasks), then wait for each."""
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        w.stop()


def start_workers(count: int, broker: str, db: str, logdir: Path, *extra: str) -> list[Worker]:
    logdir.mkdir(parents=True, exist_ok=True)
    workers = [Worker(broker, db, logdir / f"worker-{i}.log", *extra) for i in range(count)]
    for w in workers:
        w.wait_ready()
    return workers


def fresh_database(pg_url: str, name: str) -> str:
    """A new, empty database ``name`` on the session's PostgreSQL server; its URL."""
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return pg_url.rsplit("/", 1)[0] + "/" + name


def normalised(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results without what differs between two runs of the same scan: ids and times."""
    out = []
    for r in results:
        r = dict(r)
        for key in ("scan_id", "started_at", "finished_at"):
            r.pop(key)
        r["checks"] = {k: {**v, "duration_s": None} for k, v in r["checks"].items()}
        out.append(r)
    return out
