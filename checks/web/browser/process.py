"""Finding, pinning and policing the Chromium process: resolver rules, the scoped CA pin,
its process group (memory, count, kill with the parent) and the per-process browser slots.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from auditor.targets import is_ip_literal
from checks.web.browser.records import INSTALL_HINT, BrowserError, BrowserUnavailable

if TYPE_CHECKING:
    from checks.web.browser.session import BrowserSession

# --------------------------------------------------------------------------------------------
# helpers


def find_chromium(executable: str | None = None) -> str:
    """The Chromium executable (``executable``, ``$AUDITOR_CHROMIUM``, else ``chromium`` on PATH)."""
    candidates = [executable] if executable else [os.environ.get("AUDITOR_CHROMIUM") or "",
                                                  "chromium", "/usr/bin/chromium"]
    for cand in candidates:
        if not cand:
            continue
        path = shutil.which(cand) if os.sep not in cand else (cand if os.access(cand, os.X_OK) else None)
        if path:
            return path
    raise BrowserUnavailable(f"Chromium not found ({executable or 'chromium'}); {INSTALL_HINT}")


def host_resolver_rules(host_map: Mapping[str, str], refuse_others: bool) -> str:
    """Chromium ``--host-resolver-rules`` for ``host_map`` (name -> address)."""
    rules = []
    for host, addr in sorted(host_map.items()):
        if is_ip_literal(host):
            continue
        shown = f"[{addr}]" if ":" in addr and not addr.startswith("[") else addr
        rules.append(f"MAP {host} {shown}")
    if refuse_others:
        rules.append("MAP * ~NOTFOUND")
    return ", ".join(rules)


def spki_pin(host: str, port: int, address: str, ca_file: str, timeout: float) -> str:
    """Base64 SHA-256 of the leaf key ``host`` serves at ``address``, after validating its chain
    against ``ca_file`` for that name. Raises :class:`BrowserError` when it does not validate."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    ctx = ssl.create_default_context(cafile=ca_file)
    try:
        with (socket.create_connection((address.strip("[]"), port), timeout=timeout) as raw,
              ctx.wrap_socket(raw, server_hostname=host) as tls):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise BrowserError(f"{host}:{port}: certificate not trusted by the --ca-file for this host: "
                           f"{str(exc)[:200]}") from None
    if not der:
        raise BrowserError(f"{host}:{port}: no certificate")
    key = x509.load_der_x509_certificate(der).public_key()
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _group_processes(pgid: int) -> list[int]:
    """Pids whose process group is ``pgid`` (read from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        if len(rest) > 2 and rest[2] == str(pgid).encode() and rest[0] != b"Z":
            out.append(int(entry))
    return out


def _memory_bytes(pids: list[int]) -> int:
    """Proportional set size of ``pids`` (shared pages counted once across the group)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            continue
    return total


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_live: set[BrowserSession] = set()
_live_lock = threading.Lock()
_slots = threading.BoundedSemaphore(2)
_slots_lock = threading.Lock()


def set_max_browsers(n: int) -> None:
    """How many browsers may run at once in this process (default 2)."""
    global _slots
    with _slots_lock:
        _slots = threading.BoundedSemaphore(max(1, int(n)))


@atexit.register
def _kill_all() -> None:
    with _live_lock:
        sessions = list(_live)
    for s in sessions:
        s.kill("scanner exiting")
