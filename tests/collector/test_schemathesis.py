"""Schemathesis against the real collector's own /openapi.json, with all of its checks.

Zero 5xx, zero responses that break the documented schema, zero payloads accepted that the
schema forbids, on both databases. Bounded: a fixed seed and example count keep it to seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.collector import RunningCollector

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
MAX_EXAMPLES = 25
ROOT = Path(__file__).resolve().parents[2]


def test_openapi_holds_under_schemathesis(
    collector_any_db: RunningCollector, tmp_path: Path
) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    proc = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{collector.url}/openapi.json",
            "--checks=all",
            f"--max-examples={MAX_EXAMPLES}",
            "--seed=1",
            "--no-color",
            "--generation-database=none",
            f"--header=Authorization: Bearer {token}",
            "--request-timeout=20",
            f"--report-dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.collector.schemathesis_hooks",
            "PYTHONPATH": str(ROOT),
        },
    )
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
