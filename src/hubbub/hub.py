"""The hub: every connection of this server by id, by user and by room, and delivery to them.

Every operation is a coroutine so that the same calls work unchanged when a
cluster broker makes them reach other processes and machines. Anything that
sends accepts text (str), binary (bytes) or an `Envelope`; an envelope is
encoded once per codec in use and the frame is built once per encoding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hubbub.connection import encode_for
from hubbub.presence import Presence
from hubbub.protocol import envelope as env
from hubbub.protocol.envelope import Envelope
from hubbub.transport.message import Outgoing
from hubbub.transport.websocket import TransportStats

if TYPE_CHECKING:
    from hubbub.connection import Connection
    from hubbub.protocol.codecs import Codec

Sendable = str | bytes | Envelope


class _Delivery:
    """One message on its way to many connections: one Outgoing per encoding."""

    __slots__ = ("data", "_plain", "_by_codec")

    def __init__(self, data: Sendable) -> None:
        self.data = data
        self._plain: Outgoing | None = None if isinstance(data, Envelope) else Outgoing(data)
        self._by_codec: dict[str | None, Outgoing] = {}

    def for_codec(self, codec: Codec | None) -> Outgoing:
        plain = self._plain
        if plain is not None:
            return plain
        key = codec.name if codec is not None else None
        message = self._by_codec.get(key)
        if message is None:
            message = self._by_codec[key] = Outgoing(encode_for(self.data, codec))
        return message


class Hub:
    """Connections by id, user and room; usable from handlers, HTTP routes and tasks."""

    def __init__(self, *, presence_grace: float = 2.0, room_presence_events: bool = True) -> None:
        self._connections: dict[str, Connection] = {}
        self._rooms: dict[str, dict[str, Connection]] = {}
        self._users: dict[str, dict[str, Connection]] = {}
        self.presence = Presence(presence_grace)
        self.room_presence_events = room_presence_events
        self.stats = TransportStats()

    # ---- registry (called by connections) ------------------------------------------

    def add(self, conn: Connection) -> None:
        """Register an open connection."""
        self._connections[conn.id] = conn
        user_id = conn.user_id
        if user_id is not None:
            devices = self._users.get(user_id)
            if devices is None:
                devices = self._users[user_id] = {}
            devices[conn.id] = conn
            self.presence.connected(user_id)

    def remove(self, conn: Connection) -> set[str]:
        """Unregister a closed connection and take it out of every room; return those rooms."""
        if self._connections.pop(conn.id, None) is None:
            return set()
        rooms = set(conn.rooms)
        for room in rooms:
            if self._drop_member(room, conn.id):
                self._announce(room, conn, "leave")
        conn.rooms.clear()
        user_id = conn.user_id
        if user_id is not None:
            devices = self._users.get(user_id)
            if devices is not None:
                devices.pop(conn.id, None)
                if not devices:
                    del self._users[user_id]
            self.presence.disconnected(user_id)
        return rooms

    def get(self, client_id: str) -> Connection | None:
        """The local connection with this id, if any."""
        return self._connections.get(client_id)

    def user_count(self, user_id: str) -> int:
        """How many connections this user has open here."""
        return len(self._users.get(user_id, ()))

    def _drop_member(self, room: str, client_id: str) -> bool:
        members = self._rooms.get(room)
        if members is None or members.pop(client_id, None) is None:
            return False
        if not members:
            del self._rooms[room]
        return True

    # ---- clients ----------------------------------------------------------------------

    async def send(self, client_id: str, data: Sendable) -> bool:
        """Send to one client; False if unknown, closed or dropped."""
        conn = self._connections.get(client_id)
        return conn.send_nowait(data) if conn is not None else False

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

    async def broadcast(self, data: Sendable, *, exclude: str | None = None) -> int:
        """Send to every client (but `exclude`); return how many it was queued for."""
        return self._deliver(data, list(self._connections.values()), exclude)

    # ---- users ----------------------------------------------------------------------

    async def send_to_user(self, user_id: str, data: Sendable) -> int:
        """Send to every device (connection) of a user; return how many got it."""
        devices = self._users.get(user_id)
        return self._deliver(data, list(devices.values()), None) if devices else 0

    async def send_to_users(self, user_ids: Iterable[str], data: Sendable) -> int:
        """Send to every device of each of these users (the message is encoded once)."""
        conns = [conn for user_id in set(user_ids) for conn in self._users.get(user_id, {}).values()]
        return self._deliver(data, conns, None)

    async def user_clients(self, user_id: str) -> list[str]:
        """Ids of a user's connections."""
        return list(self._users.get(user_id, ()))

    async def is_online(self, user_id: str) -> bool:
        """Whether a user is connected (or left less than `presence_grace` seconds ago)."""
        return self.presence.is_online(user_id)

    async def online_users(self) -> list[str]:
        """Ids of the users that are online."""
        return self.presence.online_users()

    # ---- rooms ------------------------------------------------------------------------

    async def join(self, room: str, client_id: str) -> bool:
        """Put a client in a room; False if the client is unknown."""
        conn = self._connections.get(client_id)
        if conn is None or conn.closed:
            return False
        members = self._rooms.get(room)
        if members is None:
            members = self._rooms[room] = {}
        if client_id in members:
            return True
        members[client_id] = conn
        conn.rooms.add(room)
        self._announce(room, conn, "join")
        return True

    async def leave(self, room: str, client_id: str) -> bool:
        """Take a client out of a room; empty rooms disappear. False if it was not in it."""
        conn = self._connections.get(client_id)
        if conn is not None:
            conn.rooms.discard(room)
        left = self._drop_member(room, client_id)
        if left and conn is not None:
            self._announce(room, conn, "leave")
        return left

    async def room_broadcast(self, room: str, data: Sendable, *, exclude: str | None = None) -> int:
        """Send to every member of a room (but `exclude`); the frame is built once."""
        members = self._rooms.get(room)
        if not members:
            return 0
        return self._deliver(data, list(members.values()), exclude)

    async def room_members(self, room: str) -> list[str]:
        """Ids of the clients in a room."""
        return list(self._rooms.get(room, ()))

    async def room_count(self, room: str) -> int:
        """How many clients are in a room."""
        return len(self._rooms.get(room, ()))

    async def room_presence(self, room: str) -> list[dict[str, Any]]:
        """Who is in a room: client id, user id and user info for each member."""
        return [_who(conn) for conn in self._rooms.get(room, {}).values()]

    async def rooms(self) -> list[str]:
        """Names of the rooms that have members."""
        return list(self._rooms)

    # ---- delivery ----------------------------------------------------------------------

    def _announce(self, room: str, conn: Connection, action: str) -> None:
        if not self.room_presence_events:
            return
        members = self._rooms.get(room)
        if not members:
            return
        listeners = [
            member
            for member in members.values()
            if member.codec is not None and member.codec.whole_envelopes and member is not conn
        ]
        if listeners:
            self._deliver(Envelope(env.PRESENCE, {"room": room, "action": action, **_who(conn)}), listeners, None)

    @staticmethod
    def _deliver(data: Sendable, conns: list[Connection], exclude: str | None) -> int:
        delivery = _Delivery(data)
        sent = 0
        for conn in conns:
            if conn.id != exclude and conn.deliver(delivery.for_codec(conn.codec)):
                sent += 1
        return sent


def _who(conn: Connection) -> dict[str, Any]:
    user = conn.user
    return {
        "client_id": conn.id,
        "user": user.id if user is not None else None,
        "info": dict(user.info) if user is not None else {},
    }
