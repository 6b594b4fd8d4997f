"""``auditor feeds list|check|update``: the blocklist feeds the reputation check reads."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from auditor.cli.common import positive_float, print_json
from auditor.errors import AuditorError
from auditor.text import clean
from checks.reputation import feeds, update
from policies import SAMPLE_FEEDS_DIR


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "feeds", help="blocklist feeds for the reputation check (list, check, update)",
        description="Blocklist feeds are files in a directory (--feeds DIR, else $AUDITOR_FEEDS, else the "
                    "built-in sample). Scans never download them; 'feeds update' does, from the URLs of a "
                    "config file.",
    )
    fsub = p.add_subparsers(dest="feeds_action", metavar="ACTION", parser_class=type(p))
    fsub.required = True

    q = fsub.add_parser("list", help="show the feed files of a directory and what each lists")
    _add_dir(q)
    q.add_argument("--format", choices=["table", "json"], default="table")
    q.set_defaults(func=cmd_list)

    q = fsub.add_parser("check", help="look up host names, addresses or URLs (exit 1 when one is listed)")
    q.add_argument("items", nargs="+", metavar="ITEM", help="host name, IP address or URL")
    _add_dir(q)
    q.add_argument("--format", choices=["table", "json"], default="table")
    q.set_defaults(func=cmd_check)

    q = fsub.add_parser(
        "update", help="download the feeds listed in a config file",
        description="Fetch every feed of the config file (YAML: 'directory:' optional, 'feeds:' a list of "
                    "{name, url, max_bytes}) into the feed directory. A feed that fails keeps its old file.",
    )
    q.add_argument("--config", metavar="FILE",
                   help="feeds config (default: $AUDITOR_FEEDS_CONFIG, else ~/.config/auditor/feeds.yaml)")
    q.add_argument("--dir", metavar="DIR",
                   help="where to save the feeds (default: the config's 'directory', else $AUDITOR_FEEDS, "
                        "else ~/.local/share/auditor/feeds)")
    q.add_argument("--timeout", type=positive_float, default=30.0, metavar="SECONDS",
                   help="connect/read timeout per feed (default 30; a download may take 3x this)")
    q.add_argument("--resolve", metavar="HOST:PORT:ADDR", action="append", default=[],
                   help="connect to ADDR for HOST (repeatable)")
    q.add_argument("--ca-file", metavar="PEM", help="trust store for HTTPS feeds (default: Mozilla store)")
    q.add_argument("--no-dns", action="store_true",
                   help="never query DNS: feed hosts need IP literals or --resolve (also AUDITOR_NO_DNS=1)")
    q.add_argument("--format", choices=["table", "json"], default="table")
    q.set_defaults(func=cmd_update)


def _add_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feeds", metavar="DIR",
                   help="feed directory (default: $AUDITOR_FEEDS, else the built-in sample)")


def _load(args: argparse.Namespace) -> feeds.FeedSet:
    options = {"feeds_dir": args.feeds} if args.feeds else {}
    return feeds.feeds_for(options, SAMPLE_FEEDS_DIR)


def cmd_list(args: argparse.Namespace) -> int:
    loaded = _load(args)
    summary = loaded.summary()
    if args.format == "json":
        print_json(summary)
        return 0
    label = " (built-in sample, not a real blocklist)" if loaded.builtin_sample else ""
    print(f"{clean(loaded.directory)}{label}: {loaded.entries} entries in {len(loaded.files)} file(s)")
    for f in loaded.files:
        counts = ", ".join(f"{n} {kind}" for kind, n in f.counts.items() if n) or "nothing"
        extra = []
        if f.skipped:
            extra.append(f"{f.skipped} line(s) not understood")
        if f.truncated:
            extra.append("truncated")
        if f.error:
            extra.append(f"error: {clean(f.error)}")
        print(f"  {clean(f.name):<32} {counts}" + (f"  ({'; '.join(extra)})" if extra else ""))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    loaded = _load(args)
    results: list[dict[str, Any]] = []
    for item in args.items:
        matches = loaded.lookup(item)
        results.append({"item": item, "listed": bool(matches), "matches": [m.to_dict() for m in matches]})
    if args.format == "json":
        print_json({"feeds": str(loaded.directory), "results": results})
    else:
        for r in results:
            if not r["matches"]:
                print(f"{clean(r['item'])}: not listed")
                continue
            where = "; ".join(f"{clean(m['listed'])} ({m['kind']}) in {clean(m['feed'])}:{m['line']}"
                              for m in r["matches"][:5])
            print(f"{clean(r['item'])}: LISTED — {where}")
    return 1 if any(r["listed"] for r in results) else 0


def cmd_update(args: argparse.Namespace) -> int:
    config_path = Path(args.config).expanduser() if args.config else update.default_config_path()
    config = update.read_feed_config(config_path)
    directory = Path(args.dir).expanduser() if args.dir else (config.directory or update.default_update_dir())
    if directory.resolve() == SAMPLE_FEEDS_DIR.resolve():
        raise AuditorError("refusing to overwrite the built-in sample feed; choose another --dir")
    no_dns = args.no_dns or os.environ.get("AUDITOR_NO_DNS", "") not in ("", "0")
    results = update.update_feeds(config, directory, timeout=args.timeout, resolve=list(args.resolve or []),
                                 ca_file=args.ca_file, allow_dns=not no_dns)
    if args.format == "json":
        print_json({"directory": str(directory), "results": [r.to_dict() for r in results]})
    else:
        for r in results:
            if r.status == "failed":
                print(f"  {clean(r.name):<24} FAILED  {clean(r.error)}")
            else:
                print(f"  {clean(r.name):<24} {r.status:<9} {r.entries} entries, {r.bytes} bytes")
        print(f"feeds in {clean(directory)}; scan with: auditor scan --feeds {clean(directory)} ...")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"auditor: error: {len(failed)} of {len(results)} feed(s) failed; their old files were kept",
              file=sys.stderr)
        return 2
    return 0
