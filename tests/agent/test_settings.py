"""agent.yaml parsing: strict keys, named errors, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.settings import load_settings

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
    monkeypatch.setenv("READYNET_AGENT_ONNET__STREAMS", "4")
    monkeypatch.setenv("READYNET_AGENT_COLLECTOR_URL", "http://127.0.0.2:9000")
    settings = load_settings(_write(tmp_path, GOOD))
    assert (settings.onnet.streams, settings.collector_url) == (4, "http://127.0.0.2:9000")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "colour: red\n", "colour: Extra inputs are not permitted"),
        (GOOD.replace("port: 1161", "port: 99999"), "devices.0.port"),
        (GOOD.replace("token: a-real-token-value", "token: changeme"), "placeholder"),
        (GOOD.replace("http://127.0.0.1:8080/", "127.0.0.1:8080"), "collector_url"),
        ("collector_url: http://127.0.0.1\n", "token: Field required"),
        (GOOD + "onnet: {streams: 0}\n", "onnet.streams"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.yaml")
