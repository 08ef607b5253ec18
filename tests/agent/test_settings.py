"""agent.yaml parsing: strict keys, named errors, environment overrides."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.errors import ConfigError
from agent.settings import AgentSettings, load_settings

GOOD = """
collector_url: http://127.0.0.1:8080/
token: a-real-token-value
devices:
  - name: core
    address: 127.0.0.1
    port: 1161
    auth: {community: iosxe}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return path


def test_reads_yaml(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, GOOD))
    assert settings.collector_url == "http://127.0.0.1:8080"
    assert settings.devices[0].port == 1161
    assert settings.devices[0].auth.community.get_secret_value() == "iosxe"
    assert "iosxe" not in repr(settings)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READYNET_AGENT_ONNET__STREAMS_DOWN", "4")
    monkeypatch.setenv("READYNET_AGENT_COLLECTOR_URL", "http://127.0.0.2:9000")
    settings = load_settings(_write(tmp_path, GOOD))
    assert (settings.onnet.streams_down, settings.collector_url) == (4, "http://127.0.0.2:9000")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "colour: red\n", "colour: Extra inputs are not permitted"),
        (GOOD.replace("port: 1161", "port: 99999"), "devices.0.port"),
        (GOOD.replace("token: a-real-token-value", "token: changeme"), "placeholder"),
        (GOOD.replace("http://127.0.0.1:8080/", "127.0.0.1:8080"), "collector_url"),
        ("collector_url: http://127.0.0.1\n", "no token: run `readynet-agent enroll"),
        (GOOD + "onnet: {streams_down: 0}\n", "onnet.streams_down"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.yaml")


def test_token_is_stripped_of_surrounding_whitespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, GOOD.replace("a-real-token-value", "' a-real-token-value== '"))
    assert load_settings(path).token.get_secret_value() == "a-real-token-value=="
    # `READYNET_AGENT_TOKEN=$(cat token-file)` style values keep the file's newline.
    monkeypatch.setenv("READYNET_AGENT_TOKEN", "from-the-environment\n")
    assert load_settings(path).token.get_secret_value() == "from-the-environment"


SECRET = "S3cret-Value-Zq8"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (GOOD.replace("a-real-token-value", f"'{SECRET} x'"), "token"),
        (GOOD.replace("a-real-token-value", f"'{SECRET}\\u00e9'"), "token"),
        (GOOD.replace("a-real-token-value", f"[{SECRET}]"), "token"),
        (GOOD.replace("a-real-token-value", f"{{value: {SECRET}}}"), "token"),
        (GOOD.replace("{community: iosxe}", f"{{community: [{SECRET}]}}"), "community"),
        (GOOD.replace("{community: iosxe}", f"{{community: {SECRET}, version: 3}}"), "version"),
        (GOOD.replace("{community: iosxe}", f"{{community: {{a: {SECRET}}}}}"), "community"),
        # A YAML error on the line that holds the secret.
        (GOOD.replace("a-real-token-value", f'"{SECRET}'), "not valid YAML"),
        (GOOD.replace("a-real-token-value", f"{SECRET}: x"), "not valid YAML"),
    ],
    ids=[
        "token-inner-space",
        "token-non-ascii",
        "token-list",
        "token-mapping",
        "community-list",
        "community-beside-bad-version",
        "community-mapping",
        "yaml-unclosed-quote",
        "yaml-mapping-in-value",
    ],
)
def test_config_errors_never_quote_a_secret(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key) as caught:
        load_settings(_write(tmp_path, text))
    assert SECRET not in str(caught.value)
    # Nor in a traceback of it: pydantic's own message repeats the input (`input_value=...`).
    assert SECRET not in "".join(traceback.format_exception(caught.value))


def test_the_uplink_check_takes_its_ifindex_from_the_device_roles() -> None:
    device = {"name": "edge", "address": "127.0.0.1", "uplinks": {"internet": 3, "wan": "Gi0/2"}}
    settings = AgentSettings(token="t0ken", devices=[device], uplink={"device": "edge"})
    assert settings.uplink is not None and settings.uplink.ifindex == 3
    with pytest.raises(ValidationError, match=r"no uplinks\.wan ifIndex"):
        AgentSettings(token="t0ken", devices=[device], uplink={"device": "edge", "role": "wan"})
    with pytest.raises(ValidationError, match="two devices have the same name"):
        AgentSettings(token="t0ken", devices=[device, device])
