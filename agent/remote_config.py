"""Settings the collector holds for an agent (remote config), checked and kept safely.

District IT sets an agent's schedule (school day, blackouts, quiet hours, budget), its SNMP
devices and uplink, and its poll interval on the collector (`readynet-collector agent config
set NAME --file x.yaml`) instead of on each box. The agent asks for them with its heartbeat
(`If-None-Match`: nothing moves when nothing changed) and lays them over its own agent.yaml:
a section given remotely replaces the local one whole. A document that does not validate, or
does not fit the local settings (an uplink naming no device), is refused with the reason, which
the next heartbeat reports; the agent keeps running on the last good copy, which is kept in the
state directory (mode 600: it may hold SNMP credentials) so it survives a restart while the
collector is away.

Example (the YAML `agent config set` takes):

    schedule:
      blackout_dates: [2027-04-13, 2027-04-14]
    devices:
      - {name: core, address: 10.20.0.1, auth: {community: s3cret}, uplinks: {internet: 1}}
    uplink: {device: core}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import ConfigError
from agent.schedule.settings import ScheduleSettings
from agent.settings import AgentSettings, DeviceSettings, UplinkSettings

REMOTE_FILE = "remote-config.json"
# Larger than any district's device list; a runaway document is refused, not parsed.
MAX_DOCUMENT_BYTES = 1_000_000


class RemoteConfigError(ConfigError):
    """The remote settings are not valid; the message names each bad key, never a value."""


class RemoteConfig(BaseModel):
    """The sections of agent.yaml the collector may hold; each replaces the local one whole."""

    model_config = ConfigDict(extra="forbid")

    schedule: ScheduleSettings | None = None
    devices: list[DeviceSettings] | None = None
    uplink: UplinkSettings | None = None
    snmp_interval_s: float | None = Field(default=None, ge=10, le=3600)


def parse_remote_config(text: str) -> dict[str, Any]:
    """YAML (or JSON) text as the JSON document the collector keeps; RemoteConfigError if bad."""
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise RemoteConfigError(f"larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
        raise RemoteConfigError(f"not valid YAML{where}") from None
    if not isinstance(loaded, dict):
        raise RemoteConfigError("must be a mapping of sections (schedule, devices, uplink, ...)")
    config = validated(loaded)
    # Secrets revealed: this document is what the agent will run with.
    dumped: dict[str, Any] = config.model_dump(
        mode="json", exclude_unset=True, context={"reveal": True}
    )
    return dumped


def validated(document: dict[str, Any]) -> RemoteConfig:
    try:
        return RemoteConfig.model_validate(document)
    except ValidationError as exc:
        raise RemoteConfigError(_problems(exc)) from None


def merged(local: AgentSettings, document: dict[str, Any]) -> AgentSettings:
    """`local` with the remote sections laid over it, validated as a whole."""
    remote = validated(document)
    fields = {name: getattr(local, name) for name in type(local).model_fields}
    for name in remote.model_fields_set:
        value = getattr(remote, name)
        if name == "snmp_interval_s" and value is None:
            continue
        fields[name] = value
    try:
        # model_validate, not the constructor: the environment was read once, into `local`.
        return AgentSettings.model_validate(fields)
    except ValidationError as exc:
        raise RemoteConfigError(_problems(exc)) from None


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(document)'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    )


class RemoteConfigFile:
    """The last good remote config, in the agent's state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / REMOTE_FILE

    def load(self) -> tuple[str, dict[str, Any]] | None:
        """(etag, document), or None when there is none or it cannot be read."""
        try:
            saved = json.loads(self.path.read_text())
            etag, document = saved["etag"], saved["config"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(etag, str) or not isinstance(document, dict):
            return None
        return etag, document

    def save(self, etag: str, document: dict[str, Any]) -> None:
        """Written whole or not at all (temporary file, fsync, rename), readable by us alone."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"etag": etag, "config": document}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
