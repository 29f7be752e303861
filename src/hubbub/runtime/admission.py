"""Presence while a handshake is admitted: a user the cluster finds online while one of this node's
handshakes for it is being admitted gets its online hooks once that connection is open, not before."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hubbub.runtime.presence import PresenceHooks


class Admissions:
    """Users with a handshake being admitted here, and those whose online hooks wait for it to open."""

    def __init__(self, presence: PresenceHooks) -> None:
        self._presence = presence
        self._admitting: dict[str, int] = {}
        self._online_at_open: set[str] = set()

    @contextmanager
    def admitting(self, user_id: str | None) -> Iterator[None]:
        """Count a user's handshake as being admitted for the time of the block."""
        if user_id is None:
            yield
            return
        self._admitting[user_id] = self._admitting.get(user_id, 0) + 1
        try:
            yield
        finally:
            left = self._admitting[user_id] - 1
            if left:
                self._admitting[user_id] = left
            else:
                del self._admitting[user_id]

    def online(self, user_id: str) -> None:
        """The user came online: run the hooks now, or when its connection being admitted opens."""
        if user_id in self._admitting:
            self._online_at_open.add(user_id)
        else:
            self._presence.fire_online(user_id)

    def opened(self, user_id: str | None) -> None:
        """A connection of this user opened (or its handshake was dropped): run the hooks that waited."""
        if user_id is not None and user_id in self._online_at_open:
            self._online_at_open.discard(user_id)
            self._presence.fire_online(user_id)
