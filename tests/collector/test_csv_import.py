"""Schools as CSV on real databases: a CCD-shaped file (tests/data/ccd_schools.csv: the CCD
directory file's 60-odd columns, TOTAL, and our STAFF) over HTTP and the command line, bad
rows reported by line and column with nothing stored, encodings, scope, idempotent re-import,
export and import round trip, and one audit entry per import."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
from sqlalchemy import func, select

from collector.csv_import import MAX_PROBLEMS, read_schools
from collector.store.models import AuditEntry, District, School
from collector.store.people import Scope
from tests.collector.test_cli import cli, ok
from tests.fixtures.collector import RunningCollector

CCD_FILE = Path(__file__).parent.parent / "data" / "ccd_schools.csv"
CSV = {"Content-Type": "text/csv"}
OURS = "SCH_NAME,TOTAL,STAFF,LEAID,LEA_NAME,ST\n"


def _api(collector: RunningCollector, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{collector.url}/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def _counts(collector: RunningCollector) -> tuple[int, int]:
    with collector.sessions() as session:
        schools = session.scalar(select(func.count()).select_from(School))
        districts = session.scalar(select(func.count()).select_from(District))
        return schools or 0, districts or 0


def _imports(collector: RunningCollector) -> list[dict[str, object]]:
    with collector.sessions() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "import").order_by(AuditEntry.id)
        )
        return [json.loads(r.details) for r in rows]


def test_a_ccd_file_imports_once_and_round_trips(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    data = CCD_FILE.read_bytes()
    with _api(collector, collector.user_token()) as api:
        dry = api.post("/schools/import?dry_run=true", content=data, headers=CSV)
        assert dry.json()["created"] == 30 and _counts(collector) == (0, 0)
        first = api.post("/schools/import", content=data, headers=CSV)
        assert first.status_code == 200, first.text
        assert first.json() == {
            "encoding": "utf-8",
            "dry_run": False,
            "rows": 30,
            "created": 30,
            "updated": 0,
            "unchanged": 0,
            "districts_created": 3,
            "districts_updated": 0,
        }
        again = api.post("/schools/import", content=data, headers=CSV).json()
        assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 30)

        exported = api.get("/schools/export.csv")
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert len(rows) == 30
        by_name = {r["SCH_NAME"]: r for r in rows}
        # CCD's values as they are, the leading zero of Alabama's ids kept.
        nunez = by_name["Escuela Nuñez, Dual Language"]
        assert (nunez["LEAID"], nunez["ST"], nunez["GSLO"], nunez["GSHI"]) == (
            "4899901",
            "TX",
            "06",
            "08",
        )
        assert next(r for r in rows if r["ST"] == "AL")["NCESSCH"].startswith("0199903")
        # Staff from TEACHERS (full-time equivalents, rounded up) where STAFF is empty.
        assert [r["STAFF"] for r in rows if r["NCESSCH"] == "489990100004"] == ["24"]

        back = api.post("/schools/import", content=exported.content, headers=CSV).json()
        assert (back["created"], back["updated"], back["unchanged"]) == (0, 0, 30)
        assert api.get("/schools/export.csv").text == exported.text

        # A change comes back as an update of that school alone.
        nunez["TOTAL"] = str(int(nunez["TOTAL"]) + 1)
        changed = io.StringIO()
        writer = csv.DictWriter(changed, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        update = api.post(
            "/schools/import", content=changed.getvalue().encode(), headers=CSV
        ).json()
        assert (update["updated"], update["unchanged"]) == (1, 29)

        # Windows-1252, as NCES files often are: read as such, and said so.
        windows = (OURS + "Peña Elementary,300,25,4899901,Mesquite Creek ISD,TX\n").encode("cp1252")
        added = api.post("/schools/import", content=windows, headers=CSV).json()
        assert (added["encoding"], added["created"]) == ("cp1252", 1)
        assert "Peña Elementary" in api.get("/schools/export.csv").text

    assert _counts(collector) == (31, 3)
    audit = _imports(collector)
    # The dry run changed nothing, so it is not in the log.
    assert [(a["created"], a["updated"], a["unchanged"]) for a in audit] == [
        (30, 0, 0),
        (0, 0, 30),
        (0, 0, 30),
        (0, 1, 29),
        (1, 0, 0),
    ]


def test_bad_rows_are_all_reported_and_nothing_is_stored(
    collector_any_db: RunningCollector,
) -> None:
    collector = collector_any_db
    collector.add_school("Taken High")
    bad = (
        "SCH_NAME,NCESSCH,LEAID,LEA_NAME,ST,TOTAL,MEMBER,STAFF,GSLO,GSHI\n"
        "Fine Elementary,480000100001,4800001,New ISD,TX,300,,30,KG,05\n"
        "Missing Count,480000100002,4800001,New ISD,TX,-1,,30,KG,05\n"
        "Suppressed,480000100003,4800001,New ISD,TX,,-9,30,KG,05\n"
        "Words,480000100004,4800001,New ISD,TX,many,,M,KG,05\n"
        "Backwards,480000100005,4800001,New ISD,TX,300,,30,08,KG\n"
        "Shifted,480000100006,4800002,New ISD,TX,300,,30,KG,05\n"
        "Fine Elementary,480000100007,4800001,New ISD,TX,300,,30,KG,05\n"
        "Same Id,480000100001,4800001,New ISD,TX,300,,30,KG,05\n"
        "No Staff,480000100009,4800001,New ISD,TX,300,,,KG,05\n"
        "Bad Grade,48000010001,4800001,New ISD,TX,300,,30,N,5\n"
    )
    with _api(collector, collector.user_token()) as api:
        answer = api.post("/schools/import", content=bad.encode(), headers=CSV)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == "CSV refused: nothing was imported"
    problems = [(e["loc"], e["msg"]) for e in answer.json()["errors"]]
    assert problems == [
        (["line 3", "TOTAL"], "-1: CCD's 'missing'; fill in the count"),
        (
            ["line 4", "MEMBER"],
            "-9: CCD's 'does not meet NCES data quality standards'; fill in the count",
        ),
        (["line 5", "TOTAL"], "must be a whole number from 0 to 1000000"),
        (["line 5", "STAFF"], "M: CCD's 'missing'; fill in the count"),
        (["line 6", "GSLO"], "grade_low 08 is above grade_high KG"),
        (["line 7", "NCESSCH"], "does not start with the LEAID 4800002"),
        (["line 8", "SCH_NAME"], "the school of that name (line 2) has NCESSCH 480000100001"),
        (["line 9", "NCESSCH"], "the same school as line 2"),
        (
            ["line 10", "STAFF"],
            "needed for a new school (CCD has no staff per school: add a STAFF column)",
        ),
        (["line 11", "GSLO"], "N: CCD's 'not applicable'; fill it in or leave the cell empty"),
        (["line 11", "GSHI"], "must be one of PK, KG, 01 to 13, UG, AE"),
    ]
    assert _counts(collector) == (1, 0)
    assert _imports(collector) == []


def test_encodings_and_the_problem_cap() -> None:
    text = OURS + "Café Olé,10,1,,,\n"
    assert read_schools(text.encode("cp1252")).encoding == "cp1252"
    bom = read_schools(b"\xef\xbb\xbf" + text.encode())
    assert (bom.encoding, bom.rows[0].values["name"]) == ("utf-8", "Café Olé")
    # Lower-case CCD names, unknown columns, blank lines.
    loose = read_schools(b"sch_name,Total,staff,Whatever\n\nA,1,2,x\n")
    assert (loose.rows[0].line, loose.rows[0].values) == (
        3,
        {"name": "A", "students": 1, "staff": 2},
    )
    broken = read_schools(b"SCH_NAME\n\x81\x8d\x8f\n")
    assert [str(p) for p in broken.problems] == ["the file is neither UTF-8 nor Windows-1252 text"]
    twice = read_schools(b"SCH_NAME,TOTAL,total\nA,1,1\n")
    assert [str(p) for p in twice.problems] == ["line 1, column TOTAL: appears twice"]
    many = read_schools((OURS + "A,x,1,,,\n" * (MAX_PROBLEMS + 50)).encode())
    assert len(many.problems) == MAX_PROBLEMS
    assert many.summary()[-1] == "... and 50 more problems"


def test_import_scope_and_refusals(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    with collector.sessions() as session:
        mine = District(name="Mesquite Creek ISD", state="TX", leaid="4899901")
        session.add(mine)
        session.commit()
        mine_id = mine.id
    ccd = CCD_FILE.read_bytes()
    with _api(collector, collector.user_token(scope=Scope.district(mine_id))) as admin:
        refused = admin.post("/schools/import", content=ccd, headers=CSV)
        assert refused.status_code == 422
        # Every row of the other districts, none of its own.
        lines = {e["loc"][0] for e in refused.json()["errors"]}
        assert lines == {f"line {n}" for n in range(12, 32)}
        assert {e["msg"] for e in refused.json()["errors"]} == {"a new district outside your scope"}
        own_rows = b"\n".join(ccd.splitlines()[:11]) + b"\n"
        assert admin.post("/schools/import", content=own_rows, headers=CSV).json()["created"] == 10
        assert (
            admin.post(
                "/schools/import", content=ccd, headers={"Content-Type": "text/plain"}
            ).status_code
            == 415
        )
        assert (
            admin.post("/schools/import", content=b"SCH_NAME\nX\n", headers=CSV).status_code == 422
        )
    with _api(collector, collector.user_token(scope=Scope.of_state("AL"))) as alabama:
        # Schools of another state exist: refused by name and id, nothing leaks but that.
        answer = alabama.post("/schools/import", content=ccd, headers=CSV)
        assert answer.status_code == 422
        assert len(answer.json()["errors"]) == 20
        assert alabama.get("/schools/export.csv").text.count("\n") == 1
    with _api(collector, collector.user_token("viewer", Scope.district(mine_id))) as viewer:
        assert viewer.post("/schools/import", content=ccd, headers=CSV).status_code == 403
        assert viewer.get("/schools/export.csv").text.count("\n") == 11
    school_admin = collector.user_token(scope=Scope.school(1))
    with _api(collector, school_admin) as one_school:
        assert one_school.post("/schools/import", content=ccd, headers=CSV).status_code == 403
    assert httpx.get(f"{collector.url}/api/v1/schools/export.csv").status_code == 401
    assert _counts(collector) == (10, 1)


def test_cli_import_and_export(sqlite_url: str, tmp_path: Path) -> None:
    ok(sqlite_url, "migrate")
    loaded = ok(sqlite_url, "school", "import", str(CCD_FILE))
    assert loaded.stdout == (
        "schools: created 30, updated 0, unchanged 0; districts: created 3, updated 0\n"
    )
    assert "read 30 rows as utf-8" in loaded.stderr
    out = tmp_path / "out.csv"
    ok(sqlite_url, "school", "export", "--output", str(out))
    assert ok(sqlite_url, "school", "export").stdout == out.read_bytes().decode()
    again = ok(sqlite_url, "school", "import", "--dry-run", str(out))
    assert again.stdout.startswith("schools: would create 0, updated 0, unchanged 30;")
    assert "dry run: nothing was stored" in again.stderr

    bad = tmp_path / "bad.csv"
    bad.write_bytes((OURS + "Zed,12,2,,,\nCafé,-2,1,,,\nYon,1,N,,,\n").encode("cp1252"))
    refused = cli(sqlite_url, "school", "import", str(bad))
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == (
        "error: line 3, column TOTAL: -2: CCD's 'not applicable'; fill in the count\n"
        "error: line 4, column STAFF: N: CCD's 'not applicable'; fill in the count\n"
    )
    missing = cli(sqlite_url, "school", "import", str(tmp_path / "nope.csv"))
    assert (missing.returncode, missing.stderr) == (
        2,
        f"error: FILE.csv: cannot read {tmp_path / 'nope.csv'}: No such file or directory\n",
    )
    unwritable = cli(sqlite_url, "school", "export", "--output", str(tmp_path / "no" / "x.csv"))
    assert unwritable.returncode == 2 and unwritable.stderr.startswith("error: output: ")
    listed = ok(sqlite_url, "school", "list").stdout.splitlines()
    assert len(listed) == 30 and not any("Zed" in line for line in listed)
