"""Settings of `hubbub run`: the file, the environment, the command line, and their order."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubbub.serve import config
from hubbub.serve.config import SettingError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hubbub.toml"
    path.write_text(text)
    return path


def test_every_setting_has_a_key_an_option_and_a_variable() -> None:
    assert config.option_name("forwarded_allow_ips") == "--forwarded-allow-ips"
    assert config.env_name("log_format") == "HUBBUB_LOG_FORMAT"
    assert config.with_defaults({})["port"] == 8000
    assert config.with_defaults({})["metrics"] is True


def test_command_line_over_environment_over_file_over_defaults(tmp_path: Path) -> None:
    file = write(tmp_path, 'host = "0.0.0.0"\nport = 9001\nlog_level = "debug"\nworkers = 3\n')
    env = {"HUBBUB_PORT": "9002", "HUBBUB_LOG_LEVEL": "warning"}
    cli = {"port": 9003, "host": None}
    settings = config.with_defaults(config.given(cli, config=file, environ=env))
    assert settings["port"] == 9003  # command line
    assert settings["log_level"] == "warning"  # environment over the file
    assert settings["host"] == "0.0.0.0"  # file (the command line left it unset)
    assert settings["workers"] == 3
    assert settings["log_format"] == "text"  # default


def test_values_are_typed_from_each_source(tmp_path: Path) -> None:
    file = write(tmp_path, 'forwarded_allow_ips = ["10.0.0.0/8", "127.0.0.1"]\nmetrics = false\ninternal_port = 9100\n')
    assert config.given({}, config=file) == {
        "forwarded_allow_ips": ["10.0.0.0/8", "127.0.0.1"],
        "metrics": False,
        "internal_port": 9100,
    }
    env = {"HUBBUB_FORWARDED_ALLOW_IPS": "*", "HUBBUB_METRICS": "off", "HUBBUB_DASHBOARD_AUTH": "yes"}
    assert config.given({}, environ=env) == {"forwarded_allow_ips": ["*"], "metrics": False, "dashboard_auth": True}
    listed = config.given({"forwarded_allow_ips": "10.0.0.1, 10.0.0.2"})["forwarded_allow_ips"]
    assert listed == ["10.0.0.1", "10.0.0.2"]


def test_an_unknown_file_key_is_refused_by_name(tmp_path: Path) -> None:
    file = write(tmp_path, "prot = 8000\n")
    with pytest.raises(SettingError, match="prot: unknown key") as caught:
        config.given({}, config=file)
    assert caught.value.key.endswith("prot")


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('port = "eighty"', "port"),
        ("port = 70000", "port"),
        ("workers = 0", "workers"),
        ('log_level = "loud"', "log_level"),
        ('log_format = "xml"', "log_format"),
        ('metrics = "maybe"', "metrics"),
        ("forwarded_allow_ips = [1, 2]", "forwarded_allow_ips"),
        ('host = ""', "host"),
    ],
)
def test_an_invalid_file_value_is_refused_by_name(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(SettingError, match=f"{key}: invalid value"):
        config.given({}, config=write(tmp_path, line + "\n"))


def test_an_invalid_variable_is_refused_by_name() -> None:
    with pytest.raises(SettingError, match="HUBBUB_WORKERS: invalid value 'many'"):
        config.given({}, environ={"HUBBUB_WORKERS": "many"})


def test_other_hubbub_variables_and_empty_ones_are_left_alone() -> None:
    assert config.given({}, environ={"HUBBUB_TEST_MARKERS": "/tmp", "HUBBUB_PORT": ""}) == {}


def test_a_missing_or_broken_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="no such file"):
        config.given({}, config=tmp_path / "absent.toml")
    with pytest.raises(SettingError, match="not valid TOML"):
        config.given({}, config=write(tmp_path, "port = = 1\n"))
