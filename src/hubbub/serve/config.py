"""Settings of `hubbub run` from the command line, HUBBUB_* environment variables and a TOML file.

Every option of `hubbub run` has a key: `--log-level` is `log_level` in the file
and `HUBBUB_LOG_LEVEL` in the environment. Where several give a value, the
command line wins over the environment, which wins over the file, which wins
over the defaults. An unknown key in the file, or a value of the wrong kind
anywhere, is refused with the key's name (`SettingError`). The environment is
shared with other programs, so HUBBUB_* names that are not settings are left
alone.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubbub.errors import HubbubError

ENV_PREFIX = "HUBBUB_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOG_FORMATS = ("text", "json")
COMPRESSION_MODES = ("disabled", "shared", "dedicated")


class SettingError(HubbubError):
    """A setting that cannot be used; `key` names it as its source spells it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


Parse = Callable[[Any], Any]


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def _integer(low: int, high: int) -> Parse:
    def parse(value: Any) -> int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expected an integer")
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}")
        return value

    return parse


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _choice(*choices: str) -> Parse:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value.lower()

    return parse


def _string_list(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError("expected a list of strings (or one comma-separated string)")
    cleaned = [item.strip() for item in items if item.strip()]
    if not cleaned:
        raise ValueError("expected at least one entry")
    return cleaned


@dataclass(frozen=True, slots=True)
class Setting:
    """One key: how its values are read, and its default."""

    name: str
    parse: Parse
    default: Any
    help: str


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("host", _string, "127.0.0.1", "Address to listen on."),
        Setting("port", _integer(0, 65535), 8000, "Port to listen on."),
        Setting("log_level", _choice(*LOG_LEVELS), "info", "Least severe level logged."),
        Setting("log_format", _choice(*LOG_FORMATS), "text", "text, or json: one JSON object per line."),
        Setting("compression", _choice(*COMPRESSION_MODES), None, "Override the app's permessage-deflate setting."),
        Setting(
            "broker",
            _string,
            None,
            "Cluster engine URL, e.g. redis://HOST:PORT/DB or redis+cluster://HOST:PORT,HOST:PORT (or memory).",
        ),
        Setting(
            "store",
            _string,
            None,
            "Where history and inboxes live: memory, sqlite:///rel.db, sqlite:////abs/path.db"
            " (default: the app's own; in memory, or in Redis with the Redis broker).",
        ),
        Setting("workers", _integer(1, 256), 1, "Processes sharing the port."),
        Setting("certfile", _string, None, "PEM certificate chain: serve https:// and wss:// (with keyfile)."),
        Setting("keyfile", _string, None, "PEM private key of certfile."),
        Setting(
            "forwarded_allow_ips",
            _string_list,
            None,
            "Proxies (IPs, CIDR networks, or *) trusted for X-Forwarded-For and Forwarded.",
        ),
        Setting("metrics", _boolean, True, "Serve Prometheus metrics at /metrics."),
        Setting("internal_port", _integer(0, 65535), None, "Serve /metrics and /_hubbub on this port instead."),
        Setting("dashboard_key", _string, None, "Serve the dashboard at /_hubbub to requests with this key."),
        Setting("dashboard_auth", _boolean, False, "Serve the dashboard to requests the app's authenticator accepts."),
    )
}


def env_name(key: str) -> str:
    """The environment variable of a key: log_level -> HUBBUB_LOG_LEVEL."""
    return ENV_PREFIX + key.upper()


def option_name(key: str) -> str:
    """The command-line option of a key: log_level -> --log-level."""
    return "--" + key.replace("_", "-")


def _parsed(setting: Setting, value: Any, key: str) -> Any:
    try:
        return setting.parse(value)
    except ValueError as exc:
        raise SettingError(key, f"invalid value {value!r}: {exc}") from None


def from_file(path: str | Path) -> dict[str, Any]:
    """The settings a TOML file gives (top-level keys named as in SETTINGS)."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingError(str(path), "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingError(str(path), f"cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingError(str(path), f"not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        setting = SETTINGS.get(key)
        if setting is None:
            raise SettingError(f"{path}: {key}", f"unknown key (known: {', '.join(SETTINGS)})")
        values[key] = _parsed(setting, value, f"{path}: {key}")
    return values


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings HUBBUB_* environment variables give (an empty one counts as unset)."""
    values: dict[str, Any] = {}
    for key, setting in SETTINGS.items():
        raw = environ.get(env_name(key))
        if raw is not None and raw != "":
            values[key] = _parsed(setting, raw, env_name(key))
    return values


def from_cli(given: Mapping[str, Any]) -> dict[str, Any]:
    """The settings given on the command line (None means not given)."""
    values: dict[str, Any] = {}
    for key, value in given.items():
        if value is not None:
            values[key] = _parsed(SETTINGS[key], value, option_name(key))
    return values


def given(
    cli: Mapping[str, Any], *, config: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The settings given anywhere (no defaults): the command line over the environment over the file."""
    values: dict[str, Any] = {}
    if config is not None:
        values.update(from_file(config))
    if environ is not None:
        values.update(from_env(environ))
    values.update(from_cli(cli))
    return values


def with_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting: `values` (from `given`) over the defaults."""
    return {key: setting.default for key, setting in SETTINGS.items()} | dict(values)


APP_OPTIONS = (
    "certfile",
    "keyfile",
    "forwarded_allow_ips",
    "metrics",
    "internal_port",
    "dashboard_key",
    "dashboard_auth",
)
"""Settings that are also App options: given anywhere, they override what the app's code set."""
