"""The agent's error hierarchy.

    ReadyNetError
    ├── ConfigError            agent.yaml or environment is unusable
    ├── ProbeError             a measurement could not be taken
    │   ├── DeviceUnreachable  no SNMP answer (timeout, refused, wrong community)
    │   └── DeviceError        the device answered with an SNMP error status
    ├── OutboxError            the on-disk outbox cannot be written (e.g. disk full)
    ├── ScheduleStateError     the test schedule's history and data ledger cannot be kept
    └── UploadError            a batch did not reach the collector
        ├── CollectorUnavailable  network error, 5xx or 429: keep the batch, retry later
        │                         (`retry_after_s`: the collector's Retry-After, if it sent one)
        └── CollectorRejected     4xx: the collector refused it (bad token, bad payload)
            └── TokenRefused      401: the agent's token is revoked, wrong or missing

Library errors are turned into these at the boundary with ``raise ... from exc``.
"""


class ReadyNetError(Exception):
    """Base class of every error the agent raises on purpose."""


class ConfigError(ReadyNetError):
    pass


class ProbeError(ReadyNetError):
    pass


class DeviceUnreachable(ProbeError):
    pass


class DeviceError(ProbeError):
    pass


class OutboxError(ReadyNetError):
    pass


class ScheduleStateError(ReadyNetError):
    pass


class UploadError(ReadyNetError):
    pass


class CollectorUnavailable(UploadError):
    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CollectorRejected(UploadError):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"collector refused the batch: HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


class TokenRefused(CollectorRejected):
    """401: the collector does not accept the agent's token (revoked, wrong or missing)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(status_code, detail)
        self.args = (
            f"the collector refused the agent's token (HTTP {status_code}: {detail}); "
            "results stay in the outbox until the agent has a valid token",
        )
