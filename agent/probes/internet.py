"""Internet throughput test: school → a public speedtest.net server, with speedtest-cli.

The library (pinned 2.1.3, unmaintained since 2021) runs in a child process
(`agent.probes.speedtest_child`, started and bounded by `agent.probes.speedtest_runner`), so its
≈175 MB peak never lands in the daemon. It fetches speedtest.net's config and server list over
HTTPS (`secure=True`), picks the pinned server or the lowest-latency of the five nearest, and
downloads then uploads for the config's test length.

What the numbers mean, honestly:
- `latency_ms` is speedtest-cli's "ping": for each of three requests for `latency.txt`, on a new
  connection each, the time from opening the connection (TCP, and TLS for an https server) to
  the response headers; the figure is *half* their mean. It is not an ICMP round trip: over
  plain HTTP it is about one round trip, over HTTPS about one and a half.
- `download_bps` / `upload_bps` are the library's: body bytes over the wall time of the phase,
  with its fixed request sizes and threads (`streams` is its download thread count).
- `download_bytes` / `upload_bytes` are body bytes actually moved, counted as they pass (also on
  a failed test, up to the child's last progress report); the data budget counts them.
- `secure=True` covers speedtest.net's own endpoints. The test server is used with the scheme the
  server list gives (speedtest.net lists http:// servers), and the list fallback the library
  tries after the HTTPS ones is `http://c.speedtest.net`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.probes.base import ProbeResult
from agent.probes.speedtest_messages import ChildRequest, Finished
from agent.probes.speedtest_runner import CHILD_COMMAND, run_child
from agent.redact import error_text
from agent.wire import INT63_MAX, MAX_RAW_CHARS, ThroughputTest

logger = logging.getLogger(__name__)

SPEEDTEST_NET = "www.speedtest.net"  # `server` of a test that failed before choosing one
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")
# no_proxy would send requests around the proxy; with REQUEST_METHOD set (CGI), urllib ignores
# http_proxy.
_PROXY_BYPASS_VARIABLES = ("no_proxy", "NO_PROXY", "REQUEST_METHOD")
_CUT_MARK = "…"
# Wire bounds of the text fields taken from speedtest.net's server list (agent.wire).
_SERVER_CHARS = 300
_SERVER_ID_CHARS = 40


class InternetSettings(BaseModel):
    """The internet test with speedtest-cli (`internet:` in agent.yaml)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # None: the lowest-latency of the five nearest servers; a number: always that server.
    server_id: int | None = Field(default=None, ge=1)
    # Socket timeout of each of the library's requests (its latency checks keep a fixed 10 s).
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    # The whole test, child start-up included; past it the child is killed.
    deadline_s: float = Field(default=120.0, gt=0, le=900)
    # An HTTP proxy for the library's requests (its own urllib proxy support). Tests and
    # benchmarks point it at the local speedtest.net stand-in, which answers for
    # www.speedtest.net; in the field leave it unset unless the school requires a proxy.
    proxy_url: str | None = None
    # A CA bundle used *instead of* the system's (SSL_CERT_FILE in the child): a test hook, to
    # trust the stand-in's own CA. In the field leave it unset.
    ca_file: Path | None = None

    @field_validator("proxy_url")
    @classmethod
    def _http_proxy(cls, value: str | None) -> str | None:
        # urllib speaks plain HTTP to a proxy (CONNECT for https:// targets).
        if value is not None and not value.startswith("http://"):
            raise ValueError("proxy_url must start with http://")
        return value


class InternetProbe:
    """One speedtest-cli test; returns one `ThroughputTest(path="internet")`, failed or not.

    Example:
        >>> probe = InternetProbe(settings=InternetSettings(server_id=1234))
        >>> [result] = await probe.run()  # doctest: +SKIP
    """

    name: ClassVar[str] = "internet"

    def __init__(
        self, *, settings: InternetSettings, child_command: Sequence[str] = CHILD_COMMAND
    ) -> None:
        # `child_command` is for tests of what the probe does when the child misbehaves.
        self._settings = settings
        self._child_command = tuple(child_command)

    async def run(self) -> list[ProbeResult]:
        settings = self._settings
        request = ChildRequest(server_id=settings.server_id, timeout_s=settings.timeout_s)
        finished = await run_child(
            request,
            deadline_s=settings.deadline_s,
            env=child_environment(settings),
            command=self._child_command,
        )
        if finished.peak_rss_kb is not None:
            logger.info(
                "internet test: speedtest-cli child peaked at %d kB RSS", finished.peak_rss_kb
            )
        return [self._result(finished)]

    def _result(self, finished: Finished) -> ThroughputTest:
        server = finished.server
        fields: dict[str, Any] = {
            "path": "internet",
            "server": _cut(server.url, _SERVER_CHARS) if server else SPEEDTEST_NET,
            "streams": min(max(finished.streams, 1), 64),
            "download_bytes": finished.download_bytes,
            "upload_bytes": finished.upload_bytes,
            "server_id": _server_id(finished) or self._pinned_server_id(),
            "sponsor": _cut(server.sponsor, _SERVER_CHARS) if server else None,
            "distance_km": server.distance_km if server else None,
        }
        if finished.error is None:
            fields |= {
                "download_bps": finished.download_bps,
                "upload_bps": finished.upload_bps,
                "latency_ms": finished.latency_ms,
                "duration_s": finished.duration_s,
                "raw": raw_json(finished.raw) if finished.raw is not None else None,
            }
        else:
            fields["error"] = error_text(finished.error, [])
        try:
            return ThroughputTest(**fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            return ThroughputTest(
                path="internet",
                server=SPEEDTEST_NET,
                download_bytes=min(finished.download_bytes, INT63_MAX),
                upload_bytes=min(finished.upload_bytes, INT63_MAX),
                error=error_text(f"speedtest-cli result out of bounds: {problems}", []),
            )

    def _pinned_server_id(self) -> str | None:
        pinned = self._settings.server_id
        return str(pinned) if pinned is not None else None


def _server_id(finished: Finished) -> str | None:
    if finished.server is None or not finished.server.id:
        return None
    return _cut(finished.server.id, _SERVER_ID_CHARS)


def child_environment(settings: InternetSettings) -> dict[str, str]:
    """The daemon's environment, with the proxy and CA settings in the variables urllib reads."""
    env = dict(os.environ)
    if settings.proxy_url is not None:
        env.update(dict.fromkeys(_PROXY_VARIABLES, settings.proxy_url))
        # Everything goes through the configured proxy: nothing inherited may send a request
        # around it (in tests, that would be a request to the real speedtest.net).
        for name in _PROXY_BYPASS_VARIABLES:
            env.pop(name, None)
    if settings.ca_file is not None:
        env["SSL_CERT_FILE"] = str(settings.ca_file)
    return env


def raw_json(raw: dict[str, Any]) -> str:
    """The library's result dict as compact JSON within `MAX_RAW_CHARS`.

    If it is too long, the `client` part (speedtest.net's view of the school's address and ISP)
    goes first; if it is still too long, the text is cut and ends with "…" (no longer JSON).
    """
    text = json.dumps(raw, separators=(",", ":"))
    if len(text) > MAX_RAW_CHARS and "client" in raw:
        text = json.dumps({k: v for k, v in raw.items() if k != "client"}, separators=(",", ":"))
    return _cut(text, MAX_RAW_CHARS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_CUT_MARK)] + _CUT_MARK
