"""One speedtest-cli run in a process of its own: `python -m agent.probes.speedtest_child`.

Reads a `ChildRequest` on stdin and writes `Progress` lines, then one `Finished` line, on stdout
(`agent.probes.speedtest_messages`). speedtest-cli peaks near 175 MB RSS on a full test (it
allocates every upload body up front); in this process that memory goes back to the system when
the test ends, and the agent daemon never imports the library.

Every failure becomes `Finished.error`, one line naming what failed. The probe adds the failures
only it can see (a crash, a kill on the deadline, output it cannot read).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, TextIO

import speedtest

from agent.probes.speedtest_messages import ChildRequest, Finished, Progress, ServerInfo
from agent.probes.speedtest_watch import Recorder, WatchingOpener, describe_problem

# get_best_server counts a failed latency request as 3600 s and reports half the mean of three,
# so one failed request of three already puts a server at 600,000 ms or more.
FAILED_LATENCY_MS = 3600 / 6 * 1000


class TestFailed(Exception):
    """The test cannot go on; the message is the result's error."""


class Emitter:
    """Writes messages as JSON lines; the library's threads report progress too."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, message: Progress | Finished) -> None:
        with self._lock:
            self._out.write(message.model_dump_json() + "\n")
            self._out.flush()


class SpeedtestRun:
    def __init__(self, request: ChildRequest, emitter: Emitter) -> None:
        self._request = request
        self._emitter = emitter
        self._recorder = Recorder(request.timeout_s)
        self._server: ServerInfo | None = None
        self._streams = 1

    def run(self) -> Finished:
        try:
            return self._measure()
        except Exception as exc:  # every failure is a result: this is the child's boundary
            return self._finished(error=" ".join(self._explain(exc).split()))

    def _measure(self) -> Finished:
        tester = speedtest.Speedtest(timeout=self._request.timeout_s, secure=True)
        self._streams = int(tester.config["threads"]["download"])
        tester._opener = WatchingOpener(
            tester._opener, self._recorder, out_of_time=speedtest.SpeedtestUploadTimeout
        )
        self._choose_server(tester)
        download_s = self._transfer("download", tester.download)
        upload_s = self._transfer("upload", tester.upload)
        results = tester.results
        return self._finished(
            download_bps=float(results.download),
            upload_bps=float(results.upload),
            latency_ms=float(results.ping),
            duration_s=download_s + upload_s,
            raw=results.dict(),
        )

    def _choose_server(self, tester: Any) -> None:
        self._recorder.phase = "servers"
        pinned = self._request.server_id
        try:
            tester.get_servers([pinned] if pinned is not None else [])
        except speedtest.NoMatchedServers:
            self._server_list_unfetched()
            raise TestFailed(f"pinned server {pinned} is not in speedtest.net's list") from None
        if not tester.servers:
            self._server_list_unfetched()
            raise TestFailed("speedtest.net listed no servers")
        best = tester.get_best_server()
        self._server = ServerInfo(
            id=str(best.get("id", "")),
            sponsor=str(best.get("sponsor", "")),
            url=str(best.get("url", "")),
            distance_km=float(best.get("d", 0.0)),
        )
        self._report_progress()
        if best["latency"] >= FAILED_LATENCY_MS:
            tried = len(tester.closest) or 1
            raise TestFailed(f"no speed-test server answered the latency check ({tried} tried)")

    def _server_list_unfetched(self) -> None:
        log = self._recorder.log("servers")
        if log.requests and log.failures == log.requests:
            raise TestFailed(f"speedtest.net server list could not be fetched: {log.first_problem}")

    def _transfer(self, phase: str, run: Any) -> float:
        self._recorder.phase = phase
        started = time.monotonic()
        run(callback=self._on_request)
        elapsed = time.monotonic() - started
        self._report_progress()
        log = self._recorder.log(phase)
        if log.failures:
            host = self._server.url if self._server else "the server"
            raise TestFailed(
                f"{phase} failed on {log.failures} of {log.requests} requests to {host}: "
                f"{log.first_problem}"
            )
        return elapsed

    def _on_request(self, current: int, total: int, start: bool = False, end: bool = False) -> None:
        if end:
            self._report_progress()

    def _report_progress(self) -> None:
        self._emitter.send(Progress(server=self._server, **self._bytes_moved()))

    def _bytes_moved(self) -> dict[str, int]:
        return {
            "download_bytes": self._recorder.log("download").received_bytes,
            "upload_bytes": self._recorder.log("upload").sent_bytes,
        }

    def _finished(self, **fields: Any) -> Finished:
        return Finished(
            server=self._server,
            streams=self._streams,
            peak_rss_kb=_peak_rss_kb(),
            **self._bytes_moved(),
            **fields,
        )

    def _explain(self, exc: Exception) -> str:
        timeout_s = self._request.timeout_s
        if isinstance(exc, TestFailed):
            return str(exc)
        if isinstance(exc, speedtest.ConfigRetrievalError):
            cause = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
            return (
                f"speedtest.net config could not be fetched: {describe_problem(cause, timeout_s)}"
            )
        if isinstance(exc, speedtest.SpeedtestConfigError):
            return f"speedtest.net config is unusable: {exc}"
        if isinstance(exc, speedtest.SpeedtestServersError):
            return f"speedtest.net server list is unusable: {exc}"
        if isinstance(exc, speedtest.SpeedtestBestServerFailure):
            return f"no speed-test server could be chosen: {exc}"
        if isinstance(exc, speedtest.SpeedtestException):
            return f"speedtest-cli: {describe_problem(exc, timeout_s)}"
        return f"speedtest-cli failed unexpectedly: {describe_problem(exc, timeout_s)}"


def _peak_rss_kb() -> int | None:
    # VmHWM belongs to this program's memory map; ru_maxrss would also count the parent's
    # resident set at the fork that started us.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _claim_stdout() -> TextIO:
    # The protocol keeps its own copy of stdout; fd 1 then points at stderr, so a stray print
    # (speedtest-cli's printer, a warning) cannot corrupt it.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return protocol


def main() -> None:
    emitter = Emitter(_claim_stdout())
    request = ChildRequest.model_validate_json(sys.stdin.buffer.read())
    emitter.send(SpeedtestRun(request, emitter).run())


if __name__ == "__main__":
    main()
