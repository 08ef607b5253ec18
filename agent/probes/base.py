"""The probe protocol: a probe takes measurements and returns them; it never uploads."""

from __future__ import annotations

from typing import ClassVar, Protocol

from agent.wire import AnyMeasurement

ProbeResult = AnyMeasurement


class Probe(Protocol):
    """A measurement runner. A failure is returned as a result with `error` set, not raised."""

    name: ClassVar[str]

    async def run(self) -> list[ProbeResult]: ...
