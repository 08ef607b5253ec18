"""Schools as CSV: the columns, reading a file (NCES Common Core of Data names as they are) and
writing one.

A file is read whole and checked before anything is stored: every bad cell becomes a `Problem`
naming its line and column (`line 14, column TOTAL: must be a whole number from 0 to 1000000`),
up to `MAX_PROBLEMS`. `collector.store.inventory_csv` then matches and stores the rows in one
transaction. Columns are matched case-insensitively; columns this module does not know are
ignored, since CCD files have dozens. A column absent from the file leaves that field of an
existing school as it is; an empty cell clears an optional field.

Students come from TOTAL, or from MEMBER where TOTAL is absent or empty (older CCD files call
the membership count MEMBER; when both are filled, TOTAL wins). Staff comes from STAFF (our own
header: CCD's membership and directory files have no staff count), or from TEACHERS where STAFF
is absent or empty (CCD's school staff file: full-time-equivalent teachers, a decimal, rounded
up: a lower bound on the people with devices). CCD's codes for a value it does not have
(-1 missing, -2 not applicable, -3 suppressed, -9 below NCES's data quality standards, M, N)
are refused with what they mean, never stored as numbers.

Example:
    >>> parsed = read_schools(Path("ccd_sch_029.csv").read_bytes())
    >>> parsed.encoding, len(parsed.rows), [str(p) for p in parsed.problems]
    ('utf-8', 312, [])
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from collector.inventory import (
    MAX_HEADCOUNT,
    ExitName,
    Grade,
    Leaid,
    Ncessch,
    SchoolName,
    StateCode,
)

MAX_PROBLEMS = 100  # past this many, the rest are counted, not listed
# Whatever a spreadsheet adds, a CSV of a whole state's schools stays well under this.
MAX_CSV_BYTES = 32 * 1024 * 1024

# The columns `write_schools` writes, in order: CCD's names where CCD has the field.
EXPORT_COLUMNS = (
    "NCESSCH",
    "SCH_NAME",
    "LEAID",
    "LEA_NAME",
    "ST",
    "TOTAL",
    "STAFF",
    "GUESTS",
    "GSLO",
    "GSHI",
    "SHARED_EXIT",
)
# Each field and the columns it is read from, first filled one wins.
SOURCES: dict[str, tuple[str, ...]] = {
    "ncessch": ("NCESSCH",),
    "name": ("SCH_NAME",),
    "leaid": ("LEAID",),
    "lea_name": ("LEA_NAME",),
    "state": ("ST",),
    "students": ("TOTAL", "MEMBER"),
    "staff": ("STAFF", "TEACHERS"),
    "guests": ("GUESTS",),
    "grade_low": ("GSLO",),
    "grade_high": ("GSHI",),
    "shared_exit": ("SHARED_EXIT",),
}
# CCD's reserved values, and what to tell whoever sees one.
CCD_CODES = {
    "-1": "CCD's 'missing'",
    "-2": "CCD's 'not applicable'",
    "-3": "CCD's 'suppressed'",
    "-9": "CCD's 'does not meet NCES data quality standards'",
    "M": "CCD's 'missing'",
    "N": "CCD's 'not applicable'",
}
_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True)
class Problem:
    """One bad cell (or header, line 1), or a file that cannot be read at all (line 0)."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = ", ".join(
            ([f"line {self.line}"] if self.line else [])
            + ([f"column {self.column}"] if self.column else [])
        )
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True)
class SchoolRow:
    """One school as the file gives it: only the fields whose column is in the file.

    `values` holds the school's fields (None for an empty cell); `district` the LEAID, LEA_NAME
    and ST cells (absent when the file has none of those columns); `columns` which column each
    value came from, for problems found later.
    """

    line: int
    values: dict[str, Any]
    district: dict[str, str | None] | None
    columns: dict[str, str]


@dataclass
class ParsedCsv:
    encoding: str
    rows: list[SchoolRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Problems past MAX_PROBLEMS, counted only.
    more_problems: int = 0

    def in_order(self) -> list[Problem]:
        # Cells are checked before rows are matched: shown in the file's order.
        return sorted(self.problems, key=lambda p: p.line)

    def problem(self, line: int, column: str | None, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(line, column, message))
        else:
            self.more_problems += 1

    def summary(self) -> list[str]:
        lines = [str(p) for p in self.in_order()]
        if self.more_problems:
            lines.append(f"... and {self.more_problems} more problems")
        return lines


def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding it was in: UTF-8 (with or without BOM), else Windows-1252."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    # NCES files are often Windows-1252; its five undefined bytes still fail here.
    return data.decode("cp1252"), "cp1252"


def _text_check(adapter: TypeAdapter[Any], message: str) -> Callable[[str], Any]:
    def check(cell: str) -> Any:
        try:
            return adapter.validate_python(cell)
        except ValidationError:
            raise ValueError(message) from None

    return check


def _nces_id(adapter: TypeAdapter[Any], digits: int, what: str) -> Callable[[str], Any]:
    check = _text_check(adapter, f"must be {digits} digits ({what})")

    def nces(cell: str) -> Any:
        # A spreadsheet drops the leading zero of the states numbered 01-09 (Alabama's
        # 0100005): one digit short is padded back; anything else is refused.
        if cell.isdigit() and len(cell) == digits - 1:
            cell = "0" + cell
        return check(cell)

    return nces


def _headcount(cell: str) -> int:
    if not _WHOLE.fullmatch(cell) or int(cell) > MAX_HEADCOUNT:
        raise ValueError(f"must be a whole number from 0 to {MAX_HEADCOUNT}")
    return int(cell)


def _teachers(cell: str) -> int:
    if not _DECIMAL.fullmatch(cell) or float(cell) > MAX_HEADCOUNT:
        raise ValueError(f"must be a number from 0 to {MAX_HEADCOUNT} (full-time equivalents)")
    return math.ceil(float(cell))


_NAME = "must be 1 to {} characters, without control characters"
# How each column's cells are read: a cell that fails raises ValueError with the reason.
READERS: dict[str, Callable[[str], Any]] = {
    "NCESSCH": _nces_id(TypeAdapter(Ncessch), 12, "the NCES school id"),
    "SCH_NAME": _text_check(TypeAdapter(SchoolName), _NAME.format(200)),
    "LEAID": _nces_id(TypeAdapter(Leaid), 7, "the NCES district id"),
    "LEA_NAME": _text_check(TypeAdapter(SchoolName), _NAME.format(200)),
    "ST": _text_check(TypeAdapter(StateCode), "must be a two-letter state code, e.g. TX"),
    "TOTAL": _headcount,
    "MEMBER": _headcount,
    "STAFF": _headcount,
    "TEACHERS": _teachers,
    "GUESTS": _headcount,
    "GSLO": _text_check(TypeAdapter(Grade), "must be one of PK, KG, 01 to 13, UG, AE"),
    "GSHI": _text_check(TypeAdapter(Grade), "must be one of PK, KG, 01 to 13, UG, AE"),
    "SHARED_EXIT": _text_check(TypeAdapter(ExitName), _NAME.format(100)),
}
_DISTRICT_FIELDS = ("leaid", "lea_name", "state")
_COUNTS = ("TOTAL", "MEMBER", "STAFF", "TEACHERS", "GUESTS")


def read_schools(data: bytes) -> ParsedCsv:
    """Every row of a schools CSV, checked cell by cell; nothing is stored here."""
    try:
        text, encoding = decode(data)
    except UnicodeDecodeError:
        parsed = ParsedCsv(encoding="unknown")
        parsed.problem(0, None, "the file is neither UTF-8 nor Windows-1252 text")
        return parsed
    parsed = ParsedCsv(encoding=encoding)
    if "\x00" in text:
        parsed.problem(0, None, "the file has NUL bytes: is it a spreadsheet, not CSV?")
        return parsed
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            parsed.problem(0, None, "the file is empty")
            return parsed
        index = _header_index(header, parsed)
        if index is None:
            return parsed
        line = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):
                _read_row(line, cells, index, parsed)
            line = reader.line_num + 1
    except csv.Error as exc:
        parsed.problem(reader.line_num, None, f"not valid CSV: {exc}")
    return parsed


def _header_index(header: Sequence[str], parsed: ParsedCsv) -> dict[str, int] | None:
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        key = name.strip().upper()
        if key in READERS:
            if key in index:
                parsed.problem(1, key, "appears twice")
            index[key] = position
    if "SCH_NAME" not in index:
        parsed.problem(1, "SCH_NAME", "missing: every row needs the school's name")
    return None if parsed.problems else index


def _read_row(line: int, cells: Sequence[str], index: dict[str, int], parsed: ParsedCsv) -> None:
    values: dict[str, Any] = {}
    columns: dict[str, str] = {}
    bad = False
    for name, sources in SOURCES.items():
        present = [column for column in sources if column in index]
        if not present:
            continue
        # The first filled source wins; with none filled, the field is empty (the first).
        column = next((c for c in present if _cell(cells, index[c])), present[0])
        cell = _cell(cells, index[column])
        columns[name] = column
        if not cell:
            values[name] = None
            continue
        try:
            values[name] = _value(column, cell)
        except ValueError as exc:
            parsed.problem(line, column, str(exc))
            bad = True
    if values.get("name") is None and not bad:
        parsed.problem(line, "SCH_NAME", "must not be empty")
        bad = True
    if bad:
        return
    district = None
    if any(name in values for name in _DISTRICT_FIELDS):
        district = {name: values.pop(name, None) for name in _DISTRICT_FIELDS}
        ncessch, leaid = values.get("ncessch"), district["leaid"]
        if ncessch is not None and leaid is not None and not ncessch.startswith(leaid):
            # NCES builds every school id from its district's: a mismatch is a shifted column.
            parsed.problem(line, "NCESSCH", f"does not start with the LEAID {leaid}")
            return
    parsed.rows.append(SchoolRow(line, values, district, columns))


def _cell(cells: Sequence[str], position: int) -> str:
    return cells[position].strip() if position < len(cells) else ""


def _value(column: str, cell: str) -> Any:
    if cell.upper() in CCD_CODES and column not in ("SCH_NAME", "LEA_NAME", "SHARED_EXIT"):
        todo = "fill in the count" if column in _COUNTS else "fill it in or leave the cell empty"
        raise ValueError(f"{cell}: {CCD_CODES[cell.upper()]}; {todo}")
    return READERS[column](cell)


def write_schools(rows: Iterable[Sequence[object]]) -> str:
    """A CSV of `rows` (values in `EXPORT_COLUMNS` order; None as an empty cell), header first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow("" if value is None else value for value in row)
    return out.getvalue()
