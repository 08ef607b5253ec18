"""POST /api/v1/results against a real uvicorn: storing, idempotency and bad input."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from agent.wire import Batch, InterfaceCounters, SnmpPoll, ThroughputTest
from collector.api import errors
from collector.api.limits import MAX_BODY_HEADER
from collector.api.post_rate import PostRate
from collector.settings import CollectorSettings
from collector.store.interface_rows import unpack_interfaces
from collector.store.models import InterfaceSample, Measurement, PollInterfaces
from tests.fixtures.collector import RunningCollector, StartCollector

DEFAULT_MAX_BATCH_BYTES = CollectorSettings.model_fields["max_batch_bytes"].default


def _batch() -> Batch:
    return Batch(
        measurements=[
            ThroughputTest(path="onnet", server="http://127.0.0.1", download_bps=5e8),
            SnmpPoll(
                device="core",
                address="127.0.0.1:161",
                sys_uptime_ticks=100,
                interfaces=[
                    InterfaceCounters(
                        ifindex=1, name="ge-0/0/0", octets_in=2**64 - 1, speed_mbps=1000
                    ),
                    InterfaceCounters(
                        ifindex=2, name="ge-0/0/1", octets_in=2**63, speed_mbps=1000, role="wan"
                    ),
                ],
            ),
        ]
    )


def _post(collector: RunningCollector, body: str | bytes, token: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{collector.url}/api/v1/results", content=body, headers=headers)


def _stored(collector: RunningCollector) -> int:
    with collector.sessions() as session:
        return session.scalar(select(func.count()).select_from(Measurement)) or 0


def test_batch_is_stored_once_when_posted_twice(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    batch = _batch()
    first = _post(collector, batch.model_dump_json(), token)
    second = _post(collector, batch.model_dump_json(), token)
    ids = [str(m.id) for m in batch.measurements]
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": ids, "duplicates": []}
    assert second.json() == {"accepted": [], "duplicates": ids}
    assert _stored(collector) == 2
    with collector.sessions() as session:
        # Counter64 values past 2**63 survive the round trip exactly on both databases, in the
        # poll's packed interfaces and in the uplink's own row.
        packed = unpack_interfaces(session.scalars(select(PollInterfaces.rows)).one())
        assert [i.octets_in for i in packed] == [2**64 - 1, 2**63]
        uplink = session.execute(select(InterfaceSample.seq, InterfaceSample.octets_in)).one()
        assert tuple(uplink) == (1, 2**63)


def test_interface_rows_as_objects_or_arrays_are_stored_alike(
    collector_any_db: RunningCollector,
) -> None:
    """Agents send an interface row as an array of its fields (wire version 2); rows as
    objects (version 1, agents from before) are read the same."""
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    arrays = json.loads(_batch().model_dump_json())
    assert arrays["wire_version"] == 2
    assert arrays["measurements"][1]["interfaces"][1] == [
        2,
        "ge-0/0/1",
        2**63,
        None,
        None,
        1000,
        None,
        None,
        None,
        None,
        "wan",
    ]
    objects = json.loads(_batch().model_dump_json())
    objects["wire_version"] = 1
    for poll in objects["measurements"][1:]:
        poll["interfaces"] = [
            {k: v for k, v in zip(InterfaceCounters._fields, row, strict=True) if v is not None}
            for row in poll["interfaces"]
        ]
    for body in (arrays, objects):
        answer = _post(collector, json.dumps(body), token)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["accepted"]) == 2
    with collector.sessions() as session:
        packed = session.scalars(select(PollInterfaces.rows).order_by(PollInterfaces.poll_id))
        first, second = (unpack_interfaces(rows) for rows in packed)
        [poll] = [m for m in _batch().measurements if isinstance(m, SnmpPoll)]
        assert first == second == poll.interfaces
        assert session.scalars(select(InterfaceSample.role)).all() == ["wan", "wan"]


def test_partly_known_batch_stores_only_the_new_ids(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    old = ThroughputTest(path="onnet", server="x", download_bps=1.0)
    new = ThroughputTest(path="onnet", server="x", download_bps=2.0)
    _post(collector, Batch(measurements=[old]).model_dump_json(), token)
    answer = _post(collector, Batch(measurements=[old, new]).model_dump_json(), token).json()
    assert answer == {"accepted": [str(new.id)], "duplicates": [str(old.id)]}
    assert _stored(collector) == 2


def _with(**changes: object) -> str:
    body = json.loads(_batch().model_dump_json())
    body.update(changes)
    return json.dumps(body)


def _with_measurement(**changes: object) -> str:
    body = json.loads(_batch().model_dump_json())
    body["measurements"][0].update(changes)
    return json.dumps(body)


@pytest.mark.parametrize(
    ("body", "status", "detail", "names"),
    [
        pytest.param('{"measurements": [', 400, errors.MALFORMED_JSON, None, id="truncated-json"),
        pytest.param(b"\xff\xfe", 400, errors.MALFORMED_JSON, None, id="not-utf8"),
        pytest.param(_with(color="red"), 422, errors.INVALID_PAYLOAD, "color", id="unknown-field"),
        pytest.param(
            _with_measurement(speed="fast"),
            422,
            errors.INVALID_PAYLOAD,
            "speed",
            id="unknown-in-item",
        ),
        pytest.param(
            _with(wire_version=3), 422, errors.INVALID_PAYLOAD, "wire_version", id="version"
        ),
        pytest.param(
            _with(measurements=[]), 422, errors.INVALID_PAYLOAD, "measurements", id="empty"
        ),
        pytest.param(
            _with_measurement(kind="teleport"),
            422,
            errors.INVALID_PAYLOAD,
            "measurements",
            id="kind",
        ),
        pytest.param(
            _with_measurement(measured_at="2026-01-01T00:00:00"),
            422,
            errors.INVALID_PAYLOAD,
            "measured_at",
            id="naive-time",
        ),
        pytest.param(
            _with_measurement(download_bps=-1),
            422,
            errors.INVALID_PAYLOAD,
            "download_bps",
            id="negative",
        ),
        pytest.param("[]", 422, errors.INVALID_PAYLOAD, None, id="not-an-object"),
    ],
)
def test_bad_payload_gets_a_fixed_4xx_and_stores_nothing(
    collector: RunningCollector, body: str | bytes, status: int, detail: str, names: str | None
) -> None:
    token = collector.enroll(collector.add_school())
    response = _post(collector, body, token)
    assert response.status_code == status, response.text
    assert response.json()["detail"] == detail
    if names is not None:
        assert names in json.dumps(response.json()["errors"])
    assert _stored(collector) == 0


def test_repeated_id_inside_one_batch_is_stored_once(collector: RunningCollector) -> None:
    """The same result twice in one batch is a retry inside the batch, not an error."""
    token = collector.enroll(collector.add_school())
    body = json.loads(_batch().model_dump_json())
    body["measurements"][1] = body["measurements"][0]
    response = _post(collector, json.dumps(body), token)
    the_id = body["measurements"][0]["id"]
    assert response.json() == {"accepted": [the_id], "duplicates": [the_id]}
    assert _stored(collector) == 1


@pytest.mark.parametrize("token", [None, "not-a-real-token", "Basic-looking value"])
def test_wrong_or_missing_token_is_refused(collector: RunningCollector, token: str | None) -> None:
    collector.enroll(collector.add_school())
    response = _post(collector, _batch().model_dump_json(), token)
    assert response.status_code == 401
    assert response.json() == {"detail": errors.BAD_TOKEN}
    assert response.headers["www-authenticate"] == "Bearer"
    assert _stored(collector) == 0


def test_other_auth_scheme_is_refused(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    response = httpx.post(
        f"{collector.url}/api/v1/results",
        content=_batch().model_dump_json(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()["detail"]) == (401, errors.BAD_TOKEN)


def test_oversized_body_is_refused_before_reading(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    response = _post(collector, b"{" + b" " * 9_000_000 + b"}", token)
    assert (response.status_code, response.json()["detail"]) == (413, errors.BODY_TOO_LARGE)


def test_oversized_chunked_body_is_cut_off(collector: RunningCollector) -> None:
    """No Content-Length to judge by: the body is counted as it arrives."""
    token = collector.enroll(collector.add_school())

    def chunks() -> Iterator[bytes]:
        yield b'{"measurements": ['
        for _ in range(100):
            yield b" " * 100_000

    response = httpx.post(
        f"{collector.url}/api/v1/results",
        content=chunks(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()["detail"]) == (413, errors.BODY_TOO_LARGE)
    assert _stored(collector) == 0


def test_large_onnet_upload_is_not_limited(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    response = httpx.post(
        f"{collector.url}/api/v1/speedtest/upload",
        content=b"x" * 20_000_000,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.json() == {"bytes": 20_000_000}


def test_readiness_of_unknown_school_is_404(collector: RunningCollector) -> None:
    response = httpx.get(f"{collector.url}/api/v1/schools/999/readiness", headers=collector.reader)
    assert (response.status_code, response.json()) == (404, {"detail": errors.UNKNOWN_SCHOOL})


def test_measurement_ids_from_agents_are_kept(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    chosen = uuid.UUID("00000000-0000-4000-8000-000000000001")
    batch = Batch(measurements=[ThroughputTest(id=chosen, path="onnet", server="x")])
    assert _post(collector, batch.model_dump_json(), token).json()["accepted"] == [str(chosen)]


def test_same_batch_posted_concurrently_is_stored_once(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    body = Batch(
        measurements=[ThroughputTest(path="onnet", server="x", download_bps=1.0) for _ in range(50)]
    ).model_dump_json()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: _post(collector, body, token), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    accepted = sum(len(a.json()["accepted"]) for a in answers)
    duplicates = sum(len(a.json()["duplicates"]) for a in answers)
    assert (accepted, duplicates) == (50, 350)
    assert _stored(collector) == 50


def test_an_agents_posts_are_limited_per_minute_when_set(start_collector: StartCollector) -> None:
    collector = start_collector(agent_posts_per_minute=3)
    school = collector.add_school()
    token, other = collector.enroll(school), collector.enroll(school)
    for _ in range(3):  # a backlog's batches back to back: the minute's allowance at once
        assert _post(collector, _batch().model_dump_json(), token).status_code == 200
    refused = _post(collector, _batch().model_dump_json(), token)
    assert refused.status_code == 429
    assert refused.json() == {"detail": errors.AGENT_POSTS}
    # One post back every 20 seconds; the body limit is named on this answer too.
    assert 19 <= int(refused.headers["Retry-After"]) <= 20
    assert refused.headers[MAX_BODY_HEADER] == str(DEFAULT_MAX_BATCH_BYTES)
    # Before the token: an unknown agent is 401, not counted against anyone.
    assert _post(collector, _batch().model_dump_json(), "no-such-token").status_code == 401
    # Another agent, of the same school, is not held back.
    assert _post(collector, _batch().model_dump_json(), other).status_code == 200
    assert _stored(collector) == 2 * 4


def test_agents_posts_are_not_limited_by_default(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    for _ in range(100):
        assert _post(collector, _batch().model_dump_json(), token).status_code == 200


def test_the_per_minute_rate_refills_evenly() -> None:
    rate = PostRate(per_minute=2)
    assert rate.take(7, now=0.0) == 0.0
    assert rate.take(7, now=0.0) == 0.0
    assert rate.take(7, now=0.0) == pytest.approx(30)
    assert rate.take(7, now=30.0) == 0.0
    with pytest.raises(ValueError):
        PostRate()
    with pytest.raises(ValueError):
        PostRate(per_hour=1, per_minute=1)
