"""Schemathesis against the real collector's own /openapi.json, with all of its checks.

Zero 5xx, zero responses that break the documented schema, zero payloads accepted that the
schema forbids, on both databases, authenticated as each operation's security scheme says.
Bounded: a fixed seed and example count keep it to seconds.
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
# The routes that take an agent's token (collector/api/deps.py AgentDep).
AGENT_PATHS = "^/api/v1/(results$|speedtest/|slots|heartbeat$|agent/)"


def test_openapi_holds_under_schemathesis(
    collector_any_db: RunningCollector, tmp_path: Path
) -> None:
    collector = collector_any_db
    # Each operation gets the credentials of the scheme it documents: an admin's token of scope
    # all for the people's routes (reads and inventory writes), an agent's for the agents'.
    # (Two `auth.openapi` schemes of the same header would overwrite each other.)
    admin, agent = collector.user_token("admin"), collector.enroll(collector.add_school())
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f'headers = {{ Authorization = "Bearer {admin}" }}\n\n'
        "[[operations]]\n"
        f'include-path-regex = "{AGENT_PATHS}"\n'
        f'headers = {{ Authorization = "Bearer {agent}" }}\n'
    )
    proc = subprocess.run(
        [
            SCHEMATHESIS,
            f"--config-file={config}",
            "run",
            f"{collector.url}/openapi.json",
            "--checks=all",
            f"--max-examples={MAX_EXAMPLES}",
            "--seed=1",
            "--no-color",
            "--generation-database=none",
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
