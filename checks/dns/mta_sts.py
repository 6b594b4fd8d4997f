"""MTA-STS (RFC 8461): fetch the policy the ``_mta-sts`` record announces, and judge it.

A sender that sees ``_mta-sts.<domain> TXT "v=STSv1; id=..."`` fetches
``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (port 443, a certificate valid for that
name) and, in ``enforce`` mode, delivers only over TLS to MX hosts the policy lists. A record
whose policy cannot be fetched, does not parse, is ``mode: none`` or leaves out the domain's
MX hosts protects nothing.

:func:`fetch_policy` is the collect side: the address comes from the chosen resolver (the
same bounded client as every other question), the run's address policy applies, the
certificate is checked against ``--ca-file`` (else the system store), redirects are not
followed (RFC 8461 §3.3) and at most ``MAX_BYTES`` are read within the check's timeouts.
:func:`judge_policy` is pure.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING, Any

from auditor.errors import AuditorError
from checks.dns.bounded import guard

if TYPE_CHECKING:
    from auditor.check import CheckContext
    from checks.dns.client import DNSClient

PATH = "/.well-known/mta-sts.txt"
MAX_BYTES = 65_536  # RFC 8461 §3.3: senders may cap the policy at 64 KiB


def fetch_policy(client: DNSClient, zone: str, ctx: CheckContext) -> dict[str, Any]:
    host = f"mta-sts.{zone}"
    out: dict[str, Any] = {"url": f"https://{host}{PATH}"}
    a = client.query(host, "A").rrset("A")
    if a is None:
        out["error"] = f"{host} has no A record"
        return out
    address = next(iter(a)).address
    out["address"] = address
    if ctx.resolver is not None:
        try:
            ctx.resolver.policy.check(host, address)
        except AuditorError as exc:
            out["error"] = f"not fetched: {exc}"
            return out
    tls = ssl.create_default_context(cafile=ctx.ca_file) if ctx.ca_file else ssl.create_default_context()
    try:
        with socket.create_connection((address, 443), timeout=ctx.bounded_timeout()) as sock, \
                guard(sock, 2 * ctx.bounded_timeout()) as fired:
            sock.settimeout(ctx.bounded_timeout())
            with tls.wrap_socket(sock, server_hostname=host) as conn:
                conn.sendall(f"GET {PATH} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: {ctx.user_agent or 'auditor'}"
                             "\r\nConnection: close\r\n\r\n".encode("ascii"))
                data = b""
                while len(data) <= MAX_BYTES + 8192:
                    try:
                        chunk = conn.recv(16384)
                    except (OSError, ssl.SSLError):
                        if fired.is_set():
                            break  # time is up: judge what arrived (a cut policy fails to parse)
                        raise
                    if not chunk:
                        break
                    data += chunk
    except ssl.SSLCertVerificationError as exc:
        out["error"] = f"certificate not valid for {host}: {str(exc.verify_message)[:120]}"
        return out
    except TimeoutError:
        out["error"] = f"no answer from {address}:443 within {ctx.bounded_timeout():g} s"
        return out
    except (OSError, ssl.SSLError, UnicodeError) as exc:
        out["error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
        return out
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    parts = status_line.split()
    out["status"] = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    out["text"] = body[:MAX_BYTES].decode("utf-8", "replace")
    return out


def parse_policy(text: str) -> dict[str, list[str]]:
    """``key: value`` lines (RFC 8461 §3.2) -> key (lower case) -> values."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), []).append(value.strip())
    return fields


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: an exact name, or ``*.`` matching exactly one leftmost label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return pattern == host


def judge_policy(fetched: dict[str, Any] | None, mx_hosts: list[str]) -> str | None:
    """Why the fetched policy protects nothing (one line), or None when it is sound."""
    if not fetched:
        return "policy not fetched"
    if fetched.get("error"):
        return f"{fetched.get('url')}: {fetched['error']}"
    if fetched.get("status") != 200:
        return f"{fetched.get('url')}: HTTP {fetched.get('status')}"
    fields = parse_policy(str(fetched.get("text", "")))
    if fields.get("version") != ["STSv1"]:
        return "policy has no 'version: STSv1' line"
    mode = (fields.get("mode") or [""])[0].lower()
    if mode not in ("enforce", "testing"):
        return f"policy mode is {mode or 'missing'!r} (enforce or testing protects mail)"
    if not (fields.get("max_age") or [""])[0].isdigit():
        return "policy has no numeric max_age"
    patterns = fields.get("mx", [])
    uncovered = [h for h in mx_hosts if not any(mx_matches(p, h) for p in patterns)]
    if uncovered:
        return "MX hosts not in the policy: " + ", ".join(uncovered)[:200]
    return None
