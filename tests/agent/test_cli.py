"""`readynet-agent` as a user runs it: exit codes and messages, and nothing lost in between."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.fixtures.collector import RunningCollector
from tests.fixtures.snmpsim import free_udp_port

AGENT = str(Path(sys.executable).parent / "readynet-agent")


def _config(tmp_path: Path, url: str, token: str) -> Path:
    path = tmp_path / "agent.yaml"
    # No tests and one device nobody answers for: quick, and still one result per run.
    settings = {
        "collector_url": url,
        "token": token,
        "state_dir": str(tmp_path / "state"),
        "onnet": {"enabled": False},
        "latency": {"enabled": False},
        "devices": [
            {
                "name": "gone",
                "address": "127.0.0.1",
                "port": free_udp_port(),
                "timeout_s": 0.2,
                "retries": 0,
            }
        ],
    }
    path.write_text(yaml.safe_dump(settings))
    return path


def _agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENT, *args], capture_output=True, text=True, timeout=60)


def test_collector_down_keeps_results_until_flush(
    collector: RunningCollector, tmp_path: Path
) -> None:
    config = _config(tmp_path, collector.url, collector.enroll(collector.add_school()))
    collector.server.stop()
    first = _agent("once", "--config", str(config))
    second = _agent("once", "--config", str(config))
    assert first.returncode == second.returncode == 1
    assert "snmp_poll: error: gone (127.0.0.1:" in first.stdout
    assert "not delivered, kept 1 results in the outbox: cannot reach the collector" in first.stdout
    assert "kept 2 results in the outbox" in second.stdout

    collector.server.start()
    flushed = _agent("flush", "--config", str(config))
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    assert "delivered: 2 new, 0 already stored, 0 waiting" in flushed.stdout
    assert "delivered: 0 new" in _agent("flush", "--config", str(config)).stdout


def test_bad_config_exits_with_the_key_named(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("collector_url: http://127.0.0.1:9\ntoken: changeme\n")
    result = _agent("once", "--config", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid agent settings: token: ")
    assert "placeholder" in result.stderr
