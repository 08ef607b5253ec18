"""What the internet probe and its speedtest-cli child say to each other, as JSON lines.

The probe writes one `ChildRequest` to the child's stdin. The child writes `Progress` lines on
stdout as the test goes (so bytes already moved are known even if the child is killed), then one
`Finished` line. Neither side imports the other: the daemon never imports speedtest-cli.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChildRequest(_Message):
    server_id: int | None = None
    timeout_s: float


class ServerInfo(_Message):
    """The chosen speed-test server, as speedtest.net's server list describes it."""

    id: str
    sponsor: str
    url: str
    distance_km: float


class Progress(_Message):
    kind: Literal["progress"] = "progress"
    server: ServerInfo | None = None
    download_bytes: int = Field(default=0, ge=0)
    upload_bytes: int = Field(default=0, ge=0)


class Finished(_Message):
    kind: Literal["finished"] = "finished"
    error: str | None = None
    server: ServerInfo | None = None
    download_bytes: int = Field(default=0, ge=0)
    upload_bytes: int = Field(default=0, ge=0)
    download_bps: float | None = None
    upload_bps: float | None = None
    latency_ms: float | None = None
    duration_s: float = 0.0
    streams: int = 1
    # speedtest-cli's own result dict (SpeedtestResults.dict()).
    raw: dict[str, Any] | None = None
    peak_rss_kb: int | None = None


ChildMessage = Annotated[Progress | Finished, Field(discriminator="kind")]
CHILD_MESSAGE: TypeAdapter[Progress | Finished] = TypeAdapter(ChildMessage)
