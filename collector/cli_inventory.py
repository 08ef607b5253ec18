"""`readynet-collector` commands for the inventory: CSV import and export of schools.

`school import FILE.csv` takes NCES Common Core of Data files as they are (see
`collector.csv_import`); every bad cell is one `error: line N, column C: why` line, exit 2, and
nothing is stored. `school export` writes the same columns, so exporting and importing again
changes nothing. The command line acts with scope `all`, recorded as `cli:<user>` in the audit
log.
"""

# A command prints, like collector/cli.py (which pyproject.toml exempts by name).
# ruff: noqa: T201

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.settings import CollectorSettings


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register this module's commands on the collector's command parser."""
    school = _subcommands(sub.choices["school"])
    load = school.add_parser(
        "import",
        help="create or update schools (and districts) from CSV with NCES Common Core of Data "
        "columns (NCESSCH, SCH_NAME, LEAID, LEA_NAME, ST, TOTAL or MEMBER, GSLO, GSHI) and "
        "ours (STAFF, GUESTS, SHARED_EXIT); all rows or none",
    )
    load.add_argument("file", type=Path, metavar="FILE.csv", help="the CSV file, - for stdin")
    load.add_argument(
        "--dry-run", action="store_true", help="check every row and count, store nothing"
    )
    load.set_defaults(handler=_school_import)
    dump = school.add_parser(
        "export", help="write every school as CSV in the columns `school import` reads"
    )
    dump.add_argument("--output", type=Path, metavar="FILE", help="write here, not to stdout")
    dump.set_defaults(handler=_school_export)


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any]:
    """The subcommands `parser` already has (`school add`, `school list`), to add to them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise LookupError(f"{parser.prog} has no subcommands")


def _school_import(args: argparse.Namespace, settings: CollectorSettings) -> int:
    # collector.cli imports this module to build its parser: its helpers are imported late.
    from collector.cli import EXIT_USAGE, CommandError, _session

    try:
        data = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    except OSError as exc:
        raise CommandError(
            f"FILE.csv: cannot read {args.file}: {exc.strerror}", status=EXIT_USAGE
        ) from None
    from collector.store.audit import cli_actor
    from collector.store.inventory_csv import import_schools
    from collector.store.people import Scope

    with _session(settings) as session:
        report = import_schools(
            session=session,
            actor=cli_actor(),
            scope=Scope.everything(),
            data=data,
            source=str(args.file),
            dry_run=args.dry_run,
        )
    if report.problems:
        raise CommandError(*report.problem_lines(), status=EXIT_USAGE)
    verb = "would create" if report.dry_run else "created"
    print(
        f"schools: {verb} {report.created}, updated {report.updated}, "
        f"unchanged {report.unchanged}; districts: created {report.districts_created}, "
        f"updated {report.districts_updated}"
    )
    print(f"read {report.rows} rows as {report.encoding}", file=sys.stderr)
    if report.dry_run:
        print("dry run: nothing was stored", file=sys.stderr)
    return 0


def _school_export(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.cli import EXIT_USAGE, CommandError, _session
    from collector.store.inventory_csv import export_schools
    from collector.store.people import Scope

    with _session(settings) as session:
        text = export_schools(session=session, scope=Scope.everything())
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise CommandError(
            f"output: cannot write {args.output}: {exc.strerror}", status=EXIT_USAGE
        ) from None
    print(f"wrote {text.count(chr(10)) - 1} schools to {args.output}", file=sys.stderr)
    return 0
