"""Test slots on a real collector: one at a time per shared exit, expiry, release, bad input.

The rules (expiry, sweeping, ownership) are also checked directly in the store with times the
test chooses, on both databases, so no test sleeps longer than one real one-second slot.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from collector.store.db import make_engine, make_session_factory
from collector.store.migrate import upgrade_to_head
from collector.store.queries import create_school, enroll_agent
from collector.store.slots import Grant, Held, exit_key, give_back, live_slots, take_slot
from tests.fixtures.collector import RunningCollector, run_collector

SLOT_BUSY = "another test holds this exit: retry after Retry-After seconds"


def add_school(collector: RunningCollector, name: str, shared_exit: str | None = None) -> int:
    with collector.sessions() as session:
        school = create_school(
            session=session, name=name, students=300, staff=30, shared_exit=shared_exit
        )
        return school.id


@pytest.fixture
def hub(collector: RunningCollector) -> Iterator[dict[str, httpx.Client]]:
    """Agents of three schools: two behind the `north-hub` exit, one with its own."""
    tokens = {
        "lincoln": collector.enroll(add_school(collector, "Lincoln", "north-hub")),
        "jefferson": collector.enroll(add_school(collector, "Jefferson", "north-hub")),
        "adams": collector.enroll(add_school(collector, "Adams")),
    }
    clients = {
        name: httpx.Client(
            base_url=collector.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        for name, token in tokens.items()
    }
    yield clients
    for client in clients.values():
        client.close()


def take(client: httpx.Client, seconds: Any = 30) -> httpx.Response:
    return client.post("/api/v1/slots", json={"seconds": seconds})


def test_one_slot_at_a_time_behind_a_shared_exit(hub: dict[str, httpx.Client]) -> None:
    granted = take(hub["lincoln"], 30)
    assert granted.status_code == 201, granted.text
    grant = granted.json()
    assert set(grant) == {"id", "expires_in_s"} and grant["expires_in_s"] == 30

    # The neighbour behind the same exit waits, and so does a second ask of the holder.
    for name in ("jefferson", "lincoln"):
        busy = take(hub[name], 10)
        assert busy.status_code == 409
        assert busy.json() == {"detail": SLOT_BUSY}
        assert 1 <= int(busy.headers["retry-after"]) <= 30
    # A school with its own exit does not wait for them.
    assert take(hub["adams"], 10).status_code == 201

    # Released early, the exit is free at once.
    assert hub["lincoln"].delete(f"/api/v1/slots/{grant['id']}").status_code == 204
    assert take(hub["jefferson"], 10).status_code == 201


def test_a_slot_expires_by_itself(hub: dict[str, httpx.Client]) -> None:
    grant = take(hub["lincoln"], 1).json()
    busy = take(hub["jefferson"], 5)
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
    time.sleep(1.05)
    assert take(hub["jefferson"], 5).status_code == 201
    # Releasing an expired slot: nothing to release.
    gone = hub["lincoln"].delete(f"/api/v1/slots/{grant['id']}")
    assert gone.status_code == 404 and gone.json() == {"detail": "unknown slot"}


def test_only_the_holder_releases_a_slot(hub: dict[str, httpx.Client]) -> None:
    grant = take(hub["lincoln"]).json()
    assert hub["jefferson"].delete(f"/api/v1/slots/{grant['id']}").status_code == 404
    assert take(hub["jefferson"]).status_code == 409
    assert hub["lincoln"].delete(f"/api/v1/slots/{grant['id']}").status_code == 204
    assert hub["lincoln"].delete(f"/api/v1/slots/{grant['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"seconds": 0}, ["seconds"]),
        ({"seconds": 3601}, ["seconds"]),
        ({"seconds": "30"}, ["seconds"]),
        ({"seconds": 30.5}, ["seconds"]),
        ({"seconds": True}, ["seconds"]),
        ({}, ["seconds"]),
        ({"seconds": 30, "priority": 1}, ["priority"]),
        ([30], []),
    ],
)
def test_bad_requests_are_422_naming_the_field(
    hub: dict[str, httpx.Client], body: Any, loc: list[str]
) -> None:
    answer = hub["lincoln"].post("/api/v1/slots", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == "invalid payload"
    assert [error["loc"] for error in answer.json()["errors"]] == [loc]
    # Nothing was granted: the exit is still free.
    assert take(hub["jefferson"]).status_code == 201


def test_a_whole_number_float_is_an_integer(hub: dict[str, httpx.Client]) -> None:
    assert take(hub["lincoln"], 30.0).json()["expires_in_s"] == 30


@pytest.mark.parametrize(
    ("content", "status", "detail"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"", 400, "malformed JSON"),
        (b'{"seconds": 30, "pad": "' + b"x" * 2000 + b'"}', 413, "request body too large"),
    ],
)
def test_unreadable_bodies(
    hub: dict[str, httpx.Client], content: bytes, status: int, detail: str
) -> None:
    answer = hub["lincoln"].post(
        "/api/v1/slots", content=content, headers={"Content-Type": "application/json"}
    )
    assert (answer.status_code, answer.json()) == (status, {"detail": detail})


def test_a_bad_slot_id_is_422_and_an_unknown_one_404(hub: dict[str, httpx.Client]) -> None:
    assert hub["lincoln"].delete("/api/v1/slots/not-a-slot").status_code == 422
    unknown = hub["lincoln"].delete(f"/api/v1/slots/{'0' * 32}")
    assert unknown.status_code == 404


def test_slots_need_an_agent_token(collector: RunningCollector) -> None:
    with httpx.Client(base_url=collector.url, timeout=10) as anonymous:
        for answer in (
            anonymous.post("/api/v1/slots", json={"seconds": 30}),
            anonymous.delete(f"/api/v1/slots/{'0' * 32}"),
            anonymous.post(
                "/api/v1/slots", json={"seconds": 30}, headers={"Authorization": "Bearer nope"}
            ),
        ):
            assert answer.status_code == 401
            assert answer.json() == {"detail": "invalid or missing agent token"}


def test_openapi_documents_the_slot_routes(collector: RunningCollector) -> None:
    document = httpx.get(f"{collector.url}/openapi.json", timeout=10).json()
    take_op = document["paths"]["/api/v1/slots"]["post"]
    assert set(take_op["responses"]) == {"201", "400", "401", "409", "413", "422"}
    assert "Retry-After" in take_op["responses"]["409"]["headers"]
    body = take_op["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["seconds"]["minimum"] == 1
    assert body["properties"]["seconds"]["maximum"] == 3600
    release_op = document["paths"]["/api/v1/slots/{slot_id}"]["delete"]
    assert set(release_op["responses"]) == {"204", "401", "404", "422"}


def test_slots_expire_are_swept_and_stay_with_their_holders(database_url: str) -> None:
    """The rules, on both databases, with times the test chooses."""
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    hub = exit_key(school_id=1, shared_exit="north-hub")
    assert hub == exit_key(school_id=2, shared_exit="north-hub") == "exit:north-hub"
    assert exit_key(school_id=3, shared_exit=None) == "school:3"
    t0 = datetime(2027, 3, 1, 9, tzinfo=UTC)
    try:
        with make_session_factory(engine)() as session:
            agents = _agents(session, 4)
            first = take_slot(session=session, key=hub, agent_id=agents[0], seconds=60, now=t0)
            assert isinstance(first, Grant)
            later = t0 + timedelta(seconds=59.2)
            assert take_slot(
                session=session, key=hub, agent_id=agents[1], seconds=60, now=later
            ) == Held(retry_after_s=1)
            # Not the holder's: refused.
            assert not give_back(session=session, slot_id=first.id, agent_id=agents[1], now=later)
            up = t0 + timedelta(seconds=60)  # the slot's time is up
            assert not give_back(session=session, slot_id=first.id, agent_id=agents[0], now=up)
            second = take_slot(session=session, key=hub, agent_id=agents[1], seconds=60, now=up)
            assert isinstance(second, Grant) and second.id != first.id
            # Slots of other exits do not pile up: expired ones are swept on the next ask.
            take_slot(session=session, key="school:3", agent_id=agents[2], seconds=5, now=up)
            assert live_slots(session=session, now=up) == 2
            gone = up + timedelta(seconds=61)
            take_slot(session=session, key="school:4", agent_id=agents[3], seconds=5, now=gone)
            assert live_slots(session=session, now=gone) == 1
    finally:
        engine.dispose()


def _agents(session: Session, count: int) -> list[int]:
    ids = []
    for n in range(count):
        school = create_school(session=session, name=f"S{n}", students=1, staff=1)
        agent, _ = enroll_agent(session=session, school_id=school.id, name=f"pi-{n}")
        ids.append(agent.id)
    return ids


def collector_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        env={"PATH": "/usr/bin:/bin", "READYNET_COLLECTOR_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_school_add_takes_a_shared_exit(collector: RunningCollector) -> None:
    url = collector.database_url
    added = collector_cli(
        url, "school", "add", "--name", "Lincoln", "--students", "300", "--staff", "30",
        "--shared-exit", "  north-hub ",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = collector_cli(url, "school", "list")
    assert listed.stdout.strip().endswith("\tshared_exit=north-hub")
    for bad, why in (("", "must not be empty"), ("x" * 101, "must be at most 100 characters")):
        refused = collector_cli(
            url, "school", "add", "--name", "Adams", "--students", "1", "--staff", "1",
            "--shared-exit", bad,
        )  # fmt: skip
        assert (refused.returncode, refused.stderr) == (2, f"error: shared-exit: {why}\n")
    refused = collector_cli(
        url, "school", "add", "--name", "Adams", "--students", "1", "--staff", "1",
        "--shared-exit", "hub\nB",
    )  # fmt: skip
    assert refused.returncode == 2 and "shared-exit: must not contain control" in refused.stderr


@pytest.mark.postgres
def test_two_replicas_grant_one_slot_per_exit(postgres_url: str) -> None:
    """Two collectors on one database: a slot taken at one is held at the other."""
    with run_collector(postgres_url) as first, run_collector(postgres_url) as second:
        lincoln = first.enroll(add_school(first, "Lincoln", "north-hub"))
        jefferson = first.enroll(add_school(first, "Jefferson", "north-hub"))
        taken = httpx.post(
            f"{first.url}/api/v1/slots",
            json={"seconds": 30},
            headers={"Authorization": f"Bearer {lincoln}"},
        )
        assert taken.status_code == 201
        held = httpx.post(
            f"{second.url}/api/v1/slots",
            json={"seconds": 30},
            headers={"Authorization": f"Bearer {jefferson}"},
        )
        assert held.status_code == 409 and 1 <= int(held.headers["retry-after"]) <= 30
        released = httpx.delete(
            f"{second.url}/api/v1/slots/{taken.json()['id']}",
            headers={"Authorization": f"Bearer {lincoln}"},
        )
        assert released.status_code == 204
        again = httpx.post(
            f"{second.url}/api/v1/slots",
            json={"seconds": 30},
            headers={"Authorization": f"Bearer {jefferson}"},
        )
        assert again.status_code == 201
