"""`readynet-collector school|agent` as a real process on SQLite and PostgreSQL.

Bad input ends with exit 2 and one `error: <option>: ...` line, a database that is away or not
migrated with exit 1 and one `error: database: ...` line; never a traceback, never a write.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from collector.inventory import MAX_HEADCOUNT, AgentCreate, SchoolCreate
from collector.store.db import make_engine, make_session_factory
from collector.store.queries import create_school, enroll_agent
from tests.fixtures.collector import throwaway_postgres

SCHOOL = "Lincoln Elementary"
AGENT = "pi-lincoln"
LONGEST_SCHOOL = "S" * 200
LONGEST_AGENT = "p" * 100
Arg = str | bytes


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(database_url: str, *args: Arg, env: dict[str, str] | None = None) -> Result:
    """Run `python -m collector ARGS` (the `readynet-collector` entry point) to completion."""
    proc = subprocess.run(
        [sys.executable, "-m", "collector", *args],
        env={
            "PATH": "/usr/bin:/bin",
            "READYNET_COLLECTOR_DATABASE_URL": database_url,
            **(env or {}),
        },
        capture_output=True,
        timeout=60,
    )
    # backslashreplace: stderr must be readable whatever the command wrote.
    out, err = (b.decode("utf-8", "backslashreplace") for b in (proc.stdout, proc.stderr))
    return Result(proc.returncode, out, err)


def ok(database_url: str, *args: Arg) -> Result:
    result = cli(database_url, *args)
    assert result.returncode == 0, result
    return result


def snapshot(database_url: str) -> list[tuple[object, ...]]:
    """Every school and agent row, to show that a refused command wrote nothing."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            schools = connection.execute(text("SELECT * FROM schools ORDER BY id")).all()
            agents = connection.execute(text("SELECT * FROM agents ORDER BY id")).all()
    finally:
        engine.dispose()
    return [tuple(row) for row in [*schools, *agents]]


def assert_one_error(result: Result, status: int, expected: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == status, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {expected}"), lines


def school_add(name: Arg = "Adams Middle", students: str = "800", staff: str = "70") -> list[Arg]:
    return ["school", "add", "--name", name, "--students", students, "--staff", staff]


def enroll(school: str = "1", name: Arg = "pi-adams") -> list[Arg]:
    return ["agent", "add", "--school", school, "--name", name]


@dataclass(frozen=True)
class Seeded:
    url: str
    added: list[Result]
    enrolled: list[Result]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    """One database per backend, set up through the CLI: the happy path, bounds included.

    Module-scoped, unlike `database_url`, so the table below does not migrate once per case;
    the cases write nothing, which each of them checks.
    """
    if request.param == "sqlite":
        yield _seed(f"sqlite:///{tmp_path_factory.mktemp('cli') / 'collector.db'}")
        return
    with throwaway_postgres() as url:
        yield _seed(url)


def _seed(url: str) -> Seeded:
    ok(url, "migrate")
    added = [
        ok(url, *school_add(name=f"  {SCHOOL}\t", students="450", staff="50")),
        ok(url, *school_add(name="École Saint-Jean", students="0", staff="0")),
        ok(url, *school_add(name=LONGEST_SCHOOL, students=str(MAX_HEADCOUNT), staff="1")),
    ]
    enrolled = [
        ok(url, *enroll(school=" 1 ", name=f" {AGENT} ")),
        ok(url, *enroll(school="3", name=LONGEST_AGENT)),
    ]
    return Seeded(url, added, enrolled)


def test_add_list_and_enroll(seeded: Seeded) -> None:
    assert [r.stdout for r in seeded.added] == ["1\n", "2\n", "3\n"]
    assert ok(seeded.url, "school", "list").stdout.splitlines() == [
        f"1\t{SCHOOL}\tstudents=450\tstaff=50",
        "2\tÉcole Saint-Jean\tstudents=0\tstaff=0",
        f"3\t{LONGEST_SCHOOL}\tstudents=1000000\tstaff=1",
    ]
    first, second = seeded.enrolled
    # The token alone on stdout (scripts capture it), what was done on stderr.
    assert len(first.stdout.strip()) >= 40 and first.stdout.count("\n") == 1
    assert first.stderr == f"enrolled agent '{AGENT}' (id 1) for school 1\n"
    assert second.stderr == f"enrolled agent '{LONGEST_AGENT}' (id 2) for school 3\n"


REFUSED: list[tuple[str, Sequence[Arg], str]] = [
    # (case, arguments, start of the one stderr line)
    ("students 2^63", school_add(students=str(2**63)), "students: must be at most 1000000"),
    ("students 2^31", school_add(students=str(2**31)), "students: must be at most 1000000"),
    ("staff 2^31", school_add(staff=str(2**31)), "staff: must be at most 1000000"),
    ("students 5000 digits", school_add(students="9" * 5000), "students: must be at most"),
    ("students -1", school_add(students="-1"), "students: must be at least 0"),
    ("students not a number", school_add(students="many"), "students: must be a whole number"),
    ("staff decimal", school_add(staff="4.5"), "staff: must be a whole number"),
    ("name 201 chars", school_add(name="x" * 201), "name: must be at most 200 characters"),
    ("name empty", school_add(name=""), "name: must not be empty"),
    ("name whitespace", school_add(name=" \t "), "name: must not be empty"),
    ("name newline", school_add(name="Adams\nMiddle"), "name: must not contain control"),
    ("name not UTF-8", school_add(name=b"Adams \xff"), "name: must be valid Unicode text"),
    ("name duplicate", school_add(name=SCHOOL), f"name: a school named '{SCHOOL}' exists"),
    ("name duplicate once stripped", school_add(name=f" {SCHOOL} "), "name: a school named"),
    ("staff missing", ["school", "add", "--name", "x", "--students", "1"], "the following"),
    ("agent name 101 chars", enroll(name="a" * 101), "name: must be at most 100 characters"),
    ("agent name empty", enroll(name="  "), "name: must not be empty"),
    ("agent name slash", enroll(name="pi/adams"), "name: must start with a letter or digit"),
    ("agent name non-ASCII", enroll(name="pi-école"), "name: must start with a letter or"),
    ("agent name dash first", [*enroll()[:4], "--name=-pi"], "name: must start with a letter"),
    ("agent name duplicate", enroll(name=AGENT), f"name: an agent named '{AGENT}' exists"),
    ("school unknown", enroll(school="999"), "school: no school with id 999"),
    ("school 0", enroll(school="0"), "school: must be at least 1"),
    ("school 2^31", enroll(school=str(2**31)), "school: must be at most 2147483647"),
    ("school not a number", enroll(school="lincoln"), "school: must be a whole number"),
]


@pytest.mark.parametrize(
    ("args", "expected"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_bad_input_is_one_error_line_exit_2_and_no_write(
    seeded: Seeded, args: Sequence[Arg], expected: str
) -> None:
    before = snapshot(seeded.url)
    assert_one_error(cli(seeded.url, *args), 2, expected)
    assert snapshot(seeded.url) == before


def test_every_bad_field_gets_its_own_line(seeded: Seeded) -> None:
    result = cli(seeded.url, *school_add(name="", students="-1", staff="lots"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: name: must not be empty",
        "error: students: must be at least 0",
        "error: staff: must be a whole number",
    ]


def test_nul_never_reaches_the_database(seeded: Seeded) -> None:
    # argv cannot carry NUL (execve takes C strings), so this goes through the store functions,
    # which validate with the same models as the CLI.
    before = snapshot(seeded.url)
    sessions = make_session_factory(engine := make_engine(seeded.url))
    try:
        with sessions() as session:
            with pytest.raises(ValidationError, match="control characters"):
                create_school(session=session, name="Adams\x00Middle", students=1, staff=1)
            with pytest.raises(ValidationError, match="less than or equal to 1000000"):
                create_school(session=session, name="Adams", students=2**31, staff=1)
            with pytest.raises(ValidationError, match="start with a letter or digit"):
                enroll_agent(session=session, school_id=1, name="pi\x00")
    finally:
        engine.dispose()
    assert snapshot(seeded.url) == before


def test_an_unmigrated_database_is_refused(database_url: str) -> None:
    for args in (school_add(), enroll()):
        result = cli(database_url, *args)
        assert_one_error(result, 1, "database: ")
        assert "run `readynet-collector migrate` first" in result.stderr


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "collector.db"
    result = cli(f"sqlite:///{path}", "school", "list")
    assert_one_error(result, 1, f"database: {path} does not exist: run `readynet-collector")
    assert not path.parent.exists()


def test_an_empty_sqlite_file_is_not_migrated(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    result = cli(f"sqlite:///{tmp_path / 'empty.db'}", "school", "list")
    assert_one_error(result, 1, "database: the schema is not at the newest migration")


@pytest.mark.parametrize("command", ["school list", "migrate"])
def test_an_unreachable_database_is_one_line_exit_1(command: str) -> None:
    # Port 1 on loopback: nothing listens, so the connection is refused at once.
    url = "postgresql+psycopg://readynet:s3cret-pw@127.0.0.1:1/readynet"
    result = cli(url, *command.split())
    assert_one_error(result, 1, "database: ")
    assert "Connection refused" in result.stderr
    assert "s3cret-pw" not in result.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"READYNET_COLLECTOR_PORT": "eighty"}, "READYNET_COLLECTOR_PORT: must be a whole number"),
        ({"READYNET_COLLECTOR_DATABASE_URL": "postgres://x"}, "READYNET_COLLECTOR_DATABASE_URL:"),
        ({"READYNET_COLLECTOR_DATABASE_URL": "not a url"}, "READYNET_COLLECTOR_DATABASE_URL:"),
    ],
)
def test_bad_settings_are_one_line_exit_1(env: dict[str, str], expected: str) -> None:
    assert_one_error(cli("sqlite://", "school", "list", env=env), 1, expected)


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (SchoolCreate, {"name": "Adams", "students": "450", "staff": 50}, "students"),
        (SchoolCreate, {"name": "Adams", "students": True, "staff": 50}, "students"),
        (SchoolCreate, {"name": "Adams", "students": 450.5, "staff": 50}, "students"),
        (SchoolCreate, {"name": b"Adams", "students": 450, "staff": 50}, "name"),
        (SchoolCreate, {"name": "Adams\x1b[2J", "students": 450, "staff": 50}, "name"),
        (SchoolCreate, {"name": "Adams\x85Middle", "students": 450, "staff": 50}, "name"),
        (SchoolCreate, {"name": "Adams", "students": 4, "staff": 5, "district": 1}, "district"),
        (SchoolCreate, {"students": 450, "staff": 50}, "name"),
        (AgentCreate, {"school_id": 1, "name": ".pi"}, "name"),
        (AgentCreate, {"school_id": 1, "name": "pi;reboot"}, "name"),
        (AgentCreate, {"school_id": 1, "name": "pi\tadams"}, "name"),
        (AgentCreate, {"school_id": "1", "name": "pi"}, "school_id"),
        (AgentCreate, {"school_id": 1, "name": "pi", "token": "x"}, "token"),
    ],
)
def test_models_are_strict_request_bodies(
    model: type[SchoolCreate | AgentCreate], body: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    assert [err["loc"] for err in caught.value.errors()] == [(field,)]


def test_models_publish_their_bounds() -> None:
    # JSON Schema counts 450.0 as an integer, and a FastAPI body must agree with its schema.
    body = '{"name": " A ", "students": 450.0, "staff": 0}'
    assert SchoolCreate.model_validate_json(body) == SchoolCreate(name="A", students=450, staff=0)
    school = SchoolCreate.model_json_schema()
    assert school["additionalProperties"] is False
    assert school["properties"]["name"]["maxLength"] == 200
    assert school["properties"]["students"]["maximum"] == MAX_HEADCOUNT
    agent = AgentCreate.model_json_schema()["properties"]
    assert agent["name"]["maxLength"] == 100
    assert (agent["school_id"]["minimum"], agent["school_id"]["maximum"]) == (1, 2**31 - 1)


def test_districts_group_schools(database_url: str) -> None:
    ok(database_url, "migrate")
    assert ok(database_url, "district", "add", "--name", " Springfield USD ").stdout == "1\n"
    assert ok(database_url, "district", "list").stdout == "1\tSpringfield USD\n"
    ok(database_url, *school_add(), "--district", "1")
    ok(database_url, *school_add(name="No District High"))
    assert ok(database_url, "school", "list").stdout.splitlines() == [
        "1\tAdams Middle\tstudents=800\tstaff=70\tdistrict=1",
        "2\tNo District High\tstudents=800\tstaff=70",
    ]
    before = snapshot(database_url)
    unknown = cli(database_url, *school_add(name="Lost"), "--district", "7")
    assert_one_error(unknown, 2, "district: no district with id 7")
    twice = cli(database_url, "district", "add", "--name", "Springfield USD")
    assert_one_error(twice, 2, "name: a district named 'Springfield USD' exists already")
    assert snapshot(database_url) == before
