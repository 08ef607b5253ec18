"""`readynet-collector` commands for the inventory: CSV import and export of schools, circuits
and testing rooms.

`school import FILE.csv` takes NCES Common Core of Data files as they are (see
`collector.csv_import`); every bad cell is one `error: line N, column C: why` line, exit 2, and
nothing is stored. `school export` writes the same columns, so exporting and importing again
changes nothing. `circuit add|list|remove` and `room add|list|remove` go through the same data
functions as the API. The command line acts with scope `all`, recorded as `cli:<user>` in the
audit log.
"""

# A command prints, like collector/cli.py (which pyproject.toml exempts by name).
# ruff: noqa: T201

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collector.settings import CollectorSettings
    from collector.store.models import Base

T = TypeVar("T")

_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


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

    circuit = sub.add_parser(
        "circuit", help="contracted circuits of schools and district hubs"
    ).add_subparsers(required=True)
    add = circuit.add_parser("add", help="add a circuit; prints its id")
    owner = add.add_mutually_exclusive_group(required=True)
    owner.add_argument("--school", help="the school's id: its own circuit")
    owner.add_argument("--district", help="the district's id: its hub's circuit")
    add.add_argument("--name", required=True)
    add.add_argument("--kind", required=True, choices=("internet", "wan"))
    add.add_argument("--down", required=True, metavar="MBPS", help="contracted Mbps down")
    add.add_argument("--up", required=True, metavar="MBPS", help="contracted Mbps up")
    add.add_argument("--provider")
    add.set_defaults(handler=_circuit_add)
    listing = circuit.add_parser("list", help="a school's or a district hub's circuits")
    owner = listing.add_mutually_exclusive_group(required=True)
    owner.add_argument("--school", help="school id")
    owner.add_argument("--district", help="district id")
    listing.set_defaults(handler=_circuit_list)
    remove = circuit.add_parser("remove", help="remove a circuit")
    remove.add_argument("id")
    remove.set_defaults(handler=_circuit_remove)

    room = sub.add_parser(
        "room", help="testing rooms: where students take online tests, and how many at once"
    ).add_subparsers(required=True)
    add = room.add_parser("add", help="add a testing room to a school; prints its id")
    add.add_argument("--school", required=True, help="school id")
    add.add_argument("--name", required=True)
    add.add_argument("--test-takers", metavar="N", help="students testing in it at once")
    add.set_defaults(handler=_room_add)
    listing = room.add_parser("list", help="a school's testing rooms")
    listing.add_argument("--school", required=True, help="school id")
    listing.set_defaults(handler=_room_list)
    remove = room.add_parser("remove", help="remove a testing room")
    remove.add_argument("id")
    remove.set_defaults(handler=_room_remove)


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


def _mbps(text: str) -> float | str:
    # A plain decimal becomes a number; anything else is left for the model to refuse by name.
    return float(text) if _DECIMAL.fullmatch(text.strip()) else text


def _id(text: str, option: str) -> int:
    from collector.cli import _validated, _whole
    from collector.inventory import SchoolSelection

    return _validated(
        SchoolSelection, {"school_id": _whole(text)}, options={"school_id": option}
    ).school_id


def _circuit_add(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.cli import _validated, _whole
    from collector.inventory import CircuitCreate

    values: dict[str, Any] = {
        "name": args.name,
        "kind": args.kind,
        "down_mbps": _mbps(args.down),
        "up_mbps": _mbps(args.up),
        "provider": args.provider,
    }
    if args.school is not None:
        values["school_id"] = _whole(args.school)
    else:
        values["district_id"] = _whole(args.district)
    new = _validated(
        CircuitCreate,
        values,
        options={
            "school_id": "school",
            "district_id": "district",
            "down_mbps": "down",
            "up_mbps": "up",
        },
    )
    from collector.store import inventory as store

    print(
        _write(
            settings,
            lambda session, **who: store.create_circuit(session=session, new=new, **who),
            missing="school" if args.school is not None else "district",
        )
    )
    return 0


def _circuit_list(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.cli import _session
    from collector.store import inventory as store
    from collector.store.people import Scope

    school_id = None if args.school is None else _id(args.school, "school")
    district_id = None if args.district is None else _id(args.district, "district")
    with _session(settings) as session:
        rows = _answered(
            lambda: store.circuits_of(
                session=session,
                scope=Scope.everything(),
                school_id=school_id,
                district_id=district_id,
            ),
            "school" if school_id is not None else "district",
        )
        for c in rows:
            provider = "" if c.provider is None else f"\tprovider={c.provider}"
            print(f"{c.id}\t{c.name}\t{c.kind}\tdown={c.down_mbps:g}\tup={c.up_mbps:g}{provider}")
    return 0


def _circuit_remove(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.store import inventory as store

    circuit_id = _id(args.id, "id")
    _write(
        settings,
        lambda session, **who: store.delete_circuit(session=session, circuit_id=circuit_id, **who),
        missing="id",
    )
    print(f"removed circuit {circuit_id}")
    return 0


def _room_add(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.cli import _validated, _whole
    from collector.inventory import RoomCreate

    school_id = _id(args.school, "school")
    values: dict[str, Any] = {"name": args.name}
    if args.test_takers is not None:
        values["test_takers"] = _whole(args.test_takers)
    new = _validated(RoomCreate, values, options={"test_takers": "test-takers"})
    from collector.store import inventory as store

    print(
        _write(
            settings,
            lambda session, **who: store.create_room(
                session=session, school_id=school_id, new=new, **who
            ),
            missing="school",
        )
    )
    return 0


def _room_list(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.cli import _session
    from collector.store import inventory as store
    from collector.store.people import Scope

    school_id = _id(args.school, "school")
    with _session(settings) as session:
        rooms = _answered(
            lambda: store.rooms_of(session=session, scope=Scope.everything(), school_id=school_id),
            "school",
        )
        for r in rooms:
            takers = "" if r.test_takers is None else f"\ttest_takers={r.test_takers}"
            print(f"{r.id}\t{r.name}{takers}")
    return 0


def _room_remove(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.store import inventory as store

    room_id = _id(args.id, "id")
    _write(
        settings,
        lambda session, **who: store.delete_room(session=session, room_id=room_id, **who),
        missing="id",
    )
    print(f"removed testing room {room_id}")
    return 0


def _write(
    settings: CollectorSettings, change: Callable[..., Base | None], *, missing: str = "id"
) -> int | None:
    """Run a store write as `cli:<user>` with scope all: the row's id, or None (a delete)."""
    from collector.cli import _session
    from collector.store.audit import cli_actor
    from collector.store.people import Scope

    with _session(settings) as session:
        row = _answered(
            lambda: change(session, actor=cli_actor(), scope=Scope.everything()), missing
        )
        return None if row is None else int(row.id)  # type: ignore[attr-defined]


def _answered(call: Callable[[], T], missing: str) -> T:
    """`call()`, with the store's refusals as one-line errors naming the option."""
    from collector.cli import EXIT_USAGE, CommandError
    from collector.store import inventory as store

    try:
        return call()
    except store.Missing as exc:
        raise CommandError(f"{missing}: {exc}", status=EXIT_USAGE) from None
    except store.BadReference as exc:
        option = {"school_id": "school", "district_id": "district"}.get(exc.field, exc.field)
        raise CommandError(f"{option}: {exc.message}", status=EXIT_USAGE) from None
    except store.Taken as exc:
        # A name taken (add) or a row in use (remove).
        raise CommandError(
            f"{'name' if missing != 'id' else 'id'}: {exc}", status=EXIT_USAGE
        ) from None
