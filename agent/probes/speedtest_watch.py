"""Watching speedtest-cli's HTTP requests, because the library swallows their failures.

speedtest-cli's download and upload threads catch every HTTP and socket error and carry on, and
Python's http.client returns a short body without complaint when a stream is cut, so a server
that answers 500 or hangs up mid-test only shows as a lower rate. `WatchingOpener` stands in for
the library's urllib opener (`Speedtest._opener`, an attribute of the pinned 2.1.3) and records,
per phase, every request, the body bytes moved each way and what went wrong, so that the child
can turn a broken test into an error instead of a wrong number.

Used only in the speedtest-cli child process (`agent.probes.speedtest_child`).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from http.client import RemoteDisconnected
from typing import Any
from urllib.error import HTTPError, URLError

Phase = str  # "servers", "download" or "upload"


@dataclass
class PhaseLog:
    requests: int = 0
    failures: int = 0
    first_problem: str | None = None
    received_bytes: int = 0  # response bodies
    sent_bytes: int = 0  # request bodies (uploads)


class Recorder:
    """Thread-safe tallies per phase; `phase` says where new requests belong."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.phase: Phase = "servers"
        self._logs: dict[Phase, PhaseLog] = {}
        self._lock = threading.Lock()

    def log(self, phase: Phase) -> PhaseLog:
        with self._lock:
            return self._logs.setdefault(phase, PhaseLog())

    def started(self, phase: Phase) -> None:
        with self._lock:
            self._logs.setdefault(phase, PhaseLog()).requests += 1

    def moved(self, phase: Phase, *, received: int = 0, sent: int = 0) -> None:
        with self._lock:
            log = self._logs.setdefault(phase, PhaseLog())
            log.received_bytes += received
            log.sent_bytes += sent

    def failed(self, phase: Phase, problem: str) -> None:
        with self._lock:
            log = self._logs.setdefault(phase, PhaseLog())
            log.failures += 1
            log.first_problem = log.first_problem or problem


class WatchingOpener:
    """Wraps a urllib `OpenerDirector`: same `open`, plus a record of what happened."""

    def __init__(
        self, opener: Any, recorder: Recorder, *, out_of_time: type[BaseException]
    ) -> None:
        self._opener = opener
        self._recorder = recorder
        # speedtest-cli's SpeedtestUploadTimeout: its test length ran out, not a failure.
        self._out_of_time = out_of_time

    def open(self, request: Any, *args: Any, **kwargs: Any) -> CountingResponse:
        phase = self._recorder.phase
        self._recorder.started(phase)
        try:
            response = self._opener.open(request, *args, **kwargs)
        except self._out_of_time:
            raise
        except Exception as exc:
            self._recorder.failed(phase, describe_problem(exc, self._recorder.timeout_s))
            raise
        finally:
            # The library's own tally of what it handed to the socket for this upload.
            sent = sum(getattr(getattr(request, "data", None), "total", ()))
            self._recorder.moved(phase, sent=sent)
        return CountingResponse(response, phase, self._recorder)


class CountingResponse:
    """A response whose reads are counted, and whose early end is noticed."""

    def __init__(self, response: Any, phase: Phase, recorder: Recorder) -> None:
        self._response = response
        self._phase = phase
        self._recorder = recorder
        length = response.getheader("Content-Length")
        self._expected = int(length) if length and length.isdigit() else None
        self._received = 0

    def read(self, amt: int | None = None) -> bytes:
        try:
            data: bytes = self._response.read(amt)
        except Exception as exc:
            self._recorder.failed(self._phase, describe_problem(exc, self._recorder.timeout_s))
            raise
        self._received += len(data)
        self._recorder.moved(self._phase, received=len(data))
        if not data and amt != 0 and self._expected is not None:
            if self._received < self._expected:
                self._recorder.failed(
                    self._phase,
                    f"stream cut short after {self._received:,} of {self._expected:,} bytes",
                )
                self._expected = None  # noticed once
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)


def describe_problem(exc: BaseException, timeout_s: float) -> str:
    """`HTTP 403 Forbidden`, `timed out (nothing for 10 s)`: one request's failure, briefly."""
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}".strip()
    if isinstance(exc, URLError):
        if not isinstance(exc.reason, BaseException):
            return str(exc.reason)
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return f"timed out (nothing for {timeout_s:g} s)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
        return f"the server closed the connection mid-transfer ({type(exc).__name__})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
