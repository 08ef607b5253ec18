"""Glue between the store and the pure evaluation: readiness of a stored school."""

from __future__ import annotations

from sqlalchemy.orm import Session

from collector.readiness.evaluate import Readiness, SchoolFacts, evaluate_school
from collector.readiness.targets import TargetProfile
from collector.store.models import School
from collector.store.queries import successful_throughput


def school_readiness(*, session: Session, school: School, profile: TargetProfile) -> Readiness:
    tests = successful_throughput(session=session, school_id=school.id)
    return evaluate_school(
        school=SchoolFacts(
            school_id=school.id, name=school.name, students=school.students, staff=school.staff
        ),
        downloads_bps=[t.download_bps for t in tests if t.download_bps is not None],
        paths=[t.path for t in tests],
        profile=profile,
    )
