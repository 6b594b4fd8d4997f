"""E-mail to a system's owner when a site's certificate status changes.

Settings come from ``--smtp-host/--smtp-port/--smtp-from`` (and ``--smtp-user``,
``--smtp-starttls``) or ``AUDITOR_SMTP_HOST``, ``AUDITOR_SMTP_PORT``, ``AUDITOR_SMTP_FROM``,
``AUDITOR_SMTP_USER``, ``AUDITOR_SMTP_PASSWORD`` (the password only from the environment, so
it never shows in a process list), ``AUDITOR_SMTP_STARTTLS=1``. Without a host nothing is sent.

The message is bilingual (Vietnamese first), plain text, and carries the compliance report
PDF when one could be rendered. Every value in it comes from our own database; the URL and
names are still reduced to one line so that nothing a site or an import file holds can add
headers.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path

from auditor.errors import AuditorError

DEFAULT_PORT = 25
SEND_TIMEOUT_S = 30.0
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
_LINE = re.compile(r"[\x00-\x1f\x7f]+")

STATUS_VI = {
    "valid": "còn hiệu lực",
    "suspended": "bị tạm đình chỉ",
    "revoked": "bị thu hồi",
    "expired": "đã hết hạn",
    None: "chưa cấp",
}


@dataclass(frozen=True)
class SMTPSettings:
    host: str
    port: int = DEFAULT_PORT
    sender: str = "auditor@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = SEND_TIMEOUT_S

    @classmethod
    def from_options(
        cls,
        host: str | None = None,
        port: int | None = None,
        sender: str | None = None,
        username: str | None = None,
        starttls: bool | None = None,
        env: dict[str, str] | None = None,
    ) -> SMTPSettings | None:
        """Options win over the environment; None when no SMTP host is configured."""
        env = dict(os.environ) if env is None else env
        host = host or env.get("AUDITOR_SMTP_HOST") or None
        if not host:
            return None
        if port is None:
            raw = env.get("AUDITOR_SMTP_PORT") or str(DEFAULT_PORT)
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise AuditorError(f"AUDITOR_SMTP_PORT must be a port number, not {raw!r}")
            port = int(raw)
        sender = sender or env.get("AUDITOR_SMTP_FROM") or "auditor@localhost"
        if not valid_address(sender):
            raise AuditorError(f"invalid SMTP sender address {sender!r}")
        if starttls is None:
            starttls = env.get("AUDITOR_SMTP_STARTTLS", "") not in ("", "0")
        return cls(
            host=host, port=port, sender=sender,
            username=username or env.get("AUDITOR_SMTP_USER") or None,
            password=env.get("AUDITOR_SMTP_PASSWORD") or None,
            starttls=starttls,
        )


def valid_address(address: str) -> bool:
    """One plain ``local@domain`` address, no display name, no control characters."""
    if not address or _LINE.search(address) or len(address) > 254:
        return False
    name, addr = parseaddr(address)
    return addr == address.strip() and re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+", addr) is not None


def one_line(text: object, limit: int = 300) -> str:
    s = _LINE.sub(" ", "" if text is None else str(text)).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


@dataclass
class StatusChange:
    """What the owner is told."""

    site_url: str
    system: str | None
    old_status: str | None
    new_status: str | None
    serial: str | None
    reasons: list[str]
    scan_id: int | None
    grade: str | None
    action: str = ""  # suspend | reinstate | renew
    previous_serial: str | None = None


def build_message(settings: SMTPSettings, to: str, change: StatusChange, pdf: Path | None) -> EmailMessage:
    site = one_line(change.site_url, 500)
    old_vi, new_vi = STATUS_VI.get(change.old_status, change.old_status), STATUS_VI.get(change.new_status, change.new_status)
    msg = EmailMessage()
    if change.action == "renew":
        subject = f"[Tín nhiệm mạng] {site}: chứng nhận được gia hạn / certificate renewed"
    else:
        subject = f"[Tín nhiệm mạng] {site}: chứng nhận {new_vi} / certificate {change.new_status or 'none'}"
    msg["Subject"] = one_line(subject, 400)
    msg["From"] = settings.sender
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=settings.sender.rsplit("@", 1)[-1])
    msg["Auto-Submitted"] = "auto-generated"
    reasons = [one_line(r, 500) for r in change.reasons] or ["—"]
    system_vi = f" (hệ thống {one_line(change.system)})" if change.system else ""
    system_en = f" (system {one_line(change.system)})" if change.system else ""
    if change.action == "renew":
        what_vi = (f" đã được gia hạn: chứng nhận mới {one_line(change.serial)} thay cho "
                   f"chứng nhận {one_line(change.previous_serial) if change.previous_serial else '—'}.")
        what_en = (f" renewed its network-trust certificate: new certificate {one_line(change.serial)} "
                   f"replaces {one_line(change.previous_serial) if change.previous_serial else '-'}.")
    else:
        what_vi = f" đã chuyển trạng thái: {old_vi} → {new_vi}."
        what_en = (f" changed its network-trust certificate status: {change.old_status or 'none'} → "
                   f"{change.new_status or 'none'}.")
    lines = [
        "Kính gửi chủ quản hệ thống thông tin,",
        "",
        f"Sau lần đánh giá lại định kỳ, chứng nhận Tín nhiệm mạng của website {site}{system_vi}{what_vi}",
        f"Số hiệu chứng nhận: {one_line(change.serial) if change.serial else '—'}"
        f"; xếp hạng: {change.grade or '—'}; lần quét số {change.scan_id if change.scan_id is not None else '—'}.",
        "Lý do:",
        *[f"  - {r}" for r in reasons],
        "",
        "Báo cáo đánh giá chi tiết được đính kèm (PDF)." if pdf else "Báo cáo PDF chưa tạo được; xem kết quả bằng lệnh auditor.",
        "",
        "— English —",
        f"The weekly re-audit of {site}{system_en}{what_en}",
        f"Certificate serial: {one_line(change.serial) if change.serial else '-'}; grade: {change.grade or '-'}; "
        f"scan {change.scan_id if change.scan_id is not None else '-'}.",
        "Reasons:",
        *[f"  - {r}" for r in reasons],
        "",
        "The detailed compliance report is attached (PDF)." if pdf else "The PDF report could not be produced.",
        "",
        "This message was sent automatically by auditor.",
    ]
    msg.set_content("\n".join(lines), charset="utf-8")
    if pdf is not None:
        data = pdf.read_bytes()
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise AuditorError(f"report PDF too large to mail ({len(data)} bytes)")
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=pdf.name)
    return msg


def send(settings: SMTPSettings, to: str, change: StatusChange, pdf: Path | None = None) -> str:
    """Send the notice; returns its Message-ID. Raises AuditorError with one line on failure."""
    if not valid_address(to):
        raise AuditorError(f"owner contact {one_line(to)!r} is not an e-mail address")
    msg = build_message(settings, to, change, pdf)
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username and settings.password:
                smtp.login(settings.username, settings.password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise AuditorError(f"SMTP {settings.host}:{settings.port}: {one_line(exc, 200)}") from None
    return str(msg["Message-ID"])
