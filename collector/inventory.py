"""The school inventory's input models: what a new school or agent may look like.

These models are the one definition of the bounds. `readynet-collector school add` and
`agent enroll` validate through them before touching the database, `create_school` and
`enroll_agent` validate through them again, and an API route that creates schools or agents
takes them as its request body. Like the wire contract (`agent/wire.py`) they are strict and
forbid unknown fields, so a typo or a `"450"` where a number belongs fails naming the field.

The bounds keep every accepted value storable identically on SQLite and PostgreSQL: names fit
their `String(200)` / `String(100)` columns and carry nothing PostgreSQL refuses (NUL, lone
surrogates), and head counts stay far inside a 32-bit `Integer`.

Example:
    >>> SchoolCreate(name="  Demo Elementary ", students=450, staff=50).name
    'Demo Elementary'
    >>> AgentCreate(school_id=1, name="demo-pi").name
    'demo-pi'
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

MAX_SCHOOL_NAME_CHARS = 200  # School.name is String(200)
MAX_AGENT_NAME_CHARS = 100  # Agent.name is String(100)
MAX_EXIT_NAME_CHARS = 100  # School.shared_exit is String(100)
# Students or staff of one school: the largest schools have tens of thousands, so a million is
# a typo, and it keeps (students + staff) * bps targets far from any overflow.
MAX_HEADCOUNT = 1_000_000
MAX_SCHOOL_ID = 2**31 - 1  # schools.id is a 32-bit Integer on PostgreSQL

# C0 and C1 controls (Unicode category Cc): NUL breaks PostgreSQL, the others break one-line
# output (CLI, logs) and Prometheus labels. Published in the schema so clients know.
_NO_CONTROLS = r"^[^\u0000-\u001f\u007f-\u009f]*$"
# Agent names end up in logs, file names and shell scripts: a conservative ASCII set.
_AGENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]*$"
_AGENT_NAME_RE = re.compile(_AGENT_NAME)


def _no_controls(value: str) -> str:
    # Lone surrogates (undecodable command-line bytes under surrogateescape) need no check
    # here: pydantic refuses them as `string_unicode` before this runs.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters (NUL, tab, newline, ...)")
    return value


def _agent_charset(value: str) -> str:
    if not _AGENT_NAME_RE.fullmatch(value):
        raise ValueError(
            "must start with a letter or digit and contain only letters, digits, "
            "'.', '-', '_' and spaces"
        )
    return value


def _whole_number(value: object) -> object:
    # JSON Schema counts 450.0 as an integer, as the wire contract does; 450.5, "450" and true
    # stay refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


SchoolName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SCHOOL_NAME_CHARS),
    AfterValidator(_no_controls),
    Field(json_schema_extra={"pattern": _NO_CONTROLS}),
]
AgentName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_AGENT_NAME_CHARS),
    AfterValidator(_agent_charset),
    Field(json_schema_extra={"pattern": _AGENT_NAME}),
]
# The name of a shared internet exit (a district hub): schools that give the same name take
# turns for throughput tests. Same rules as a school name; schools.shared_exit is String(100).
ExitName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_EXIT_NAME_CHARS),
    AfterValidator(_no_controls),
    Field(json_schema_extra={"pattern": _NO_CONTROLS}),
]
Headcount = Annotated[int, Field(ge=0, le=MAX_HEADCOUNT), BeforeValidator(_whole_number)]
SchoolRef = Annotated[int, Field(ge=1, le=MAX_SCHOOL_ID), BeforeValidator(_whole_number)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SchoolCreate(_Strict):
    """A new school: its name and the head counts the bandwidth targets are divided by.

    The name is stripped of surrounding whitespace, so " Lincoln " and "Lincoln" are the same
    school and the unique constraint catches the second one. `shared_exit` names the district
    hub the school reaches the internet through, if it shares one with other schools.
    """

    name: SchoolName
    students: Headcount
    staff: Headcount
    district_id: SchoolRef | None = None
    shared_exit: ExitName | None = None


class DistrictCreate(_Strict):
    """A new district: the unit Prometheus scrapes interface detail by."""

    name: SchoolName


class AgentCreate(_Strict):
    """A new agent for an existing school; its token is minted by `enroll_agent`, not given."""

    school_id: SchoolRef
    name: AgentName


class ClassroomCodeCreate(_Strict):
    """A new classroom code for an existing school; the code itself is drawn, never given."""

    school_id: SchoolRef


class SchoolSelection(_Strict):
    """One school to narrow a listing to."""

    school_id: SchoolRef
