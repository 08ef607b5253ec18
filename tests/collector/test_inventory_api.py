"""The inventory API on a real collector, SQLite and PostgreSQL: districts, schools, circuits
and testing rooms, each write's audit entry, scopes (404 outside, 403 for viewers and for writes
the scope does not allow, 401 without a token) and every refusal's status and field."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from collector.store.audit import entries
from collector.store.db import make_engine, make_session_factory
from collector.store.models import AuditEntry, District
from collector.store.people import Scope
from collector.store.queries import create_district, create_school, enroll_agent
from tests.collector.test_cli import cli, ok
from tests.fixtures.collector import RunningCollector


def _client(collector: RunningCollector, token: str | None) -> httpx.Client:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=f"{collector.url}/api/v1", headers=headers, timeout=10)


def _fields(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 422, response.text
    return [e["loc"] for e in response.json()["errors"]]


def _unknown(response: httpx.Response) -> str:
    """The field a 404 for a body's reference names."""
    assert response.status_code == 404, response.text
    field, _, _ = response.json()["detail"].partition(":")
    return field


def _audit(collector: RunningCollector, object_type: str) -> list[tuple[str, str, Any]]:
    with collector.sessions() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.object_type == object_type).order_by(AuditEntry.id)
        ).all()
        return [(r.action, r.actor, json.loads(r.details)) for r in rows]


def test_crud_and_its_audit_trail(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    with _client(collector, collector.user_token(name="ops@test.example")) as api:
        made = api.post(
            "/districts", json={"name": "Austin ISD", "state": "tx", "leaid": "4808940"}
        )
        assert made.status_code == 201, made.text
        district = made.json()
        assert district == {
            "id": district["id"],
            "name": "Austin ISD",
            "state": "TX",
            "leaid": "4808940",
        }
        d_id = district["id"]
        assert api.get(f"/districts/{d_id}").json() == district
        assert api.get("/districts").json() == [district]

        school = api.post(
            "/schools",
            json={
                "name": "Lamar Middle",
                "students": 900,
                "staff": 80,
                "district_id": d_id,
                "ncessch": "480894000001",
                "guests": 30,
                "grade_low": "06",
                "grade_high": "08",
                "shared_exit": "austin-hub",
            },
        )
        assert school.status_code == 201, school.text
        s_id = school.json()["id"]
        changed = api.patch(f"/schools/{s_id}", json={"students": 950, "guests": None})
        assert changed.status_code == 200, changed.text
        assert api.get(f"/schools/{s_id}").json() == {
            "id": s_id,
            "name": "Lamar Middle",
            "students": 950,
            "staff": 80,
            "district_id": d_id,
            "shared_exit": "austin-hub",
            "ncessch": "480894000001",
            "guests": None,
            "grade_low": "06",
            "grade_high": "08",
        }

        hub = api.post(
            "/circuits",
            json={"district_id": d_id, "name": "hub", "kind": "internet", "down_mbps": 10000,
                  "up_mbps": 10000, "provider": "Lumen"},
        )  # fmt: skip
        assert hub.status_code == 201, hub.text
        wan = api.post(
            "/circuits",
            json={"school_id": s_id, "name": "wan-1", "kind": "wan", "down_mbps": 1000,
                  "up_mbps": 1000},
        )  # fmt: skip
        assert wan.status_code == 201, wan.text
        assert (
            api.patch(f"/circuits/{wan.json()['id']}", json={"up_mbps": 500}).json()["up_mbps"]
            == 500
        )
        assert [c["name"] for c in api.get(f"/districts/{d_id}/circuits").json()] == ["hub"]
        assert [c["name"] for c in api.get(f"/schools/{s_id}/circuits").json()] == ["wan-1"]

        room = api.post(f"/schools/{s_id}/rooms", json={"name": "Library", "test_takers": 60})
        assert room.status_code == 201, room.text
        r_id = room.json()["id"]
        assert api.patch(f"/rooms/{r_id}", json={"test_takers": 64}).status_code == 200
        assert api.get(f"/schools/{s_id}/rooms").json() == [
            {"id": r_id, "school_id": s_id, "name": "Library", "test_takers": 64}
        ]

        # Unique values and rows in use: 409 with a detail that says which.
        again = api.post("/districts", json={"name": "Other", "leaid": "4808940"})
        assert (again.status_code, again.json()["detail"]) == (
            409,
            "a district with LEAID 4808940 exists already",
        )
        twin = api.post("/schools", json={"name": "Lamar Middle", "students": 1, "staff": 1})
        assert twin.status_code == 409 and "Lamar Middle" in twin.json()["detail"]
        room_twin = api.post(f"/schools/{s_id}/rooms", json={"name": "Library"})
        assert room_twin.status_code == 409
        busy = api.delete(f"/districts/{d_id}")
        assert busy.status_code == 409 and "school" in busy.json()["detail"]
        with collector.sessions() as session:
            enroll_agent(session=session, school_id=s_id, name="pi-lamar")
        in_use = api.delete(f"/schools/{s_id}")
        assert in_use.status_code == 409 and "agent" in in_use.json()["detail"]

        assert api.delete(f"/rooms/{r_id}").status_code == 204
        assert api.delete(f"/circuits/{hub.json()['id']}").status_code == 204
        assert api.get(f"/rooms/{r_id}").status_code in (404, 405)
        spare = api.post("/schools", json={"name": "Spare", "students": 1, "staff": 1}).json()
        api.post(f"/schools/{spare['id']}/rooms", json={"name": "Gym"})
        assert api.delete(f"/schools/{spare['id']}").status_code == 204
        assert api.get(f"/schools/{spare['id']}").status_code == 404

    schools = _audit(collector, "school")
    assert [a for a, _, _ in schools] == ["create", "update", "create", "delete"]
    assert schools[0][1] == "user:ops@test.example (token:test)"
    assert schools[1][2] == {"guests": [30, None], "students": [900, 950]}
    assert schools[3][2]["rooms_deleted"] == 1
    assert [a for a, _, _ in _audit(collector, "circuit")] == [
        "create",
        "create",
        "update",
        "delete",
    ]
    assert [a for a, _, _ in _audit(collector, "room")] == ["create", "update", "delete", "create"]
    assert _audit(collector, "district")[0][2]["new"]["leaid"] == "4808940"


def test_bad_bodies_name_the_field(collector: RunningCollector) -> None:
    with _client(collector, collector.user_token()) as api:
        s_id = api.post("/schools", json={"name": "A", "students": 1, "staff": 1}).json()["id"]
        assert _fields(api.post("/schools", json={"name": "B", "students": "1", "staff": 1})) == [
            ["body", "students"]
        ]
        assert _fields(
            api.post("/schools", json={"name": "B", "students": 1, "staff": 1, "colour": "red"})
        ) == [["body", "colour"]]
        assert (
            _unknown(
                api.post(
                    "/schools", json={"name": "B", "students": 1, "staff": 1, "district_id": 99}
                )
            )
            == "district_id"
        )
        assert _fields(api.post("/districts", json={"name": "D", "leaid": "123"})) == [
            ["body", "leaid"]
        ]
        assert _fields(api.patch(f"/schools/{s_id}", json={"name": None})) == [["body", "name"]]
        assert _fields(api.patch(f"/schools/{s_id}", json={"grade_low": "ZZ"})) == [
            ["body", "grade_low"]
        ]
        assert _fields(api.patch(f"/schools/{s_id}", json={})) == [["body"]]
        both = api.post(
            "/circuits",
            json={"school_id": s_id, "district_id": 1, "name": "x", "kind": "wan",
                  "down_mbps": 1, "up_mbps": 1},
        )  # fmt: skip
        assert both.status_code == 422 and "exactly one" in both.text
        unknown_school = api.post(
            "/circuits",
            json={"school_id": 999, "name": "x", "kind": "wan", "down_mbps": 1, "up_mbps": 1},
        )
        assert _unknown(unknown_school) == "school_id"
        assert _fields(
            api.post(
                "/circuits",
                json={"school_id": s_id, "name": "x", "kind": "dsl", "down_mbps": 0, "up_mbps": 1},
            )
        ) == [["body", "kind"], ["body", "down_mbps"]]
        assert api.get("/schools/999").status_code == 404
        # 405 names every method of the path, the list's (routes/schools.py) included.
        for method, path, allow in [
            ("OPTIONS", "/schools", "GET, POST"),
            ("PUT", f"/schools/{s_id}", "DELETE, GET, PATCH"),
            ("PATCH", "/schools/export.csv", "GET"),
            ("GET", "/schools/import", "POST"),
        ]:
            refused = api.request(method, path)
            assert (refused.status_code, refused.headers["allow"]) == (405, allow), path
        assert api.patch("/circuits/999", json={"name": "x"}).status_code == 404
        assert api.delete("/rooms/999").status_code == 404


def test_scopes(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    with collector.sessions() as session:
        austin = District(name="Austin ISD", state="TX")
        denver = District(name="Denver PS", state="CO")
        session.add_all([austin, denver])
        session.commit()
        a_id, d_id = austin.id, denver.id
    root = _client(collector, collector.user_token())
    own = root.post(
        "/schools", json={"name": "Lamar", "students": 1, "staff": 1, "district_id": a_id}
    )
    other = root.post(
        "/schools", json={"name": "East", "students": 1, "staff": 1, "district_id": d_id}
    )
    own_id, other_id = own.json()["id"], other.json()["id"]
    other_circuit = root.post(
        "/circuits",
        json={"school_id": other_id, "name": "c", "kind": "wan", "down_mbps": 1, "up_mbps": 1},
    ).json()["id"]
    other_room = root.post(f"/schools/{other_id}/rooms", json={"name": "Gym"}).json()["id"]
    root.close()

    with _client(collector, collector.user_token(scope=Scope.district(a_id))) as admin:
        # Their own district: everything.
        made = admin.post(
            "/schools", json={"name": "Ross", "students": 1, "staff": 1, "district_id": a_id}
        )
        assert made.status_code == 201, made.text
        assert admin.patch(f"/schools/{own_id}", json={"staff": 5}).status_code == 200
        assert admin.post(f"/schools/{own_id}/rooms", json={"name": "Lab"}).status_code == 201
        assert (
            admin.patch(f"/districts/{a_id}", json={"name": "Austin Independent"}).status_code
            == 200
        )
        # Another district's: as if it did not exist.
        for method, path, body in [
            ("GET", f"/schools/{other_id}", None),
            ("PATCH", f"/schools/{other_id}", {"staff": 5}),
            ("DELETE", f"/schools/{other_id}", None),
            ("GET", f"/schools/{other_id}/rooms", None),
            ("POST", f"/schools/{other_id}/rooms", {"name": "Lab"}),
            ("GET", f"/schools/{other_id}/circuits", None),
            ("PATCH", f"/circuits/{other_circuit}", {"name": "x"}),
            ("DELETE", f"/rooms/{other_room}", None),
            ("GET", f"/districts/{d_id}", None),
            ("PATCH", f"/districts/{d_id}", {"name": "x"}),
            ("GET", f"/districts/{d_id}/circuits", None),
        ]:
            answer = admin.request(method, path, json=body)
            assert answer.status_code == 404, (method, path, answer.text)
        assert [d["id"] for d in admin.get("/districts").json()] == [a_id]
        moved = admin.patch(f"/schools/{own_id}", json={"district_id": d_id})
        assert _unknown(moved) == "district_id"
        placed = admin.post(
            "/schools", json={"name": "Z", "students": 1, "staff": 1, "district_id": d_id}
        )
        assert _unknown(placed) == "district_id"
        nowhere = admin.post("/schools", json={"name": "Z", "students": 1, "staff": 1})
        assert nowhere.status_code == 403
        assert admin.post("/districts", json={"name": "New", "state": "TX"}).status_code == 403

    with _client(collector, collector.user_token(scope=Scope.of_state("TX"))) as state_admin:
        assert (
            state_admin.post("/districts", json={"name": "Dallas", "state": "TX"}).status_code
            == 201
        )
        assert (
            state_admin.post("/districts", json={"name": "Boulder", "state": "CO"}).status_code
            == 403
        )
        assert state_admin.patch(f"/districts/{a_id}", json={"state": "CO"}).status_code == 403

    with _client(collector, collector.user_token("viewer", Scope.district(a_id))) as viewer:
        assert viewer.get(f"/schools/{own_id}").status_code == 200
        assert viewer.get(f"/schools/{other_id}").status_code == 404
        for method, path, body in [
            ("POST", "/schools", {"name": "V", "students": 1, "staff": 1}),
            ("PATCH", f"/schools/{own_id}", {"staff": 9}),
            ("DELETE", f"/schools/{own_id}", None),
            ("POST", f"/schools/{own_id}/rooms", {"name": "V"}),
            ("POST", "/districts", {"name": "V"}),
        ]:
            assert viewer.request(method, path, json=body).status_code == 403, (method, path)

    with _client(collector, None) as anonymous:
        for method, path in [
            ("GET", "/districts"),
            ("GET", f"/schools/{own_id}"),
            ("POST", "/districts"),
            ("DELETE", f"/rooms/{other_room}"),
        ]:
            assert anonymous.request(method, path).status_code == 401, path
    agent_token = collector.enroll(own_id)
    with _client(collector, agent_token) as agent:
        assert agent.get(f"/schools/{own_id}").status_code == 401


@pytest.mark.parametrize("path", ["/districts/0", "/schools/2147483648"])
def test_ids_out_of_range(collector: RunningCollector, path: str) -> None:
    with _client(collector, collector.user_token()) as api:
        assert api.get(path).status_code == 422


def test_cli_store_functions_record_their_actor(collector: RunningCollector) -> None:
    # `school add` and `district add` go through these (collector/cli.py passes cli_actor()).
    with collector.sessions() as session:
        district = create_district(session=session, name="Austin ISD", actor="cli:ops")
        create_school(
            session=session,
            name="Lamar",
            students=450,
            staff=50,
            district_id=district.id,
            actor="cli:ops",
        )
        create_school(session=session, name="Unrecorded", students=1, staff=1)
    assert [(a, who, d["new"]["name"]) for a, who, d in _audit(collector, "district")] == [
        ("create", "cli:ops", "Austin ISD")
    ]
    assert [(a, who, d["new"]["name"]) for a, who, d in _audit(collector, "school")] == [
        ("create", "cli:ops", "Lamar")
    ]


def test_cli_circuits_and_rooms(sqlite_url: str) -> None:
    ok(sqlite_url, "migrate")
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        school = create_school(session=session, name="Lamar", students=450, staff=50).id
    engine.dispose()
    circuit = ok(
        sqlite_url, "circuit", "add", "--school", str(school), "--name", "fiber",
        "--kind", "internet", "--down", "1000", "--up", "500.5", "--provider", "Lumen",
    )  # fmt: skip
    assert ok(sqlite_url, "circuit", "list", "--school", str(school)).stdout == (
        f"{circuit.stdout.strip()}\tfiber\tinternet\tdown=1000\tup=500.5\tprovider=Lumen\n"
    )
    unknown = cli(
        sqlite_url, "circuit", "add", "--school", "99", "--name", "x", "--kind", "wan",
        "--down", "1", "--up", "fast",
    )  # fmt: skip
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "error: up: Input should be a valid number\n",
    )
    room = ok(sqlite_url, "room", "add", "--school", str(school), "--name", "Library",
              "--test-takers", "30")  # fmt: skip
    twice = cli(sqlite_url, "room", "add", "--school", str(school), "--name", "Library")
    assert (twice.returncode, twice.stderr) == (
        2,
        f"error: name: school {school} has a testing room named 'Library' already\n",
    )
    removed = ok(sqlite_url, "room", "remove", room.stdout.strip())
    assert removed.stdout == f"removed testing room {room.stdout.strip()}\n"
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        trail = [(e.action, e.object_type) for e in entries(session=session)]
    engine.dispose()
    assert trail == [("delete", "room"), ("create", "room"), ("create", "circuit")]
