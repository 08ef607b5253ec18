"""TLS for talks with the collector: one CA bundle per process, none for a plain-http collector.

Loading the CA bundle costs about 2.5 MB and 50 ms of CPU per SSL context. httpx builds one per
client unless given one, and the daemon opens clients every minute (delivery) and per test; on a
Pi that was the difference between staying under 50 MB and not.
"""

from __future__ import annotations

import ssl
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import httpx


def collector_tls(url: str) -> ssl.SSLContext | bool:
    """What to pass as httpx's `verify=` for `url`: the shared context, or False for http://."""
    return collector_ssl_context(url) or False


def collector_ssl_context(url: str) -> ssl.SSLContext | None:
    """The shared context for an https `url`, None for http://."""
    if urlsplit(url).scheme == "https":
        return _shared_context()
    return None


# A district's own CA (`ca_bundle` in agent.yaml): one collector per agent, so one per process.
_ca_bundle: Path | None = None


def use_ca_bundle(path: Path | None) -> None:
    """Verify the collector against `path` from now on (None: the default bundle)."""
    global _ca_bundle
    if path != _ca_bundle:
        _ca_bundle = path
        _shared_context.cache_clear()


@cache
def _shared_context() -> ssl.SSLContext:
    if _ca_bundle is not None:
        # Verified as strictly as the default: hostname and chain, TLS 1.2 or newer.
        return ssl.create_default_context(cafile=str(_ca_bundle))
    return httpx.create_ssl_context()
