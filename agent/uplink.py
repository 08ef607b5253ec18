"""Is the school's uplink already busy? Read its SNMP counters before a throughput test.

A speed test on a line that a school is already using measures what is left, not what the line
can do, and it slows down the school's own work. So, as the FCC's Measuring Broadband America
programme does, the agent first reads the uplink's octet counters twice, `sample_s` apart: if
the traffic already flowing is above `busy_fraction` of the link speed (or `busy_bps`), the test
is deferred; otherwise it runs and the background rate is stored with the result, so that
capacity is judged as measured + background.

The uplink is one interface of one polled device, as that device sees it: on the school's router,
the port towards the district hub or the ISP, where "in" is traffic towards the school (the
download direction) and "out" is traffic leaving it. The counters are read by the SNMP poller
process (`agent.snmp.background`); this module only judges them.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.settings import UplinkSettings


@dataclass(frozen=True)
class Background:
    """Traffic on the uplink while it was sampled, in bits per second."""

    in_bps: float
    out_bps: float
    link_bps: float | None

    def busy(self, settings: UplinkSettings) -> str | None:
        """Why the line is too busy to test, or None."""
        peak = max(self.in_bps, self.out_bps)
        if settings.busy_bps is not None and peak > settings.busy_bps:
            return f"uplink carries {peak / 1e6:.1f} Mbit/s, above {settings.busy_bps / 1e6:g}"
        if self.link_bps and peak > settings.busy_fraction * self.link_bps:
            share = peak / self.link_bps
            return (
                f"uplink carries {peak / 1e6:.1f} Mbit/s, {share:.0%} of its "
                f"{self.link_bps / 1e6:g} Mbit/s (limit {settings.busy_fraction:.0%})"
            )
        return None
