"""No token and no SNMP community in anything the agent produces: its output, its outbox, uploads.

The CLI tests run the real `readynet-agent` against a real collector and then search everything
the run left behind: stdout, stderr, and the raw bytes of every file in the test's directory
(the agent's outbox with its WAL, where deleted rows linger, and the collector's SQLite
database), all but the agent.yaml that legitimately holds the secrets.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import SecretStr
from sqlalchemy import text

from agent.errors import CollectorUnavailable
from agent.outbox import Outbox
from agent.probes.onnet import OnNetProbe
from agent.probes.snmp import SnmpProbe
from agent.redact import MASK, describe, error_text, redact, scrub
from agent.settings import DeviceSettings, OnNetSettings, SnmpAuth
from agent.uploader import deliver
from agent.wire import MAX_ERROR_CHARS, SnmpPoll, ThroughputTest
from tests.fixtures.collector import RunningCollector
from tests.fixtures.snmpsim import free_udp_port

AGENT = str(Path(sys.executable).parent / "readynet-agent")
COMMUNITY = "Zq8-community-4Lw"
CONFIG_NAME = "agent.yaml"


def _config(tmp_path: Path, url: str, token: str) -> Path:
    # A short on-net test and HTTP round trips (both send the token) and one dead device (it
    # has the community).
    settings = {
        "collector_url": url,
        "token": token,
        "state_dir": str(tmp_path / "state"),
        "onnet": {"duration_s": 0.5, "warmup_s": 0.1, "sample_interval_s": 0.1},
        "latency": {"method": "http", "probes": 3, "interval_s": 0.01},
        "devices": [
            {
                "name": "gone",
                "address": "127.0.0.1",
                "port": free_udp_port(),
                "auth": {"community": COMMUNITY},
                "timeout_s": 0.2,
                "retries": 0,
            }
        ],
    }
    path = tmp_path / CONFIG_NAME
    path.write_text(yaml.safe_dump(settings))
    return path


def _agent(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENT, *(str(a) for a in args)], capture_output=True, text=True, timeout=60
    )


def _stored_errors(collector: RunningCollector) -> list[str | None]:
    with collector.sessions() as session:
        return list(session.scalars(text("SELECT error FROM measurements ORDER BY kind")))


def _assert_nowhere(
    secret: str, tmp_path: Path, runs: list[subprocess.CompletedProcess[str]]
) -> None:
    for run in runs:
        assert secret not in run.stdout
        assert secret not in run.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != CONFIG_NAME]
    # The search did reach both databases (their -wal files too, while they exist).
    assert {"outbox.sqlite3", "collector.db"} <= {p.name for p in files}
    for path in files:
        assert secret.encode() not in path.read_bytes(), path


def test_token_with_a_trailing_space_works_and_is_written_nowhere(
    collector: RunningCollector, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school())
    once = _agent("once", "--config", _config(tmp_path, collector.url, f"{token} \n"))
    assert once.returncode == 0, once.stdout + once.stderr
    assert "throughput (onnet): down" in once.stdout
    assert "delivered: 3 new, 0 already stored, 0 waiting" in once.stdout
    latency_error, snmp_error, onnet_error = _stored_errors(collector)
    assert latency_error is None and onnet_error is None
    assert snmp_error is not None and snmp_error.startswith("gone (127.0.0.1:")
    _assert_nowhere(token, tmp_path, [once])
    _assert_nowhere(COMMUNITY, tmp_path, [once])


def test_results_queued_by_an_older_agent_are_delivered_without_the_token(
    collector: RunningCollector, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school())
    config = _config(tmp_path, collector.url, token)
    # What the agent before this fix queued when its token had a trailing space.
    leaked = f"LocalProtocolError: Illegal header value b'Bearer {token} '"
    with Outbox(tmp_path / "state" / "outbox.sqlite3") as outbox:
        outbox.add(
            [
                ThroughputTest(path="onnet", server=collector.url, error=leaked),
                SnmpPoll(device="gone", address="127.0.0.1:161", error=f"{COMMUNITY}: timeout"),
            ]
        )
    flush = _agent("flush", "--config", config)
    assert flush.returncode == 0, flush.stdout + flush.stderr
    assert "delivered: 2 new" in flush.stdout
    assert _stored_errors(collector) == [
        f"{MASK}: timeout",
        f"LocalProtocolError: Illegal header value b'Bearer {MASK} '",
    ]
    collector_files = [p for p in tmp_path.glob("collector.db*") if p.is_file()]
    assert collector_files
    for path in collector_files:
        assert token.encode() not in path.read_bytes()
        assert COMMUNITY.encode() not in path.read_bytes()
    assert token not in flush.stdout + flush.stderr


@pytest.mark.parametrize(
    "template",
    [
        "{core} inner",  # an inner space: not one token
        "inner\t{core}",
        "{core}!",  # outside the b64token alphabet
        "{core}é",
        "{core}==x",  # padding only at the end
        "Bearer {core}",  # the scheme pasted along with the token
    ],
)
def test_malformed_token_is_refused_without_echoing_it(tmp_path: Path, template: str) -> None:
    core = "Malformed-Tok3n-Core"
    once = _agent(
        "once", "--config", _config(tmp_path, "http://127.0.0.1:9", template.format(core=core))
    )
    assert once.returncode == 1
    assert once.stderr.startswith("error: invalid agent settings: token: ")
    assert "not a valid bearer token" in once.stderr
    assert core not in once.stdout + once.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was measured or queued


def test_refused_token_is_written_nowhere(collector: RunningCollector, tmp_path: Path) -> None:
    token = collector.enroll(collector.add_school())
    wrong = "Wr0ng-but-well-formed-token"
    once = _agent("once", "--config", _config(tmp_path, collector.url, wrong))
    assert once.returncode == 1
    assert "throughput: error: collector answered HTTP 401" in once.stdout
    assert "HTTP 401: invalid or missing agent token" in once.stdout
    flush = _agent("flush", "--config", _config(tmp_path, collector.url, token))
    assert flush.returncode == 0, flush.stdout + flush.stderr
    assert "delivered: 3 new" in flush.stdout
    assert "collector answered HTTP 401" in _stored_errors(collector)
    _assert_nowhere(wrong, tmp_path, [once, flush])
    _assert_nowhere(COMMUNITY, tmp_path, [once, flush])


async def test_uploader_error_does_not_quote_the_header(
    collector: RunningCollector, tmp_path: Path
) -> None:
    # A client built by hand, past the settings' validation: h11 refuses the header and quotes it.
    token = "Hand-Built-Token"
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.add([ThroughputTest(path="onnet", server="x", download_bps=1.0)])
        headers = {"Authorization": f"Bearer {token} "}
        async with httpx.AsyncClient(base_url=collector.url, headers=headers) as client:
            with pytest.raises(CollectorUnavailable) as caught:
                await deliver(outbox, client=client, batch_size=10, secrets=[f"{token} "])
        assert len(outbox) == 1
    assert str(caught.value) == (
        f"cannot reach the collector: LocalProtocolError: Illegal header value b'Bearer {MASK}'"
    )


async def test_onnet_error_result_does_not_quote_the_header(collector: RunningCollector) -> None:
    token = "Hand-Built-Token"
    probe = OnNetProbe(collector_url=collector.url, token=f"{token}\n", settings=OnNetSettings())
    [result] = await probe.run()
    assert result.error == f"LocalProtocolError: Illegal header value b'Bearer {MASK}'"


async def test_snmp_error_result_has_no_community() -> None:
    device = DeviceSettings(
        name="gone",
        address="127.0.0.1",
        port=free_udp_port(),
        auth=SnmpAuth(community=SecretStr(COMMUNITY)),
        timeout_s=0.2,
        retries=0,
    )
    [result] = await SnmpProbe(device).run()
    assert result.error is not None and result.error.startswith("gone (127.0.0.1:")
    assert COMMUNITY not in result.error


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("Bearer abc-1", ["abc-1"], f"Bearer {MASK}"),
        ("b'Bearer abc-1 '", ["abc-1 "], f"b'Bearer {MASK}'"),
        ("b'Bearer abc-1 '", ["abc-1"], f"b'Bearer {MASK} '"),
        ("b'Bearer abc-1\\n'", ["abc-1\n"], f"b'Bearer {MASK}'"),  # as repr() escapes it
        ("b'caf\\xc3\\xa9'", ["café"], f"b'{MASK}'"),
        ("longer-secret, secret", ["secret", "longer-secret"], f"{MASK}, {MASK}"),
        ("nothing to hide", ["", "  "], "nothing to hide"),
        ("nothing to hide", [], "nothing to hide"),
    ],
)
def test_redact(text: str, secrets: list[str], expected: str) -> None:
    assert redact(text, secrets) == expected


def test_error_text_masks_then_cuts_to_the_wire_limit() -> None:
    secret = "s" * 10
    # Cut first, the secret's first letter would survive where the text ends.
    cut = error_text("x" * (MAX_ERROR_CHARS - 2) + secret + "tail", [secret])
    assert cut == "x" * (MAX_ERROR_CHARS - 2) + "*…"
    assert error_text("short", [secret]) == "short"
    # What the wire contract refuses is escaped, not a reason to lose the result.
    assert error_text("a\x00b\udcff", []) == "a\\x00b\\udcff"


def test_describe_and_scrub() -> None:
    assert describe(httpx.ConnectError(""), ["tok3n"]) == "ConnectError"
    assert describe(ValueError("bad tok3n"), ["tok3n"]) == f"ValueError: bad {MASK}"
    clean = ThroughputTest(path="onnet", server="x")
    assert scrub(clean, ["x"]) is clean
    dirty = ThroughputTest(path="onnet", server="x", error="Bearer tok3n")
    assert scrub(dirty, ["tok3n"]).error == f"Bearer {MASK}"
    assert scrub(dirty, ["tok3n"]).id == dirty.id
