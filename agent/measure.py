"""One measurement round, as `readynet-agent once` and the daemon run it.

A measurement round is: idle latency, the on-net (WAN) test, the internet test, one after the
other (never two at once: they would share the line they measure). Probes report failures as
results; nothing here raises for a failed test. (SNMP rounds: `agent.snmp.round`.)
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx

from agent.probes.base import Probe, ProbeResult
from agent.probes.bulk import Endpoint
from agent.probes.internet import InternetProbe
from agent.probes.latency import LatencyProbe
from agent.probes.onnet import OnNetProbe
from agent.probes.rtt import Pinger
from agent.redact import scrub
from agent.settings import AgentSettings
from agent.tls import collector_ssl_context, collector_tls

logger = logging.getLogger(__name__)


def collector_endpoint(settings: AgentSettings) -> tuple[str, int]:
    url = urlsplit(settings.collector_url)
    return url.hostname or "localhost", url.port or (443 if url.scheme == "https" else 80)


def collector_client(settings: AgentSettings) -> httpx.AsyncClient:
    """An HTTP client for the collector, with the agent's token."""
    return httpx.AsyncClient(
        base_url=settings.collector_url,
        headers={"Authorization": f"Bearer {settings.token.get_secret_value()}"},
        timeout=settings.upload_timeout_s,
        verify=collector_tls(settings.collector_url),
        # Straight to the collector, like the on-net test's own connections: it is on the
        # district's network, and a proxy in between would be measured too.
        trust_env=False,
    )


def collector_pinger(settings: AgentSettings) -> Pinger:
    """Round trips to the collector's ping endpoint, with the agent's token."""
    endpoint = Endpoint.from_url(
        settings.collector_url,
        token=settings.token.get_secret_value(),
        tls=collector_ssl_context(settings.collector_url),
    )
    return Pinger(endpoint, timeout_s=settings.latency.timeout_s)


async def measurement_round(settings: AgentSettings) -> list[ProbeResult]:
    """Latency, on-net and internet tests (those enabled), one after the other."""
    results: list[ProbeResult] = []
    token = settings.token.get_secret_value()
    pinger = collector_pinger(settings)
    probes: list[Probe] = []
    if settings.latency.enabled:
        host, port = _latency_target(settings)
        probes.append(
            LatencyProbe(
                settings=settings.latency,
                host=host,
                port=port,
                pinger=pinger,
                secrets=(token,),
            )
        )
    if settings.onnet.enabled:
        probes.append(
            OnNetProbe(collector_url=settings.collector_url, token=token, settings=settings.onnet)
        )
    if settings.internet.enabled:
        probes.append(InternetProbe(settings=settings.internet))
    try:
        for probe in probes:
            results.extend(await probe.run())
    finally:
        pinger.close()
    # Each probe masks its own credential; this masks every one, in every result, once more.
    return [scrub(result, settings.secrets()) for result in results]


def _latency_target(settings: AgentSettings) -> tuple[str, int]:
    target = settings.latency.target
    if target is None:
        return collector_endpoint(settings)
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)
