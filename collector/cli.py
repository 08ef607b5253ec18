"""`readynet-collector`: serve the API, migrate the database, manage schools and agents."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from collector import __version__
from collector.settings import CollectorSettings
from collector.store.db import make_engine, make_session_factory
from collector.store.migrate import upgrade_to_head
from collector.store.queries import DuplicateName, create_school, enroll_agent, list_schools


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = CollectorSettings()
    try:
        result: int = args.handler(args, settings)
    except (DuplicateName, LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="readynet-collector", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", help="bind address (default: READYNET_COLLECTOR_HOST)")
    serve.add_argument("--port", type=int, help="port (default: READYNET_COLLECTOR_PORT)")
    serve.set_defaults(handler=_serve)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(handler=_migrate)

    school = sub.add_parser("school", help="manage schools").add_subparsers(required=True)
    add = school.add_parser("add", help="add a school")
    add.add_argument("--name", required=True)
    add.add_argument("--students", type=int, required=True)
    add.add_argument("--staff", type=int, required=True)
    add.set_defaults(handler=_school_add)
    school.add_parser("list", help="list schools").set_defaults(handler=_school_list)

    agent = sub.add_parser("agent", help="manage agents").add_subparsers(required=True)
    enroll = agent.add_parser("enroll", help="create an agent for a school and print its token")
    enroll.add_argument("--school", type=int, required=True, help="school id")
    enroll.add_argument("--name", required=True)
    enroll.set_defaults(handler=_agent_enroll)
    return parser


def _serve(args: argparse.Namespace, settings: CollectorSettings) -> int:
    # Imported here: the other commands need neither the app nor uvicorn.
    from collector.app import create_app
    from collector.server import serve

    serve(
        create_app(settings),
        settings,
        host=args.host or settings.host,
        port=settings.port if args.port is None else args.port,
    )
    return 0


def _migrate(args: argparse.Namespace, settings: CollectorSettings) -> int:
    upgrade_to_head(settings.database_url)
    print("database schema is up to date")
    return 0


def _school_add(args: argparse.Namespace, settings: CollectorSettings) -> int:
    with make_session_factory(make_engine(settings.database_url))() as session:
        school = create_school(
            session=session, name=args.name, students=args.students, staff=args.staff
        )
        print(school.id)
    return 0


def _school_list(args: argparse.Namespace, settings: CollectorSettings) -> int:
    with make_session_factory(make_engine(settings.database_url))() as session:
        for s in list_schools(session=session):
            print(f"{s.id}\t{s.name}\tstudents={s.students}\tstaff={s.staff}")
    return 0


def _agent_enroll(args: argparse.Namespace, settings: CollectorSettings) -> int:
    with make_session_factory(make_engine(settings.database_url))() as session:
        agent, token = enroll_agent(session=session, school_id=args.school, name=args.name)
        # The token alone on stdout, so scripts can capture it; it is never shown again.
        print(token)
        print(
            f"enrolled agent {agent.name!r} (id {agent.id}) for school {args.school}",
            file=sys.stderr,
        )
    return 0
