"""Presence hooks: the app's on_online / on_offline callbacks.

Whether a user is online is decided by the broker, once for the whole cluster;
the node where the decision happens runs these hooks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("hubbub.presence")

PresenceHook = Callable[[str], Awaitable[Any] | Any]


class PresenceHooks:
    """The registered on_online and on_offline callbacks."""

    def __init__(self) -> None:
        self.online: list[PresenceHook] = []
        self.offline: list[PresenceHook] = []

    def fire_online(self, user_id: str) -> None:
        """Run the on_online hooks for `user_id`."""
        _fire(self.online, user_id)

    def fire_offline(self, user_id: str) -> None:
        """Run the on_offline hooks for `user_id`."""
        _fire(self.offline, user_id)


def _fire(hooks: list[PresenceHook], user_id: str) -> None:
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
