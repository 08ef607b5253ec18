"""`readynet-collector` commands for people: `user add|list|revoke`, `token create|revoke`.

Passwords are read from stdin only (`--password-stdin`), never from the command line, where
`ps` and shell history would show them. A token is printed alone on stdout, once. Every change
is recorded in the audit log (`collector.store.audit`) in the same transaction.
"""

# A command prints, like collector/cli.py (which pyproject.toml exempts by name).
# ruff: noqa: T201

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from collector.settings import CollectorSettings
    from collector.store.people import Scope

ROLES = ("admin", "viewer")
SCOPE_HELP = "all, state:XX (two letters), district:ID or school:ID (default: all)"
_SCOPE = re.compile(r"all|state:[A-Za-z]{2}|(district|school):[0-9]{1,10}")
# Long enough that a guess is hopeless online; the sign-in is rate-limited as well.
MIN_PASSWORD_CHARS = 12


class UserCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "viewer"]
    scope: str

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str) -> str:
        if name != name.strip() or not name.isprintable():
            raise ValueError("must be printable, without leading or trailing spaces")
        return name

    @field_validator("scope")
    @classmethod
    def _scope(cls, scope: str) -> str:
        if not _SCOPE.fullmatch(scope):
            raise ValueError(f"must be {SCOPE_HELP}")
        return scope


class TokenCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    user: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=100)
    expires_days: int | None = Field(default=None, ge=1, le=3650)


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register this module's commands on the collector's command parser."""
    user = sub.add_parser("user", help="manage people (admin and viewer users)").add_subparsers(
        required=True
    )
    add = user.add_parser("add", help="add a user with a role and a scope")
    add.add_argument("--name", required=True, help="the sign-in name (an e-mail address)")
    add.add_argument("--role", required=True, help="admin (reads and changes) or viewer (reads)")
    add.add_argument("--scope", default="all", help=SCOPE_HELP)
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read a password for the web sign-in from stdin (without it: API tokens only)",
    )
    add.set_defaults(handler=_user_add)
    listing = user.add_parser("list", help="list users, active and revoked")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.set_defaults(handler=_user_list)
    revoke = user.add_parser(
        "revoke", help="revoke a user: no sign-in, no token, sessions ended (the row stays)"
    )
    revoke.add_argument("name")
    revoke.set_defaults(handler=_user_revoke)

    token = sub.add_parser("token", help="manage users' API tokens").add_subparsers(required=True)
    create = token.add_parser("create", help="a new API token for a user; printed this once")
    create.add_argument("--user", required=True, help="the user's name")
    create.add_argument("--name", required=True, help="a label for the token, e.g. prometheus")
    create.add_argument("--expires-days", help="valid for this many days (default: no expiry)")
    create.set_defaults(handler=_token_create)
    token_revoke = token.add_parser("revoke", help="revoke a user's tokens with this label")
    token_revoke.add_argument("--user", required=True)
    token_revoke.add_argument("--name", required=True)
    token_revoke.set_defaults(handler=_token_revoke)


def _scope(text: str) -> Scope:
    from collector.store.people import Scope

    kind, _, value = text.partition(":")
    if kind == "state":
        return Scope.of_state(value)
    if kind == "district":
        return Scope.district(int(value))
    if kind == "school":
        return Scope.school(int(value))
    return Scope.everything()


def _password() -> str:
    from collector.cli import EXIT_USAGE, CommandError

    if sys.stdin.isatty():
        print("password: ", end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    password = line[:-1] if line.endswith("\n") else line
    if len(password) < MIN_PASSWORD_CHARS:
        raise CommandError(
            f"password-stdin: must be at least {MIN_PASSWORD_CHARS} characters", status=EXIT_USAGE
        )
    return password


def _user_add(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.cli import EXIT_USAGE, CommandError, _session, _validated

    new = _validated(UserCreate, {"name": args.name, "role": args.role, "scope": args.scope})
    password = _password() if args.password_stdin else None
    from collector.store.audit import cli_actor, record
    from collector.store.people import create_user
    from collector.store.queries import DuplicateName

    scope = _scope(new.scope)
    with _session(settings) as session:
        # Added first: create_user commits it with the user, or it is dropped with the session.
        record(
            session,
            actor=cli_actor(),
            action="create",
            object_type="user",
            object_id=new.name,
            details={"role": new.role, "scope": scope.describe(), "password": bool(password)},
        )
        try:
            user = create_user(
                session=session, name=new.name, role=new.role, scope=scope, password=password
            )
        except DuplicateName as exc:
            raise CommandError(f"name: {exc}", status=EXIT_USAGE) from None
        except LookupError as exc:
            raise CommandError(f"scope: {exc}", status=EXIT_USAGE) from None
        print(f"added {user.role} {user.name!r} (id {user.id}), scope {scope.describe()}")
    if password is None:
        print(
            f"no password: API tokens only (readynet-collector token create --user {new.name} "
            "--name LABEL)",
            file=sys.stderr,
        )
    return 0


def _user_list(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.cli import _session
    from collector.store.people import list_users, principal_of

    with _session(settings) as session:
        rows = [
            {
                "name": u.name,
                "role": u.role,
                "scope": principal_of(u, via="cli").scope.describe(),
                "password": u.password_hash is not None,
                "created_at": u.created_at.isoformat(),
                "revoked_at": None if u.revoked_at is None else u.revoked_at.isoformat(),
            }
            for u in list_users(session=session)
        ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print("NAME\tROLE\tSCOPE\tPASSWORD\tSTATE")
    for r in rows:
        state = "active" if r["revoked_at"] is None else f"revoked {r['revoked_at']}"
        password = "yes" if r["password"] else "no"
        print(f"{r['name']}\t{r['role']}\t{r['scope']}\t{password}\t{state}")
    return 0


def _user_revoke(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.cli import EXIT_USAGE, CommandError, _session
    from collector.store.audit import cli_actor, record
    from collector.store.people import UnknownUser, revoke_user

    with _session(settings) as session:
        record(session, actor=cli_actor(), action="revoke", object_type="user", object_id=args.name)
        try:
            user = revoke_user(session=session, name=args.name)
        except UnknownUser as exc:
            raise CommandError(f"name: {exc}", status=EXIT_USAGE) from None
        print(f"revoked user {user.name!r}: no sign-in, no token, web sessions ended")
    return 0


def _token_create(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.cli import EXIT_USAGE, CommandError, _session, _validated, _whole

    values: dict[str, Any] = {"user": args.user, "name": args.name}
    if args.expires_days is not None:
        values["expires_days"] = _whole(args.expires_days)
    new = _validated(TokenCreate, values, options={"expires_days": "expires-days"})
    from collector.store.audit import cli_actor, record
    from collector.store.people import UnknownUser, create_api_token, user_by_name

    expires_at = (
        None if new.expires_days is None else datetime.now(UTC) + timedelta(days=new.expires_days)
    )
    with _session(settings) as session:
        try:
            if user_by_name(session=session, name=new.user).revoked_at is not None:
                raise CommandError(f"user: {new.user!r} is revoked", status=EXIT_USAGE)
            record(
                session,
                actor=cli_actor(),
                action="create",
                object_type="api_token",
                object_id=new.name,
                details={"user": new.user, "expires_at": expires_at},
            )
            token = create_api_token(
                session=session, user_name=new.user, name=new.name, expires_at=expires_at
            )
        except UnknownUser as exc:
            raise CommandError(f"user: {exc}", status=EXIT_USAGE) from None
    # The token alone on stdout, so scripts can capture it; only its digest is kept.
    print(token)
    until = "no expiry" if expires_at is None else f"until {expires_at:%Y-%m-%d %H:%M} UTC"
    print(
        f"API token {new.name!r} for user {new.user!r} ({until}); send it as "
        "`Authorization: Bearer <token>`",
        file=sys.stderr,
    )
    return 0


def _token_revoke(args: argparse.Namespace, settings: CollectorSettings) -> int:
    from collector.cli import EXIT_USAGE, CommandError, _session
    from collector.store.audit import cli_actor, record
    from collector.store.people import UnknownToken, UnknownUser, revoke_api_token

    with _session(settings) as session:
        record(
            session,
            actor=cli_actor(),
            action="revoke",
            object_type="api_token",
            object_id=args.name,
            details={"user": args.user},
        )
        try:
            count = revoke_api_token(session=session, user_name=args.user, name=args.name)
        except UnknownUser as exc:
            raise CommandError(f"user: {exc}", status=EXIT_USAGE) from None
        except UnknownToken as exc:
            raise CommandError(f"name: {exc}", status=EXIT_USAGE) from None
    print(f"revoked {count} token(s) {args.name!r} of user {args.user!r}")
    if count == 0:
        print("they had been revoked already", file=sys.stderr)
    return 0
