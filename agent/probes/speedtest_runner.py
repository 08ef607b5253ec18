"""Runs the speedtest-cli child process under a deadline and reads what it says.

The daemon's memory must not grow with speedtest-cli's (≈175 MB at peak), so the library runs in
`python -m agent.probes.speedtest_child` and only JSON lines come back, read with bounded buffers.
Whatever happens to the child (a crash, a kill, a hang past the deadline, output that is not the
protocol) comes back as a `Finished` with `error` set, carrying the bytes its last progress line
reported, since those bytes were moved all the same.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from agent.probes.speedtest_messages import CHILD_MESSAGE, ChildRequest, Finished, Progress

CHILD_COMMAND = (sys.executable, "-m", "agent.probes.speedtest_child")
MAX_LINE_BYTES = 64 * 1024  # a Finished line is under 4 KB
STDERR_TAIL_BYTES = 2048
_READ_BYTES = 16 * 1024


@dataclass
class _Transcript:
    """What the child said so far."""

    progress: Progress | None = None
    finished: Finished | None = None
    garbled: str | None = None
    stderr_tail: bytes = b""

    def failure(self, error: str) -> Finished:
        last = self.finished or self.progress or Progress()
        return Finished(
            error=error,
            server=last.server,
            download_bytes=last.download_bytes,
            upload_bytes=last.upload_bytes,
        )


async def run_child(
    request: ChildRequest,
    *,
    deadline_s: float,
    env: Mapping[str, str],
    command: Sequence[str] = CHILD_COMMAND,
) -> Finished:
    """The child's `Finished`, or one made here saying why there is none."""
    transcript = _Transcript()
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        limit=MAX_LINE_BYTES,
    )
    try:
        async with asyncio.timeout(deadline_s):
            await asyncio.gather(
                _send(process, request),
                _read_messages(process, transcript),
                _read_stderr_tail(process, transcript),
            )
            returncode = await process.wait()
    except TimeoutError:
        return transcript.failure(
            f"speed test did not finish within its {deadline_s:g} s deadline: child killed"
        )
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return _verdict(transcript, returncode)


def _verdict(transcript: _Transcript, returncode: int) -> Finished:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return transcript.failure(f"speed-test child was killed by {name}")
    if returncode > 0:
        detail = _last_line(transcript.stderr_tail)
        suffix = f": {detail}" if detail else ""
        return transcript.failure(f"speed-test child exited with code {returncode}{suffix}")
    if transcript.garbled is not None:
        return transcript.failure(f"speed-test child sent unreadable output: {transcript.garbled}")
    if transcript.finished is None:
        return transcript.failure("speed-test child ended without a result")
    return transcript.finished


async def _send(process: asyncio.subprocess.Process, request: ChildRequest) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write(request.model_dump_json().encode())
        await process.stdin.drain()
        process.stdin.close()
    except ConnectionError:
        pass  # the child is already gone; its exit status says why


async def _read_messages(process: asyncio.subprocess.Process, transcript: _Transcript) -> None:
    assert process.stdout is not None
    while transcript.garbled is None:
        try:
            line = await process.stdout.readline()
        except ValueError:  # longer than MAX_LINE_BYTES
            transcript.garbled = f"a line longer than {MAX_LINE_BYTES:,} bytes"
            break
        if not line:
            return
        try:
            message = CHILD_MESSAGE.validate_json(line)
        except ValidationError:
            transcript.garbled = repr(line[:80].decode("utf-8", "replace"))
            break
        if isinstance(message, Progress):
            transcript.progress = message
        else:
            transcript.finished = message
    while await process.stdout.read(_READ_BYTES):
        pass  # keep the pipe flowing so the child is not blocked writing into it


async def _read_stderr_tail(process: asyncio.subprocess.Process, transcript: _Transcript) -> None:
    assert process.stderr is not None
    while chunk := await process.stderr.read(_READ_BYTES):
        transcript.stderr_tail = (transcript.stderr_tail + chunk)[-STDERR_TAIL_BYTES:]


def _last_line(text: bytes) -> str:
    lines = text.decode("utf-8", "replace").strip().splitlines()
    return lines[-1].strip()[:200] if lines else ""
