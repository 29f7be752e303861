"""Handler folders: an app made of files, served with `hubbub run DIR`.

    DIR/socket/NAME.py         WebSocket route /NAME (index.py: /, rooms/{room}.py: /rooms/{room})
    DIR/socket/_middleware.py  authenticate(request), on_online(user_id), on_offline(user_id)
    DIR/api/NAME.py            HTTP handlers named after their methods (get, post, ...) for /NAME

A socket module defines `on_message(event)` (its return value, if not None, is sent back)
and optionally `on_connect(event)` / `on_disconnect(event)`, and a module-level
`config = {"type": "json" | "string" | "binary", "timeout": seconds}`. A handler that raises
or runs past its timeout answers `{"error": "<message>"}`. Files and folders whose names
start with `_` are not routes.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from hubbub.app.app import App
from hubbub.app.endpoint import WebSocketEndpoint
from hubbub.app.loading import load_module
from hubbub.errors import ConfigurationError
from hubbub.runtime.events import Event

logger = logging.getLogger("hubbub.folder")

MESSAGE_TYPES = ("json", "string", "binary")
DEFAULT_TIMEOUT = 10.0
"""Seconds a socket handler may run unless its module's `config` says otherwise."""
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
MIDDLEWARE_HOOKS = ("authenticate", "on_online", "on_offline")


def is_handler_folder(directory: Path) -> bool:
    """Whether `directory` holds a socket/ or api/ folder."""
    return (directory / "socket").is_dir() or (directory / "api").is_dir()


def load_folder(directory: str | Path, app: App | None = None) -> App:
    """The app a handler folder describes (routes added to `app` if given). Raises
    ConfigurationError naming the file for a module that cannot be imported or is wrong."""
    root = Path(directory).resolve()
    if not root.is_dir():
        raise ConfigurationError(f"no such folder: {directory}")
    if not is_handler_folder(root):
        raise ConfigurationError(f"{directory} has no socket/ or api/ folder")
    app = app or App()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # handler modules may import helpers that sit in DIR
    prefix = "_hubbub_folder_" + hashlib.sha1(str(root).encode()).hexdigest()[:8]
    socket_dir = root / "socket"
    middleware = socket_dir / "_middleware.py"
    if middleware.is_file():
        _use_middleware(app, _load(middleware, root, prefix))
    found = 0
    for file, route in _routes(socket_dir):
        app.mount_websocket(route, socket_endpoint(_load(file, root, prefix), _label(file, root)))
        found += 1
    for file, route in _routes(root / "api"):
        _add_api_routes(app, route, _load(file, root, prefix), _label(file, root))
        found += 1
    if not found:
        raise ConfigurationError(f"{directory}: no route modules in socket/ or api/ (e.g. socket/index.py)")
    return app


def _label(file: Path, root: Path) -> str:
    return str(file.relative_to(root))


def _load(file: Path, root: Path, prefix: str) -> ModuleType:
    dotted = ".".join(file.relative_to(root).with_suffix("").parts)
    return load_module(file, f"{prefix}.{dotted}", shown_as=_label(file, root))


def _routes(directory: Path) -> Iterator[tuple[Path, str]]:
    """(file, route path) for every route module under `directory`, in a stable order."""
    if not directory.is_dir():
        return
    for file in sorted(directory.rglob("*.py")):
        parts = file.relative_to(directory).with_suffix("").parts
        if any(part.startswith("_") for part in parts):
            continue
        if parts[-1] == "index":
            parts = parts[:-1]
        yield file, "/" + "/".join(parts)


def _use_middleware(app: App, module: ModuleType) -> None:
    for name in MIDDLEWARE_HOOKS:
        hook = getattr(module, name, None)
        if hook is None:
            continue
        if not callable(hook):
            raise ConfigurationError(f"socket/_middleware.py: {name} must be a function")
        getattr(app, name)(hook)


def _config(module: ModuleType, label: str, allowed: dict[str, Callable[[Any], bool]]) -> dict[str, Any]:
    config = getattr(module, "config", {})
    if not isinstance(config, dict):
        raise ConfigurationError(f"{label}: config must be a dict, not {type(config).__name__}")
    for key, value in config.items():
        check = allowed.get(key)
        if check is None:
            raise ConfigurationError(f"{label}: unknown config key {key!r} (allowed: {', '.join(allowed)})")
        if not check(value):
            raise ConfigurationError(f"{label}: config {key!r} cannot be {value!r}")
    return config


def _is_timeout(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool) and value > 0)


def socket_endpoint(module: ModuleType, label: str) -> WebSocketEndpoint:
    """The WebSocket endpoint a socket module defines."""
    config = _config(module, label, {"type": lambda v: v in MESSAGE_TYPES, "timeout": _is_timeout})
    handler = getattr(module, "on_message", None)
    if not callable(handler):
        raise ConfigurationError(f"{label}: define on_message(event)")
    hooks = {}
    for name in ("on_connect", "on_disconnect"):
        hook = getattr(module, name, None)
        if hook is not None and not callable(hook):
            raise ConfigurationError(f"{label}: {name} must be a function")
        hooks[name] = hook
    on_message = _message_handler(handler, config.get("type", "json"), config.get("timeout", DEFAULT_TIMEOUT), label)
    return WebSocketEndpoint(hooks["on_connect"], on_message, hooks["on_disconnect"])


def _message_handler(
    handler: Callable[[Event], Any], kind: str, timeout: float | None, label: str
) -> Callable[[Event], Any]:
    async def on_message(event: Event) -> None:
        try:
            event.data = _decode(event, kind)
        except ValueError as exc:
            await event.send(_error(str(exc)))
            return
        try:
            result = handler(event)
            if inspect.isawaitable(result):  # a plain function cannot be interrupted: only coroutines time out
                result = await asyncio.wait_for(result, timeout)
        except TimeoutError:
            logger.error("%s: on_message timed out after %s s on connection %s", label, timeout, event.client_id)
            await event.send(_error(f"timed out after {timeout:g} s"))
            return
        except Exception as exc:
            logger.exception("%s: on_message failed on connection %s", label, event.client_id)
            await event.send(_error(str(exc) or type(exc).__name__))
            return
        if result is not None:
            await event.send(_encode(result))

    return on_message


def _decode(event: Event, kind: str) -> Any:
    if kind == "binary":
        return event.bytes
    if kind == "string":
        return event.text
    try:
        return orjson.loads(event.data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None


def _encode(value: Any) -> str | bytes:
    if isinstance(value, str | bytes):
        return value
    return orjson.dumps(value).decode("utf-8")


def _error(message: str) -> str:
    return orjson.dumps({"error": message}).decode("utf-8")


def _add_api_routes(app: App, route: str, module: ModuleType, label: str) -> None:
    config = _config(module, label, {"auth": lambda v: isinstance(v, bool)})
    found = False
    for method in HTTP_METHODS:
        handler = getattr(module, method, None)
        if handler is None:
            continue
        if not callable(handler):
            raise ConfigurationError(f"{label}: {method} must be a function")
        app.route(route, (method.upper(),), auth=config.get("auth", False))(handler)
        found = True
    if not found:
        raise ConfigurationError(f"{label}: define at least one of {', '.join(HTTP_METHODS)}(request)")
