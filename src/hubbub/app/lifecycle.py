"""An App's lifecycle hooks: startup hooks, background tasks, shutdown hooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from hubbub.app.http_routes import call

logger = logging.getLogger("hubbub.app")


class Lifecycle:
    """What runs when the app starts serving and when it stops."""

    def __init__(self) -> None:
        self.startup: list[Callable[[], Any]] = []
        self.shutdown: list[Callable[[], Any]] = []
        self.background: list[Callable[[], Coroutine[Any, Any, Any]]] = []

    async def start(self) -> list[asyncio.Task[Any]]:
        """Run the startup hooks in order, then start the background tasks; return those tasks."""
        for hook in self.startup:
            await call(hook)
        tasks = [asyncio.create_task(fn(), name=f"hubbub-background-{fn.__name__}") for fn in self.background]
        for task in tasks:
            task.add_done_callback(_log_background_failure)
        return tasks

    async def stop(self) -> None:
        """Run the shutdown hooks in order; one that fails is logged and the next ones still run."""
        for hook in self.shutdown:
            try:
                await call(hook)
            except Exception:
                logger.exception("shutdown hook %s failed", getattr(hook, "__name__", hook))


def _log_background_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("background task %s failed", task.get_name(), exc_info=task.exception())
