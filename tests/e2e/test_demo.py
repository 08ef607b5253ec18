"""`make demo` runs to the end on a fresh folder and prints the summary and where to look."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_to_the_end(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "collector.demo",
            "--exit",
            "--workdir",
            str(tmp_path / "demo"),
            "--snmprec",
            str(ROOT / "tests/data/snmprec"),
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # Each round: a latency test, an on-net test and three polls.
    assert out.count("delivered: 5 new, 0 already stored, 0 waiting") == 10
    assert "=== Readiness: Demo Elementary (500 students and staff) ===" in out
    assert "profile setda-2012: 10 tests over onnet" in out
    assert "internet-2014-15   required     50.0 Mbps" in out
    assert "MEETS" in out
    assert f"readiness report  http://127.0.0.1:{port}/api/v1/schools/1/readiness" in out
    assert f"metrics           http://127.0.0.1:{port}/metrics" in out
    token_file = tmp_path / "demo" / "viewer-token"
    assert f'curl -H "Authorization: Bearer $(cat {token_file})" ' in out
    assert token_file.read_text().startswith("rnu_") and token_file.stat().st_mode & 0o077 == 0
