"""Who may read what, against a real collector: every read needs a user's token (an agent's
reads nothing), a scope hides other districts' schools and agents, a viewer cannot write.

The routes checked are the collector's own OpenAPI document's: a new GET route must either take
a user (`ViewerDep`) or be named open here on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from collector.api.errors import NOT_ALLOWED, NOT_SIGNED_IN, SCRAPE_SCOPE, UNKNOWN_SCHOOL
from collector.app import create_app
from collector.settings import CollectorSettings
from collector.store.models import ApiToken, District, School
from collector.store.people import Scope, revoke_user, user_by_name
from tests.fixtures.collector import RunningCollector, run_collector

# Built, never served: the engine is not connected until a request comes.
_SCHEMA: dict[str, Any] = create_app(
    CollectorSettings(database_url="sqlite:///never-opened.db")
).openapi()
_GETS = {path: ops["get"] for path, ops in _SCHEMA["paths"].items() if "get" in ops}


def _for_users(operation: dict[str, Any]) -> bool:
    return any("UserToken" in s for s in operation.get("security", []))


USER_GETS = sorted(path for path, op in _GETS.items() if _for_users(op))
# Open on purpose: health for load balancers, the classroom page and its LibreSpeed endpoints
# (a school's classroom code), an agent's own routes (its token), the sign-in page.
OPEN_GETS = {
    "/healthz",
    "/readyz",
    "/classroom",
    "/classroom/classroom.js",
    "/classroom/classroom.css",
    "/librespeed/{code}/garbage.php",
    "/librespeed/{code}/empty.php",
    "/librespeed/{code}/getIP.php",
    "/api/v1/speedtest/ping",
    "/api/v1/speedtest/download",
    "/api/v1/agent/config",
    "/signin",
}
# Not in the document (include_in_schema=False) but reads all the same.
UNLISTED_READS = ["/metrics", "/metrics?district=1", "/metrics?interfaces=none"]


@dataclass(frozen=True)
class Fleet:
    collector: RunningCollector
    school: int
    agent_token: str
    admin_token: str
    # One client for all: each `httpx.get` builds an SSL context (tens of ms).
    http: httpx.Client


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One collector for the route checks, which only read."""
    database = tmp_path_factory.mktemp("roles") / "collector.db"
    with run_collector(f"sqlite:///{database}") as collector:
        school = collector.add_school()
        with httpx.Client(base_url=collector.url) as http:
            yield Fleet(
                collector, school, collector.enroll(school), collector.user_token("admin"), http
            )


def test_every_get_route_is_for_users_or_open_on_purpose() -> None:
    assert {path for path, op in _GETS.items() if not _for_users(op)} == OPEN_GETS
    assert len(USER_GETS) >= 5  # the schools, readiness, agents, me and audit at least


@pytest.mark.parametrize("path", USER_GETS + UNLISTED_READS)
def test_no_read_answers_without_a_users_token(fleet: Fleet, path: str) -> None:
    url = re.sub(r"\{\w+\}", str(fleet.school), path)
    for headers in (
        {},
        {"Authorization": f"Bearer {fleet.agent_token}"},  # an agent reads nothing
        {"Authorization": "Bearer rnu_not-a-token"},
        {"Cookie": "readynet_session=not-a-session"},
    ):
        response = fleet.http.get(url, headers=headers)
        assert response.status_code == 401, (path, headers, response.text)
        assert response.json() == {"detail": NOT_SIGNED_IN}
        assert response.headers["www-authenticate"] == "Bearer"
    # ...and each lets an admin of scope all past (to an answer, or to a 404 or 422 for the
    # made-up id or missing parameters).
    admin = {"Authorization": f"Bearer {fleet.admin_token}"}
    assert fleet.http.get(url, headers=admin).status_code in (200, 404, 422)


def test_health_stays_open(fleet: Fleet) -> None:
    for path in ("/healthz", "/readyz", "/signin"):
        assert fleet.http.get(path).status_code == 200, path


def test_viewers_and_narrow_admins_cannot_read_the_audit_log(fleet: Fleet) -> None:
    collector = fleet.collector
    url = "/api/v1/audit"
    for token in (
        collector.user_token("viewer"),
        collector.user_token("admin", Scope.school(fleet.school)),
    ):
        response = fleet.http.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403, response.text
        assert response.json() == {"detail": NOT_ALLOWED}
    admin = {"Authorization": f"Bearer {collector.user_token('admin')}"}
    assert fleet.http.get(url, headers=admin).status_code == 200


def test_revoked_and_expired_tokens_are_refused(fleet: Fleet) -> None:
    collector = fleet.collector
    url = "/me"
    revoked = collector.user_token("viewer", name="leaver@test.example")
    expired = collector.user_token("viewer", name="lapsed@test.example")
    assert fleet.http.get(url, headers={"Authorization": f"Bearer {revoked}"}).status_code == 200
    with collector.sessions() as session:
        revoke_user(session=session, name="leaver@test.example")
        lapsed = user_by_name(session=session, name="lapsed@test.example")
        for token in session.query(ApiToken).filter(ApiToken.user_id == lapsed.id):
            token.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.commit()
    for token in (revoked, expired):
        assert fleet.http.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def _district(collector: RunningCollector, name: str, state: str, schools: list[str]) -> list[int]:
    with collector.sessions() as session:
        district = District(name=name, state=state)
        session.add(district)
        session.flush()
        rows = [School(name=s, students=300, staff=30, district_id=district.id) for s in schools]
        session.add_all(rows)
        session.commit()
        return [district.id, *(r.id for r in rows)]


def test_a_scope_sees_its_own_schools_and_agents_only(
    collector_any_db: RunningCollector,
) -> None:
    collector = collector_any_db
    austin, lamar, ross = _district(collector, "Austin ISD", "TX", ["Lamar", "Ross"])
    _, east = _district(collector, "Denver PS", "CO", ["East"])
    collector.enroll(lamar, name="pi-lamar")
    collector.enroll(east, name="pi-east")
    local = {"Authorization": f"Bearer {collector.user_token('admin', Scope.district(austin))}"}
    texas = {"Authorization": f"Bearer {collector.user_token('viewer', Scope.of_state('TX'))}"}
    one = {"Authorization": f"Bearer {collector.user_token('viewer', Scope.school(ross))}"}
    http = httpx.Client(base_url=collector.url)

    def names(headers: dict[str, str]) -> list[str]:
        response = http.get("/api/v1/schools", headers=headers)
        assert response.status_code == 200, response.text
        return [s["name"] for s in response.json()]

    assert names(local) == ["Lamar", "Ross"] == names(texas)
    assert names(one) == ["Ross"]
    assert names(collector.reader) == ["Lamar", "Ross", "East"]

    # Another district's school is as unknown as one that does not exist: no id leaks.
    own = http.get(f"/api/v1/schools/{lamar}/readiness", headers=local)
    assert own.status_code == 200, own.text
    for school in (east, 999_999):
        other = http.get(f"/api/v1/schools/{school}/readiness", headers=local)
        assert (other.status_code, other.json()) == (404, {"detail": UNKNOWN_SCHOOL})
    assert http.get(f"/api/v1/schools/{lamar}/readiness", headers=one).status_code == 404

    def agents(headers: dict[str, str], **params: int) -> list[str]:
        response = http.get("/api/v1/agents", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [a["name"] for a in response.json()]

    assert agents(local) == ["pi-lamar"]
    assert agents(local, school_id=east) == []
    assert agents(one) == []
    assert agents(collector.reader) == ["pi-east", "pi-lamar"]

    # /metrics is one page over every school: scope all only.
    for headers in (local, texas):
        for path in ("/metrics", f"/metrics?district={austin}", "/api/v1/metrics/targets"):
            response = http.get(path, headers=headers)
            assert (response.status_code, response.json()) == (403, {"detail": SCRAPE_SCOPE})
    me = http.get("/me", headers=local).json()
    assert me["role"] == "admin" and me["scope"]["kind"] == "district"
    assert me["scope"]["district_id"] == austin and me["via"] == "token:test"
    http.close()


def test_token_use_is_recorded_once_a_minute(fleet: Fleet) -> None:
    collector = fleet.collector
    token = collector.user_token("viewer", name="counted@test.example")
    headers = {"Authorization": f"Bearer {token}"}
    assert fleet.http.get("/me", headers=headers).status_code == 200
    with collector.sessions() as session:
        user = user_by_name(session=session, name="counted@test.example")
        (row,) = session.query(ApiToken).filter(ApiToken.user_id == user.id)
        first = row.last_used_at
    assert first is not None
    assert fleet.http.get("/me", headers=headers).status_code == 200
    with collector.sessions() as session:
        (row,) = session.query(ApiToken).filter(ApiToken.user_id == user.id)
        assert row.last_used_at == first  # a read stays a read
