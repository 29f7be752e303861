"""The `hubbub` command: run an app, or a demo."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import click

from hubbub import config
from hubbub.app import App
from hubbub.broker.base import Broker
from hubbub.errors import BrokerUnavailable, ConfigurationError
from hubbub.logs import configure_logging
from hubbub.runner import run as run_app
from hubbub.tls import server_context
from hubbub.workers import supervise, worker_command


def load_app(target: str) -> App:
    """Load `module:attr` or `path/to/file.py:attr` (attr defaults to `app`)."""
    location, _, attr = target.partition(":")
    attr = attr or "app"
    if location.endswith(".py") or "/" in location:
        path = Path(location)
        if not path.is_file():
            raise ConfigurationError(f"no such file: {location}")
        sys.path.insert(0, str(path.resolve().parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ConfigurationError(f"cannot load {location}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(location)
        except ModuleNotFoundError as exc:
            raise ConfigurationError(f"cannot import {location!r}: {exc}") from None
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise ConfigurationError(f"{location}:{attr} is not a hubbub App")
    return app


@click.group()
@click.version_option(package_name="hubbub")
def main() -> None:
    """hubbub: a real-time WebSocket server framework."""


def _setting_help(key: str) -> str:
    setting = config.SETTINGS[key]
    default = (
        ""
        if setting.default is None
        else f" [default: {str(setting.default).lower() if isinstance(setting.default, bool) else setting.default}]"
    )
    return f"{setting.help}{default} (env {config.env_name(key)})"


@main.command()
@click.argument("target")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="HUBBUB_CONFIG",
    help="TOML file of settings (keys as the options, e.g. log_level). Command line > HUBBUB_* env > file.",
)
@click.option("--host", help=_setting_help("host"))
@click.option("--port", type=int, help=_setting_help("port"))
@click.option("--log-level", type=click.Choice(config.LOG_LEVELS), help=_setting_help("log_level"))
@click.option("--log-format", type=click.Choice(config.LOG_FORMATS), help=_setting_help("log_format"))
@click.option("--compression", type=click.Choice(config.COMPRESSION_MODES), help=_setting_help("compression"))
@click.option("--broker", metavar="URL", help=_setting_help("broker"))
@click.option("--workers", type=click.IntRange(1, 256), help=_setting_help("workers"))
@click.option("--certfile", metavar="PEM", help=_setting_help("certfile"))
@click.option("--keyfile", metavar="PEM", help=_setting_help("keyfile"))
@click.option("--forwarded-allow-ips", metavar="IPS", help=_setting_help("forwarded_allow_ips"))
@click.option("--metrics/--no-metrics", default=None, help=_setting_help("metrics"))
@click.option("--internal-port", type=int, help=_setting_help("internal_port"))
@click.option("--dashboard-key", metavar="KEY", help=_setting_help("dashboard_key"))
@click.option("--dashboard-auth/--no-dashboard-auth", default=None, help=_setting_help("dashboard_auth"))
@click.option("--reuse-port", is_flag=True, hidden=True, help="Bind with SO_REUSEPORT (set for worker processes).")
def run(target: str, config_file: str | None, reuse_port: bool, **options: Any) -> None:
    """Run the app TARGET, given as module:attr or path/to/file.py:attr."""
    try:
        given = config.given(options, config=config_file, environ=os.environ)
    except config.SettingError as exc:
        raise click.UsageError(str(exc)) from None
    settings = config.with_defaults(given)
    if reuse_port:
        settings["workers"] = 1  # a worker process; the supervisor's count came from the same settings
    host, port, workers, broker = settings["host"], settings["port"], settings["workers"], settings["broker"]
    configure_logging(settings["log_level"], settings["log_format"])
    try:
        app = load_app(target)
        apply_settings(app, given, settings)
        if broker is not None and broker != "memory":
            app.use_broker(broker_from_url(broker, app))
        if workers > 1:
            if not app.hub.broker.is_cluster:
                raise ConfigurationError("--workers needs a cluster broker: add --broker redis://HOST:PORT/DB")
            asyncio.run(app.hub.broker.probe())
            argv = [*sys.argv[1:]]
            raise SystemExit(supervise(worker_command(argv), workers))
    except (ConfigurationError, BrokerUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        run_app(app, host, port, reuse_port=reuse_port)
    except BrokerUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def apply_settings(app: App, given: dict[str, Any], settings: dict[str, Any]) -> None:
    """Set the app options that settings gave and check the TLS files now; a refused value is a
    usage error (exit code 2) whose message names the key."""
    changes = {key: given[key] for key in config.APP_OPTIONS if key in given}
    if settings["compression"] is not None:
        changes["compression"] = settings["compression"]
    try:
        if changes:
            app.options = app.options.replace(**changes)
        if app.options.certfile and app.options.keyfile:
            server_context(app.options.certfile, app.options.keyfile)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None


def broker_from_url(url: str, app: App) -> Broker:
    """The broker a --broker URL names."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from hubbub.broker.redis import RedisBroker

        return RedisBroker(url, presence_grace=app.options.presence_grace)
    raise ConfigurationError(f"unsupported broker URL {url!r}: use redis://HOST:PORT/DB or memory")


@main.group()
def demo() -> None:
    """Run a demo app on the embedded default (no services needed)."""


@demo.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--log-level", default="info", show_default=True, type=click.Choice(config.LOG_LEVELS))
def chat(host: str, port: int, log_level: str) -> None:
    """A chat: open http://HOST:PORT/ in several tabs, pick a nickname, join rooms, talk."""
    from hubbub.demos.chat import app

    configure_logging(log_level)
    click.echo(f"chat demo on http://{host}:{port}/")
    try:
        run_app(app, host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


if __name__ == "__main__":  # pragma: no cover
    main()
