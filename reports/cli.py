"""``auditor registry build OUT_DIR``: the public registry of assessed and not-yet-assessed sites."""

from __future__ import annotations

import argparse

from auditor.cli.common import add_db


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "registry", help="publish the registry of inventoried sites (static HTML + JSON + CSV)",
        description="Build a static site listing every inventoried site: assessed or not, last assessment, "
                    "grade, certificate status and serial with a verify link, system level and owner.",
    )
    actions = p.add_subparsers(dest="registry_action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    b = actions.add_parser("build", help="write index.html, registry.json and registry.csv into OUT_DIR")
    b.add_argument("out_dir", metavar="OUT_DIR")
    b.add_argument("--key", metavar="PEM",
                   help="issuer key whose public half is published as issuer.pem (default: as `auditor certify`)")
    b.add_argument("--verify-url", metavar="PREFIX",
                   help="link each serial to PREFIX<serial> (an online verify service) instead of the "
                        "certificate file written next to the registry")
    add_db(b)
    b.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    from reports.registry_site import build_registry
    from scheduler.admin import enrolled_in

    built = build_registry(args.db, args.out_dir, key_path=args.key, verify_url=args.verify_url,
                           enrolled=enrolled_in(args.db))
    print(f"registry: {built.sites} site(s), {built.assessed} assessed, "
          f"{built.sites - built.assessed} not yet assessed -> {built.out_dir / 'index.html'}")
    return 0
