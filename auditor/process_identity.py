"""Which process owns a running scan, and whether that process is still alive.

A scan row is written ``running`` before its checks start. If the process is killed (``kill
-9``, a power cut) the row stays ``running``; a later process tells such an orphan from a
scan still under way by the owner recorded with it: ``host:pid:start-token``, where the token
is the kernel's start time of the process (field 22 of ``/proc/PID/stat``), so a recycled pid
is not mistaken for the owner. The scheduler's reaper uses the same idea for its runs.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass


def proc_start_token(pid: int) -> str | None:
    """The kernel's start time of ``pid``; None when there is no such process, "?" when unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None
    except OSError:
        return "?"
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = raw.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else "?"


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ProcessId:
    """``host:pid:start-token`` of one process."""

    host: str
    pid: int
    token: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"

    @classmethod
    def current(cls) -> ProcessId:
        pid = os.getpid()
        # Without /proc a random token still tells this process from a later one.
        token = proc_start_token(pid) or uuid.uuid4().hex[:12]
        return cls(socket.gethostname(), pid, token)

    @classmethod
    def parse(cls, text: object) -> ProcessId | None:
        if not isinstance(text, str):
            return None
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])


def alive_on_this_host(owner: ProcessId, me: ProcessId | None = None) -> bool | None:
    """Whether ``owner`` still runs: exact on this host; None (unknown) for another host."""
    me = me or ProcessId.current()
    if owner.host != me.host:
        return None
    if owner.pid == me.pid:
        return owner.token == me.token
    token = proc_start_token(owner.pid)
    if token is None:
        return False
    if token == "?":
        return _pid_exists(owner.pid)
    return token == owner.token
