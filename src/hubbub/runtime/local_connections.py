"""This node's open connections, found by id, by user and by room (the hub's local maps)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubbub.runtime.connection import Connection


class LocalConnections:
    """The open connections of this process by id, by user and by room; empty rooms and users disappear."""

    def __init__(self) -> None:
        self.by_id: dict[str, Connection] = {}
        self.rooms: dict[str, dict[str, Connection]] = {}
        """Per room, its local members by client id."""
        self.listening: dict[str, dict[str, Connection]] = {}
        """Per room, the local members that speak envelopes (they get presence events)."""
        self.users: dict[str, dict[str, Connection]] = {}
        """Per user id, the user's local connections (devices) by client id."""

    def add(self, conn: Connection) -> None:
        """Count an open connection in."""
        self.by_id[conn.id] = conn
        user_id = conn.user_id
        if user_id is not None:
            self.users.setdefault(user_id, {})[conn.id] = conn

    def discard(self, conn: Connection) -> bool:
        """Count a connection out (rooms aside, see `leave`); False if it was not counted in."""
        if self.by_id.pop(conn.id, None) is None:
            return False
        user_id = conn.user_id
        if user_id is not None:
            devices = self.users.get(user_id)
            if devices is not None:
                devices.pop(conn.id, None)
                if not devices:
                    del self.users[user_id]
        return True

    def enter(self, room: str, conn: Connection) -> bool:
        """Make a connection a member of a room; False if it already was one."""
        members = self.rooms.setdefault(room, {})
        if conn.id in members:
            return False
        members[conn.id] = conn
        if conn.codec is not None and conn.codec.whole_envelopes:
            self.listening.setdefault(room, {})[conn.id] = conn
        return True

    def leave(self, room: str, client_id: str) -> bool:
        """Take a client out of a room's members; False if it was not one."""
        members = self.rooms.get(room)
        if members is None or members.pop(client_id, None) is None:
            return False
        if not members:
            del self.rooms[room]
        listening = self.listening.get(room)
        if listening is not None and listening.pop(client_id, None) is not None and not listening:
            del self.listening[room]
        return True

    def members(self, room: str) -> list[Connection]:
        """A room's local members."""
        members = self.rooms.get(room)
        return list(members.values()) if members else []

    def listeners(self, room: str) -> list[Connection]:
        """A room's local members that get presence events."""
        listening = self.listening.get(room)
        return list(listening.values()) if listening else []

    def devices(self, user_ids: Iterable[str]) -> list[Connection]:
        """The local connections of these users."""
        return [conn for user_id in user_ids for conn in self.users.get(user_id, {}).values()]

    def everyone(self) -> list[Connection]:
        """Every local connection."""
        return list(self.by_id.values())
