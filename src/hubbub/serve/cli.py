"""The `hubbub` command: run an app, or a demo."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from hubbub.app.app import App
from hubbub.app.folder import is_handler_folder, load_folder
from hubbub.app.loading import describe_failure, load_module
from hubbub.broker.base import Broker
from hubbub.broker.redis_target import is_redis_url
from hubbub.errors import BrokerUnavailable, ConfigurationError
from hubbub.serve import config
from hubbub.serve.logs import configure_logging
from hubbub.serve.runner import host_in_url
from hubbub.serve.runner import run as run_app
from hubbub.serve.tls import server_context
from hubbub.serve.workers import supervise, worker_command

TARGET_FORMS = "module:attr, path/to/file.py:attr, or a handler folder (one with socket/ or api/)"


def load_app(target: str) -> App:
    """Load `module:attr`, `path/to/file.py:attr` (attr defaults to `app`), or a handler folder.

    A target that names an existing folder is served as a handler folder (a `socket/` or
    `api/` folder given itself stands for its parent). Errors raise ConfigurationError with
    a message for the user: the file and line for an app whose import fails."""
    location, _, attr = target.partition(":")
    attr = attr or "app"
    folder = Path(location)
    if not attr_given(target) and folder.is_dir():
        if is_handler_folder(folder):
            return load_folder(folder)
        parent = folder.resolve().parent
        if folder.resolve().name in ("socket", "api") and is_handler_folder(parent):
            return load_folder(parent)
        if not (folder / "__init__.py").is_file():
            raise ConfigurationError(f"{location} is a folder without socket/ or api/; give {TARGET_FORMS}")
    if location.endswith(".py") or "/" in location:
        path = Path(location)
        if not path.is_file():
            raise ConfigurationError(f"no such file: {location} (give {TARGET_FORMS})")
        sys.path.insert(0, str(path.resolve().parent))
        module = load_module(path, path.stem, shown_as=location)
    else:
        sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(location)
        except ModuleNotFoundError as exc:
            if exc.name == location or location.startswith(f"{exc.name}."):
                raise ConfigurationError(f"no module named {location!r} (give {TARGET_FORMS})") from None
            raise ConfigurationError(describe_failure(exc, location)) from None
        except Exception as exc:
            raise ConfigurationError(describe_failure(exc, location)) from None
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        origin = getattr(module, "__file__", None) or "a built-in module"
        raise ConfigurationError(f"{location}:{attr} is not a hubbub App (module {location} is {origin})")
    return app


def attr_given(target: str) -> bool:
    """Whether a target names an attribute (`module:attr`)."""
    return ":" in target


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
@click.option("--store", metavar="URL", help=_setting_help("store"))
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
    """Run the app TARGET: module:attr, path/to/file.py:attr, or a handler folder (DIR with socket/ or api/)."""
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
        store = settings["store"]
        if store is not None:
            app.use_store(store)
            if app.hub.broker.is_cluster and not is_redis_url(store):
                raise ConfigurationError(f"--store {store} serves one process; with --broker, history lives in Redis")
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
    except (BrokerUnavailable, ConfigurationError) as exc:
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
    if is_redis_url(url):
        from hubbub.broker.redis import RedisBroker

        return RedisBroker(url, presence_grace=app.options.presence_grace)
    raise ConfigurationError(
        f"unsupported broker URL {url!r}: use redis://HOST:PORT/DB, redis+cluster://HOST:PORT,HOST:PORT or memory"
    )


@main.command()
@click.argument("target")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    show_default=True,
    help="Where to write the AsyncAPI 3 document (JSON; - for stdout).",
)
@click.option(
    "--typescript",
    "typescript",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write TypeScript declarations typing hubbub.js per event name to this .d.ts file.",
)
@click.option("--title", default=None, help="The document's title (default: TARGET).")
@click.option("--version", "doc_version", default="1.0.0", show_default=True, help="The document's version.")
def schema(target: str, output: str, typescript: str | None, title: str | None, doc_version: str) -> None:
    """Write the AsyncAPI 3 document of the channel routes of the app TARGET (module:attr or file.py:attr)."""
    import orjson

    from hubbub.contract import asyncapi_document, typescript_declarations

    try:
        app = load_app(target)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    name = title or target
    text = orjson.dumps(asyncapi_document(app, title=name, version=doc_version), option=orjson.OPT_INDENT_2).decode()
    if output == "-":
        click.echo(text)
    else:
        Path(output).write_text(text + "\n", encoding="utf-8")
    if typescript is not None:
        Path(typescript).write_text(typescript_declarations(app, title=name), encoding="utf-8")


@main.group()
def demo() -> None:
    """Run a demo app on the embedded default (no services needed)."""


@demo.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--log-level", default="info", show_default=True, type=click.Choice(config.LOG_LEVELS))
def chat(host: str, port: int, log_level: str) -> None:
    """A chat: open http://HOST:PORT/ in several tabs, pick a nickname, join rooms, talk."""
    app = load_app("hubbub.demos.chat:app")  # an app like any other, found by its name
    configure_logging(log_level)
    click.echo(f"chat demo on http://{host_in_url(host)}:{port}/")
    try:
        run_app(app, host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


if __name__ == "__main__":  # pragma: no cover
    main()
