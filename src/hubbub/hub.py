"""The hub: every connection of this server by id and by room, and delivery to them.

Every operation is a coroutine so that the same calls work unchanged when a
cluster broker makes them reach other processes and machines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubbub.transport.message import Outgoing
from hubbub.transport.websocket import TransportStats

if TYPE_CHECKING:
    from hubbub.connection import Connection


class Hub:
    """Connections by id and rooms by name; usable from handlers, HTTP routes and tasks."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        self._rooms: dict[str, dict[str, Connection]] = {}
        self.stats = TransportStats()

    # ---- registry (called by connections) ------------------------------------------

    def add(self, conn: Connection) -> None:
        """Register an open connection."""
        self._connections[conn.id] = conn

    def remove(self, conn: Connection) -> set[str]:
        """Unregister a closed connection and take it out of every room; return those rooms."""
        self._connections.pop(conn.id, None)
        rooms = set(conn.rooms)
        for room in rooms:
            self._drop_member(room, conn.id)
        conn.rooms.clear()
        return rooms

    def get(self, client_id: str) -> Connection | None:
        """The local connection with this id, if any."""
        return self._connections.get(client_id)

    def _drop_member(self, room: str, client_id: str) -> bool:
        members = self._rooms.get(room)
        if members is None or members.pop(client_id, None) is None:
            return False
        if not members:
            del self._rooms[room]
        return True

    # ---- clients ----------------------------------------------------------------------

    async def send(self, client_id: str, data: str | bytes) -> bool:
        """Send text (str) or binary (bytes) to one client; False if unknown, closed or dropped."""
        conn = self._connections.get(client_id)
        return await conn.send(data) if conn is not None else False

    async def close(self, client_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close one client with a code and reason; False if unknown."""
        conn = self._connections.get(client_id)
        if conn is None:
            return False
        await conn.close(code, reason)
        return True

    async def clients(self) -> list[str]:
        """Ids of every connected client."""
        return list(self._connections)

    async def connection_count(self) -> int:
        """How many clients are connected."""
        return len(self._connections)

    async def dropped_count(self) -> int:
        """Messages dropped so far because a client's outgoing buffer was full."""
        return self.stats.dropped_messages

    async def broadcast(self, data: str | bytes, *, exclude: str | None = None) -> int:
        """Send to every client (but `exclude`); return how many it was queued for."""
        return self._deliver(Outgoing(data), self._connections.values(), exclude)

    # ---- rooms ------------------------------------------------------------------------

    async def join(self, room: str, client_id: str) -> bool:
        """Put a client in a room; False if the client is unknown."""
        conn = self._connections.get(client_id)
        if conn is None or conn.closed:
            return False
        members = self._rooms.get(room)
        if members is None:
            members = self._rooms[room] = {}
        members[client_id] = conn
        conn.rooms.add(room)
        return True

    async def leave(self, room: str, client_id: str) -> bool:
        """Take a client out of a room; empty rooms disappear. False if it was not in it."""
        conn = self._connections.get(client_id)
        if conn is not None:
            conn.rooms.discard(room)
        return self._drop_member(room, client_id)

    async def room_broadcast(self, room: str, data: str | bytes, *, exclude: str | None = None) -> int:
        """Send to every member of a room (but `exclude`); the frame is built once."""
        members = self._rooms.get(room)
        if not members:
            return 0
        return self._deliver(Outgoing(data), list(members.values()), exclude)

    async def room_members(self, room: str) -> list[str]:
        """Ids of the clients in a room."""
        return list(self._rooms.get(room, ()))

    async def room_count(self, room: str) -> int:
        """How many clients are in a room."""
        return len(self._rooms.get(room, ()))

    async def rooms(self) -> list[str]:
        """Names of the rooms that have members."""
        return list(self._rooms)

    # ---- delivery ----------------------------------------------------------------------

    @staticmethod
    def _deliver(message: Outgoing, conns: object, exclude: str | None) -> int:
        sent = 0
        for conn in conns:  # type: ignore[attr-defined]
            ws = conn._ws
            if ws is not None and conn.id != exclude and ws.send_message(message):
                sent += 1
        return sent
