"""The admin-interface probe of the ``http`` family: ``http.admin.exposed``.

Requests a bounded list of well-known administration paths (``/admin``, ``/wp-admin/``,
``/phpmyadmin/``, ``/manager/html``, ``/quantri`` ...) on the audited site and reports those
that answer, from the public side, with a login page: an HTML page with a password field,
or an HTTP authentication challenge (401 with ``WWW-Authenticate``). A page that merely
mentions "admin" is not a login page, and neither is a 404.

Catch-all sites (every path returns the same login page, or the same soft-404) would make
every path look exposed, so a random path that cannot exist is fetched first as a baseline
and a login page that is the same as its login (see :func:`login_page`) is not counted.

The ``http`` check calls :func:`probe_admin` with its own bounded session and adds
:data:`ADMIN_EXPOSED` to its catalogue.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from bs4 import BeautifulSoup

from auditor.catalogue import catalogue_of
from auditor.check import CheckContext
from checks.http.hit import Hit
from checks.web.net import FetchError, FetchResult, follow, one_line

if TYPE_CHECKING:
    import requests

    from auditor.targets import Target

FINDING_ID = "http.admin.exposed"

ADMIN_EXPOSED = next(s for s in catalogue_of("checks.http") if s.id == FINDING_ID)

DEFAULT_ADMIN_PATHS = (
    "/admin", "/admin/", "/administrator/", "/wp-admin/", "/wp-login.php", "/phpmyadmin/",
    "/pma/", "/adminer.php", "/manager/html", "/admin.php", "/admincp/", "/webadmin/",
    "/cpanel", "/typo3/", "/umbraco/", "/quantri", "/quantri/", "/quan-tri/",
)

MAX_PATHS = 40
MAX_BYTES = 262_144
MAX_REDIRECTS = 3


# Exposed admin logins as one finding: id, one-line evidence, the first login's URL, and
# ``details["paths"]`` listing every exposed path (path, final_url, status, reason).
AdminHit = Hit


class AdminProbe(NamedTuple):
    """What the probe found: ``hits`` (empty, or one finding naming every exposed path) and
    ``untested``, the paths it could not judge (time budget spent, timeouts, TLS or protocol
    errors) with the first ``reason`` — an untested path is never counted as safe."""

    hits: list[AdminHit]
    untested: list[str]
    reason: str | None


_PASSWORD_RE = re.compile(r"""<input\b[^>]*\btype\s*=\s*["']?password\b""", re.I)
_REALM_RE = re.compile(r"""realm\s*=\s*(?:"([^"]*)"|([^\s,]+))""", re.I)


class Login(NamedTuple):
    """A login page: why it is one, and what makes it the same page on another fetch."""

    reason: str
    signature: tuple[str, ...]


def login_page(result: FetchResult) -> Login | None:
    """The login this response is (None when it is not one).

    The signature leaves out what changes from one request to the next (anti-forgery
    tokens, a ``next=`` path, a Digest nonce): the authentication scheme and realm of a
    challenge; the title and the input fields (type and name, not value) of a form page.
    """
    if result.status == 401 and result.headers.get("WWW-Authenticate"):
        challenge = one_line(result.headers["WWW-Authenticate"], 200)
        scheme = challenge.split(" ", 1)[0]
        realm = _REALM_RE.search(challenge)
        return Login(
            f"HTTP {one_line(scheme, 60)} authentication prompt",
            ("challenge", scheme.lower(), (realm.group(1) or realm.group(2)) if realm else ""),
        )
    if result.status != 200:
        return None
    if "html" not in result.content_type and not result.body.lstrip()[:100].lower().startswith((b"<!doctype", b"<html")):
        return None
    text = result.text
    if not _PASSWORD_RE.search(text):
        return None
    # Confirm with a real parser (a password input inside a comment or script does not count).
    soup = BeautifulSoup(text, "html.parser")
    fields = [
        (str(field.get("type", "text")).strip().lower(), str(field.get("name", "")).strip())
        for field in soup.find_all("input")
    ]
    if not any(kind == "password" for kind, _ in fields):
        return None
    title = " ".join(soup.title.get_text().split()) if soup.title else ""
    signature = ("form", title, *sorted(f"{kind}:{name}" for kind, name in fields))
    return Login("login form with a password field", signature)


def probe_admin(session: requests.Session, target: Target, ctx: CheckContext) -> AdminProbe:
    """Fetch the admin paths (policy parameter ``http.admin_paths``) and report login pages.

    Bounded: at most ``MAX_PATHS`` paths, ``MAX_BYTES`` per page, ``MAX_REDIRECTS`` redirects
    on the site's own host, and the ``http.admin_max_seconds`` budget (default 30 s) within
    the site deadline. A refused or closed connection means the path is not exposed; any
    other failure, or the budget running out, leaves the path untested. When the baseline
    (a path that cannot exist) cannot be fetched, no path can be judged against it.
    """
    paths = ctx.param("http.admin_paths", DEFAULT_ADMIN_PATHS)
    if isinstance(paths, str):
        paths = [p.strip() for p in paths.split(",") if p.strip()]
    paths = [p if str(p).startswith("/") else f"/{p}" for p in list(paths)[:MAX_PATHS]]
    # The budget is a deadline every fetch obeys, so a path started just before it ends
    # cannot overrun it by a whole redirect chain of timeouts.
    stop_at = min(ctx.deadline, time.monotonic() + float(ctx.param("http.admin_max_seconds", 30)))
    budget = ctx.with_deadline(stop_at)
    origin = target.origin

    untested: list[str] = []
    reasons: list[str] = []

    def get(path: str) -> FetchResult | None:
        """The final response, or None when the path is closed (refused) or untested."""
        if budget.remaining() < 1:
            untested.append(path)
            reasons.append(f"time budget of {ctx.param('http.admin_max_seconds', 30)} s spent")
            return None
        try:
            chain, _stop = follow(session, origin + path, ctx=budget, max_bytes=MAX_BYTES,
                                  max_redirects=MAX_REDIRECTS, allowed_hosts={target.host})
        except FetchError as exc:
            if exc.kind not in ("refused", "closed"):
                untested.append(path)
                reasons.append(exc.message)
            return None
        return chain[-1] if chain else None

    baseline_path = f"/auditor-baseline-{secrets.token_hex(8)}"
    baseline = get(baseline_path)
    if untested:  # without the baseline a catch-all login would look like an exposed admin path
        return AdminProbe([], list(paths), f"baseline request failed: {reasons[0]}")
    baseline_login = login_page(baseline) if baseline is not None else None
    # The login a path that cannot exist gets is the site's catch-all, not an admin path.
    seen: set[tuple[str, ...]] = {baseline_login.signature} if baseline_login else set()

    exposed: list[dict[str, Any]] = []
    for path in paths:
        result = get(path)
        login = login_page(result) if result is not None else None
        if result is None or login is None or login.signature in seen:
            continue  # /wp-admin/ and /wp-login.php, /admin and /admin/: one login page
        seen.add(login.signature)
        exposed.append(
            {"path": path, "final_url": result.url, "status": result.status, "reason": login.reason}
        )
    reason = reasons[0] if reasons else None
    if not exposed:
        return AdminProbe([], untested, reason)
    return AdminProbe([exposed_hit(exposed, origin)], untested, reason)


def exposed_hit(exposed: list[dict[str, Any]], origin: str) -> AdminHit:
    """The one finding naming every exposed path (the http check's rule: one finding per id).

    A pure function of the stored ``admin_paths`` evidence and the site's origin, so a stored
    scan can be judged again.
    """
    parts = []
    for e in exposed:
        via = "" if e["final_url"] == origin + e["path"] else f" → {urlsplit(e['final_url']).path}"
        parts.append(f"{e['path']}{via} ({e['reason']}, HTTP {e['status']})")
    evidence = one_line("login reachable at " + "; ".join(parts), 300)
    return AdminHit(FINDING_ID, evidence, exposed[0]["final_url"], {"paths": exposed})
