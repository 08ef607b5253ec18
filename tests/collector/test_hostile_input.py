"""Valid-looking input that used to crash the store: every case is a 4xx naming the field, on
both databases, and whatever passes validation is stored identically on both."""

from __future__ import annotations

import gzip
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from agent.wire import (
    INT31_MAX,
    INT63_MAX,
    UINT32_MAX,
    UINT64_MAX,
    Batch,
    InterfaceCounters,
    SnmpPoll,
    ThroughputTest,
)
from collector.api import errors
from collector.store.interface_rows import unpack_interfaces
from collector.store.models import (
    Device,
    Measurement,
    PollInterfaces,
    SnmpPollResult,
    ThroughputResult,
)
from tests.fixtures.collector import RunningCollector


def _body() -> dict[str, Any]:
    batch = Batch(
        measurements=[
            ThroughputTest(path="onnet", server="http://127.0.0.1", download_bps=5e8),
            SnmpPoll(
                device="core",
                address="127.0.0.1:161",
                sys_uptime_ticks=100,
                interfaces=[InterfaceCounters(ifindex=1, name="ge-0/0/0", octets_in=5)],
            ),
        ]
    )
    body: dict[str, Any] = json.loads(batch.model_dump_json())
    return body


def _throughput(**changes: Any) -> str:
    body = _body()
    body["measurements"][0].update(changes)
    return json.dumps(body)


def _poll(**changes: Any) -> str:
    body = _body()
    body["measurements"][1].update(changes)
    return json.dumps(body)


def _interface(**changes: Any) -> str:
    """The poll's interface row (an array on the wire) with fields changed by name."""
    body = _body()
    row = body["measurements"][1]["interfaces"][0]
    for name, value in changes.items():
        row[InterfaceCounters._fields.index(name)] = value
    return json.dumps(body)


def _interface_object(**changes: Any) -> str:
    """The same row as wire version 1 sent it, an object, with fields changed or added."""
    body = _body()
    body["wire_version"] = 1
    row = body["measurements"][1]["interfaces"][0]
    body["measurements"][1]["interfaces"][0] = (
        dict(zip(InterfaceCounters._fields, row, strict=False)) | changes
    )
    return json.dumps(body)


def _batch(**changes: Any) -> str:
    body = _body()
    body.update(changes)
    return json.dumps(body)


def _when(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


# (body, the field the 422 must name). Each of these gave a 500 on PostgreSQL, or was stored
# on SQLite only, or (Infinity) made readiness say "meets".
REFUSED = [
    pytest.param(_interface(ifindex=2**63), "ifindex", id="ifindex-2^63"),
    pytest.param(_interface(ifindex=INT31_MAX + 1), "ifindex", id="ifindex-over-int32"),
    pytest.param(_interface(speed_mbps=2**63), "speed_mbps", id="speed-2^63"),
    pytest.param(_interface(octets_in=2**64), "octets_in", id="octets-2^64"),
    pytest.param(_interface(octets_out=-1), "octets_out", id="octets-negative"),
    pytest.param(_poll(sys_uptime_ticks=2**63), "sys_uptime_ticks", id="uptime-2^63"),
    pytest.param(_throughput(download_bytes=2**63), "download_bytes", id="bytes-2^63"),
    pytest.param(_throughput(download_bps=1e309), "download_bps", id="rate-1e309"),
    pytest.param(_throughput(upload_bps=1e13), "upload_bps", id="rate-over-1Tbps"),
    pytest.param(_throughput(latency_ms=-0.5), "latency_ms", id="latency-negative"),
    pytest.param(_throughput(server="s" * 301), "server", id="server-too-long"),
    pytest.param(_throughput(server="a\x00b"), "server", id="server-nul"),
    pytest.param(_poll(device="d" * 65), "device", id="device-too-long"),
    pytest.param(_poll(device="co\x00re"), "device", id="device-nul"),
    pytest.param(_poll(device=""), "device", id="device-empty"),
    pytest.param(_interface(name="i" * 201), "name", id="ifname-too-long"),
    pytest.param(_interface(name="Gi\x000/1"), "name", id="ifname-nul"),
    pytest.param(_batch(agent_version="v" * 41), "agent_version", id="version-too-long"),
    pytest.param(_batch(agent_version="1\x00"), "agent_version", id="version-nul"),
    pytest.param(_throughput(error="e" * 1001), "error", id="error-too-long"),
    pytest.param(
        _throughput(measured_at="0001-01-01T00:00:00+01:00"), "measured_at", id="year-0-in-utc"
    ),
    pytest.param(
        _throughput(measured_at="9999-12-31T23:59:59-01:00"), "measured_at", id="year-10000"
    ),
    pytest.param(_throughput(measured_at="1999-12-31T23:59:59Z"), "measured_at", id="before-2000"),
    pytest.param(_throughput(measured_at=_when(timedelta(hours=2))), "measured_at", id="future"),
    pytest.param(_batch(sent_at="9999-01-01T00:00:00Z"), "sent_at", id="sent-far-future"),
    pytest.param(_interface(speed_mbps=False), "speed_mbps", id="bool-as-int"),
    pytest.param(_interface(ifindex="7"), "ifindex", id="string-as-int"),
    pytest.param(_interface(role="uplink"), "role", id="unknown-role"),
    pytest.param(_interface_object(octets_in=2**64), "octets_in", id="v1-object-octets-2^64"),
    pytest.param(_interface_object(colour="red"), "colour", id="v1-object-unknown-field"),
    pytest.param(_throughput(download_bps="5e8"), "download_bps", id="string-as-float"),
    pytest.param(_throughput(streams=1.5), "streams", id="fraction-as-int"),
]


def _post(collector: RunningCollector, body: str | bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{collector.url}/api/v1/results",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )


def _count(collector: RunningCollector, model: type[Any]) -> int:
    with collector.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize(("body", "field"), REFUSED)
def test_out_of_range_input_is_a_422_naming_the_field(
    collector_any_db: RunningCollector, body: str, field: str
) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    response = _post(collector, body, Authorization=f"Bearer {token}")
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["detail"] == errors.INVALID_PAYLOAD
    assert any(problem["loc"][-1] == field for problem in answer["errors"]), answer
    # Interface rows are validated as arrays or else as objects: one form's errors, untagged.
    assert not any({"arrays", "objects"} & set(p["loc"]) for p in answer["errors"]), answer
    assert _count(collector, Measurement) == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_throughput(server="__SURROGATE__"), id="lone-surrogate"),
        pytest.param("[" * 10_000 + "]" * 10_000, id="deep-nesting"),
        pytest.param(gzip.compress(_batch().encode()), id="gzip-without-header"),
    ],
)
def test_input_that_is_not_json_is_a_400(collector_any_db: RunningCollector, body: str) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    if isinstance(body, str):
        body = body.replace('"__SURROGATE__"', '"\\ud800"')
    response = _post(collector, body, Authorization=f"Bearer {token}")
    assert (response.status_code, response.json()) == (400, {"detail": errors.MALFORMED_JSON})
    assert _count(collector, Measurement) == 0


@pytest.mark.parametrize("token", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_json_numbers_are_refused(collector: RunningCollector, token: str) -> None:
    """Once accepted, "Infinity" made readiness say "meets" with a median of inf Mbps."""
    bearer = collector.enroll(collector.add_school())
    body = _throughput(download_bps="__X__").replace('"__X__"', token)
    response = _post(collector, body, Authorization=f"Bearer {bearer}")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][-1] == "download_bps"
    assert _count(collector, Measurement) == 0


def test_compressed_body_is_a_415(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    response = _post(
        collector,
        gzip.compress(_batch().encode()),
        Authorization=f"Bearer {token}",
        **{"Content-Encoding": "gzip"},
    )
    assert (response.status_code, response.json()) == (
        415,
        {"detail": errors.UNSUPPORTED_ENCODING},
    )


def test_edge_values_are_stored_identically_on_both_databases(
    collector_any_db: RunningCollector,
) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    wide = "Ä€🎓" * 100  # 300 characters, many bytes each
    batch = Batch(
        agent_version="v" * 40,
        measurements=[
            ThroughputTest(
                path="internet",
                server=wide,
                download_bps=1e12,
                download_bytes=INT63_MAX,
                measured_at=datetime(2000, 1, 1, tzinfo=UTC),
            ),
            SnmpPoll(
                device="d" * 64,
                address="a" * 300,
                sys_uptime_ticks=UINT32_MAX,
                interfaces=[
                    InterfaceCounters(
                        ifindex=INT31_MAX,
                        name="i" * 200,
                        octets_in=UINT64_MAX,
                        octets_out=2**63,
                        speed_mbps=UINT32_MAX,
                    ),
                    InterfaceCounters(ifindex=0, name="", octets_in=0, octets_out=2**63 - 1),
                ],
            ),
        ],
    )
    response = _post(collector, batch.model_dump_json(), Authorization=f"Bearer {token}")
    assert response.status_code == 200, response.text
    with collector.sessions() as session:
        test = session.scalars(select(ThroughputResult)).one()
        assert (test.server, test.download_bps, test.download_bytes) == (wide, 1e12, INT63_MAX)
        poll = session.scalars(select(SnmpPollResult)).one()
        assert (poll.address, poll.sys_uptime_ticks) == ("a" * 300, UINT32_MAX)
        assert session.scalars(select(Device.name)).one() == "d" * 64
        rows = unpack_interfaces(session.scalars(select(PollInterfaces.rows)).one())
        assert [(r.ifindex, r.name, r.octets_in, r.octets_out, r.speed_mbps) for r in rows] == [
            (INT31_MAX, "i" * 200, UINT64_MAX, 2**63, UINT32_MAX),
            (0, "", 0, 2**63 - 1, None),
        ]


def test_token_is_checked_before_the_body_is_read(collector: RunningCollector) -> None:
    """A request that announces 5 MB and sends none of it is refused at once without a token."""
    host, port = "127.0.0.1", collector.server.port
    head = (
        f"POST /api/v1/results HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "Content-Length: 5000000\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(head.encode())
        answer = ""
        while errors.BAD_TOKEN not in answer and (chunk := sock.recv(65536)):
            answer += chunk.decode()
    assert answer.startswith("HTTP/1.1 401 "), answer
    assert errors.BAD_TOKEN in answer


def test_malformed_json_without_a_token_is_a_401(collector: RunningCollector) -> None:
    response = _post(collector, '{"measurements": [')
    assert (response.status_code, response.json()) == (401, {"detail": errors.BAD_TOKEN})


def test_big_posts_without_a_token_do_not_hold_up_the_collector(
    collector: RunningCollector,
) -> None:
    """Before: 8 unauthenticated 7.8 MB posts were read in full and held /healthz for 2.4 s."""
    body = b'{"measurements": [' + b" " * 7_800_000 + b"]}"

    def post() -> int:
        return _post(collector, body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = [pool.submit(post) for _ in range(8)]
        started = time.monotonic()
        health = httpx.get(f"{collector.url}/healthz", timeout=5)
        elapsed = time.monotonic() - started
        statuses = [a.result() for a in answers]
    assert health.status_code == 200
    assert elapsed < 1.0
    assert statuses == [401] * 8
