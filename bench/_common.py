"""Shared by the benchmarks: the summary row and tool checks; process helpers come from
collector.localrun, which the demo and the tests use too."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
REPO_DIR = Path(__file__).resolve().parent.parent
# The console scripts of the venv running the bench, not whatever is first on PATH.
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Figure:
    """One line of the summary: our measurement, the reference's, and their ratio.

    `value`/`reference` are None when that side could not run; `instead`, when set, is shown
    in place of the figures (e.g. "skipped: iperf3 not found on PATH"); `verdict`, when set,
    ends the line (e.g. "target >= 0.6: PASS").
    """

    group: str
    label: str
    unit: str
    ours_name: str
    value: float | None
    reference_name: str
    reference: float | None
    lower_is_better: bool
    note: str = ""
    instead: str = ""
    verdict: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    def line(self) -> str:
        head = f"{self.group:<6} {self.label:<34}"
        verdict = f" {self.verdict}" if self.verdict else ""
        if self.instead:
            return f"{head} {self.instead}{verdict}"
        ratio = "n/a" if self.ratio is None else f"{self.ratio:.2f}"
        better = "lower" if self.lower_is_better else "higher"
        return (
            f"{head} {self.ours_name:>8} {_num(self.value)} {self.unit} | "
            f"{self.reference_name:>8} {_num(self.reference)} {self.unit} | "
            f"ratio {ratio} ({better} is better){verdict}"
        )


def _num(value: float | None) -> str:
    return "    n/a" if value is None else f"{value:7.1f}"


def require_tool(name: str) -> str | None:
    """The reason a command-line tool cannot be used, or None when it is on PATH."""
    if shutil.which(name) is None:
        return f"{name} not found on PATH"
    return None


def say(message: str) -> None:
    print(message, flush=True)
