"""``/.well-known/security.txt`` (RFC 9116) for the ``http`` check: who to tell about a flaw.

A site that gives researchers no contact leaves them the choice of silence or public
disclosure. RFC 9116 asks for a ``text/plain`` file at ``/.well-known/security.txt`` served
over HTTPS, with at least one ``Contact`` and exactly one ``Expires`` in the future; it may be
wrapped in an OpenPGP cleartext signature.

:func:`collect` fetches it (HTTPS only, same host, at most 3 redirects, 32 KiB, within the
check's time bound) into a JSON-able dict that records when it was fetched; :func:`judge` is a
pure function of that dict, so ``Expires`` is judged against the fetch time and a stored scan
gives the same verdict when judged again.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from checks.http.hit import Hit, hit
from checks.web.net import FetchError, follow, make_session, one_line

if TYPE_CHECKING:
    from auditor.check import CheckContext
    from auditor.targets import Target

PATH = "/.well-known/security.txt"
MAX_BYTES = 32_768
MAX_REDIRECTS = 3
FINDING_IDS = ("http.security_txt.missing", "http.security_txt.expired", "http.security_txt.invalid")

_PGP_HEAD = "-----BEGIN PGP SIGNED MESSAGE-----"
_FIELD = re.compile(r"^([A-Za-z0-9-]+):\s*(.*?)\s*$")


def collect(target: Target, ctx: CheckContext, budget_end: float | None = None) -> dict[str, Any]:
    """Fetch the site's security.txt; the dict holds status, type, text (capped) or the error.

    The fetch takes at most 2 per-operation timeouts, and never runs past ``budget_end``
    (a ``time.monotonic()`` value: what the caller's own time bound leaves).
    """
    url = f"{target.origin}{PATH}"
    out: dict[str, Any] = {"url": url, "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
    seconds = 2 * ctx.bounded_timeout()
    if budget_end is not None:
        seconds = min(seconds, budget_end - time.monotonic())
    if seconds < 0.5:
        out["error"] = "the check's time budget was spent before it could be fetched"
        return out
    with make_session(ctx, target) as session:
        try:
            chain, stop = follow(session, url, ctx=ctx, max_bytes=MAX_BYTES, max_redirects=MAX_REDIRECTS,
                                 allowed_hosts={target.host}, schemes=frozenset({"https"}),
                                 max_seconds=seconds)
        except FetchError as exc:
            out["error"] = one_line(exc.message, 200)
            return out
    final = chain[-1]
    out.update(final_url=final.url, status=final.status, content_type=final.content_type,
               stop=one_line(str(stop), 200) if stop is not None else None)
    if final.status == 200 and stop is None:
        out["text"] = final.text[:MAX_BYTES]
    return out


def parse(text: str) -> tuple[dict[str, list[str]], bool]:
    """Field name (lower case) -> values, and whether the file is OpenPGP cleartext-signed.
    Comments, blank lines and the signature block are skipped."""
    signed = text.lstrip().startswith(_PGP_HEAD)
    fields: dict[str, list[str]] = {}
    in_sig = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("-----BEGIN PGP SIGNATURE"):
            in_sig = True
        if in_sig or not line or line.startswith(("#", "-----", "Hash:")):
            if line.startswith("-----END PGP SIGNATURE"):
                in_sig = False
            continue
        m = _FIELD.match(line.removeprefix("- "))
        if m:
            fields.setdefault(m.group(1).lower(), []).append(m.group(2))
    return fields, signed


def _parse_time(value: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else None


def judge(ev: dict[str, Any] | None) -> list[Hit]:
    """The security.txt findings the stored fetch supports (none when it was not fetched)."""
    if not ev or ev.get("error"):
        return []
    url = str(ev.get("url"))
    if ev.get("status") != 200 or "text" not in ev:
        why = f"HTTP {ev.get('status')}" + (f", stopped: {ev['stop']}" if ev.get("stop") else "")
        return [hit("http.security_txt.missing", f"{url}: {why}", url=url)]
    if ev.get("content_type") != "text/plain":
        return [hit("http.security_txt.invalid", f"{url}: served as {ev.get('content_type') or 'no type'}, "
                                                 "not text/plain", url=url)]
    fields, signed = parse(str(ev["text"]))
    problems: list[str] = []
    if not fields.get("contact"):
        problems.append("no Contact field")
    expires = fields.get("expires", [])
    if len(expires) != 1:
        problems.append("no Expires field" if not expires else f"{len(expires)} Expires fields")
    if problems:
        return [hit("http.security_txt.invalid", f"{url}: " + "; ".join(problems), url=url, signed=signed)]
    when = _parse_time(expires[0])
    if when is None:
        return [hit("http.security_txt.invalid", f"{url}: Expires {expires[0][:60]!r} is not an RFC 3339 "
                                                 "date-time with a zone", url=url, signed=signed)]
    fetched = _parse_time(str(ev.get("fetched_at"))) or datetime.now(UTC)
    if when <= fetched:
        return [hit("http.security_txt.expired", f"{url}: expired {when.isoformat()}", url=url, signed=signed)]
    return []


def untested(ev: dict[str, Any] | None) -> str | None:
    """Why security.txt was not judged (a network failure), or None."""
    if ev and ev.get("error"):
        return f"security.txt not tested: {ev['error']}"
    return None
