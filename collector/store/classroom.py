"""Data functions for classroom codes: issue, list, revoke, and look one up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from collector.classroom_codes import new_code
from collector.store.models import ClassroomCode, School
from collector.store.queries import UnknownSchool

# A fresh code colliding with an existing one is a one-in-billions event; twice in a row is a bug.
_ISSUE_ATTEMPTS = 3


class UnknownCode(LookupError):
    """No classroom code is that one."""


def issue_classroom_code(*, session: Session, school_id: int) -> ClassroomCode:
    """A new active code for the school; the school's other codes stay as they are."""
    if session.get(School, school_id) is None:
        raise UnknownSchool(f"no school with id {school_id}")
    for attempt in range(_ISSUE_ATTEMPTS):
        code = ClassroomCode(school_id=school_id, code=new_code())
        session.add(code)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            if attempt == _ISSUE_ATTEMPTS - 1:
                raise
            continue
        return code
    raise AssertionError("unreachable")


def list_classroom_codes(
    *, session: Session, school_id: int | None = None
) -> Sequence[ClassroomCode]:
    query = select(ClassroomCode).order_by(ClassroomCode.id)
    if school_id is not None:
        query = query.where(ClassroomCode.school_id == school_id)
    return session.scalars(query).all()


def revoke_classroom_code(*, session: Session, code: str) -> tuple[ClassroomCode, bool]:
    """Revoke `code` (canonical form); returns it and whether it was active until now."""
    row = session.scalar(select(ClassroomCode).where(ClassroomCode.code == code))
    if row is None:
        raise UnknownCode("no such classroom code")
    if row.revoked_at is not None:
        return row, False
    row.revoked_at = datetime.now(UTC)
    session.commit()
    return row, True


def school_for_code(*, session: Session, code: str) -> int | None:
    """The school an active `code` (canonical form) records for; None if unknown or revoked."""
    return session.scalar(
        select(ClassroomCode.school_id).where(
            ClassroomCode.code == code, ClassroomCode.revoked_at.is_(None)
        )
    )
