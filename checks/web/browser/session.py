"""One headless Chromium: launch under the pinning rules, the watchdog, kill and close."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from auditor.targets import is_ip_literal, normalize_host, parse_resolve
from auditor.version import __version__
from checks.web.browser import process
from checks.web.browser.page import PageView
from checks.web.browser.process import (
    _die_with_parent,
    _group_processes,
    _live,
    _live_lock,
    _memory_bytes,
    find_chromium,
    host_resolver_rules,
    spki_pin,
)
from checks.web.browser.records import (
    _ALLOWED_SCHEMES,
    _STARTUP_SECONDS,
    _WATCH_INTERVAL,
    INSTALL_HINT,
    BrowserError,
    BrowserLimits,
    BrowserUnavailable,
    PageSnapshot,
)

if TYPE_CHECKING:
    from auditor.check import CheckContext
    from auditor.targets import Target

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
        slot = process._slots  # read now: set_max_browsers replaces it
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




def run_in_browser(session_factory: Callable[[], BrowserSession], work: Callable[[BrowserSession], Any]) -> Any:
    """Create a session, run ``work`` with it, always close it (a convenience for callers)."""
    with session_factory() as session:
        return work(session)


def default_user_agent(version: str) -> str:
    return (f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{version} "
            f"Safari/537.36 auditor/{__version__} (network-trust security audit; AGPL-3.0)")
