"""The `hubbub` command: run an app, or a demo."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from pathlib import Path

import click

from hubbub.app import App
from hubbub.broker.base import Broker
from hubbub.errors import BrokerUnavailable, ConfigurationError
from hubbub.folder import is_handler_folder, load_folder
from hubbub.loading import describe_failure, load_module
from hubbub.runner import run as run_app
from hubbub.workers import supervise, worker_command

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


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


def configure_logging(level: str) -> None:
    """Log to stderr at `level` through the standard logging module."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group()
@click.version_option(package_name="hubbub")
def main() -> None:
    """hubbub: a real-time WebSocket server framework."""


@main.command()
@click.argument("target")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(LOG_LEVELS))
@click.option(
    "--compression",
    type=click.Choice(["disabled", "shared", "dedicated"]),
    default=None,
    help="Override the app's permessage-deflate setting.",
)
@click.option(
    "--broker",
    default=None,
    metavar="URL",
    help="Cluster engine, e.g. redis://HOST:PORT/DB (default: the app's own, normally in-memory).",
)
@click.option(
    "--store",
    default=None,
    metavar="URL",
    help="Where history lives: memory, sqlite:///rel.db, sqlite:////abs/path.db (default: the app's own;"
    " in memory, or in Redis with the Redis broker).",
)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 256), help="Processes sharing the port."
)
@click.option("--reuse-port", is_flag=True, hidden=True, help="Bind with SO_REUSEPORT (set for worker processes).")
def run(
    target: str,
    host: str,
    port: int,
    log_level: str,
    compression: str | None,
    broker: str | None,
    store: str | None,
    workers: int,
    reuse_port: bool,
) -> None:
    """Run the app TARGET: module:attr, path/to/file.py:attr, or a handler folder (DIR with socket/ or api/)."""
    configure_logging(log_level)
    try:
        app = load_app(target)
        if compression is not None:
            app.options = app.options.replace(compression=compression)
        if broker is not None and broker != "memory":
            app.use_broker(broker_from_url(broker, app))
        if store is not None:
            app.use_store(store)
            if app.hub.broker.is_cluster and not store.startswith(("redis://", "rediss://", "unix://")):
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
@click.option("--log-level", default="info", show_default=True, type=click.Choice(LOG_LEVELS))
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
