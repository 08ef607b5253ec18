"""Agent settings: `agent.yaml`, overridden by `READYNET_AGENT_*` environment variables.

Defaults may point at the internet (that is the agent's job in the field); tests always pass
loopback values explicitly.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    SerializationInfo,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)
from yaml import MarkedYAMLError, YAMLError

from agent.errors import ConfigError
from agent.probes.internet import InternetSettings
from agent.probes.latency import LatencySettings
from agent.schedule.settings import ScheduleSettings

DEFAULT_CONFIG_PATH = Path("/etc/readynet/agent.yaml")
_PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "public-token", "xxx"}
# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _revealed(value: SecretStr, info: SerializationInfo) -> str:
    # Masked, as pydantic does, unless the daemon hands the settings to its poller process.
    reveal = isinstance(info.context, dict) and info.context.get("reveal") is True
    return value.get_secret_value() if reveal else "**********"


class SnmpAuth(_Section):
    """Credentials for one device, kept apart from what is polled (snmp_exporter's split).

    SNMPv2c needs a community; SNMPv3 a user and, for authNoPriv / authPriv, the passphrases
    (RFC 3414 minimum: 8 characters). SHA and AES are the defaults every current device speaks.
    """

    version: Literal["2c", "3"] = "2c"
    community: SecretStr = SecretStr("public")
    user: str | None = Field(default=None, min_length=1, max_length=32)
    security_level: Literal["noAuthNoPriv", "authNoPriv", "authPriv"] = "authPriv"
    auth_protocol: Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] = "SHA"
    auth_key: SecretStr | None = None
    # AES192/AES256 extend the key as RFC drafts and net-snmp's AES-192/AES-256 do (Blumenthal);
    # AES192C/AES256C as Cisco and net-snmp's AES-192-C/AES-256-C do (Reeder).
    priv_protocol: Literal["DES", "AES", "AES192", "AES256", "AES192C", "AES256C"] = "AES"
    priv_key: SecretStr | None = None
    context: str = Field(default="", max_length=32)

    @field_serializer("community", "auth_key", "priv_key", when_used="json")
    def _secret_for_the_poller(
        self, value: SecretStr | None, info: SerializationInfo
    ) -> str | None:
        return None if value is None else _revealed(value, info)

    @model_validator(mode="after")
    def _v3_complete(self) -> SnmpAuth:
        if self.version != "3":
            return self
        if self.user is None:
            raise ValueError("SNMPv3 needs user")
        keys = {"auth_key": self.auth_key, "priv_key": self.priv_key}
        needed = {"noAuthNoPriv": [], "authNoPriv": ["auth_key"], "authPriv": list(keys)}
        for name in needed[self.security_level]:
            key = keys[name]
            if key is None or len(key.get_secret_value()) < 8:
                raise ValueError(
                    f"{name} is missing or shorter than 8 characters "
                    f"(needed for {self.security_level}); the value is not shown"
                )
        return self

    def secrets(self) -> list[str]:
        """Every credential here, for `agent.redact`."""
        values = [self.community, self.auth_key, self.priv_key]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


# Which interface of a device carries the school's internet access or its WAN link to the
# district hub: by ifIndex, or by ifName / ifDescr as engineers write it.
UplinkRole = Literal["internet", "wan"]


class DeviceSettings(_Section):
    name: str = Field(min_length=1, max_length=64)
    address: str
    port: int = Field(default=161, ge=1, le=65535)
    auth: SnmpAuth = Field(default_factory=SnmpAuth)
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    retries: int = Field(default=1, ge=0, le=10)
    # A profile name forces that profile instead of matching on sysObjectID / sysDescr.
    profile: str | None = Field(default=None, min_length=1, max_length=64)
    # The whole poll of this device must finish within this, whatever the device does.
    budget_s: float = Field(default=30.0, gt=0, le=600)
    uplinks: dict[UplinkRole, int | str] = Field(default_factory=dict)


class SnmpSettings(_Section):
    """How the poller works: where extra device profiles live, and how many devices at once."""

    # Profiles a district adds (YAML, one per file); a name that ships with ReadyNet is replaced.
    profile_dirs: list[Path] = Field(default_factory=lambda: [Path("/etc/readynet/profiles")])
    # Devices polled at the same time: each waits on the network, but a Pi's one core decodes.
    concurrency: int = Field(default=32, ge=1, le=512)
    max_repetitions: int = Field(default=25, ge=1, le=200)


class OnNetSettings(_Section):
    """The on-net (WAN) throughput test against the collector's speed-test endpoints.

    Each direction runs for `duration_s` with parallel streams; the first `warmup_s` are
    discarded (TCP slow start), the rest sampled every `sample_interval_s`.
    """

    enabled: bool = True
    streams_down: int = Field(default=8, ge=1, le=32)
    streams_up: int = Field(default=6, ge=1, le=32)
    duration_s: float = Field(default=10.0, gt=0, le=60)
    warmup_s: float = Field(default=2.0, ge=0, le=30)
    sample_interval_s: float = Field(default=0.25, ge=0.01, le=5)
    # Each stream asks for (or sends) this much per request and asks again until the time is
    # up, so the collector's per-agent byte budget is drawn in small pieces.
    request_bytes: int = Field(default=25_000_000, ge=65_536, le=1_000_000_000)
    idle_pings: int = Field(default=10, ge=1, le=100)
    loaded_ping_interval_s: float = Field(default=0.25, ge=0.01, le=5)
    # The agent's own link speed, where Linux does not know it (Wi-Fi) or knows it wrong.
    ceiling_mbps: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _warmup_inside(self) -> OnNetSettings:
        if self.warmup_s + 2 * self.sample_interval_s > self.duration_s:
            raise ValueError("warmup_s must leave at least two samples of duration_s")
        return self


class OutboxSettings(_Section):
    """How much the on-disk outbox may hold while the collector is away (`agent.outbox`)."""

    # The outbox's results may take this much disk; past it, the policy in agent.outbox makes
    # room (counted and reported, never silent). A Pi's SD card is small and shared.
    max_mb: float = Field(default=200, ge=1, le=100_000)
    # Results the collector refused, kept for a person to look at (`readynet-agent outbox`).
    dead_letters_max: int = Field(default=10_000, ge=10, le=1_000_000)


class UplinkSettings(_Section):
    """The school's uplink, checked for traffic before each throughput test (`agent.uplink`)."""

    # The name of one of `devices`, and the uplink's ifIndex on it; without an ifIndex, the
    # device's uplink of this role (`devices[].uplinks`, which must then be an ifIndex).
    device: str = Field(min_length=1, max_length=64)
    ifindex: int | None = Field(default=None, ge=1, le=2**31 - 1)
    role: UplinkRole = "internet"
    # Busy when either direction carries more than this share of the link speed...
    busy_fraction: float = Field(default=0.3, gt=0, le=1)
    # ...or more than this many bits per second (for links whose speed the device misreports).
    busy_bps: float | None = Field(default=None, gt=0)
    # Devices cache their counters for a few seconds: read them further apart than that.
    sample_s: float = Field(default=5.0, ge=0.5, le=60)
    # How long to wait before trying again after a busy reading.
    retry_minutes: float = Field(default=15, gt=0, le=24 * 60)


class AgentSettings(BaseSettings):
    """Everything the agent needs; built once in `main()` and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="READYNET_AGENT_", env_nested_delimiter="__", extra="forbid"
    )

    collector_url: str = "https://readynet-collector"
    # The agent's bearer token: from `token_file` (written by `readynet-agent enroll`, mode 600)
    # or given here. Exactly one of the two.
    token: SecretStr
    token_file: Path | None = None
    # CA certificates to verify the collector with (a district's own CA); default: the system's.
    ca_bundle: FilePath | None = None
    # http:// sends the token in clear: refused for anything but loopback unless set (a lab).
    allow_insecure_http: bool = False
    # Heartbeats (and remote-config checks) this often; the collector calls a silent agent stale.
    heartbeat_interval_s: float = Field(default=60, ge=5, le=3600)
    # The first round after install (none has run from state_dir yet) starts this many seconds
    # after the daemon, in the school day or not, so the installer sees it work; None: wait for
    # the schedule.
    first_round_s: float | None = Field(default=30, ge=0, le=3600)
    state_dir: Path = Path("/var/lib/readynet-agent")
    upload_timeout_s: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=500, ge=1, le=1000)
    onnet: OnNetSettings = Field(default_factory=OnNetSettings)
    internet: InternetSettings = Field(default_factory=InternetSettings)
    latency: LatencySettings = Field(default_factory=LatencySettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    devices: list[DeviceSettings] = Field(default_factory=list)
    snmp: SnmpSettings = Field(default_factory=SnmpSettings)
    uplink: UplinkSettings | None = None
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    # `readynet-agent run`: SNMP polls every this many seconds (utilisation figures assume 300),
    # and delivery of the outbox at least this often.
    snmp_interval_s: float = Field(default=300, ge=10, le=3600)
    delivery_interval_s: float = Field(default=60, ge=1, le=3600)
    # While the collector cannot be reached, delivery backs off (agent.backoff): the wait grows
    # from `delivery_interval_s`, doubling with each failure, up to this many seconds, jittered.
    delivery_backoff_max_s: float = Field(default=1800, ge=1, le=86400)

    @model_validator(mode="before")
    @classmethod
    def _token_from_file(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        token_file = data.get("token_file")
        if token_file:
            path = Path(token_file)
            try:
                from_file = path.read_text(encoding="utf-8")
            except (OSError, UnicodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise ValueError(f"token_file {path}: cannot read it: {reason}") from None
            # Settings rebuilt from settings carry the token read from the file before.
            given = data.get("token")
            if isinstance(given, SecretStr):
                given = given.get_secret_value()
            if given and str(given).strip() != from_file.strip():
                raise ValueError("token and token_file are both set: keep one")
            data = {**data, "token": from_file}
        elif not data.get("token"):
            raise ValueError(
                "no token: run `readynet-agent enroll --collector URL --code CODE` "
                "(or set token_file or token)"
            )
        return data

    @field_validator("token")
    @classmethod
    def _valid_bearer_token(cls, value: SecretStr) -> SecretStr:
        # A pasted token often brings a space or newline along; sent as is, the header is
        # refused by h11 with the token quoted in the error. The messages never quote the value.
        token = value.get_secret_value().strip()
        if token.lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("token is empty or a placeholder: set the token from `agent enroll`")
        if not _BEARER_TOKEN.fullmatch(token):
            raise ValueError(
                "token is not a valid bearer token (RFC 6750: letters, digits and -._~+/, "
                "then optional trailing =); the value is not shown"
            )
        return SecretStr(token)

    @field_validator("collector_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("collector_url must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _token_not_in_clear(self) -> AgentSettings:
        problem = insecure_http_problem(self.collector_url, allowed=self.allow_insecure_http)
        if problem is not None:
            raise ValueError(f"collector_url: {problem}")
        return self

    @model_validator(mode="after")
    def _uplink_is_a_device(self) -> AgentSettings:
        names = [d.name for d in self.devices]
        if len(set(names)) != len(names):
            raise ValueError("devices: two devices have the same name")
        if self.uplink is None:
            return self
        if self.uplink.device not in names:
            raise ValueError(f"uplink.device {self.uplink.device!r} is not one of devices")
        if self.uplink.ifindex is None:
            device = self.devices[names.index(self.uplink.device)]
            ref = device.uplinks.get(self.uplink.role)
            if not isinstance(ref, int):
                raise ValueError(
                    f"uplink.ifindex is not set and device {device.name!r} has no "
                    f"uplinks.{self.uplink.role} ifIndex (a number) to take it from"
                )
            self.uplink = self.uplink.model_copy(update={"ifindex": ref})
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = init_settings.init_kwargs.pop("_yaml_file", None)  # type: ignore[attr-defined]
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)

    def secrets(self) -> list[str]:
        """Every credential in these settings, for `agent.redact`: token and SNMP credentials."""
        snmp = [secret for device in self.devices for secret in device.auth.secrets()]
        return [self.token.get_secret_value(), *snmp]


def insecure_http_problem(url: str, *, allowed: bool) -> str | None:
    """Why the token must not go to `url`, or None: http:// is for loopback or when allowed."""
    parts = urlsplit(url)
    if parts.scheme != "http" or allowed or _loopback(parts.hostname or ""):
        return None
    return (
        f"http:// to {parts.hostname} would send the token in clear text: use https://, "
        "or set allow_insecure_http: true (a lab network only)"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(config_path: Path | None) -> AgentSettings:
    """Read agent settings from a YAML file (if given) and the environment.

    Raises ConfigError naming the bad key, e.g. ``devices.0.port: Input should be ...``, and
    never quoting a value: the token or a community may be the bad one.
    """
    if config_path is not None and not config_path.is_file():
        raise ConfigError(f"config file not found: {config_path}")
    # `from None` below: the library errors repeat the input (pydantic's `input_value=...`), and
    # a chained cause would put it in every traceback that shows our error.
    try:
        return AgentSettings(_yaml_file=config_path)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"invalid agent settings: {problems}") from None
    except YAMLError as exc:
        raise ConfigError(f"{config_path} is not valid YAML: {_yaml_problem(exc)}") from None
    except SettingsError as exc:
        # e.g. a nested variable that is not JSON: names the field and the source, not the value.
        raise ConfigError(f"invalid agent settings: {exc}") from None


def _problem(err: ErrorDetails) -> str:
    # A whole-settings check has no key to name; its message names what is wrong.
    where = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _yaml_problem(exc: YAMLError) -> str:
    # Only the problem and its position: str(exc) may show a snippet of the offending line.
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return type(exc).__name__
