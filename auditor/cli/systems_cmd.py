"""``auditor systems ...`` (inventory and security levels), ``auditor comply`` and ``auditor attest``."""

from __future__ import annotations

import argparse
import datetime as _dt
import getpass
import hashlib
import sys
from pathlib import Path
from typing import Any

from auditor import storage
from auditor.cli.common import add_db, add_policy, print_json
from auditor.compliance import (
    MAX_EVIDENCE_CHARS,
    STATES,
    ComplianceResult,
    evaluate_compliance,
    record_attestation,
)
from auditor.errors import AuditorError
from auditor.inventory import (
    InventoryError,
    Stored,
    get_system,
    import_file,
    level_attrs,
    list_systems,
    remove_system,
    store_records,
    system_dict,
    validate_record,
)
from auditor.text import clean
from policies.levels import ATTRIBUTES, Classification, available_rulesets, classify, ruleset_for

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2

STATE_LABEL = {
    "fail": "FAIL",
    "not_assessed": "NOT ASSESSED",
    "needs_attestation": "NEEDS ATTESTATION",
    "attested": "ATTESTED",
    "pass": "PASS",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("systems", help="inventory of information systems and their security levels",
                       description="Information systems (hệ thống thông tin): import, add, list, show, "
                                   "remove, and determine their security level (cấp độ 1-5).")
    ssub = p.add_subparsers(dest="systems_command", metavar="ACTION", parser_class=type(p))
    ssub.required = True

    q = ssub.add_parser("import", help="create or update systems from a YAML or CSV file",
                        description="Validate the whole file, then create or update every system in it "
                                    "(by name). Nothing is written when any row is invalid. "
                                    "Format: see examples/systems.yaml and examples/systems.csv.")
    q.add_argument("file", metavar="FILE")
    _add_date(q)
    add_db(q)
    add_policy(q)
    q.set_defaults(func=cmd_import)

    q = ssub.add_parser("add", help="add one system from command-line options")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--owner", required=True, help="owner organisation (chủ quản)")
    q.add_argument("--contact", help="security contact e-mail")
    q.add_argument("--declared-level", metavar="N", help="the approved level (1-5)")
    q.add_argument("--allowed-ports", metavar="LIST", help="ports meant to be open, e.g. 443;80")
    q.add_argument("--site", dest="sites", action="append", default=[], metavar="URL",
                   help="a website of the system (repeatable)")
    g = q.add_argument_group("level attributes (lists joined with ';')")
    for name, spec in ATTRIBUTES.items():
        choices = f" ({' | '.join(spec.choices)})" if spec.choices else ""
        g.add_argument(f"--{name.replace('_', '-')}", dest=f"attr_{name}", metavar="VALUE",
                       required=name == "category", help=f"{spec.help}{choices}")
    q.add_argument("--replace", action="store_true", help="update the system if it already exists")
    add_db(q)
    add_policy(q)
    q.set_defaults(func=cmd_add)

    q = ssub.add_parser("list", help="list systems with their levels")
    q.add_argument("--format", choices=["table", "json"], default="table")
    add_db(q)
    q.set_defaults(func=cmd_list)

    q = ssub.add_parser("show", help="show one system")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--format", choices=["table", "json"], default="table")
    add_db(q)
    q.set_defaults(func=cmd_show)

    q = ssub.add_parser("remove", help="remove a system (its sites and scans stay, unlinked)")
    q.add_argument("name", metavar="NAME")
    add_db(q)
    q.set_defaults(func=cmd_remove)

    q = ssub.add_parser("classify", help="determine a system's security level and why",
                        description="Evaluate the level rule set (default: the one in force on --date, "
                                    "today by default) against the system's declared attributes.")
    _add_evaluation(q)
    q.set_defaults(func=cmd_classify)

    p = sub.add_parser("comply", help="judge a system against its security level's requirements",
                       description="Evaluate the latest scans of the system's sites and its attestations "
                                   "against the requirements of its level. Exit 0 when compliant, 1 when "
                                   "a requirement fails or needs attestation, 2 when one could not be "
                                   "assessed (a site not scanned, a check missing or in error).")
    _add_evaluation(p)
    p.set_defaults(func=cmd_comply)

    p = sub.add_parser("attest", help="record the owner's evidence that a requirement is met",
                       description="Record an attestation for a requirement that cannot be seen from "
                                   "outside (judged_by: attestation), with the date and who attested.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("requirement", metavar="REQ_ID")
    p.add_argument("--evidence", required=True, metavar="FILE|TEXT",
                   help="a file (its content and SHA-256 are stored) or a text")
    p.add_argument("--by", metavar="WHO", help="who attests (default: the current user)")
    add_db(p)
    add_policy(p)
    p.set_defaults(func=cmd_attest)


def _add_evaluation(p: argparse.ArgumentParser) -> None:
    """What ``classify`` and ``comply`` take: a system, the rule set and date, the format."""
    p.add_argument("name", metavar="NAME")
    p.add_argument("--rules", metavar="RULESET",
                   help="level rule set: decree-85-2016 | decree-331-2026 "
                        "(default: the one in force on the evaluation date)")
    _add_date(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    add_db(p)
    add_policy(p)


def _add_date(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date", type=_parse_date, metavar="YYYY-MM-DD",
                   help="evaluation date (default: today, UTC)")


def _parse_date(value: str) -> _dt.date:
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {value!r}") from None


def _check_rules(rules: str | None, policy: str | None) -> None:
    if rules is not None and rules not in available_rulesets(policy):
        raise AuditorError(f"unknown rule set {rules!r} (available: {', '.join(available_rulesets(policy))})")


def _print_inventory_errors(exc: InventoryError, nothing: str) -> int:
    for line in exc.errors:
        print(f"auditor: error: {line}", file=sys.stderr)
    print(f"auditor: {nothing} ({len(exc.errors)} error(s))", file=sys.stderr)
    return EXIT_ERROR


def _print_stored(results: list[Stored]) -> None:
    for s in results:
        cls = s.classification
        line = f"{s.action} {s.name}: {_level_text(cls.level)} ({cls.rules})"
        if cls.mismatch:
            line += f" — declared level {cls.declared_level} differs"
        line += f", {len(s.sites)} site(s)"
        if s.unlinked:
            line += f", unlinked {len(s.unlinked)}"
        print(line)


def _level_text(level: int) -> str:
    return f"level {level}" if level else "level undetermined"


# --- inventory ------------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    try:
        with storage.session_scope(args.db) as session:
            results = import_file(session, args.file, on=args.date, policy_dir=args.policy)
    except InventoryError as exc:
        return _print_inventory_errors(exc, "nothing was imported")
    _print_stored(results)
    print(f"{len(results)} system(s) imported from {clean(args.file)}")
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    raw: dict[str, Any] = {"name": args.name, "owner": args.owner}
    if args.contact:
        raw["contact"] = args.contact
    if args.declared_level:
        raw["declared_level"] = args.declared_level
    if args.allowed_ports:
        raw["allowed_ports"] = args.allowed_ports
    if args.sites:
        raw["sites"] = list(args.sites)
    for name in ATTRIBUTES:
        value = getattr(args, f"attr_{name}")
        if value is not None:
            raw[name] = value
    rec, errors = validate_record(raw, "command line")
    try:
        if rec is None:
            raise InventoryError(errors)
        with storage.session_scope(args.db) as session:
            results = store_records(session, [rec], replace=args.replace, policy_dir=args.policy)
    except InventoryError as exc:
        return _print_inventory_errors(exc, "nothing was added")
    _print_stored(results)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with storage.session_scope(args.db) as session:
        rows = [system_dict(session, s) for s in list_systems(session)]
    if args.format == "json":
        print_json({"systems": rows})
        return EXIT_OK
    if not rows:
        print("no information systems (import some with `auditor systems import FILE`)")
        return EXIT_OK
    width = max(len(r["name"]) for r in rows)
    print(f"{'name':<{width}}  {'category':<18}  level  declared  rules            sites  owner")
    for r in rows:
        level = str(r["computed_level"] or "-")
        declared = str(r["declared_level"] or "-")
        flag = "!" if r["declared_level"] and r["computed_level"] and r["declared_level"] != r["computed_level"] else " "
        print(f"{r['name']:<{width}}  {r['category']:<18}  {level:>5}  {declared:>7}{flag}  "
              f"{(r['level_rules'] or '-'):<15}  {len(r['sites']):>5}  {clean(r['owner'], 60)}")
    if any(r["declared_level"] and r["computed_level"] and r["declared_level"] != r["computed_level"] for r in rows):
        print("! declared level differs from the computed one (see `auditor systems classify NAME`)")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    with storage.session_scope(args.db) as session:
        data = system_dict(session, get_system(session, args.name))
    if args.format == "json":
        print_json(data)
        return EXIT_OK
    print(f"{data['name']} — {clean(data['owner'])}")
    print(f"  contact:        {clean(data['contact']) or '-'}")
    print(f"  category:       {data['category']}")
    print(f"  level:          {data['computed_level'] or 'undetermined'} ({data['level_rules'] or '-'}), "
          f"declared {data['declared_level'] or '-'}")
    print(f"  allowed ports:  {', '.join(map(str, data['allowed_ports'])) or '- (the sites own HTTPS/HTTP ports)'}")
    print("  attributes:")
    for key, value in data["attributes"].items():
        shown = ", ".join(value) if isinstance(value, list) else value
        mark = "" if key in data["declared_attributes"] else "  (default)"
        print(f"    {key:<28} {shown}{mark}")
    for comp in data["components"]:
        attrs = ", ".join(f"{k}={v}" for k, v in comp.items() if k != "name")
        print(f"  component {comp['name']}: {attrs}")
    print(f"  sites ({len(data['sites'])}):")
    for url in data["sites"]:
        print(f"    {clean(url)}")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    with storage.session_scope(args.db) as session:
        counts = remove_system(session, args.name)
    print(f"removed {args.name}: unlinked {counts['sites']} site(s), {counts['scans']} scan(s), "
          f"{counts['certificates']} certificate(s); deleted {counts['attestations']} attestation(s)")
    return EXIT_OK


# --- levels -----------------------------------------------------------------------------------


def cmd_classify(args: argparse.Namespace) -> int:
    _check_rules(args.rules, args.policy)
    on = args.date or _dt.datetime.now(_dt.UTC).date()
    with storage.session_scope(args.db) as session:
        system = get_system(session, args.name)
        cls = classify(level_attrs(system), name=system.name, rules=args.rules, on=on, policy_dir=args.policy)
        if args.date is None and args.rules is None:
            # The current classification is stored; what-ifs (--date/--rules) are not.
            system.computed_level = cls.level or None
            system.level_rules = cls.rules
            session.add(system)
    if args.format == "json":
        print_json(cls.to_dict())
        return EXIT_OK
    print(render_classification(cls, in_force=cls.rules == ruleset_for(on, args.policy)))
    return EXIT_OK


def render_classification(cls: Classification, *, in_force: bool = False) -> str:
    lines = [f"{cls.system}: {_level_text(cls.level)} under {cls.rules} ({cls.rules_title})"]
    if in_force and cls.evaluated_on:
        lines[0] += f", in force on {cls.evaluated_on.isoformat()}"
    if not cls.reasons:
        lines.append("  no criterion matched the declared attributes: declare the missing ones "
                     "(see examples/systems.yaml)")
    for r in cls.reasons:
        mark = "" if r.verified else "  [source unverified]"
        lines.append(f"  Level {r.level} — {r.article}: {r.text}{mark}")
    if cls.declared_level is not None:
        if cls.mismatch:
            lines.append(f"  ! declared level {cls.declared_level} differs from the computed level {cls.level}: "
                         "the declared level is kept; review the level dossier")
        else:
            lines.append(f"  declared level {cls.declared_level} matches")
    return "\n".join(lines)


# --- compliance -------------------------------------------------------------------------------


def cmd_comply(args: argparse.Namespace) -> int:
    _check_rules(args.rules, args.policy)
    with storage.session_scope(args.db) as session:
        result = evaluate_compliance(session, args.name, rules=args.rules, on=args.date, policy_dir=args.policy)
    if args.format == "json":
        print_json(result.to_dict())
    else:
        print(render_compliance(result))
    return comply_exit_code(result)


def comply_exit_code(result: ComplianceResult) -> int:
    counts = result.counts
    if counts["not_assessed"]:
        return EXIT_ERROR
    if counts["fail"] or counts["needs_attestation"]:
        return EXIT_FAIL
    return EXIT_OK


def render_compliance(result: ComplianceResult) -> str:
    cls = result.classification
    lines = [
        f"{result.system} — {clean(result.owner)}",
        f"  level {result.level} under {result.rules}"
        + (f" (computed {cls.level}, declared {cls.declared_level})" if cls.mismatch else ""),
    ]
    for r in cls.reasons:
        if r.level == cls.level:
            lines.append(f"    {r.article}: {r.text}")
    if not result.sites:
        lines.append("  sites: none in the inventory")
    for s in result.sites:
        if s["scan_id"] is None:
            lines.append(f"  site {clean(s['url'])}: not scanned")
        else:
            grade = f"grade {s['grade']} score {s['score']}" if s["grade"] else f"scan {s['status']}"
            lines.append(f"  site {clean(s['url'])}: scan #{s['scan_id']} {s['scanned_at']} {grade}")
    lines.append("")
    order = {state: i for i, state in enumerate(STATES)}
    width = max((len(r.id) for r in result.requirements), default=10)
    for r in sorted(result.requirements, key=lambda r: order.get(r.state, 99)):
        mark = "" if r.verified else " [source unverified]"
        lines.append(f"  {STATE_LABEL.get(r.state, r.state):<17}  {r.id:<{width}}  {r.title_en}{mark}")
        lines.append(f"  {'':<17}  {'':<{width}}  {r.title_vi} — {r.source}")
        for f in r.findings:
            lines.append(f"  {'':<17}  {'':<{width}}  ✗ {f['id']} {clean(f['url'], 100)}: {clean(f['evidence'], 160)}")
        if r.attestation:
            lines.append(f"  {'':<17}  {'':<{width}}  attested {r.attestation['at']} by "
                         f"{clean(r.attestation['by'], 60)}: {clean(r.attestation['evidence'], 120)}")
        if r.detail and (r.state == "not_assessed" or r.attestation):
            lines.append(f"  {'':<17}  {'':<{width}}  {clean(r.detail, 300)}")
    c = result.counts
    summary = ", ".join(f"{c[s]} {STATE_LABEL[s].lower()}" for s in STATES if c[s])
    lines.append("")
    lines.append(f"  {len(result.requirements)} requirements: {summary} — "
                 + ("COMPLIANT" if result.compliant else "NOT COMPLIANT"))
    return "\n".join(lines)


def _read_evidence(value: str) -> str:
    """A path to an existing file becomes a reference with its SHA-256 (and its text when it
    is UTF-8 and small); anything else is the evidence text itself."""
    path = Path(value)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        return value
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditorError(f"cannot read evidence file {value}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    head = f"file {path.resolve()} (sha256 {digest}, {len(data)} bytes)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return head + "; binary, content not stored"
    if len(text) > MAX_EVIDENCE_CHARS - len(head) - 2:
        return head + "; too large to store, content not stored"
    return head + ":\n" + text


def _current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown"


def cmd_attest(args: argparse.Namespace) -> int:
    evidence = _read_evidence(args.evidence)
    with storage.session_scope(args.db) as session:
        att, req = record_attestation(session, args.name, args.requirement, evidence,
                                      args.by or _current_user(), policy_dir=args.policy)
        system = get_system(session, args.name)
        level = max(system.computed_level or 0, system.declared_level or 0)
        at = att.attested_at
    print(f"attested {req.id} for {args.name} by {clean(att.attested_by, 60)} at {at.isoformat(timespec='seconds')}")
    if level and level not in req.levels:
        print(f"note: {req.id} applies to levels {', '.join(map(str, req.levels))}; {args.name} is level {level}")
    return EXIT_OK
