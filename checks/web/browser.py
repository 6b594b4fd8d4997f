"""A bounded, pinned headless Chromium for checks that must see a page as a browser does.

Why: many sites build their forms, consent banners, tracker tags and cookies with JavaScript,
so reading the HTML the server sends misses them. This module drives Debian's ``chromium``
(never a downloaded build) through Playwright's CDP client, under the same rules as every
other network client of the scanner:

- **Pinned names.** Chromium's ``--host-resolver-rules`` map the audited host and every
  ``--resolve`` override to their pinned addresses; with ``allow_other_hosts=False`` (the
  default, and always under ``--no-dns`` / ``AUDITOR_NO_DNS``) every other name is
  ``~NOTFOUND`` and a request or WebSocket to another name or to an unmapped IP literal is
  aborted before it leaves the browser (WebRTC gets no non-proxied UDP). Background networking (updates, safe browsing, sync, metrics, DNS
  prefetch, translate...) is switched off.
- **Scoped trust.** No blanket "ignore certificate errors": when a ``ca_file`` is given, the
  audited host's certificate is fetched at its pinned address and validated against that file
  *for that host name* in Python; only then is the SPKI hash of that leaf key passed to
  ``--ignore-certificate-errors-spki-list``, so Chromium accepts exactly that key (the audited
  host's) and still validates every other host against its own store.
- **Nothing of the scanner reachable.** Each session has a fresh temporary profile that is
  deleted afterwards; only ``http(s)``, ``data:`` and ``blob:`` requests pass; downloads are
  refused, dialogs dismissed, service workers blocked, popups closed. When the scanner runs as
  root, Chromium runs as ``nobody`` (profile owned by it) *with* its own sandbox (user
  namespaces); only where that is impossible (no ``nobody`` user) does it fall back to
  ``--no-sandbox``, which Chromium demands for root, and the session records
  ``sandbox: false`` so a report can say so. The DevTools port listens on 127.0.0.1 only and
  page requests to it are aborted.
- **Hard bounds, guaranteed kill.** Chromium starts in its own session/process group with
  ``PR_SET_PDEATHSIG=SIGKILL`` (it dies with the scanner thread that launched it: timeout,
  Ctrl-C, SIGTERM, SIGKILL or crash), a watchdog thread kills the whole group when the session
  deadline or an operation's deadline (+ grace) passes, when the group's resident memory
  exceeds ``memory_mb`` or its process count ``max_processes``; ``close()`` and an ``atexit``
  hook kill the group too, and ``close()`` waits until no process of the group is left.
  A global semaphore bounds how many browsers run at once (``set_max_browsers``).

API (stable; later versions add, never break):

- :func:`find_chromium` -> path, or :class:`BrowserUnavailable` saying how to install it.
- :class:`BrowserLimits` (per-page seconds, session seconds, bytes, memory, processes, settle and
  grace seconds).
- :class:`BrowserSession` (a context manager): ``BrowserSession(host_map, deadline=...,
  limits=..., allow_other_hosts=..., ca_file=..., pin_host=..., executable=...)``;
  :meth:`BrowserSession.for_target` builds one for a scanner ``Target`` and ``CheckContext``.

  * ``session.render(url) -> PageSnapshot``: open ``url`` in a fresh profile, wait for it to
    settle, return the rendered DOM, requests, cookies and storage keys.
  * ``with session.view(url) as view:`` the same fresh-profile page kept open:
    ``view.snapshot()``, ``view.evaluate(js, arg)``, ``view.add_script(source)`` (e.g. axe-core),
    ``view.phase(name)`` (label the requests that follow, e.g. ``"after-refuse"``),
    ``view.click(selector_or_locator)``, ``view.settle()``, ``view.page`` (the raw Playwright
    page; not part of the stable API).
  * ``session.evidence()``: how the browser was run (version, sandbox, user, rules, killed?).
  * ``session.kill(reason)`` / ``session.request_kill(reason)`` (from an event handler),
    ``session.close()``, ``session.pgid``, ``session.killed``.
- :func:`set_max_browsers` (default 2 per process). Errors: :class:`BrowserError` (a bound hit,
  the browser died, a page failed) and its subclass :class:`BrowserUnavailable`.

  Example (axe-core): ``with BrowserSession.for_target(target, ctx) as s, s.view(url) as v:
  v.add_script(axe_source); result = v.evaluate("() => axe.run()", seconds=30)``.
- :class:`PageSnapshot` / :class:`RequestRecord` / :class:`CookieRecord` (plain data with
  ``to_dict()``).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import hashlib
import ipaddress
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from auditor.errors import AuditorError
from auditor.targets import is_ip_literal, normalize_host, parse_resolve
from auditor.version import __version__

if TYPE_CHECKING:
    from auditor.check import CheckContext
    from auditor.targets import Target

INSTALL_HINT = "install it with: apt-get install -y chromium (scripts/install.sh does)"
_STARTUP_SECONDS = 20.0
_WATCH_INTERVAL = 0.25
_MAX_RECORDS = 2000
_MAX_COOKIES = 500
_MAX_STORAGE_KEYS = 200
BYTE_KILL_FACTOR = 4  # a page past this many times its byte bound gets its browser killed
QUIET_SECONDS = 0.3  # network quiet this long after "load" = settled
_ALLOWED_SCHEMES = frozenset({"http", "https", "data", "blob", "about"})


class BrowserError(AuditorError):
    """The browser failed, was killed by a bound, or a page could not be opened in time."""


class BrowserUnavailable(BrowserError):
    """Chromium is not installed (or not runnable); the message says how to install it."""


@dataclass(frozen=True)
class BrowserLimits:
    """Bounds of one browser session. ``page_bytes`` bounds the bytes a page loads (all its
    requests together): past it, further requests are aborted and loading is stopped."""

    page_seconds: float = 20.0
    total_seconds: float = 120.0
    page_bytes: int = 10_000_000
    memory_mb: int = 1500
    max_processes: int = 24
    settle_seconds: float = 2.0  # after "load": at most this long for tag managers to inject their tags
    grace_seconds: float = 5.0  # the watchdog kills the browser this long past a page or session deadline


# --------------------------------------------------------------------------------------------
# plain data


@dataclass
class RequestRecord:
    url: str
    host: str
    method: str
    resource_type: str
    phase: str
    navigation: bool = False
    status: int | None = None
    failure: str | None = None
    blocked: str | None = None  # why the browser module aborted it (never left the browser)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}


@dataclass
class CookieRecord:
    name: str
    domain: str
    path: str
    http_only: bool
    secure: bool
    same_site: str
    expires: float
    source: str  # "http" (seen in a Set-Cookie header) or "script" (document.cookie / CookieStore)
    phase: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PageSnapshot:
    url: str
    final_url: str
    status: int | None
    title: str
    html: str
    html_truncated: bool
    requests: list[RequestRecord] = field(default_factory=list)
    cookies: list[CookieRecord] = field(default_factory=list)
    local_storage_keys: list[str] = field(default_factory=list)
    session_storage_keys: list[str] = field(default_factory=list)
    bytes_loaded: int = 0
    byte_limit_hit: bool = False
    refused: dict[str, int] = field(default_factory=dict)  # downloads, dialogs, popups
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def hosts(self, phase: str | None = None) -> list[str]:
        out: list[str] = []
        for r in self.requests:
            if (phase is None or r.phase == phase) and r.host and r.host not in out:
                out.append(r.host)
        return out

    def to_dict(self, html_limit: int = 0) -> dict[str, Any]:
        return {
            "url": self.url, "final_url": self.final_url, "status": self.status, "title": self.title[:300],
            **({"html": self.html[:html_limit]} if html_limit else {}),
            "html_bytes": len(self.html), "html_truncated": self.html_truncated,
            "requests": [r.to_dict() for r in self.requests[:500]],
            "cookies": [c.to_dict() for c in self.cookies[:200]],
            "local_storage_keys": self.local_storage_keys, "session_storage_keys": self.session_storage_keys,
            "bytes_loaded": self.bytes_loaded, "byte_limit_hit": self.byte_limit_hit,
            "refused": self.refused, "errors": self.errors[:20], "seconds": round(self.seconds, 3),
        }


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


# --------------------------------------------------------------------------------------------
# the session


class BrowserSession:
    """One headless Chromium, launched on construction-time rules and killed on ``close()``.

    ``host_map`` maps host names (lower case, IDNA) to the addresses they are pinned to; the
    first one is the audited host unless ``pin_host`` names it. ``deadline`` is a
    ``time.monotonic()`` value after which the whole browser is killed. Not thread-safe: use a
    session from the thread that created it.
    """

    def __init__(
        self,
        host_map: Mapping[str, str],
        *,
        deadline: float | None = None,
        limits: BrowserLimits | None = None,
        allow_other_hosts: bool = False,
        ca_file: str | None = None,
        pin_host: tuple[str, int] | None = None,
        executable: str | None = None,
        user_agent: str | None = None,
        run_as: str | None = "auto",
    ) -> None:
        self.limits = limits or BrowserLimits()
        self.deadline = min(deadline or float("inf"), time.monotonic() + self.limits.total_seconds)
        self.host_map = {normalize_host(h): a.strip("[]") for h, a in host_map.items()}
        self.allow_other_hosts = allow_other_hosts
        self.executable = find_chromium(executable)
        self.user_agent = user_agent
        self.killed: str | None = None
        self.sandbox = True
        self.run_as_user: str | None = None
        self.spki: list[str] = []
        self.version = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._pgid: int | None = None
        self._profile: Path | None = None
        self._pw: Any = None
        self._browser: Any = None
        self._op_deadline: float | None = None
        self._kill_request: str | None = None
        self._peak_rss = 0
        self._peak_procs = 0
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None
        self._devtools_port = 0
        slot = _slots
        self._slot: threading.BoundedSemaphore | None = None
        if not slot.acquire(timeout=max(0.0, self.deadline - time.monotonic())):
            raise BrowserError("no browser slot free before the deadline")
        self._slot = slot
        try:
            if ca_file and pin_host:
                host, port = pin_host
                addr = self.host_map.get(normalize_host(host)) or host
                self.spki.append(spki_pin(host, port, addr, ca_file, self._left(10.0)))
            self._launch(run_as)
            self._connect()
        except BaseException:
            self.close()
            raise

    # -- construction helpers

    @classmethod
    def for_target(cls, target: Target, ctx: CheckContext, *, limits: BrowserLimits | None = None,
                   deadline: float | None = None, **kwargs: Any) -> BrowserSession:
        """A session for a scanner target: its host pinned to ``target.address``, every
        ``--resolve`` override mapped, other names refused unless DNS is allowed, the
        ``--ca-file`` trusted for the target's host only."""
        host_map: dict[str, str] = {target.host: target.address}
        allow_dns = True
        if ctx.resolver is not None:
            allow_dns = ctx.resolver.allow_dns
            for spec in ctx.resolver.overrides:
                host, _port, addr = parse_resolve(spec)
                host_map.setdefault(host, addr)
        if os.environ.get("AUDITOR_NO_DNS", "") not in ("", "0"):
            allow_dns = False
        kwargs.setdefault("allow_other_hosts", allow_dns)
        kwargs.setdefault("ca_file", ctx.ca_file)
        kwargs.setdefault("pin_host", (target.host, target.port))
        kwargs.setdefault("executable", ctx.options.get("chromium"))
        return cls(host_map, deadline=min(deadline or ctx.deadline, ctx.deadline), limits=limits, **kwargs)

    def _left(self, cap: float | None = None) -> float:
        left = max(0.0, self.deadline - time.monotonic())
        return min(left, cap) if cap is not None else left

    def _launch(self, run_as: str | None) -> None:
        user: pwd.struct_passwd | None = None
        if run_as == "auto":
            run_as = "nobody" if os.geteuid() == 0 else None
        if run_as:
            try:
                user = pwd.getpwnam(run_as)
            except KeyError:
                user = None
        self._profile = Path(tempfile.mkdtemp(prefix="auditor-chromium-"))
        home = self._profile / "home"
        data = self._profile / "profile"
        home.mkdir()
        data.mkdir()
        if user is not None:
            for p in (self._profile, home, data):
                os.chown(p, user.pw_uid, user.pw_gid)
            self.run_as_user = user.pw_name
        self.sandbox = not (os.geteuid() == 0 and user is None)
        args = [
            self.executable,
            "--headless=new",
            f"--user-data-dir={data}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--host-resolver-rules={host_resolver_rules(self.host_map, not self.allow_other_hosts)}",
            "--no-first-run", "--no-default-browser-check", "--disable-default-apps", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--disable-breakpad",
            "--disable-crash-reporter", "--no-pings", "--metrics-recording-only", "--safebrowsing-disable-auto-update",
            "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,"
            "AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,"
            "NetworkPrediction,PrivacySandboxSettings4,DnsOverHttps",
            "--dns-prefetch-disable", "--no-proxy-server", "--password-store=basic", "--use-mock-keychain",
            "--mute-audio", "--disable-gpu", "--disable-dev-shm-usage", "--deny-permission-prompts",
            "--disable-notifications", "--renderer-process-limit=4",
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp", "--webrtc-ip-handling-policy="
            "disable_non_proxied_udp", "--js-flags=--max-old-space-size=512",
            "about:blank",
        ]
        if self.spki:
            args.insert(2, "--ignore-certificate-errors-spki-list=" + ",".join(self.spki))
        if not self.sandbox:
            args.insert(2, "--no-sandbox")
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": str(self._profile),
               "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache")}
        try:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env, cwd=str(self._profile), start_new_session=True, close_fds=True,
                user=user.pw_uid if user else None, group=user.pw_gid if user else None,
                extra_groups=[] if user else None, preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise BrowserUnavailable(f"cannot start Chromium ({self.executable}): {exc}; {INSTALL_HINT}") from None
        self._pgid = self._proc.pid
        with _live_lock:
            _live.add(self)
        self._watch = threading.Thread(target=self._watchdog, name="browser-watchdog", daemon=True)
        self._watch.start()
        port_file = data / "DevToolsActivePort"
        until = time.monotonic() + min(_STARTUP_SECONDS, self._left())
        while time.monotonic() < until:
            if self.killed:
                raise BrowserError(f"browser killed: {self.killed}")
            if self._proc.poll() is not None:
                raise BrowserError(f"Chromium exited at start-up (code {self._proc.returncode})")
            with contextlib.suppress(OSError, ValueError, IndexError):
                self._devtools_port = int(port_file.read_text().split()[0])
                break
            time.sleep(0.05)
        else:
            raise BrowserError("Chromium did not open its DevTools port in time")

    def _connect(self) -> None:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright

        try:
            self._pw = sync_playwright().start()
            self._browser = self._pw.chromium.connect_over_cdp(
                f"http://127.0.0.1:{self._devtools_port}", timeout=self._ms(_STARTUP_SECONDS))
            self.version = str(self._browser.version)
            if self.user_agent is None:
                self.user_agent = default_user_agent(self.version)
        except PlaywrightError as exc:
            raise BrowserError(f"cannot drive Chromium: {self._why(exc)}") from None

    def _ms(self, cap: float) -> float:
        return max(1.0, self._left(cap) * 1000.0)

    def _why(self, exc: BaseException) -> str:
        if self.killed:
            return f"browser killed: {self.killed}"
        return " ".join(str(exc).split())[:300]

    # -- watchdog and kill

    def _watchdog(self) -> None:
        while not self._stop.wait(_WATCH_INTERVAL):
            pgid = self._pgid
            if pgid is None:
                return
            now = time.monotonic()
            reason = None
            if self._kill_request:
                reason = self._kill_request
            elif now > self.deadline + self.limits.grace_seconds:
                reason = "session deadline passed"
            elif self._op_deadline is not None and now > self._op_deadline + self.limits.grace_seconds:
                reason = "page deadline passed"
            else:
                pids = _group_processes(pgid)
                rss = _memory_bytes(pids)
                self._peak_rss = max(self._peak_rss, rss)
                self._peak_procs = max(self._peak_procs, len(pids))
                if rss > self.limits.memory_mb * 1024 * 1024:
                    reason = f"memory bound ({rss // 1048576} MiB > {self.limits.memory_mb} MiB)"
                elif len(pids) > self.limits.max_processes:
                    reason = f"process bound ({len(pids)} > {self.limits.max_processes})"
            if reason:
                self.kill(reason)
                return

    def kill(self, reason: str) -> None:
        """Kill the browser's whole process group now (idempotent) and wait until it is gone."""
        pgid = self._pgid
        if pgid is None:
            return
        if self.killed is None:
            self.killed = reason
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.wait(timeout=5)
        until = time.monotonic() + 5
        while _group_processes(pgid) and time.monotonic() < until:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.05)

    def request_kill(self, reason: str) -> None:
        """Ask the watchdog to kill the browser at its next round (safe from Playwright event handlers)."""
        self._kill_request = self._kill_request or reason

    @property
    def pgid(self) -> int | None:
        """The browser's process group (for tests and diagnostics)."""
        return self._pgid

    def close(self) -> None:
        """Disconnect, kill the process group, wait for it, delete the profile. Idempotent."""
        self._stop.set()
        if self._browser is not None:
            with contextlib.suppress(Exception):
                self._browser.close()
            self._browser = None
        if self._pgid is not None:
            killed = self.killed
            self.kill("closed")
            self.killed = killed  # a normal close is not a kill
        if self._pw is not None:
            with contextlib.suppress(Exception):
                self._pw.stop()
            self._pw = None
        with _live_lock:
            _live.discard(self)
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None
        if self._slot is not None:
            with contextlib.suppress(ValueError):
                self._slot.release()
            self._slot = None
        self._pgid = None

    def __enter__(self) -> BrowserSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def evidence(self) -> dict[str, Any]:
        """How this browser ran: for the stored evidence of a check."""
        return {
            "executable": self.executable, "version": self.version, "sandbox": self.sandbox,
            "run_as": self.run_as_user, "host_map": dict(self.host_map),
            "other_hosts": "allowed (DNS)" if self.allow_other_hosts else "refused",
            "ca_pinned_keys": self.spki, "killed": self.killed,
            "peak_pss_mib": round(self._peak_rss / 1048576, 1), "peak_processes": self._peak_procs,
            "limits": asdict(self.limits),
        }

    # -- pages

    def render(self, url: str, *, settle: bool = True) -> PageSnapshot:
        """Open ``url`` in a fresh profile, let it settle, and return what it rendered and loaded."""
        with self.view(url, settle=settle) as view:
            return view.snapshot()

    @contextlib.contextmanager
    def view(self, url: str, *, settle: bool = True) -> Iterator[PageView]:
        """A fresh profile (browser context) with one page navigated to ``url``; closed on exit."""
        if self._browser is None:
            raise BrowserError(f"browser not running{': ' + self.killed if self.killed else ''}")
        view = PageView(self, url)
        try:
            view._open(settle)
            yield view
        finally:
            view._close()

    def _guard(self, seconds: float) -> None:
        self._op_deadline = min(self.deadline, time.monotonic() + seconds)

    def _unguard(self) -> None:
        self._op_deadline = None

    def allowed(self, url: str) -> str | None:
        """Why a request to ``url`` must not leave the browser, or None when it may."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _ALLOWED_SCHEMES:
            return f"scheme {scheme}: not allowed"
        if scheme in ("data", "blob", "about"):
            return None
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            return "no host"
        try:
            port = parts.port
        except ValueError:
            return "bad port"
        if is_ip_literal(host):
            addr = host.strip("[]")
            if addr in self.host_map.values() and port != self._devtools_port:
                return None
            ip = ipaddress.ip_address(addr)
            if ip.is_loopback and port == self._devtools_port:
                return "the browser's own DevTools port"
            if not self.allow_other_hosts:
                return "address not pinned for this audit"
            if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified:
                return "private or loopback address not pinned for this audit"
            return None
        if host in self.host_map or self.allow_other_hosts:
            return None
        return "host not mapped for this audit (other names refused)"


class PageView:
    """One page in a fresh browser context; created by :meth:`BrowserSession.view`."""

    def __init__(self, session: BrowserSession, url: str) -> None:
        self.session = session
        self.url = url
        self.page: Any = None
        self._context: Any = None
        self._phase = "load"
        self._records: list[RequestRecord] = []
        self._by_request: dict[int, RequestRecord] = {}
        self._responses: list[Any] = []
        self._http_cookie_names: set[str] = set()
        self._cookie_phase: dict[tuple[str, str, str], str] = {}
        self._bytes = 0
        self._cdp: Any = None
        self._byte_limit_hit = False
        self._refused = {"downloads": 0, "dialogs": 0, "popups": 0}
        self._errors: list[str] = []
        self._status: int | None = None
        self._started = time.monotonic()
        self._inflight: set[int] = set()
        self._last_activity = self._started

    # -- set-up

    def _open(self, settle: bool) -> None:
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        s._guard(s.limits.page_seconds)
        try:
            ua = s.user_agent
            self._context = s._browser.new_context(
                accept_downloads=False, service_workers="block", user_agent=ua, java_script_enabled=True,
                locale="vi-VN", viewport={"width": 1280, "height": 900}, bypass_csp=False,
            )
            self._context.set_default_timeout(s._ms(s.limits.page_seconds))
            self._context.route("**/*", self._route)
            self._context.route_web_socket(re.compile(r".*"), self._route_ws)
            self._context.on("request", self._on_request)
            self._context.on("requestfailed", self._on_failed)
            self._context.on("requestfinished", self._on_finished)
            self._context.on("response", self._on_response)
            self._context.on("page", self._on_new_page)
            self.page = self._context.new_page()
            self.page.on("dialog", self._on_dialog)
            self.page.on("download", self._on_download)
            # Bytes as they arrive (chunked bodies included), from the DevTools network events.
            self._cdp = self._context.new_cdp_session(self.page)
            self._cdp.send("Network.enable")
            self._cdp.on("Network.dataReceived", self._on_data)
            try:
                response = self.page.goto(self.url, wait_until="load", timeout=s._ms(s.limits.page_seconds))
                self._status = response.status if response is not None else None
            except PlaywrightError as exc:
                if s.killed:
                    raise BrowserError(s._why(exc)) from None
                self._errors.append(f"navigation: {s._why(exc)}")
            if settle:
                self.settle()
        finally:
            s._unguard()

    def _close(self) -> None:
        if self._context is not None:
            with contextlib.suppress(Exception):
                self._context.close()
            self._context = None

    # -- event handlers (run inside Playwright's dispatcher)

    def _route(self, route: Any) -> None:
        request = route.request
        why = self.session.allowed(request.url)
        if why is None and self._byte_limit_hit:
            why = "page byte bound reached"
        if why is not None:
            record = self._by_request.get(id(request))
            if record is not None:
                record.blocked = why
            else:
                self._record(request, blocked=why)
            with contextlib.suppress(Exception):
                route.abort("blockedbyclient")
            return
        with contextlib.suppress(Exception):
            route.continue_()

    def _route_ws(self, ws: Any) -> None:
        url = str(ws.url)
        http_url = re.sub(r"^ws", "http", url, flags=re.I)
        why = self.session.allowed(http_url)
        if len(self._records) < _MAX_RECORDS:
            host = (urlsplit(url).hostname or "").lower().rstrip(".")
            self._records.append(RequestRecord(url=url[:2000], host=host, method="GET", resource_type="websocket",
                                               phase=self._phase, blocked=why))
        with contextlib.suppress(Exception):
            if why is None:
                ws.connect_to_server()
            else:
                ws.close(code=1008, reason="blocked by the audit")

    def _record(self, request: Any, blocked: str | None = None) -> RequestRecord | None:
        if id(request) in self._by_request:
            return self._by_request[id(request)]
        if len(self._records) >= _MAX_RECORDS:
            return None
        url = str(request.url)
        host = (urlsplit(url).hostname or "").lower().rstrip(".") if url.startswith(("http:", "https:")) else ""
        try:
            nav = bool(request.is_navigation_request())
        except Exception:
            nav = False
        rec = RequestRecord(url=url[:2000], host=host, method=str(request.method), resource_type=str(
            request.resource_type), phase=self._phase, navigation=nav, blocked=blocked)
        self._records.append(rec)
        self._by_request[id(request)] = rec
        return rec

    def _on_request(self, request: Any) -> None:
        self._inflight.add(id(request))
        self._last_activity = time.monotonic()
        self._record(request)

    def _on_finished(self, request: Any) -> None:
        self._inflight.discard(id(request))
        self._last_activity = time.monotonic()

    def _on_failed(self, request: Any) -> None:
        self._inflight.discard(id(request))
        self._last_activity = time.monotonic()
        rec = self._record(request)
        if rec is not None and rec.failure is None:
            rec.failure = str(request.failure or "failed")[:200]

    def _on_response(self, response: Any) -> None:
        rec = self._record(response.request)
        if rec is not None:
            rec.status = int(response.status)
        if len(self._responses) < 300:
            self._responses.append(response)

    def _on_data(self, params: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            self._bytes += int(params.get("dataLength") or 0)
        if self._bytes > BYTE_KILL_FACTOR * self.session.limits.page_bytes:
            # A body already in flight (a fetch() stopLoading cannot stop) ran far past the bound.
            self.session.request_kill(f"page byte bound ({self._bytes} bytes > {BYTE_KILL_FACTOR} x "
                                      f"{self.session.limits.page_bytes})")
        if self._bytes > self.session.limits.page_bytes and not self._byte_limit_hit:
            self._byte_limit_hit = True
            # Stop what is loading; new requests are aborted by the route handler from now on.
            with contextlib.suppress(Exception):
                self._cdp.send("Page.stopLoading")

    def _on_new_page(self, page: Any) -> None:
        if page is self.page or self.page is None:
            return
        self._refused["popups"] += 1
        with contextlib.suppress(Exception):
            page.close()

    def _on_dialog(self, dialog: Any) -> None:
        self._refused["dialogs"] += 1
        with contextlib.suppress(Exception):
            dialog.dismiss()

    def _on_download(self, download: Any) -> None:
        self._refused["downloads"] += 1
        with contextlib.suppress(Exception):
            download.cancel()

    # -- operations

    def phase(self, name: str) -> None:
        """Label the requests and cookies that appear from now on (e.g. ``"after-refuse"``)."""
        self._snapshot_cookie_phases()
        self._phase = name

    def settle(self, seconds: float | None = None) -> None:
        """Wait until no request has been in flight for ``QUIET_SECONDS`` (tag managers inject
        their tags from timers after ``load``), at most ``settle_seconds`` and the deadlines."""
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        wait = s._left(seconds if seconds is not None else s.limits.settle_seconds)
        if wait <= 0:
            return
        s._guard(wait + 1)
        until = time.monotonic() + wait
        self._last_activity = max(self._last_activity, time.monotonic())
        try:
            while time.monotonic() < until:
                # wait_for_timeout lets Playwright dispatch the page's events meanwhile
                self.page.wait_for_timeout(50)
                if not self._inflight and time.monotonic() - self._last_activity >= QUIET_SECONDS:
                    break
        except PlaywrightError as exc:
            if s.killed:
                raise BrowserError(s._why(exc)) from None
        finally:
            s._unguard()

    def evaluate(self, script: str, arg: Any = None, *, seconds: float | None = None) -> Any:
        """Run ``script`` (a JS expression or function) in the page; killed with the browser past
        its deadline (``seconds``, default the per-page bound)."""
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        s._guard(seconds if seconds is not None else s.limits.page_seconds)
        try:
            try:
                return self.page.evaluate(script, arg)
            except PlaywrightError as exc:
                # A late navigation (a redirect by script, a reload) replaced the page: once more on the new one.
                if s.killed or "context was destroyed" not in str(exc):
                    raise
                self.page.wait_for_load_state("load", timeout=s._ms(seconds or s.limits.page_seconds))
                return self.page.evaluate(script, arg)
        except PlaywrightError as exc:
            raise BrowserError(f"script failed: {s._why(exc)}") from None
        finally:
            s._unguard()

    def add_script(self, source: str, *, seconds: float | None = None) -> None:
        """Inject a script (e.g. axe-core's source) into the page."""
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        s._guard(seconds if seconds is not None else s.limits.page_seconds)
        try:
            self.page.add_script_tag(content=source)
        except PlaywrightError as exc:
            raise BrowserError(f"cannot inject script: {s._why(exc)}") from None
        finally:
            s._unguard()

    def click(self, target: Any, *, seconds: float = 5.0) -> bool:
        """Click a selector string or a Playwright locator; False when it could not be clicked."""
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        s._guard(seconds)
        try:
            loc = self.page.locator(target).first if isinstance(target, str) else target
            loc.click(timeout=s._ms(seconds), no_wait_after=False)
            return True
        except PlaywrightError as exc:
            if s.killed:
                raise BrowserError(s._why(exc)) from None
            self._errors.append(f"click: {s._why(exc)}")
            return False
        finally:
            s._unguard()

    def _snapshot_cookie_phases(self) -> None:
        with contextlib.suppress(Exception):
            for c in self._context.cookies():
                key = (str(c.get("name")), str(c.get("domain")), str(c.get("path")))
                self._cookie_phase.setdefault(key, self._phase)

    def _http_cookies(self) -> set[str]:
        names: set[str] = set()
        for response in self._responses:
            with contextlib.suppress(Exception):
                for value in response.header_values("set-cookie"):
                    for line in str(value).split("\n"):
                        name = line.split(";", 1)[0].split("=", 1)[0].strip()
                        if name:
                            names.add(name)
        return names

    def snapshot(self) -> PageSnapshot:
        """What the page is now: rendered DOM, requests so far, cookies, storage keys."""
        from playwright.sync_api import Error as PlaywrightError

        s = self.session
        s._guard(s.limits.page_seconds)
        try:
            html, title, final_url = "", "", self.url
            try:
                html = str(self.page.content())
                title = str(self.page.title())
                final_url = str(self.page.url)
            except PlaywrightError as exc:
                if s.killed:
                    raise BrowserError(s._why(exc)) from None
                self._errors.append(f"content: {s._why(exc)}")
            local: list[str] = []
            session: list[str] = []
            with contextlib.suppress(PlaywrightError):
                keys = self.page.evaluate(
                    "n => { const k = s => { try { return Object.keys(s).slice(0, n) } catch (e) { return [] } };"
                    " return [k(window.localStorage), k(window.sessionStorage)] }", _MAX_STORAGE_KEYS)
                local = [str(k)[:200] for k in keys[0]]
                session = [str(k)[:200] for k in keys[1]]
            self._snapshot_cookie_phases()
            http_names = self._http_cookies()
            cookies = []
            with contextlib.suppress(PlaywrightError):
                for c in self._context.cookies()[:_MAX_COOKIES]:
                    name = str(c.get("name"))
                    key = (name, str(c.get("domain")), str(c.get("path")))
                    cookies.append(CookieRecord(
                        name=name[:200], domain=str(c.get("domain"))[:200], path=str(c.get("path"))[:200],
                        http_only=bool(c.get("httpOnly")), secure=bool(c.get("secure")),
                        same_site=str(c.get("sameSite") or ""), expires=float(c.get("expires") or -1),
                        source="http" if (name in http_names or c.get("httpOnly")) else "script",
                        phase=self._cookie_phase.get(key, self._phase)))
            if s._kill_request or s.killed:
                s.kill(s._kill_request or s.killed or "killed")
                raise BrowserError(f"browser killed: {s.killed}")
            limit = s.limits.page_bytes
            return PageSnapshot(
                url=self.url, final_url=final_url, status=self._status, title=title, html=html[:limit],
                html_truncated=len(html) > limit, requests=list(self._records), cookies=cookies,
                local_storage_keys=local, session_storage_keys=session, bytes_loaded=self._bytes,
                byte_limit_hit=self._byte_limit_hit, refused=dict(self._refused), errors=list(self._errors),
                seconds=time.monotonic() - self._started,
            )
        finally:
            s._unguard()


def run_in_browser(session_factory: Callable[[], BrowserSession], work: Callable[[BrowserSession], Any]) -> Any:
    """Create a session, run ``work`` with it, always close it (a convenience for callers)."""
    with session_factory() as session:
        return work(session)


def default_user_agent(version: str) -> str:
    return (f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{version} "
            f"Safari/537.36 auditor/{__version__} (network-trust security audit; AGPL-3.0)")


__all__ = [
    "INSTALL_HINT", "BrowserError", "BrowserLimits", "BrowserSession", "BrowserUnavailable", "CookieRecord",
    "PageSnapshot", "PageView", "RequestRecord", "default_user_agent", "find_chromium", "host_resolver_rules",
    "run_in_browser", "set_max_browsers", "spki_pin",
]
