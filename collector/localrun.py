"""Local helper processes on loopback: free ports, process shutdown, and snmpsim.

The demo, the tests and the benchmarks all start snmpsim serving real device recordings; they
share this one launcher. Nothing here sends traffic anywhere but 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

LOOPBACK = "127.0.0.1"
SNMPSIM_STARTUP_TIMEOUT_S = 60.0
_SNMPSIM_START_ATTEMPTS = 3


class LocalRunError(RuntimeError):
    """A helper process did not start; the message carries its log tail."""


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing is bound to right now (SOCK_STREAM or SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[Any] | None, timeout_s: float = 10) -> None:
    """Terminate a process we started, killing it if it does not go in `timeout_s`."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(log_path: Path, lines: int = 25) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def venv_script(name: str) -> Path:
    """A console script of the running interpreter's venv, not whatever is first on PATH."""
    return Path(sys.executable).parent / name


@contextmanager
def run_snmpsim(
    recordings: Path, workdir: Path, *, only: Sequence[str] | None = None
) -> Iterator[int]:
    """Serve `recordings` (*.snmprec) with snmpsim on a free 127.0.0.1 UDP port; yields the port.

    Each recording answers SNMPv2c with its file stem as the community. `only` limits which stems
    are served (indexing the big ones takes seconds). The recordings are copied into `workdir`
    first, because snmpsim writes index files beside them.
    """
    data_dir = workdir / "snmprec"
    data_dir.mkdir(parents=True)
    stems = only or sorted(p.stem for p in recordings.glob("*.snmprec"))
    for stem in stems:
        shutil.copy(recordings / f"{stem}.snmprec", data_dir)
    # snmpsim refuses to run as root (containers, CI) unless told it is fine.
    env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
    process: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(_SNMPSIM_START_ATTEMPTS):
            # Another process may take the free port before snmpsim binds it: then try another.
            port = free_port(socket.SOCK_DGRAM)
            log_path = workdir / f"snmpsim-{attempt}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [
                        str(venv_script("snmpsim-command-responder")),
                        f"--data-dir={data_dir}",
                        f"--cache-dir={workdir / 'snmpsim-cache'}",
                        f"--agent-udpv4-endpoint={LOOPBACK}:{port}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            ready = f"Listening at UDP/IPv4 endpoint {LOOPBACK}:{port}"
            if wait_for_text(process, log_path, ready, SNMPSIM_STARTUP_TIMEOUT_S):
                break
            stop_process(process)
        else:
            raise LocalRunError(f"snmpsim did not start; log tail:\n{log_tail(log_path)}")
        yield port
    finally:
        stop_process(process)


def wait_for_text(
    process: subprocess.Popen[bytes], log_path: Path, text: str, timeout_s: float
) -> bool:
    """True once `text` shows up in `log_path`; False if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log_path.read_text(errors="replace"):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def wait_for_http(process: subprocess.Popen[Any], url: str, timeout_s: float) -> bool:
    """True once GET `url` answers 200; False if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            return False
        time.sleep(0.1)
    return False
