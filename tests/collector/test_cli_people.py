"""`readynet-collector user|token` on SQLite and PostgreSQL: users, tokens, passwords from stdin
only, one-line errors (exit 2), and every change in the audit log, the agent commands' too.

The commands run in this process through the entry point's `main()` (a process each costs a
second of imports: 20 commands twice would be most of a minute); one runs as a real process,
to see the token alone on its stdout.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout

import pytest
from sqlalchemy import select

from collector.cli import main
from collector.cli_people import SCOPE_HELP
from collector.store.db import make_engine, make_session_factory
from collector.store.migrate import upgrade_to_head
from collector.store.models import AuditEntry
from collector.store.people import principal_for_token, user_by_name, verify_password
from collector.store.queries import create_school
from tests.collector.test_cli import Result

ADMIN = "it@district.example"
VIEWER = "noc@district.example"
PASSWORD = "correct horse battery staple"
URL_VARIABLE = "READYNET_COLLECTOR_DATABASE_URL"


def cli(database_url: str, *args: str, stdin: str = "") -> Result:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, os.environ.get(URL_VARIABLE)
    sys.stdin, os.environ[URL_VARIABLE] = io.StringIO(stdin), database_url
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                status = main(list(args))
            except SystemExit as exc:  # argparse's own errors
                status = int(exc.code or 0)
    finally:
        sys.stdin = saved[0]
        if saved[1] is None:
            del os.environ[URL_VARIABLE]
        else:
            os.environ[URL_VARIABLE] = saved[1]
    return Result(status, out.getvalue(), err.getvalue())


def process(database_url: str, *args: str) -> str:
    """`python -m collector ARGS` as a real process; its stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "collector", *args],
        env={"PATH": "/usr/bin:/bin", URL_VARIABLE: database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def ok(database_url: str, *args: str, stdin: str = "") -> Result:
    result = cli(database_url, *args, stdin=stdin)
    assert result.returncode == 0, result
    return result


def refused(database_url: str, expected: str, *args: str, stdin: str = "") -> None:
    result = cli(database_url, *args, stdin=stdin)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: {expected}\n")


@pytest.fixture
def migrated(database_url: str) -> Iterator[str]:
    upgrade_to_head(database_url)
    yield database_url


def test_users_and_tokens_from_the_command_line(migrated: str) -> None:
    url = migrated
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        school = create_school(session=session, name="Lincoln", students=400, staff=40).id

    assert ok(url, "user", "add", "--name", ADMIN, "--role", "admin").stdout.startswith(
        f"added admin '{ADMIN}'"
    )
    added = ok(
        url, "user", "add", "--name", VIEWER, "--role", "viewer", "--scope", f"school:{school}",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert f"scope school {school}" in added.stdout and PASSWORD not in added.stdout + added.stderr
    refused(url, f"name: a user named '{ADMIN}' exists already", "user", "add", "--name", ADMIN,
            "--role", "viewer")  # fmt: skip
    refused(url, "role: Input should be 'admin' or 'viewer'", "user", "add", "--name", "x",
            "--role", "root")  # fmt: skip
    refused(url, f"scope: must be {SCOPE_HELP}", "user", "add", "--name", "x", "--role", "viewer",
            "--scope", "TX")  # fmt: skip
    refused(url, "scope: no district with id 999", "user", "add", "--name", "x", "--role",
            "viewer", "--scope", "district:999")  # fmt: skip
    refused(url, "password-stdin: must be at least 12 characters", "user", "add", "--name", "x",
            "--role", "viewer", "--password-stdin", stdin="short\n")  # fmt: skip

    token = process(url, "token", "create", "--user", ADMIN, "--name", "prometheus",
                    "--expires-days", "30")  # fmt: skip
    assert token.startswith("rnu_") and token.count("\n") == 1
    refused(url, "user: no user named 'nobody'", "token", "create", "--user", "nobody",
            "--name", "x")  # fmt: skip
    refused(url, "expires-days: must be at least 1", "token", "create", "--user", ADMIN,
            "--name", "x", "--expires-days", "0")  # fmt: skip
    with sessions() as session:
        principal = principal_for_token(session=session, token=token.strip())
        assert principal is not None and principal.name == ADMIN and principal.is_admin

    listed = json.loads(ok(url, "user", "list", "--format", "json").stdout)
    assert [(u["name"], u["role"], u["scope"], u["password"]) for u in listed] == [
        (ADMIN, "admin", "all", False),
        (VIEWER, "viewer", f"school {school}", True),
    ]

    assert ok(url, "token", "revoke", "--user", ADMIN, "--name", "prometheus").stdout == (
        f"revoked 1 token(s) 'prometheus' of user '{ADMIN}'\n"
    )
    refused(url, f"name: user '{ADMIN}' has no token named 'x'", "token", "revoke", "--user",
            ADMIN, "--name", "x")  # fmt: skip
    ok(url, "user", "revoke", VIEWER)
    refused(url, "name: no user named 'nobody'", "user", "revoke", "nobody")
    refused(url, f"user: '{VIEWER}' is revoked", "token", "create", "--user", VIEWER,
            "--name", "x")  # fmt: skip

    # The agent commands are audited too.
    code = ok(url, "agent", "enroll", "--school", str(school), "--name", "pi-1").stdout
    assert code.strip()
    ok(url, "agent", "config", "set", "pi-1", "--file", "-", stdin="snmp_interval_s: 600\n")
    ok(url, "agent", "config", "clear", "pi-1")
    ok(url, "agent", "revoke", "pi-1")

    with sessions() as session:
        principal = principal_for_token(session=session, token=token.strip())
        assert principal is None
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        viewer = session.scalar(select(AuditEntry.details).where(AuditEntry.object_id == VIEWER))
        stored = user_by_name(session=session, name=VIEWER).password_hash
    engine.dispose()
    assert [
        (e.actor.startswith("cli:"), e.action, e.object_type, e.object_id) for e in entries
    ] == [
        (True, "create", "user", ADMIN),
        (True, "create", "user", VIEWER),
        (True, "create", "api_token", "prometheus"),
        (True, "revoke", "api_token", "prometheus"),
        (True, "revoke", "user", VIEWER),
        (True, "enroll", "agent", "pi-1"),
        (True, "config_set", "agent", "pi-1"),
        (True, "config_clear", "agent", "pi-1"),
        (True, "revoke", "agent", "pi-1"),
    ]
    # What was said about the password: that there is one, never what it is.
    assert viewer is not None and json.loads(viewer)["password"] is True
    assert all(PASSWORD not in e.details and "rnu_" not in e.details for e in entries)
    assert verify_password(PASSWORD, stored)
