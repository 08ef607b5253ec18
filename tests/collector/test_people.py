"""Users, their API tokens and passwords, and what their scope lets them see (both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.store.db import make_engine, make_session_factory
from collector.store.migrate import upgrade_to_head
from collector.store.models import District, School
from collector.store.people import (
    Scope,
    create_api_token,
    create_user,
    hash_password,
    principal_for_token,
    revoke_api_token,
    revoke_user,
    sees_school,
    verify_password,
    visible_schools,
)
from collector.store.queries import DuplicateName


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def _district(session: Session, name: str, state: str) -> int:
    district = District(name=name, state=state)
    session.add(district)
    session.flush()
    return district.id


def _school(session: Session, name: str, district_id: int | None) -> int:
    school = School(name=name, students=100, staff=10, district_id=district_id)
    session.add(school)
    session.flush()
    return school.id


def test_scopes_see_their_schools_only(session: Session) -> None:
    austin = _district(session, "Austin ISD", "TX")
    dallas = _district(session, "Dallas ISD", "TX")
    denver = _district(session, "Denver PS", "CO")
    schools = {
        "lamar": _school(session, "Lamar", austin),
        "ross": _school(session, "Ross", dallas),
        "east": _school(session, "East", denver),
        "lone": _school(session, "Lone", None),
    }
    session.commit()

    def seen(scope: Scope) -> set[str]:
        ids = set(session.scalars(select(School.id).where(visible_schools(scope))))
        return {name for name, school_id in schools.items() if school_id in ids}

    assert seen(Scope.everything()) == {"lamar", "ross", "east", "lone"}
    assert seen(Scope.of_state("tx")) == {"lamar", "ross"}
    assert seen(Scope.district(austin)) == {"lamar"}
    assert seen(Scope.school(schools["east"])) == {"east"}
    assert sees_school(session=session, scope=Scope.district(dallas), school_id=schools["ross"])
    assert not sees_school(
        session=session, scope=Scope.district(dallas), school_id=schools["lamar"]
    )


def test_api_tokens(session: Session) -> None:
    district = _district(session, "Austin ISD", "TX")
    session.commit()
    create_user(
        session=session, name="it@austin.example", role="admin", scope=Scope.district(district)
    )
    token = create_api_token(session=session, user_name="it@austin.example", name="laptop")
    assert token.startswith("rnu_") and len(token) > 40
    principal = principal_for_token(session=session, token=token)
    assert principal is not None
    assert (principal.name, principal.role, principal.scope) == (
        "it@austin.example",
        "admin",
        Scope("district", district_id=district),
    )
    assert principal.actor == "user:it@austin.example (token:laptop)"
    assert principal_for_token(session=session, token="rnu_nope") is None
    assert principal_for_token(session=session, token=token[4:]) is None

    expiring = create_api_token(
        session=session,
        user_name="it@austin.example",
        name="ci",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    later = datetime.now(UTC) + timedelta(hours=2)
    assert principal_for_token(session=session, token=expiring, now=later) is None
    assert principal_for_token(session=session, token=expiring) is not None

    assert revoke_api_token(session=session, user_name="it@austin.example", name="laptop") == 1
    assert principal_for_token(session=session, token=token) is None
    revoke_user(session=session, name="it@austin.example")
    assert principal_for_token(session=session, token=expiring) is None

    with pytest.raises(DuplicateName):
        create_user(
            session=session, name="it@austin.example", role="viewer", scope=Scope.everything()
        )
    with pytest.raises(LookupError, match="no district with id 999"):
        create_user(session=session, name="x", role="viewer", scope=Scope.district(999))


def test_passwords() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("scrypt$32768$8$1$")
    assert verify_password("correct horse battery staple", stored)
    assert not verify_password("correct horse battery stapl", stored)
    assert not verify_password("x", None)
    assert not verify_password("x", "scrypt$broken")
    assert hash_password("same") != hash_password("same")  # salted
