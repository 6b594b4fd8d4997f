"""The ``auditor`` command line.

Each command family lives in its own module with a ``register(subparsers)`` function, so
later parts add commands without touching the others. Exit codes: 0 fine; 1 a finding at or
above ``--fail-on``; 2 a usage or input error, or a site/check that could not be assessed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from auditor.errors import AuditorError
from auditor.text import clean
from auditor.version import __version__

# Modules that contribute subcommands, in help order. "module:function" names a register
# function other than ``register``, for a module whose commands are apart in the help.
COMMAND_MODULES = [
    "auditor.cli.scan_cmds",
    "auditor.cli.demo_cmd",
    "auditor.cli.systems_cmd",
    "reports.cli:register_report",
    "certificates.cli",
    "reports.cli:register_export",
    "scheduler.cli",
    "reports.cli",
    "checks.reputation.cli",
    "auditor.cluster.cli",
]

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own convention)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="auditor",
        description="Audit the information security of websites and issue network-trust certificates.",
    )
    parser.add_argument("--version", action="version", version=f"auditor {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug events and show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for entry in COMMAND_MODULES:
        module, _, function = entry.partition(":")
        getattr(importlib.import_module(module), function or "register")(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("AUDITOR_DEBUG"))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not debug:
        # sslyze and urllib3 log noisy warnings about hostile servers; they are findings, not logs.
        for noisy in ("sslyze", "urllib3", "weasyprint", "fontTools", "apscheduler"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return int(args.func(args) or 0)
    except AuditorError as exc:
        # Messages may quote user input or site data: keep them one terminal-safe line.
        print(f"auditor: error: {clean(exc, 2000)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("auditor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if debug:
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"auditor: internal error: {type(exc).__name__}: {clean(msg, 500)} (run with --debug for details)",
              file=sys.stderr)
        return 70


def run() -> None:
    sys.exit(main())
