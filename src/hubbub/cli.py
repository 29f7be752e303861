"""The `hubbub` command: run an app, or a demo."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

import click

from hubbub.app import App
from hubbub.broker.base import Broker
from hubbub.errors import BrokerUnavailable, ConfigurationError
from hubbub.runner import host_in_url
from hubbub.runner import run as run_app
from hubbub.workers import supervise, worker_command

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


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
    workers: int,
    reuse_port: bool,
) -> None:
    """Run the app TARGET, given as module:attr or path/to/file.py:attr."""
    configure_logging(log_level)
    try:
        app = load_app(target)
        if compression is not None:
            app.options = app.options.replace(compression=compression)
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
    click.echo(f"chat demo on http://{host_in_url(host)}:{port}/")
    try:
        run_app(app, host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


if __name__ == "__main__":  # pragma: no cover
    main()
