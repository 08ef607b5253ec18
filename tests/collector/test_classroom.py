"""Classroom codes (CLI), the LibreSpeed endpoints and the classroom result route, against a
real collector on 127.0.0.1.

Sizes, headers and shapes follow LibreSpeed's PHP backend; limits are the agents' rules applied
per school; results are stored through the agents' ingest path with no agent, on SQLite and
PostgreSQL. Budgets, windows and cache times are shrunk through settings to keep each test short.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from collector import cli
from collector.api import errors
from collector.api.post_rate import PostRate
from collector.api.routes.librespeed import describe_address
from collector.classroom_codes import ALPHABET, new_code, normalise, redact
from collector.store.classroom import issue_classroom_code, revoke_classroom_code
from collector.store.models import Agent, ClassroomCode, Measurement, ThroughputResult
from tests.fixtures.collector import RunningCollector, StartCollector

MiB = 1 << 20
LOOPBACK = "127.0.0.1"


def _issue(collector: RunningCollector, school_id: int) -> str:
    with collector.sessions() as session:
        return issue_classroom_code(session=session, school_id=school_id).code


def _revoke(collector: RunningCollector, code: str) -> None:
    with collector.sessions() as session:
        revoke_classroom_code(session=session, code=code)


def _libre(collector: RunningCollector, code: str, name: str) -> str:
    return f"{collector.url}/librespeed/{code}/{name}"


def _assert_no_store(response: httpx.Response) -> None:
    assert "no-store" in response.headers["cache-control"]
    assert response.headers["pragma"] == "no-cache"


# ---- codes ---------------------------------------------------------------------------------


def test_new_codes_are_grouped_symbols_of_the_alphabet() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert len(code) == 9 and code[4] == "-"
        assert set(code.replace("-", "")) <= set(ALPHABET)
    # Every symbol turns up: the draw covers the whole alphabet.
    assert set("".join(codes).replace("-", "")) == set(ALPHABET)


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("7KX4-M2QD", "7KX4-M2QD"),
        ("7kx4m2qd", "7KX4-M2QD"),
        (" 7kx4 - m2qd\t", "7KX4-M2QD"),
        ("7KX4-M2Q", None),  # too short
        ("7KX4-M2QDD", None),  # too long
        ("7KX4-M2QO", None),  # O is not a code symbol (nor 0, 1, I, L, U)
        ("7KX4_M2QD", None),
        ("Ⅶ" * 8, None),
        ("7" * 33, None),
        ("", None),
    ],
)
def test_typed_codes_are_normalised(typed: str, canonical: str | None) -> None:
    assert normalise(typed) == canonical


def test_redact_masks_codes_in_request_lines() -> None:
    assert redact("GET /librespeed/7KX4-M2QD/garbage.php?ckSize=4") == (
        "GET /librespeed/***/garbage.php?ckSize=4"
    )
    assert redact("/classroom?room=114&code=7kx4%20m2qd&duration_s=2") == (
        "/classroom?room=114&code=***&duration_s=2"
    )
    assert redact("/classroom?CODE=7KX4-M2QD") == "/classroom?CODE=***"


def _cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, *args: str
) -> tuple[int, str, str]:
    """`readynet-collector ARGS` in this process (its `main`), on the database at `url`."""
    monkeypatch.setenv("READYNET_COLLECTOR_DATABASE_URL", url)
    monkeypatch.setenv("READYNET_COLLECTOR_PUBLIC_URL", "https://readynet.example.org/")
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_classroom_code_commands(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _cli
    assert run(monkeypatch, capsys, database_url, "migrate")[0] == 0
    assert run(monkeypatch, capsys, database_url, *_school("Adams"))[0] == 0
    assert run(monkeypatch, capsys, database_url, *_school("Baker"))[0] == 0

    status, out, err = run(monkeypatch, capsys, database_url, "classroom", "code", "--school", "1")
    assert status == 0, err
    code, url = out.splitlines()
    assert normalise(code) == code
    assert url == f"https://readynet.example.org/classroom?code={code}"
    assert err == "issued classroom code (id 1) for school 1\n"
    other = run(monkeypatch, capsys, database_url, "classroom", "code", "--school", "2")[1]
    other_code = other.splitlines()[0]

    # Bad input: exit 2, one line naming the option, nothing written.
    for args, expected in [
        (("code", "--school", "9"), "error: school: no school with id 9\n"),
        (("code", "--school", "1.5"), "error: school: must be a whole number\n"),
        (("code", "--school", "0"), "error: school: must be at least 1\n"),
        (("list", "--school", "x"), "error: school: must be a whole number\n"),
        (("revoke", "--code", "2222-222O"), "error: code: must be 8 symbols from "),
        (("revoke", "--code", "2222-2222"), "error: code: no such classroom code\n"),
    ]:
        status, out, err = run(monkeypatch, capsys, database_url, "classroom", *args)
        assert (status, out) == (cli.EXIT_USAGE, ""), (args, err)
        assert err.startswith(expected) and err.count("\n") == 1, (args, err)
        assert "222O" not in err  # a mistyped code is not repeated

    listed = run(monkeypatch, capsys, database_url, "classroom", "list")[1].splitlines()
    assert [[*line.split("\t")[1:3], line.split("\t")[4]] for line in listed] == [
        [code, "school=1", "active"],
        [other_code, "school=2", "active"],
    ]

    # Typed the way a person reads it out: lower case, a space for the dash.
    typed = code.lower().replace("-", " ")
    status, out, err = run(
        monkeypatch, capsys, database_url, "classroom", "revoke", "--code", typed
    )
    assert (status, out, err) == (0, f"revoked classroom code {code} of school 1\n", "")
    status, out, err = run(monkeypatch, capsys, database_url, "classroom", "revoke", "--code", code)
    assert (status, err) == (0, "it had been revoked already\n")

    listed = run(monkeypatch, capsys, database_url, "classroom", "list", "--school", "1")[1]
    (line,) = listed.splitlines()
    assert line.split("\t")[1] == code and line.split("\t")[4].startswith("revoked=20")


def _school(name: str) -> list[str]:
    return ["school", "add", "--name", name, "--students", "400", "--staff", "40"]


# ---- LibreSpeed endpoints ------------------------------------------------------------------


@pytest.fixture
def classroom(start_collector: StartCollector) -> Iterator[tuple[RunningCollector, str]]:
    """A collector (largest transfer 3 MiB) and an active code of its one school."""
    collector = start_collector(speedtest_max_bytes=3 * MiB)
    yield collector, _issue(collector, collector.add_school())


@pytest.mark.parametrize(
    ("query", "size"),
    [
        ({}, 3 * MiB),  # LibreSpeed's default of 4 chunks, capped at speedtest_max_bytes
        ({"ckSize": "1"}, MiB),
        ({"ckSize": "2", "r": "0.123", "cors": "true"}, 2 * MiB),
        ({"ckSize": "0"}, 3 * MiB),  # 0 means the default, as in LibreSpeed
        ({"ckSize": "100000000000000000000"}, 3 * MiB),
    ],
)
def test_garbage_streams_ck_size_mib_of_incompressible_bytes(
    classroom: tuple[RunningCollector, str], query: dict[str, str], size: int
) -> None:
    collector, code = classroom
    response = httpx.get(_libre(collector, code, "garbage.php"), params=query, timeout=30)
    assert response.status_code == 200, response.text
    assert len(response.content) == size
    assert response.headers["content-length"] == str(size)
    assert response.headers["content-type"] == "application/octet-stream"
    _assert_no_store(response)
    assert ("access-control-allow-origin" in response.headers) == ("cors" in query)
    # Random bytes: a compressing middlebox cannot make the link look faster.
    first_mib = response.content[:MiB]
    assert len(zlib.compress(first_mib)) > 0.99 * MiB


@pytest.mark.parametrize("ck_size", ["-1", "abc", "1.5", ""])
def test_garbage_refuses_ck_size_that_is_not_a_whole_number(
    classroom: tuple[RunningCollector, str], ck_size: str
) -> None:
    collector, code = classroom
    response = httpx.get(_libre(collector, code, "garbage.php"), params={"ckSize": ck_size})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "ckSize"]


def test_empty_answers_pings_and_discards_uploads(
    classroom: tuple[RunningCollector, str],
) -> None:
    collector, code = classroom
    url = _libre(collector, code, "empty.php")
    with httpx.Client(timeout=30) as client:
        ping = client.get(url, params={"r": "0.5"})
        assert (ping.status_code, ping.content) == (200, b"")
        _assert_no_store(ping)
        assert "access-control-allow-origin" not in ping.headers

        # LibreSpeed's upload: random bytes, octet-stream, identity encoding; read and dropped.
        body = bytes(range(256)) * (2 * MiB // 256)
        upload = client.post(
            url,
            params={"cors": "true", "r": "0.7"},
            content=body,
            headers={"Content-Type": "application/octet-stream", "Content-Encoding": "identity"},
        )
        assert (upload.status_code, upload.content) == (200, b"")
        assert upload.headers["access-control-allow-origin"] == "*"
        assert upload.headers["access-control-allow-headers"] == "Content-Encoding, Content-Type"

        def chunks() -> Iterator[bytes]:
            yield from (body[i : i + 65536] for i in range(0, MiB, 65536))

        chunked = client.post(url, content=chunks())
        assert (chunked.status_code, chunked.content) == (200, b"")

        # The cross-origin preflight a LibreSpeed upload sends first.
        preflight = client.options(url, params={"cors": "true"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-methods"] == "GET, POST"

        too_large = client.post(url, content=b"x" * (3 * MiB + 1))
        assert too_large.status_code == 413
        assert too_large.json() == {"detail": errors.BODY_TOO_LARGE}


def test_get_ip_answers_librespeeds_json_shape(classroom: tuple[RunningCollector, str]) -> None:
    collector, code = classroom
    for query in ({}, {"isp": "true", "distance": "km", "r": "0.1"}):
        response = httpx.get(_libre(collector, code, "getIP.php"), params=query)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        _assert_no_store(response)
        assert response.json() == {
            "processedString": "127.0.0.1 - localhost IPv4 access",
            "rawIspInfo": "",
        }


@pytest.mark.parametrize(
    ("address", "text"),
    [
        ("10.20.30.40", "10.20.30.40 - private IPv4 access"),
        ("172.16.0.9", "172.16.0.9 - private IPv4 access"),
        ("192.168.1.20", "192.168.1.20 - private IPv4 access"),
        ("169.254.3.4", "169.254.3.4 - link-local IPv4 access"),
        ("100.64.1.2", "100.64.1.2 - CGNAT IPv4 access"),
        ("127.0.0.1", "127.0.0.1 - localhost IPv4 access"),
        ("::1", "::1 - localhost IPv6 access"),
        ("fe80::1", "fe80::1 - link-local IPv6 access"),
        ("::ffff:10.0.0.7", "10.0.0.7 - private IPv4 access"),
        ("203.0.114.7", "203.0.114.7"),  # public: the bare address, no ISP lookup
        ("not-an-address", "not-an-address"),
    ],
)
def test_client_addresses_are_described_as_librespeed_does(address: str, text: str) -> None:
    assert describe_address(address) == text


def test_unknown_malformed_and_revoked_codes_are_404(start_collector: StartCollector) -> None:
    collector = start_collector(classroom_code_cache_s=0.3)
    school = collector.add_school()
    code, revoked_first = _issue(collector, school), _issue(collector, school)
    _revoke(collector, revoked_first)
    not_found = {"detail": errors.UNKNOWN_CLASSROOM_CODE}
    with httpx.Client(timeout=10) as client:
        for bad in ("2222-2222", "nonsense", "7KX4-M2QO", revoked_first, "%00", "x" * 200):
            for name in ("garbage.php", "empty.php", "getIP.php"):
                response = client.get(_libre(collector, bad, name))
                assert (response.status_code, response.json()) == (404, not_found), (bad, name)
            response = client.post(_libre(collector, bad, "empty.php"), content=b"x" * 1000)
            assert response.status_code == 404
        # A code is a code however it is typed into a URL.
        lower = code.lower().replace("-", "")
        assert client.get(_libre(collector, lower, "getIP.php")).status_code == 200
        # Revoked while in use: refused once the remembered lookup expires.
        _revoke(collector, code)
        deadline = time.monotonic() + 5
        while client.get(_libre(collector, code, "empty.php")).status_code == 200:
            assert time.monotonic() < deadline, "revoked code still accepted"
            time.sleep(0.05)
        assert client.get(_libre(collector, code, "garbage.php")).status_code == 404


def _open_garbage(collector: RunningCollector, code: str) -> socket.socket:
    """A garbage.php download whose answer has begun (200) and that is then not read."""
    sock = socket.create_connection((LOOPBACK, collector.server.port), timeout=5)
    sock.sendall(
        f"GET /librespeed/{code}/garbage.php?ckSize=100 HTTP/1.1\r\n"
        f"Host: {LOOPBACK}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200 "), head
    return sock


def _assert_refused(response: httpx.Response, detail: str) -> None:
    assert (response.status_code, response.json()) == (429, {"detail": detail})
    assert int(response.headers["retry-after"]) >= 1


def test_a_schools_codes_share_its_stream_limit(start_collector: StartCollector) -> None:
    collector = start_collector(classroom_max_streams=2, speedtest_max_bytes=200 * MiB)
    school = collector.add_school()
    first, second = _issue(collector, school), _issue(collector, school)
    elsewhere = _issue(collector, collector.add_school("Baker Middle"))
    held = [_open_garbage(collector, first), _open_garbage(collector, second)]
    try:
        for code, name in ((first, "garbage.php"), (second, "empty.php")):
            _assert_refused(
                httpx.get(_libre(collector, code, name), params={"ckSize": "1"}),
                errors.CLASSROOM_STREAMS,
            )
        # Another school's classrooms, and uploads, have streams of their own.
        assert httpx.get(_libre(collector, elsewhere, "garbage.php")).status_code == 200
        upload = httpx.post(_libre(collector, first, "empty.php"), content=b"x" * MiB)
        assert upload.status_code == 200
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while httpx.get(_libre(collector, first, "empty.php")).status_code == 429:
        assert time.monotonic() < deadline, "streams not freed after their clients left"
        time.sleep(0.05)


def test_a_schools_byte_budget_is_shared_and_refused_with_retry_after(
    start_collector: StartCollector,
) -> None:
    collector = start_collector(
        classroom_download_budget_bytes=3 * MiB,
        classroom_upload_budget_bytes=3 * MiB,
        speedtest_window_s=60,
    )
    school = collector.add_school()
    first, second = _issue(collector, school), _issue(collector, school)
    elsewhere = _issue(collector, collector.add_school("Baker Middle"))
    with httpx.Client(timeout=30) as client:
        download = client.get(_libre(collector, first, "garbage.php"), params={"ckSize": "2"})
        assert len(download.content) == 2 * MiB
        _assert_refused(
            client.get(_libre(collector, second, "garbage.php"), params={"ckSize": "2"}),
            errors.CLASSROOM_BUDGET,
        )
        upload = client.post(_libre(collector, second, "empty.php"), content=b"u" * (2 * MiB))
        assert upload.status_code == 200
        _assert_refused(
            client.post(_libre(collector, first, "empty.php"), content=b"u" * (2 * MiB)),
            errors.CLASSROOM_BUDGET,
        )
        # What is left still serves a smaller request, and the other school is untouched.
        small = client.get(_libre(collector, second, "garbage.php"), params={"ckSize": "1"})
        assert len(small.content) == MiB
        other = client.get(_libre(collector, elsewhere, "garbage.php"), params={"ckSize": "3"})
        assert len(other.content) == 3 * MiB


def test_access_log_shows_codes_masked(classroom: tuple[RunningCollector, str]) -> None:
    collector, code = classroom
    access = logging.getLogger("uvicorn.access")
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    keep, level = Keep(), access.level
    access.addHandler(keep)
    access.setLevel(logging.INFO)
    try:
        httpx.get(_libre(collector, code, "empty.php"))
        httpx.get(f"{collector.url}/classroom", params={"code": code, "room": "114"})
    finally:
        access.setLevel(level)
        access.removeHandler(keep)
    assert len(lines) == 2, lines
    assert "/librespeed/***/empty.php" in lines[0]
    assert "/classroom?code=***&room=114" in lines[1]
    assert not any(code in line for line in lines)


# ---- classroom results -----------------------------------------------------------------------


def _test_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "throughput",
        "id": str(uuid.uuid4()),
        "path": "classroom",
        "server": "http://127.0.0.1:8080/",
        "room": "Room 114",
        "streams": 5,
        "download_bps": 9.4e7,
        "download_p90_bps": 9.9e7,
        "upload_bps": 4.1e7,
        "upload_p90_bps": 4.4e7,
        "latency_ms": 3.5,
        "loaded_latency_ms": 48.0,
        "responsiveness_rpm": 1250.0,
        "download_bytes": 117_500_000,
        "upload_bytes": 51_250_000,
        "duration_s": 20.1,
    }
    body.update(changes)
    return body


def _post(
    collector: RunningCollector, code: str | None, body: Any, **headers: str
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    if code is not None:
        headers["X-Classroom-Code"] = code
    return httpx.post(
        f"{collector.url}/api/v1/classroom/results",
        content=content,
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )


def test_results_are_stored_with_room_and_school_and_no_agent(
    collector_any_db: RunningCollector,
) -> None:
    collector = collector_any_db
    collector.add_school()
    school = collector.add_school("Baker Middle")
    collector.enroll(school)
    code = _issue(collector, school)
    body = _test_body()
    first = _post(collector, code.lower(), body)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": [body["id"]], "duplicates": []}
    # The page saving again (a lost answer) stores nothing twice.
    assert _post(collector, code, body).json() == {"accepted": [], "duplicates": [body["id"]]}
    failed = _test_body(room="Library", download_bps=None, error="The upload was refused")
    assert _post(collector, code, failed).status_code == 200

    with collector.sessions() as session:
        rows = session.execute(
            select(Measurement, ThroughputResult)
            .join(ThroughputResult)
            .order_by(ThroughputResult.room.desc())
        ).all()
        agents = session.scalars(select(Agent)).all()
    assert len(rows) == 2
    (stored, test), (failed_stored, failed_test) = rows
    assert (stored.agent_id, stored.school_id, stored.kind, stored.error) == (
        None,
        school,
        "throughput",
        None,
    )
    assert abs(stored.measured_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert (test.path, test.room, test.streams, test.server) == (
        "classroom",
        "Room 114",
        5,
        "http://127.0.0.1:8080/",
    )
    assert (test.download_bps, test.upload_p90_bps, test.loaded_latency_ms) == (9.4e7, 4.4e7, 48.0)
    assert (test.download_bytes, test.duration_s, test.agent_limited) == (117_500_000, 20.1, False)
    assert (failed_stored.error, failed_test.room, failed_test.download_bps) == (
        "The upload was refused",
        "Library",
        None,
    )
    # No agent spoke: the school's agent was not seen.
    assert [a.last_seen_at for a in agents] == [None]


def test_results_need_a_live_code(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    school = collector.add_school()
    revoked = _issue(collector, school)
    _revoke(collector, revoked)
    for code in ("2222-2222", "garbage", revoked):
        response = _post(collector, code, _test_body())
        assert (response.status_code, response.json()) == (
            404,
            {"detail": errors.UNKNOWN_CLASSROOM_CODE},
        )
    missing = _post(collector, None, _test_body())
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["header", "X-Classroom-Code"]
    with collector.sessions() as session:
        assert session.scalars(select(Measurement)).all() == []


_HOSTILE: list[tuple[Any, int, list[str] | None]] = [
    (_test_body(path="onnet"), 422, ["path"]),
    ({k: v for k, v in _test_body().items() if k != "room"}, 422, ["room"]),
    (_test_body(room=None), 422, ["room"]),
    (_test_body(room=""), 422, ["room"]),
    (_test_body(room="R" * 65), 422, ["room"]),
    (_test_body(room="Room\x00114"), 422, ["room"]),
    (_test_body(download_bps="94000000"), 422, ["download_bps"]),
    (_test_body(download_bps=True), 422, ["download_bps"]),
    (_test_body(download_bps=-1), 422, ["download_bps"]),
    (_test_body(upload_bps=1e13), 422, ["upload_bps"]),
    (_test_body(streams=65), 422, ["streams"]),
    (_test_body(download_bytes=2**63), 422, ["download_bytes"]),
    (_test_body(responsiveness_rpm=60_001), 422, ["responsiveness_rpm"]),
    (_test_body(error="e" * 1001), 422, ["error"]),
    (_test_body(coach="x"), 422, ["coach"]),
    (_test_body(kind="snmp_poll"), 422, ["kind"]),
    (_test_body(id="not-a-uuid"), 422, ["id"]),
    (_test_body(measured_at=(datetime.now(UTC) + timedelta(days=1)).isoformat()), 422, None),
    (_test_body(measured_at="1999-12-31T23:59:59+00:00"), 422, ["measured_at"]),
    (b'{"kind": "throughput", "download_bps": NaN}', 422, None),
    (b'{"kind": "throughput", "download_bps": 1e309}', 422, None),
    (b"[1, 2, 3]", 422, None),
    (b'{"kind": "throughput",', 400, None),
    (b"\xff\xfe", 400, None),
    (b"", 400, None),
]


def test_hostile_results_are_refused_naming_the_field_and_store_nothing(
    collector_any_db: RunningCollector,
) -> None:
    collector = collector_any_db
    code = _issue(collector, collector.add_school())
    for body, status, loc in _HOSTILE:
        response = _post(collector, code, body)
        assert response.status_code == status, (body, response.text)
        if status == 422:
            assert response.json()["detail"] == errors.INVALID_PAYLOAD
        if loc is not None:
            assert loc in [e["loc"] for e in response.json()["errors"]], response.json()
    gzipped = _post(collector, code, zlib.compress(b"{}"), **{"Content-Encoding": "deflate"})
    assert (gzipped.status_code, gzipped.json()) == (415, {"detail": errors.UNSUPPORTED_ENCODING})
    huge = _post(collector, code, _test_body(raw="r" * 70_000))
    assert (huge.status_code, huge.json()) == (413, {"detail": errors.BODY_TOO_LARGE})
    with collector.sessions() as session:
        assert session.scalars(select(Measurement)).all() == []
        assert len(session.scalars(select(ClassroomCode)).all()) == 1


def test_the_page_and_its_files_are_served_self_contained(collector: RunningCollector) -> None:
    with httpx.Client(base_url=collector.url) as client:
        page = client.get("/classroom", params={"code": "7KX4-M2QD"})
        script = client.get("/classroom/classroom.js")
        style = client.get("/classroom/classroom.css")
    assert page.status_code == script.status_code == style.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    # Nothing from anywhere else: school networks are filtered.
    for text in (page.text, script.text, style.text):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert 'src="classroom/classroom.js"' in page.text
    assert 'href="classroom/classroom.css"' in page.text


def test_a_schools_results_are_limited_per_hour(start_collector: StartCollector) -> None:
    collector = start_collector(classroom_results_per_hour=3)
    school, other = collector.add_school(), collector.add_school("Baker Middle")
    code, other_code = _issue(collector, school), _issue(collector, other)
    for _ in range(3):  # a class testing together: the hour's allowance at once
        assert _post(collector, code, _test_body()).status_code == 200
    refused = _post(collector, code, _test_body())
    assert refused.status_code == 429
    assert refused.json() == {"detail": errors.CLASSROOM_RESULTS}
    # One token back every 20 minutes.
    assert 1190 <= int(refused.headers["Retry-After"]) <= 1200
    # Another school's classrooms are not held back.
    assert _post(collector, other_code, _test_body()).status_code == 200
    with collector.sessions() as session:
        assert len(session.scalars(select(Measurement)).all()) == 4


def test_the_post_rate_refills_evenly() -> None:
    rate = PostRate(per_hour=2)
    assert rate.take(7, now=0.0) == 0.0
    assert rate.take(7, now=0.0) == 0.0
    assert rate.take(7, now=0.0) == pytest.approx(1800)
    assert rate.take(7, now=1799.0) == pytest.approx(1.0)
    assert rate.take(7, now=1800.0) == 0.0
    assert rate.take(8, now=1800.0) == 0.0  # each holder has its own bucket
    assert PostRate.retry_after_s(0.2) == 1
