"""Shared by the benchmarks: the summary row, free loopback ports, process start and stop."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
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
    in place of the figures (e.g. "skipped: iperf3 not found on PATH").
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

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    def line(self) -> str:
        head = f"{self.group:<6} {self.label:<34}"
        if self.instead:
            return f"{head} {self.instead}"
        ratio = "n/a" if self.ratio is None else f"{self.ratio:.2f}"
        better = "lower" if self.lower_is_better else "higher"
        return (
            f"{head} {self.ours_name:>8} {_num(self.value)} {self.unit} | "
            f"{self.reference_name:>8} {_num(self.reference)} {self.unit} | "
            f"ratio {ratio} ({better} is better)"
        )


def _num(value: float | None) -> str:
    return "    n/a" if value is None else f"{value:7.1f}"


def free_port(kind: socket.SocketKind) -> int:
    """A port on 127.0.0.1 that nothing is bound to right now (SOCK_STREAM or SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def require_tool(name: str) -> str | None:
    """The reason a command-line tool cannot be used, or None when it is on PATH."""
    if shutil.which(name) is None:
        return f"{name} not found on PATH"
    return None


def wait_for_text(
    process: subprocess.Popen[bytes], log_path: Path, text: str, timeout_s: float
) -> bool:
    """True once `text` shows up in `log_path`; False if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log_path.exists() and text in log_path.read_text(errors="replace"):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def log_tail(log_path: Path, lines: int = 15) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate one process we started (by its handle), killing it if it does not go in 5 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def say(message: str) -> None:
    print(message, flush=True)
