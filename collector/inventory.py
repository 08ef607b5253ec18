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
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

MAX_SCHOOL_NAME_CHARS = 200  # School.name is String(200)
MAX_AGENT_NAME_CHARS = 100  # Agent.name is String(100)
MAX_EXIT_NAME_CHARS = 100  # School.shared_exit is String(100)
# Students or staff of one school: the largest schools have tens of thousands, so a million is
# a typo, and it keeps (students + staff) * bps targets far from any overflow.
MAX_HEADCOUNT = 1_000_000
MAX_SCHOOL_ID = 2**31 - 1  # schools.id is a 32-bit Integer on PostgreSQL
MAX_CIRCUIT_NAME_CHARS = 100  # Circuit.name is String(100)
MAX_PROVIDER_CHARS = 200  # Circuit.provider is String(200)
MAX_ROOM_NAME_CHARS = 64  # AssessmentRoom.name is String(64), like a result's `room`
# A contracted circuit of a school or a hub: 1 Tbit/s is beyond any, so more is a typo.
MAX_CIRCUIT_MBPS = 1_000_000.0
# Students testing at once in one room: a gym or a cafeteria holds a few hundred.
MAX_TEST_TAKERS = 10_000
# NCES grade codes (CCD GSLO/GSHI) in school order; UG (ungraded) and AE (adult education)
# have no place in it, so a span with either end ungraded is not ordered.
GRADES = ("PK", "KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13")
UNORDERED_GRADES = ("UG", "AE")

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
# NCES ids are digit strings with leading zeros (Alabama's LEAIDs start with 01): never numbers.
Leaid = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{7}$"),
    Field(description="NCES district id (LEAID): 7 digits"),
]
Ncessch = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{12}$"),
    Field(description="NCES school id (NCESSCH): 12 digits, the LEAID and 5 more"),
]
StateCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{2}$"),
    Field(description="the state's two-letter postal code (NCES `ST`), e.g. TX"),
]
Grade = Literal[
    "PK", "KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13",
    "UG", "AE",
]  # fmt: skip
CircuitName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CIRCUIT_NAME_CHARS),
    AfterValidator(_no_controls),
    Field(json_schema_extra={"pattern": _NO_CONTROLS}),
]
Provider = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PROVIDER_CHARS),
    AfterValidator(_no_controls),
    Field(json_schema_extra={"pattern": _NO_CONTROLS}),
]
RoomName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ROOM_NAME_CHARS),
    AfterValidator(_no_controls),
    Field(json_schema_extra={"pattern": _NO_CONTROLS}),
]
Mbps = Annotated[float, Field(gt=0, le=MAX_CIRCUIT_MBPS, allow_inf_nan=False)]
TestTakers = Annotated[int, Field(ge=0, le=MAX_TEST_TAKERS), BeforeValidator(_whole_number)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def grade_span_problem(low: str | None, high: str | None) -> str | None:
    """What is wrong with a grade span, if anything: low above high is a swapped column.

    Checked where files are read (CSV import), not in the models: JSON Schema cannot say it,
    and the API's bodies say everything they refuse in their schema.
    """
    if low in GRADES and high in GRADES and GRADES.index(low) > GRADES.index(high):
        return f"grade_low {low} is above grade_high {high}"
    return None


def _update_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    # Published as validated: a required field takes no null, and an empty change is refused.
    required: frozenset[str] = getattr(model, "REQUIRED", frozenset())
    for name, prop in schema.get("properties", {}).items():
        if name in required and "anyOf" in prop:
            (kept,) = [p for p in prop.pop("anyOf") if p.get("type") != "null"]
            prop.update(kept)
            prop.pop("default", None)
    schema["minProperties"] = 1


class _Update(_Strict):
    """A partial change (PATCH): only the fields given change; `null` clears an optional one."""

    model_config = ConfigDict(json_schema_extra=_update_schema)

    # Fields that every row has: null is refused for them (naming the field) rather than stored.
    REQUIRED: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_null_for_required(cls, value: object, info: ValidationInfo) -> object:
        if value is None and info.field_name in cls.REQUIRED:
            raise ValueError("cannot be null (it is required)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields given, with their new values."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class SchoolCreate(_Strict):
    """A new school: its name and the head counts the bandwidth targets are divided by.

    The name is stripped of surrounding whitespace, so " Lincoln " and "Lincoln" are the same
    school and the unique constraint catches the second one. `shared_exit` names the district
    hub the school reaches the internet through, if it shares one with other schools. NCES ids
    and the grade span are optional: not every school is in the Common Core of Data.
    """

    name: SchoolName
    students: Headcount
    staff: Headcount
    district_id: SchoolRef | None = None
    shared_exit: ExitName | None = None
    ncessch: Ncessch | None = None
    guests: Headcount | None = None
    grade_low: Grade | None = None
    grade_high: Grade | None = None


class SchoolUpdate(_Update):
    """A change to a school: any of SchoolCreate's fields."""

    REQUIRED = frozenset({"name", "students", "staff"})

    name: SchoolName | None = None
    students: Headcount | None = None
    staff: Headcount | None = None
    district_id: SchoolRef | None = None
    shared_exit: ExitName | None = None
    ncessch: Ncessch | None = None
    guests: Headcount | None = None
    grade_low: Grade | None = None
    grade_high: Grade | None = None


class DistrictCreate(_Strict):
    """A new district: the unit Prometheus scrapes interface detail by."""

    name: SchoolName
    state: StateCode | None = None
    leaid: Leaid | None = None


class DistrictUpdate(_Update):
    """A change to a district's name, state or LEAID."""

    REQUIRED = frozenset({"name"})

    name: SchoolName | None = None
    state: StateCode | None = None
    leaid: Leaid | None = None


def _one_owner_schema(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [
        {
            "required": [owner],
            "properties": {owner: {"type": "integer"}, other: {"type": "null"}},
        }
        for owner, other in (("school_id", "district_id"), ("district_id", "school_id"))
    ]


class CircuitCreate(_Strict):
    """A contracted circuit of a school, or of a district's hub (exactly one of the two)."""

    model_config = ConfigDict(json_schema_extra=_one_owner_schema)

    school_id: SchoolRef | None = None
    district_id: SchoolRef | None = None
    name: CircuitName
    kind: Literal["internet", "wan"]
    down_mbps: Mbps
    up_mbps: Mbps
    provider: Provider | None = None

    @model_validator(mode="after")
    def _one_owner(self) -> Self:
        if (self.school_id is None) == (self.district_id is None):
            raise ValueError("give exactly one of school_id and district_id")
        return self


class CircuitUpdate(_Update):
    """A change to a circuit; its owner stays (delete it and create it again to move it)."""

    REQUIRED = frozenset({"name", "kind", "down_mbps", "up_mbps"})

    name: CircuitName | None = None
    kind: Literal["internet", "wan"] | None = None
    down_mbps: Mbps | None = None
    up_mbps: Mbps | None = None
    provider: Provider | None = None


class RoomCreate(_Strict):
    """A testing room of a school (its school is in the path): the classroom page's rooms."""

    name: RoomName
    test_takers: TestTakers | None = None


class RoomUpdate(_Update):
    """A change to a testing room."""

    REQUIRED = frozenset({"name"})

    name: RoomName | None = None
    test_takers: TestTakers | None = None


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
