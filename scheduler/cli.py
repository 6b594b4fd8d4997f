"""``auditor schedule run|list|add|pause|resume|remove``: weekly re-audits."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from auditor.cli.common import add_db, add_policy, add_scan_options, positive_float, positive_int
from auditor.errors import AuditorError
from auditor.results import iso
from auditor.text import clean


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schedule", help="weekly re-audits: run the scheduler service, list and edit site schedules",
        description="Re-audit every inventoried site on a schedule (weekly by default), renew or "
                    "suspend certificates, notify owners and publish the registry.",
    )
    actions = p.add_subparsers(dest="schedule_action", metavar="ACTION", parser_class=type(p))
    actions.required = True

    r = actions.add_parser(
        "run", help="run the scheduler service until SIGTERM",
        description="Run every site's job when due (never-assessed sites at once), one JSON log line per "
                    "event on stdout. SIGTERM or Ctrl-C finishes or interrupts the runs under way and exits 0.",
    )
    add_scan_options(r)
    add_db(r)
    add_policy(r)
    r.add_argument("--registry-out", metavar="DIR", help="rebuild the public registry in DIR after every run")
    r.add_argument("--registry-verify-url", metavar="PREFIX",
                   help="in the registry, link serials to PREFIX<serial> (see `auditor registry build --verify-url`)")
    r.add_argument("--broker", metavar="URL",
                   help="enqueue each due run for `auditor worker` processes on this Celery broker instead "
                        "of scanning here")
    r.add_argument("--workers", type=positive_int, default=4, metavar="N",
                   help="sites re-audited at once by this process (default 4)")
    r.add_argument("--key", metavar="PEM",
                   help="issuer key for renewed certificates (default: $AUDITOR_ISSUER_KEY, else next to the database)")
    r.add_argument("--lang", choices=["vi", "en"], default="vi", help="language of the report mailed to owners")
    r.add_argument("--sync-interval", type=positive_float, default=30.0, metavar="SECONDS",
                   help="how often to re-read the inventory and schedule settings and recover dead runs (default 30)")
    r.add_argument("--stop-timeout", type=positive_float, default=30.0, metavar="SECONDS",
                   help="on SIGTERM, wait this long for runs under way before interrupting them (default 30)")
    g = r.add_argument_group("owner notices (SMTP)")
    g.add_argument("--smtp-host", metavar="HOST", help="SMTP server (default $AUDITOR_SMTP_HOST; none: no mail)")
    g.add_argument("--smtp-port", type=_port, metavar="PORT", help="SMTP port (default $AUDITOR_SMTP_PORT, else 25)")
    g.add_argument("--smtp-from", metavar="ADDRESS", help="sender address (default $AUDITOR_SMTP_FROM)")
    g.add_argument("--smtp-user", metavar="NAME",
                   help="login name (default $AUDITOR_SMTP_USER; the password only from $AUDITOR_SMTP_PASSWORD)")
    g.add_argument("--smtp-starttls", action="store_true", default=None,
                   help="upgrade the connection with STARTTLS (also $AUDITOR_SMTP_STARTTLS=1)")
    r.set_defaults(func=cmd_run)

    ls = actions.add_parser("list", help="list every scheduled site with its schedule, next and last run")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    add_db(ls)
    ls.set_defaults(func=cmd_list)

    a = actions.add_parser(
        "add", help="enrol a site (or set a system's schedule) with an interval or a cron expression",
        description="Without --interval/--cron the site follows its system's schedule, else weekly.",
    )
    a.add_argument("url", nargs="?", metavar="URL", help="the site (created in the inventory if new)")
    a.add_argument("--system", metavar="NAME", help="set the schedule of every site of this system instead")
    when = a.add_mutually_exclusive_group()
    when.add_argument("--interval", metavar="DURATION", help="10s, 15m, 1h, 7d ... (spread over the period by URL)")
    when.add_argument("--cron", metavar="EXPR", help='five-field crontab expression in UTC, e.g. "0 3 * * 1"')
    add_db(a)
    a.set_defaults(func=cmd_add)

    for action, state, text in (
        ("pause", "paused", "stop re-auditing a site until resumed"),
        ("resume", "active", "resume a paused site"),
        ("remove", "removed", "take a site off the schedule (its history stays)"),
    ):
        q = actions.add_parser(action, help=text)
        q.add_argument("url", metavar="URL")
        add_db(q)
        q.set_defaults(func=cmd_state, state=state)


def _port(value: str) -> int:
    port = positive_int(value)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}")
    return port


def cmd_run(args: argparse.Namespace) -> int:
    from auditor.cli.scan_cmds import scan_request_from_args
    from reports.registry_site import check_destination
    from scheduler.notify import SMTPSettings
    from scheduler.service import Service, ServiceConfig

    if args.ca_file and not Path(args.ca_file).is_file():
        raise AuditorError(f"CA file not found: {args.ca_file}")
    registry_out = Path(args.registry_out) if args.registry_out else None
    check_destination(registry_out, args.registry_verify_url)
    smtp = SMTPSettings.from_options(
        host=args.smtp_host, port=args.smtp_port, sender=args.smtp_from, username=args.smtp_user,
        starttls=args.smtp_starttls,
    )
    config = ServiceConfig(
        db=args.db, request=scan_request_from_args(args, []), policy_dir=args.policy, key_path=args.key,
        registry_out=registry_out, registry_verify_url=args.registry_verify_url, smtp=smtp, lang=args.lang,
        workers=args.workers, sync_interval=args.sync_interval, stop_timeout=args.stop_timeout,
        broker=args.broker,
    )
    if args.broker is not None:  # one-line error and exit 2 before anything is claimed
        from auditor.cluster.app import broker_url, check_broker

        check_broker(broker_url(args.broker))
    service = Service(config)
    stop = threading.Event()
    previous = {}
    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        if signum == signal.SIGINT:  # a second Ctrl-C does not wait for the runs under way
            signal.signal(signal.SIGINT, signal.default_int_handler)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        interrupted = service.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if interrupted and threading.current_thread() is threading.main_thread() and _is_cli_process():
        # Runs were interrupted and recorded as such; their threads may sit in a network
        # call that a library's non-daemon pool would wait for at exit. Leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _is_cli_process() -> bool:
    """True when this process is the ``auditor`` command itself (not a test runner)."""
    argv0 = Path(sys.argv[0] or "")
    return argv0.name == "auditor" or argv0.parts[-2:] == ("auditor", "__main__.py")


def cmd_list(args: argparse.Namespace) -> int:
    from scheduler.admin import list_schedule
    from scheduler.spec import describe

    rows = list_schedule(args.db)
    if args.format == "json":
        out: list[dict[str, Any]] = [
            {
                "url": r.url, "system": r.system, "schedule": r.schedule, "source": r.source, "state": r.state,
                "assessed": r.assessed, "next_run": iso(r.next_run), "last_run": (
                    {"status": r.last_status, "at": iso(r.last_at), "error": r.last_error} if r.last_status else None
                ),
            }
            for r in rows
        ]
        json.dump({"sites": out}, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    if not rows:
        print("no sites are scheduled: import systems (`auditor systems import FILE`) or `auditor schedule add URL`")
        return 0
    print(f"{'site':<44} {'schedule':<16} {'state':<8} {'next run (UTC)':<21} last run")
    for r in rows:
        sched = describe(r.schedule) + ("" if r.source == "site" else f" ({r.source})")
        nxt = iso(r.next_run) if r.next_run else ("-" if r.state != "active" else "at start")
        last = f"{r.last_status} {iso(r.last_at)}" if r.last_status else ("never" if not r.assessed else "-")
        if r.last_error:
            last += f": {clean(r.last_error, 60)}"
        print(f"{clean(r.url, 44):<44} {sched:<16} {r.state:<8} {nxt:<21} {last}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from scheduler.admin import add_site, add_system
    from scheduler.spec import describe, make_spec

    spec = make_spec(interval=args.interval, cron=args.cron) if (args.interval or args.cron) else None
    if args.system and args.url:
        raise AuditorError("give a URL or --system NAME, not both")
    if args.system:
        if spec is None:
            raise AuditorError("--system needs --interval or --cron")
        system = add_system(args.db, args.system, spec)
        print(f"system {clean(system.name)}: {describe(spec)} for every site without its own schedule")
        return 0
    if not args.url:
        raise AuditorError("give the URL of the site to schedule (or --system NAME)")
    url = add_site(args.db, args.url, spec)
    print(f"scheduled {clean(url)}: " + (describe(spec) if spec else "inherits its system's schedule (default weekly)"))
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    from scheduler.admin import set_state

    url = set_state(args.db, args.url, args.state)
    print({"paused": "paused", "active": "resumed", "removed": "removed from the schedule"}[args.state]
          + f": {clean(url)}")
    return 0
