"""A client's broker writes (register, join, leave, unregister) run one after another, in the order made."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from hubbub.runtime.eager import start_eagerly

logger = logging.getLogger("hubbub.hub")


class OrderedWrites:
    """Per client, the last broker write still running; the next one waits for it."""

    def __init__(self) -> None:
        self._writes: dict[str, asyncio.Task[Any]] = {}

    def after(self, client_id: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """Run a broker write for a client after the ones before it (join, then unregister).
        It starts at once; None if it already finished (the memory engine never waits)."""
        previous = self._writes.get(client_id)
        guarded = self._logged(client_id, coro, previous)
        task = start_eagerly(guarded, asyncio.get_running_loop())
        if task is None:
            return None
        self._writes[client_id] = task
        task.add_done_callback(lambda done: self._forget(client_id, done))
        return task

    @staticmethod
    async def _logged(client_id: str, coro: Coroutine[Any, Any, Any], previous: asyncio.Task[Any] | None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            await coro
        except Exception:
            logger.exception("broker update for %s failed", client_id)

    def _forget(self, client_id: str, done: asyncio.Task[Any]) -> None:
        if self._writes.get(client_id) is done:
            del self._writes[client_id]

    async def settled(self, client_id: str) -> None:
        """Wait until every write made for this client so far has finished."""
        pending = self._writes.get(client_id)
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
