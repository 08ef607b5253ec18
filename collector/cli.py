"""`readynet-collector`: serve the API, migrate the database, manage schools and agents.

The store (SQLAlchemy, Alembic) is imported only by the commands that use it, after their input
is validated: a mistyped number is answered at once, without a database.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from collector import __version__, cli_inventory, cli_people
from collector.inventory import (
    AgentCreate,
    ClassroomCodeCreate,
    DistrictCreate,
    SchoolCreate,
    SchoolSelection,
)
from collector.settings import CollectorSettings

if TYPE_CHECKING:
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import Session

# Scripts branch on these, so they never change casually.
EXIT_USAGE = 2  # the command line is wrong: a bad option or value, a duplicate, an unknown school
EXIT_ENVIRONMENT = 1  # the command is fine, its surroundings are not: settings, the database
EXIT_STATUS_HELP = f"""exit status:
  0  done
  {EXIT_USAGE}  the command line is wrong (bad option or value, duplicate name, unknown school)
  {EXIT_ENVIRONMENT}  the settings or the database are not usable (unreachable, not migrated)
errors are printed as one `error: ...` line per problem on stderr, naming the option"""

_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
Model = TypeVar("Model", bound=BaseModel)


class CommandError(Exception):
    """What went wrong, as `field: message` lines, and the exit status that says whose fault."""

    def __init__(self, *problems: str, status: int) -> None:
        super().__init__(*problems)
        self.problems = problems
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line like every other error of this command, not argparse's usage block.
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings()
        result: int = args.handler(args, settings)
    except CommandError as exc:
        return _report(exc.problems, exc.status)
    except Exception as exc:
        known = _known_error(exc)
        if known is None:
            raise
        return _report(known.problems, known.status)
    return result


def _known_error(exc: Exception) -> CommandError | None:
    """The store's and `serve`'s errors that are not bugs, as one line each."""
    # Already loaded whenever one of its errors was raised, so importing it here costs nothing.
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        # The database went away mid-command, or `migrate` could not reach it.
        return CommandError(f"database: {_reason(exc)}", status=EXIT_ENVIRONMENT)
    if isinstance(exc, LookupError | ValueError):
        # `serve` with a target profile that does not exist or does not load.
        return CommandError(str(exc).strip().splitlines()[0], status=EXIT_USAGE)
    return None


def _report(problems: Iterable[str], status: int) -> int:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return status


def _settings() -> CollectorSettings:
    try:
        return CollectorSettings()
    except ValidationError as exc:
        raise CommandError(
            *_problems(exc, lambda field: f"READYNET_COLLECTOR_{field.upper()}"),
            status=EXIT_ENVIRONMENT,
        ) from None  # the chained error would quote the value, which may be a secret


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="readynet-collector",
        description=__doc__,
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", help="bind address (default: READYNET_COLLECTOR_HOST)")
    serve.add_argument("--port", type=int, help="port (default: READYNET_COLLECTOR_PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="collector processes on this port (default 1; on PostgreSQL, up to the cores)",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(handler=_serve)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(handler=_migrate)

    school = sub.add_parser("school", help="manage schools").add_subparsers(required=True)
    add = school.add_parser("add", help="add a school")
    add.add_argument("--name", required=True)
    # Numbers are parsed by the handler, so a bad one is reported like any other bad value.
    add.add_argument("--students", required=True, help="number of students")
    add.add_argument("--staff", required=True, help="number of staff")
    add.add_argument("--district", help="district id (see `district add`)")
    add.add_argument(
        "--shared-exit",
        metavar="NAME",
        help="the shared internet exit (district hub) the school is behind: schools with the "
        "same NAME take turns for throughput tests",
    )
    add.set_defaults(handler=_school_add)
    school.add_parser("list", help="list schools").set_defaults(handler=_school_list)

    district = sub.add_parser("district", help="manage districts").add_subparsers(required=True)
    district_add = district.add_parser("add", help="add a district; prints its id")
    district_add.add_argument("--name", required=True)
    district_add.set_defaults(handler=_district_add)
    district.add_parser("list", help="list districts").set_defaults(handler=_district_list)

    agent = sub.add_parser("agent", help="manage agents").add_subparsers(required=True)
    enroll = agent.add_parser(
        "enroll",
        help="a one-time enrolment code for a new agent of a school (or to re-enrol an agent); "
        "on the agent's box: readynet-agent enroll --collector URL --code CODE",
    )
    whose = enroll.add_mutually_exclusive_group(required=True)
    whose.add_argument("--school", help="school id: a new agent for this school")
    whose.add_argument("--agent", metavar="NAME", help="re-enrol this existing agent")
    enroll.add_argument("--name", help="the new agent's name (default: school-ID-agent-N)")
    enroll.set_defaults(handler=_agent_enroll)
    add_agent = agent.add_parser(
        "add", help="create an agent and print its token at once (scripts; people use enroll)"
    )
    add_agent.add_argument("--school", required=True, help="school id")
    add_agent.add_argument("--name", required=True)
    add_agent.set_defaults(handler=_agent_add)
    agent_list = agent.add_parser("list", help="every agent's status, version and heartbeat")
    agent_list.add_argument("--school", help="only this school's agents")
    agent_list.add_argument("--format", choices=("text", "json"), default="text")
    agent_list.set_defaults(handler=_agent_list)
    revoke_agent = agent.add_parser(
        "revoke", help="revoke an agent's token (401 from now on; re-enrol it with a new code)"
    )
    revoke_agent.add_argument("name")
    revoke_agent.set_defaults(handler=_agent_revoke)
    config = agent.add_parser(
        "config", help="the settings the collector holds for an agent (schedule, devices, uplink)"
    ).add_subparsers(required=True)
    config_set = config.add_parser("set", help="hold these settings (YAML) for the agent")
    config_set.add_argument("name")
    config_set.add_argument("--file", required=True, type=Path, help="YAML, - for stdin")
    config_set.set_defaults(handler=_agent_config_set)
    config_show = config.add_parser("show", help="print the settings held for the agent")
    config_show.add_argument("name")
    config_show.set_defaults(handler=_agent_config_show)
    config_clear = config.add_parser(
        "clear", help="stop holding settings for the agent (it goes back to its own agent.yaml)"
    )
    config_clear.add_argument("name")
    config_clear.set_defaults(handler=_agent_config_clear)

    classroom = sub.add_parser(
        "classroom", help="manage classroom codes (the classroom test page)"
    ).add_subparsers(required=True)
    issue = classroom.add_parser(
        "code", help="issue a classroom code for a school; prints it and the page URL"
    )
    issue.add_argument("--school", required=True, help="school id")
    issue.set_defaults(handler=_classroom_code)
    codes = classroom.add_parser("list", help="list classroom codes, active and revoked")
    codes.add_argument("--school", help="only this school's codes")
    codes.set_defaults(handler=_classroom_list)
    revoke = classroom.add_parser("revoke", help="revoke a classroom code")
    revoke.add_argument("--code", required=True)
    revoke.set_defaults(handler=_classroom_revoke)
    cli_inventory.add_commands(sub)
    cli_people.add_commands(sub)
    return parser


def _serve(args: argparse.Namespace, settings: CollectorSettings) -> int:
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    if not 1 <= args.workers <= 64:
        raise CommandError("workers: must be from 1 to 64", status=EXIT_USAGE)
    if args.workers > 1:
        if settings.database_url.startswith("sqlite"):
            # One writer at a time: more processes would only queue on the file's lock.
            raise CommandError(
                "workers: more than one needs PostgreSQL (READYNET_COLLECTOR_DATABASE_URL)",
                status=EXIT_USAGE,
            )
        from collector.workers import run_workers

        return run_workers(args.workers, host=host, port=port)
    # Imported here: the other commands need neither the app nor uvicorn.
    from collector.app import create_app
    from collector.server import serve

    serve(create_app(settings), settings, host=host, port=port, reuse_port=args.reuse_port)
    return 0


def _migrate(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.store.migrate import upgrade_to_head

    upgrade_to_head(settings.database_url)
    print("database schema is up to date")
    return 0


def _school_add(args: argparse.Namespace, settings: CollectorSettings) -> int:
    values = {"name": args.name, "students": _whole(args.students), "staff": _whole(args.staff)}
    if args.district is not None:
        values["district_id"] = _whole(args.district)
    if args.shared_exit is not None:
        values["shared_exit"] = args.shared_exit
    new = _validated(
        SchoolCreate, values, options={"district_id": "district", "shared_exit": "shared-exit"}
    )
    # Imported once the input is valid (see the module docstring).
    from collector.store.audit import cli_actor
    from collector.store.queries import DuplicateName, UnknownDistrict, create_school

    with _session(settings) as session:
        try:
            school = create_school(
                session=session,
                name=new.name,
                students=new.students,
                staff=new.staff,
                district_id=new.district_id,
                shared_exit=new.shared_exit,
                actor=cli_actor(),
            )
        except UnknownDistrict as exc:
            raise CommandError(f"district: {exc}", status=EXIT_USAGE) from None
        except DuplicateName as exc:
            raise CommandError(f"name: {exc}", status=EXIT_USAGE) from None
        print(school.id)
    return 0


def _district_add(args: argparse.Namespace, settings: CollectorSettings) -> int:
    new = _validated(DistrictCreate, {"name": args.name})
    from collector.store.audit import cli_actor
    from collector.store.queries import DuplicateName, create_district

    with _session(settings) as session:
        try:
            district = create_district(session=session, name=new.name, actor=cli_actor())
        except DuplicateName as exc:
            raise CommandError(f"name: {exc}", status=EXIT_USAGE) from None
        print(district.id)
    return 0


def _district_list(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.store.queries import list_districts

    with _session(settings) as session:
        for d in list_districts(session=session):
            print(f"{d.id}\t{d.name}")
    return 0


def _school_list(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.store.queries import list_schools

    with _session(settings) as session:
        for s in list_schools(session=session):
            district = "" if s.district_id is None else f"\tdistrict={s.district_id}"
            shared = "" if s.shared_exit is None else f"\tshared_exit={s.shared_exit}"
            print(f"{s.id}\t{s.name}\tstudents={s.students}\tstaff={s.staff}{district}{shared}")
    return 0


def _agent_enroll(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.store.agents import UnknownAgent, issue_enrolment_code
    from collector.store.queries import DuplicateName, UnknownSchool

    values: dict[str, Any] = {}
    if args.school is not None:
        school_id = _validated(
            SchoolSelection, {"school_id": _whole(args.school)}, options={"school_id": "school"}
        ).school_id
        if args.name is not None:
            values = {
                "name": _validated(
                    AgentCreate,
                    {"school_id": school_id, "name": args.name},
                    options={"school_id": "school"},
                ).name
            }
        values["school_id"] = school_id
    elif args.name is not None:
        raise CommandError(
            "name: only for a new agent (--school), not with --agent", status=EXIT_USAGE
        )
    valid_for = timedelta(days=settings.enrolment_code_days)
    from collector.store.audit import cli_actor, record

    with _session(settings) as session:
        # Added first: the store commits it with the change (or it goes with the session).
        record(
            session,
            actor=cli_actor(),
            action="enroll",
            object_type="agent",
            object_id=args.agent or values.get("name"),
            details={"school_id": values.get("school_id")},
        )
        try:
            agent, code = issue_enrolment_code(
                session=session,
                school_id=values.get("school_id"),
                name=values.get("name"),
                agent_name=args.agent,
                valid_for=valid_for,
            )
        except UnknownSchool as exc:
            raise CommandError(f"school: {exc}", status=EXIT_USAGE) from None
        except UnknownAgent as exc:
            raise CommandError(f"agent: {exc}", status=EXIT_USAGE) from None
        except DuplicateName as exc:
            raise CommandError(f"name: {exc}", status=EXIT_USAGE) from None
        # The code alone on stdout's first line, so scripts can capture it; only its digest
        # is kept, so it is never shown again.
        print(code)
        until = datetime.now(UTC) + valid_for
        print(
            f"enrolment code for agent {agent.name!r} (id {agent.id}) of school {agent.school_id}, "
            f"usable once until {until:%Y-%m-%d %H:%M} UTC; on the agent's box run:\n"
            f"  readynet-agent enroll --collector {settings.page_url('')} --code {code}",
            file=sys.stderr,
        )
    return 0


def _agent_add(args: argparse.Namespace, settings: CollectorSettings) -> int:
    new = _validated(
        AgentCreate,
        {"school_id": _whole(args.school), "name": args.name},
        options={"school_id": "school"},
    )
    from collector.store.queries import DuplicateName, UnknownSchool, enroll_agent

    with _session(settings) as session:
        try:
            agent, token = enroll_agent(session=session, school_id=new.school_id, name=new.name)
        except UnknownSchool as exc:
            raise CommandError(f"school: {exc}", status=EXIT_USAGE) from None
        except DuplicateName as exc:
            raise CommandError(f"name: {exc}", status=EXIT_USAGE) from None
        # The token alone on stdout, so scripts can capture it; it is never shown again.
        print(token)
        print(
            f"enrolled agent {agent.name!r} (id {agent.id}) for school {new.school_id}",
            file=sys.stderr,
        )
    return 0


def _agent_list(args: argparse.Namespace, settings: CollectorSettings) -> int:
    school_id = None
    if args.school is not None:
        school_id = _validated(
            SchoolSelection, {"school_id": _whole(args.school)}, options={"school_id": "school"}
        ).school_id
    from collector.api.routes.agents import agent_out
    from collector.store.agents import agent_statuses

    stale_after = timedelta(seconds=settings.agent_stale_after_s)
    with _session(settings) as session:
        rows = [
            agent_out(s)
            for s in agent_statuses(session=session, stale_after=stale_after, school_id=school_id)
        ]
    if args.format == "json":
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return 0
    print("NAME\tSCHOOL\tSTATUS\tVERSION\tLAST HEARTBEAT\tOUTBOX\tDEAD LETTERS\tCLOCK")
    for r in rows:
        seen = (
            "-" if r.seconds_since_heartbeat is None else f"{_ago(r.seconds_since_heartbeat)} ago"
        )
        clock = "-" if r.clock_offset_s is None else f"{r.clock_offset_s:+.1f} s"
        print(
            f"{r.name}\t{r.school_id} {r.school_name}\t{r.status}\t{r.version or '-'}\t{seen}"
            f"\t{_dash(r.outbox_pending)}\t{_dash(r.dead_letters)}\t{clock}"
        )
    return 0


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def _agent_revoke(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.store.agents import UnknownAgent, revoke_agent
    from collector.store.audit import cli_actor, record

    with _session(settings) as session:
        record(
            session, actor=cli_actor(), action="revoke", object_type="agent", object_id=args.name
        )
        try:
            agent, was_active = revoke_agent(session=session, name=args.name)
        except UnknownAgent as exc:
            raise CommandError(f"name: {exc}", status=EXIT_USAGE) from None
        print(f"revoked agent {agent.name!r} of school {agent.school_id}")
    if not was_active:
        print("it had been revoked already", file=sys.stderr)
    print(
        "a running collector refuses its token within a minute; re-enrol it with "
        f"`readynet-collector agent enroll --agent {args.name}`",
        file=sys.stderr,
    )
    return 0


def _agent_config_set(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from agent.remote_config import RemoteConfigError, parse_remote_config

    try:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
    except OSError as exc:
        raise CommandError(
            f"file: cannot read {args.file}: {exc.strerror}", status=EXIT_USAGE
        ) from None
    try:
        config = parse_remote_config(text)
    except RemoteConfigError as exc:
        raise CommandError(f"file: {exc}", status=EXIT_USAGE) from None
    from collector.store.agents import UnknownAgent, set_agent_config
    from collector.store.audit import cli_actor, record

    with _session(settings) as session:
        record(
            session,
            actor=cli_actor(),
            action="config_set",
            object_type="agent",
            object_id=args.name,
            # The sections only: devices carry SNMP credentials, never written to the log.
            details={"sections": sorted(config)},
        )
        try:
            etag = set_agent_config(session=session, name=args.name, config=config)
        except UnknownAgent as exc:
            raise CommandError(f"name: {exc}", status=EXIT_USAGE) from None
    print(etag)
    print(
        f"agent {args.name!r} picks these settings up with its next heartbeat (within a minute)",
        file=sys.stderr,
    )
    return 0


def _agent_config_show(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.store.agents import UnknownAgent, agent_config_by_name

    with _session(settings) as session:
        try:
            held = agent_config_by_name(session=session, name=args.name)
        except UnknownAgent as exc:
            raise CommandError(f"name: {exc}", status=EXIT_USAGE) from None
        if held is None:
            print(f"no settings held for agent {args.name!r}", file=sys.stderr)
            return 0
        print(f"# etag {held.etag}, updated {held.updated_at:%Y-%m-%dT%H:%M:%SZ}")
        print(json.dumps(json.loads(held.document), indent=2))
    return 0


def _agent_config_clear(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.store.agents import UnknownAgent, clear_agent_config
    from collector.store.audit import cli_actor, record

    with _session(settings) as session:
        record(
            session,
            actor=cli_actor(),
            action="config_clear",
            object_type="agent",
            object_id=args.name,
        )
        try:
            had = clear_agent_config(session=session, name=args.name)
        except UnknownAgent as exc:
            raise CommandError(f"name: {exc}", status=EXIT_USAGE) from None
    print(f"agent {args.name!r}: " + ("settings cleared" if had else "held no settings"))
    return 0


def _classroom_code(args: argparse.Namespace, settings: CollectorSettings) -> int:
    new = _validated(
        ClassroomCodeCreate, {"school_id": _whole(args.school)}, options={"school_id": "school"}
    )
    from collector.store.classroom import issue_classroom_code
    from collector.store.queries import UnknownSchool

    with _session(settings) as session:
        try:
            issued = issue_classroom_code(session=session, school_id=new.school_id)
        except UnknownSchool as exc:
            raise CommandError(f"school: {exc}", status=EXIT_USAGE) from None
        # The code, then the page that takes it: scripts read the first line.
        print(issued.code)
        print(settings.page_url(f"/classroom?code={issued.code}"))
    print(f"issued classroom code (id {issued.id}) for school {new.school_id}", file=sys.stderr)
    if settings.public_url is None:
        print(
            "the URL is built from READYNET_COLLECTOR_HOST and _PORT: set "
            "READYNET_COLLECTOR_PUBLIC_URL to the address teachers reach the collector at",
            file=sys.stderr,
        )
    return 0


def _classroom_list(args: argparse.Namespace, settings: CollectorSettings) -> int:
    school_id = None
    if args.school is not None:
        school_id = _validated(
            SchoolSelection, {"school_id": _whole(args.school)}, options={"school_id": "school"}
        ).school_id
    from collector.store.classroom import list_classroom_codes

    with _session(settings) as session:
        for c in list_classroom_codes(session=session, school_id=school_id):
            state = (
                "active" if c.revoked_at is None else f"revoked={c.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
            )
            print(
                f"{c.id}\t{c.code}\tschool={c.school_id}"
                f"\tcreated={c.created_at:%Y-%m-%dT%H:%M:%SZ}\t{state}"
            )
    return 0


def _classroom_revoke(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.classroom_codes import ALPHABET, CODE_SYMBOLS, normalise

    code = normalise(args.code)
    if code is None:
        # The typed value is not repeated: it may be a real code mistyped.
        raise CommandError(
            f"code: must be {CODE_SYMBOLS} symbols from {ALPHABET} (e.g. 7KX4-M2QD)",
            status=EXIT_USAGE,
        )
    from collector.store.classroom import UnknownCode, revoke_classroom_code

    with _session(settings) as session:
        try:
            revoked, was_active = revoke_classroom_code(session=session, code=code)
        except UnknownCode as exc:
            raise CommandError(f"code: {exc}", status=EXIT_USAGE) from None
        print(f"revoked classroom code {revoked.code} of school {revoked.school_id}")
        if not was_active:
            print("it had been revoked already", file=sys.stderr)
    return 0


def _whole(text: str) -> int | str:
    """`text` as an int when it is one in plain ASCII digits, else unchanged.

    The strict models then refuse what is left ("must be a whole number"), so "1_000", "4.5",
    "1e3" and non-ASCII digits are refused rather than guessed at.
    """
    if not _WHOLE_NUMBER.fullmatch(text.strip()):
        return text
    try:
        return int(text)
    except ValueError:
        # More digits than int() converts (4300): beyond any bound, and reported as such.
        return -(10**100) if text.strip().startswith("-") else 10**100


def _validated(
    model: type[Model], values: dict[str, Any], *, options: dict[str, str] | None = None
) -> Model:
    names = options or {}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise CommandError(
            *_problems(exc, lambda field: names.get(field, field)), status=EXIT_USAGE
        ) from None


def _problems(exc: ValidationError, option: Callable[[str], str]) -> list[str]:
    """One `option: message` line per bad field; values are never quoted back."""
    return [
        f"{option('.'.join(str(part) for part in err['loc']))}: {_describe(err)}"
        for err in exc.errors(include_url=False, include_input=False)
    ]


def _describe(err: ErrorDetails) -> str:
    ctx = err.get("ctx", {})
    match err["type"]:
        case "less_than_equal":
            return f"must be at most {ctx['le']}"
        case "greater_than_equal":
            return f"must be at least {ctx['ge']}"
        case "string_too_short" if ctx["min_length"] == 1:
            return "must not be empty"
        case "string_too_short":
            return f"must be at least {ctx['min_length']} characters"
        case "string_too_long":
            return f"must be at most {ctx['max_length']} characters"
        case "int_type" | "int_parsing" | "int_from_float":
            return "must be a whole number"
        case "string_unicode":
            return "must be valid Unicode text"
        case "value_error":
            return str(ctx["error"])
        case "extra_forbidden":
            return "is not a known setting"
    return err["msg"]


@contextmanager
def _session(settings: CollectorSettings) -> Iterator[Session]:
    """A session on a database that exists, answers and is migrated, else a CommandError."""
    from sqlalchemy.exc import DBAPIError

    from collector.store.db import make_engine, make_session_factory
    from collector.store.migrate import is_at_head

    shown = _checked_url(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        try:
            migrated = is_at_head(engine, settings.database_url)
        except DBAPIError as exc:
            raise CommandError(
                f"database: cannot use {shown}: {_reason(exc)}", status=EXIT_ENVIRONMENT
            ) from None
        if not migrated:
            raise CommandError(
                "database: the schema is not at the newest migration: "
                "run `readynet-collector migrate` first",
                status=EXIT_ENVIRONMENT,
            )
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _checked_url(database_url: str) -> str:
    """The URL as it may be shown (no password), once it parses and names a usable database."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
        url.get_dialect()  # an unknown dialect (`postgres://`) fails here, not mid-command
    except ArgumentError as exc:
        raise CommandError(
            f"READYNET_COLLECTOR_DATABASE_URL: {exc}", status=EXIT_ENVIRONMENT
        ) from None
    path = url.database
    on_disk = path not in (None, "", ":memory:") and not url.query.get("uri")
    if url.get_backend_name() == "sqlite" and path and on_disk and not Path(path).exists():
        # Refused before connecting, which would create an empty file at a mistyped path.
        raise CommandError(
            f"database: {url.database} does not exist: run `readynet-collector migrate` first",
            status=EXIT_ENVIRONMENT,
        )
    return url.render_as_string(hide_password=True)


def _reason(exc: DBAPIError) -> str:
    # The driver's first line says what failed (refused, no such database, bad password)
    # without the hints and SQL that follow it.
    lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
