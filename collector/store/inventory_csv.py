"""Schools in and out as CSV: match a parsed file's rows to districts and schools, store them
in one transaction (nothing half-imported), and write the scope's schools back out.

Districts are matched by LEAID, else by name (a district without a LEAID takes the file's), and
created from LEA_NAME and ST when neither matches. Schools are matched by NCESSCH, else by name
(again taking the file's NCESSCH), updated where a value differs, or created. Any problem, in
any row, rolls the whole import back and is reported with its line and column. One audit entry
records each import with its counts.

Example:
    >>> report = import_schools(session=session, actor=cli_actor(), scope=Scope.everything(),
    ...                         data=Path("schools.csv").read_bytes(), source="schools.csv")
    >>> report.problems or (report.created, report.updated)
    (12, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from collector.csv_import import ParsedCsv, Problem, SchoolRow, read_schools, write_schools
from collector.inventory import grade_span_problem
from collector.store.audit import record
from collector.store.inventory import (
    SCHOOL_FIELDS,
    NotAllowed,
    manages_district,
    may_create_district,
    values_of,
)
from collector.store.models import District, School
from collector.store.people import Scope, visible_schools

# A problem's column when the file has none for the field.
_COLUMNS = {"name": "SCH_NAME", "students": "TOTAL", "lea_name": "LEA_NAME", "state": "ST"}
# Every school has these: an empty cell leaves an existing school's value as it is.
_REQUIRED = ("name", "students", "staff")


class _Refused(Exception):
    """A row with a problem (already reported): the import goes on to find the others."""


@dataclass
class ImportReport:
    """What an import did (or, with problems, would have done: then nothing was stored)."""

    source: str
    encoding: str
    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    districts_created: int = 0
    districts_updated: int = 0
    problems: list[Problem] = field(default_factory=list)
    # Problems past `csv_import.MAX_PROBLEMS`, counted only.
    more_problems: int = 0

    def problem_lines(self) -> list[str]:
        lines = [str(p) for p in self.problems]
        if self.more_problems:
            lines.append(f"... and {self.more_problems} more problems")
        return lines

    def counts(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "encoding": self.encoding,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "districts_created": self.districts_created,
            "districts_updated": self.districts_updated,
        }


def import_schools(
    *, session: Session, actor: str, scope: Scope, data: bytes, source: str, dry_run: bool = False
) -> ImportReport:
    """Store the schools of a CSV file, all or none; with `dry_run`, only check and count."""
    if scope.kind == "school":
        raise NotAllowed("importing schools needs scope all, a state or a district")
    parsed = read_schools(data)
    report = ImportReport(source=source, encoding=parsed.encoding, dry_run=dry_run)
    report.rows = len(parsed.rows)
    # Rows whose cells are fine are matched even when others are not: every problem at once.
    _Import(session, scope, parsed, report).run()
    if parsed.problems:
        session.rollback()
        report.problems, report.more_problems = parsed.in_order(), parsed.more_problems
        return report
    record(
        session,
        actor=actor,
        action="import",
        object_type="school",
        details=report.counts(),
    )
    if dry_run:
        session.rollback()  # the audit entry with it: a dry run changes nothing
        return report
    try:
        session.commit()
    except IntegrityError as exc:
        # Another writer took a name or id since the file was checked.
        session.rollback()
        why = f"a concurrent change conflicts with the file, nothing stored: {exc.orig}"
        report.problems = [Problem(0, None, why)]
    return report


class _Import:
    """One file's rows against the database, held in memory so each row costs no query."""

    def __init__(self, session: Session, scope: Scope, parsed: ParsedCsv, report: ImportReport):
        self.session, self.scope, self.parsed, self.report = session, scope, parsed, report
        schools = session.scalars(select(School)).all()
        districts = session.scalars(select(District)).all()
        self.school_by_ncessch = {s.ncessch: s for s in schools if s.ncessch}
        self.school_by_name = {s.name: s for s in schools}
        self.district_by_leaid = {d.leaid: d for d in districts if d.leaid}
        self.district_by_name = {d.name: d for d in districts}
        self.visible = set(session.scalars(select(School.id).where(visible_schools(scope))))
        # The line that first created, changed or confirmed each district and school.
        self.district_line: dict[int, int] = {}
        self.school_line: dict[int, int] = {}

    def run(self) -> None:
        for row in self.parsed.rows:
            try:
                self.row(row)
            except _Refused:
                pass
        if not self.parsed.problems:
            self.session.flush()

    def refuse(self, row: SchoolRow, field_name: str, message: str) -> NoReturn:
        column = row.columns.get(field_name, _COLUMNS.get(field_name, field_name.upper()))
        self.parsed.problem(row.line, column, message)
        raise _Refused

    def row(self, row: SchoolRow) -> None:
        changes = {k: v for k, v in row.values.items() if not (v is None and k in _REQUIRED)}
        if row.district is not None:
            district = self.district(row, row.district)
            changes["district_id"] = None if district is None else district.id
        elif self.scope.kind != "all":
            self.refuse(row, "leaid", "missing: needed to place schools within your scope")
        school = self.match(row)
        if school is None:
            self.create(row, changes)
        else:
            self.update(row, school, changes)

    def district(self, row: SchoolRow, cells: dict[str, str | None]) -> District | None:
        """The row's district (None: no district), matched, changed or created."""
        leaid, name, state = cells["leaid"], cells["lea_name"], cells["state"]
        if leaid is None and name is None:
            if self.scope.kind != "all":
                self.refuse(row, "leaid", "empty: schools without a district need scope all")
            return None
        found = self.district_by_leaid.get(leaid) if leaid else None
        if found is None and name is not None:
            found = self.district_by_name.get(name)
            if found is not None and leaid and found.leaid not in (None, leaid):
                self.refuse(row, "lea_name", f"the district of that name has LEAID {found.leaid}")
        if found is None:
            return self.new_district(row, leaid, name, state)
        if not manages_district(self.scope, found):
            self.refuse(row, "leaid" if leaid else "lea_name", "a district outside your scope")
        wanted = {"leaid": leaid, "name": name, "state": state}
        diff = {k: v for k, v in wanted.items() if v is not None and getattr(found, k) != v}
        if diff:
            first = self.district_line.get(found.id)
            if first is not None:
                column = {"leaid": "leaid", "name": "lea_name", "state": "state"}[next(iter(diff))]
                self.refuse(row, column, f"differs from line {first} for the same district")
            if "name" in diff and diff["name"] in self.district_by_name:
                self.refuse(row, "lea_name", "another district has this name")
            if "state" in diff and not may_create_district(self.scope, diff["state"]):
                self.refuse(row, "state", "moving a district to another state needs scope all")
            self.district_by_name.pop(found.name, None)
            for key, value in diff.items():
                setattr(found, key, value)
            self.district_by_name[found.name] = found
            if found.leaid:
                self.district_by_leaid[found.leaid] = found
            self.report.districts_updated += 1
        self.district_line.setdefault(found.id, row.line)
        return found

    def new_district(
        self, row: SchoolRow, leaid: str | None, name: str | None, state: str | None
    ) -> District:
        if name is None:
            self.refuse(row, "lea_name", f"empty: needed to create the district with LEAID {leaid}")
        if not may_create_district(self.scope, state):
            self.refuse(row, "leaid" if leaid else "lea_name", "a new district outside your scope")
        district = District(name=name, state=state, leaid=leaid)
        self.session.add(district)
        self.session.flush()  # its id, for the schools that follow
        self.district_by_name[name] = district
        if leaid:
            self.district_by_leaid[leaid] = district
        self.district_line[district.id] = row.line
        self.report.districts_created += 1
        return district

    def match(self, row: SchoolRow) -> School | None:
        """The school the row is about, None for a new one."""
        ncessch, name = row.values.get("ncessch"), row.values["name"]
        school = self.school_by_ncessch.get(ncessch) if ncessch else None
        by = "ncessch"
        if school is None:
            school, by = self.school_by_name.get(name), "name"
            if school is not None and ncessch and school.ncessch not in (None, ncessch):
                line = self.school_line.get(id(school))
                where = f" (line {line})" if line else ""
                self.refuse(
                    row, "name", f"the school of that name{where} has NCESSCH {school.ncessch}"
                )
        if school is None:
            return None
        first = self.school_line.get(id(school))
        if first is not None:
            self.refuse(row, by, f"the same school as line {first}")
        if school.id not in self.visible:
            self.refuse(row, by, "a school outside your scope has this value")
        self.school_line[id(school)] = row.line
        return school

    def check(self, row: SchoolRow, school: School | None, values: dict[str, Any]) -> None:
        """The school as it would be: its name and NCESSCH its own, its fields consistent."""
        for key, index in (("name", self.school_by_name), ("ncessch", self.school_by_ncessch)):
            value = values.get(key)
            other = index.get(value) if value else None
            if other is not None and other is not school:
                line = self.school_line.get(id(other))
                where = f" (line {line})" if line else ""
                self.refuse(row, key, f"another school{where} has this value")
        span = grade_span_problem(values.get("grade_low"), values.get("grade_high"))
        if span is not None:
            # Each cell was checked alone; a span upside down is a swapped column.
            self.refuse(row, "grade_low", span)

    def create(self, row: SchoolRow, values: dict[str, Any]) -> None:
        if values.get("students") is None:
            self.refuse(row, "students", "needed for a new school")
        if values.get("staff") is None:
            self.refuse(
                row,
                "staff",
                "needed for a new school (CCD has no staff per school: add a STAFF column)",
            )
        values.setdefault("district_id", None)
        if values["district_id"] is None and self.scope.kind != "all":
            self.refuse(row, "leaid", "missing: needed to place schools within your scope")
        self.check(row, None, values)
        school = School(**values)
        self.session.add(school)
        self.school_by_name[school.name] = school
        if school.ncessch:
            self.school_by_ncessch[school.ncessch] = school
        self.school_line[id(school)] = row.line
        self.report.created += 1

    def update(self, row: SchoolRow, school: School, changes: dict[str, Any]) -> None:
        self.check(row, school, {**values_of(school, SCHOOL_FIELDS), **changes})
        old_name, old_ncessch = school.name, school.ncessch
        diff = {k: v for k, v in changes.items() if getattr(school, k) != v}
        for key, value in diff.items():
            setattr(school, key, value)
        if school.name != old_name:
            self.school_by_name.pop(old_name, None)
            self.school_by_name[school.name] = school
        if school.ncessch != old_ncessch:
            self.school_by_ncessch.pop(old_ncessch or "", None)
            if school.ncessch:
                self.school_by_ncessch[school.ncessch] = school
        if diff:
            self.report.updated += 1
        else:
            self.report.unchanged += 1


def export_schools(*, session: Session, scope: Scope) -> str:
    """The scope's schools as CSV in `csv_import.EXPORT_COLUMNS`: importing it changes nothing."""
    rows = session.execute(
        select(
            School.ncessch,
            School.name,
            District.leaid,
            District.name,
            District.state,
            School.students,
            School.staff,
            School.guests,
            School.grade_low,
            School.grade_high,
            School.shared_exit,
        )
        .outerjoin(District, District.id == School.district_id)
        .where(visible_schools(scope))
        .order_by(School.id)
    ).all()
    return write_schools(tuple(row) for row in rows)
