"""The systemd units in deploy/systemd/ against systemd's own tools, warnings included.

`systemd-analyze verify` exits 0 on an unknown key or a misspelt section; it only prints a
warning. Any line it prints fails here. `systemd-analyze security --offline=yes` rates the
hardening; each unit's overall exposure is shown in the test output and in the README.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
AGENT_UNIT = SYSTEMD / "readynet-agent.service"
UNITS = sorted(SYSTEMD.glob("*.service"))
# 10 is fully exposed; systemd calls up to 2.0 "OK" (the agent: 1.6, see the README).
EXPOSURE_MAX = 2.0


def _staged(tmp_path: Path, unit: Path, text: str | None = None) -> Path:
    """The unit with its executables pointing at this venv's (verify wants them to exist)."""
    staged = tmp_path / unit.name
    text = unit.read_text() if text is None else text
    staged.write_text(text.replace("/opt/readynet/bin/", f"{Path(sys.executable).parent}/"))
    return staged


def verify_output(unit: Path) -> str:
    """What `systemd-analyze verify` prints about `unit`: nothing when the unit is clean."""
    proc = subprocess.run(
        ["systemd-analyze", "verify", unit.name],
        cwd=unit.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    status = f"exit {proc.returncode}\n" if proc.returncode else ""
    return status + proc.stdout + proc.stderr


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_verify_prints_nothing(tmp_path: Path, unit: Path) -> None:
    assert verify_output(_staged(tmp_path, unit)) == ""


def test_verify_output_catches_what_exit_status_does_not(tmp_path: Path) -> None:
    # The check above is only worth something if a warning shows: a misspelt key, exit 0.
    text = AGENT_UNIT.read_text().replace("\nRestart=on-failure\n", "\nRestrat=on-failure\n")
    assert "Unknown key 'Restrat' in section [Service]" in verify_output(
        _staged(tmp_path, AGENT_UNIT, text)
    )


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_exposure(tmp_path: Path, unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    staged = _staged(tmp_path, unit)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", staged.name],
        cwd=staged.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    with capsys.disabled():
        print(f"\n{unit.name}: systemd-analyze security exposure {found[1]} {found[2]}")  # noqa: T201
    assert float(found[1]) <= EXPOSURE_MAX


def test_agent_waits_for_the_clock_without_needing_time_sync() -> None:
    # After= alone: the start waits where systemd-time-wait-sync is enabled, and nothing fails
    # where it is not (Wants=/Requires= of it would pull in or demand a unit that may be absent).
    lines = AGENT_UNIT.read_text().splitlines()
    after = next(line for line in lines if line.startswith("After="))
    assert "time-sync.target" in after.split("=", 1)[1].split()
    assert not [
        line for line in lines if "time-sync" in line and not line.startswith(("#", "After="))
    ]
