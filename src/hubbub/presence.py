"""Presence: which users are online, with a grace period so a quick reconnect does not flap."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("hubbub.presence")

PresenceHook = Callable[[str], Awaitable[Any] | Any]


class Presence:
    """Counts each user's connections; fires `on_online` at the first and `on_offline`
    `grace` seconds after the last closed, unless the user came back meanwhile."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.online_hooks: list[PresenceHook] = []
        self.offline_hooks: list[PresenceHook] = []
        self._counts: dict[str, int] = {}
        self._leaving: dict[str, asyncio.TimerHandle] = {}

    def connected(self, user_id: str) -> None:
        """A connection of `user_id` opened."""
        count = self._counts.get(user_id, 0) + 1
        self._counts[user_id] = count
        pending = self._leaving.pop(user_id, None)
        if pending is not None:
            pending.cancel()
        elif count == 1:
            self._fire(self.online_hooks, user_id)

    def disconnected(self, user_id: str) -> None:
        """A connection of `user_id` closed."""
        count = self._counts.get(user_id, 0) - 1
        if count > 0:
            self._counts[user_id] = count
            return
        self._counts.pop(user_id, None)
        if self.grace > 0:
            loop = asyncio.get_running_loop()
            self._leaving[user_id] = loop.call_later(self.grace, self._gone, user_id)
        else:
            self._fire(self.offline_hooks, user_id)

    def _gone(self, user_id: str) -> None:
        self._leaving.pop(user_id, None)
        self._fire(self.offline_hooks, user_id)

    def is_online(self, user_id: str) -> bool:
        """Connected now, or within the grace period after the last connection closed."""
        return user_id in self._counts or user_id in self._leaving

    def online_users(self) -> list[str]:
        """Users that are online (see `is_online`)."""
        return [*self._counts, *(user for user in self._leaving if user not in self._counts)]

    def _fire(self, hooks: list[PresenceHook], user_id: str) -> None:
        for hook in hooks:
            try:
                result = hook(user_id)
            except Exception:
                logger.exception("presence hook %s failed for user %s", getattr(hook, "__name__", hook), user_id)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("presence hook failed", exc_info=task.exception())
