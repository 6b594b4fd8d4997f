"""A throwaway PostgreSQL server on loopback for the tests (Debian's postgresql package).

``initdb`` into a temporary directory, ``postgres`` listening on 127.0.0.1 at a free port with
its socket in that directory and trust authentication, one scratch database. As root, the
server runs as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, base: Path, address: str = "127.0.0.1") -> None:
        self.bindir = find_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.base = base
        self.address = address
        self.port = _free_port(address)
        self.data = base / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run the server") from None
            self._user = "postgres"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self._user, "--", *args] if self._user else list(args)

    def start(self) -> str:
        """Initialise, start, create database ``auditor_test``; return its SQLAlchemy URL."""
        self.base.mkdir(parents=True, exist_ok=True)
        if self._user:
            shutil.chown(self.base, self._user)
        subprocess.run(self._cmd(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                 "--no-sync", "-E", "UTF8", "--locale", "C"),
                       check=True, capture_output=True, timeout=120)
        self.proc = subprocess.Popen(
            self._cmd(str(self.bindir / "postgres"), "-D", str(self.data), "-h", self.address,
                      "-p", str(self.port), "-k", str(self.base), "-c", "fsync=off",
                      "-c", "full_page_writes=off", "-c", "max_connections=200"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run([str(self.bindir / "pg_isready"), "-h", self.address, "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited during start-up")
            time.sleep(0.2)
        else:
            raise RuntimeError("postgres did not become ready in 30 s")
        subprocess.run(self._cmd(str(self.bindir / "createdb"), "-h", self.address, "-p", str(self.port),
                                 "-U", "postgres", "auditor_test"), check=True, capture_output=True, timeout=30)
        return f"postgresql+psycopg://postgres@{self.address}:{self.port}/auditor_test"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # smart shutdown; fast enough for a scratch server
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
