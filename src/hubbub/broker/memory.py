"""The memory engine: the embedded default, for one process and no services.

Several nodes may share one `MemoryBus` (useful in tests: the same conformance
suite runs here and against Redis); by default every app has a bus of its own.
"""

from __future__ import annotations

import asyncio

from hubbub.broker.base import Broker, ClusterListener, Member, Publication, Registration, new_node_id


class MemoryBus:
    """State shared by the memory brokers of one process."""

    def __init__(self, presence_grace: float = 2.0) -> None:
        self.presence_grace = presence_grace
        self.members: dict[str, Member] = {}
        self.rooms: dict[str, dict[str, Member]] = {}
        self.users: dict[str, dict[str, Member]] = {}
        self.nodes: dict[str, ClusterListener] = {}
        self.leaving: dict[str, asyncio.TimerHandle] = {}
        self.dropped = 0


class MemoryBroker(Broker):
    """A broker whose cluster is the nodes sharing its bus."""

    def __init__(self, bus: MemoryBus | None = None, *, presence_grace: float = 2.0) -> None:
        self.bus = bus if bus is not None else MemoryBus(presence_grace)
        self.node_id = new_node_id()
        self.is_cluster = bus is not None
        self._listener: ClusterListener | None = None

    async def start(self, listener: ClusterListener) -> None:
        self._listener = listener
        self.bus.nodes[self.node_id] = listener

    async def stop(self) -> None:
        bus = self.bus
        bus.nodes.pop(self.node_id, None)
        for member in [m for m in bus.members.values() if m.node_id == self.node_id]:
            rooms = [room for room, members in bus.rooms.items() if member.client_id in members]
            self._forget(member, rooms)

    # ---- connections -------------------------------------------------------------

    async def register(
        self, member: Member, *, max_connections: int | None = None, max_per_user: int | None = None
    ) -> Registration:
        bus = self.bus
        if max_connections is not None and len(bus.members) >= max_connections:
            return Registration.OVER_CAPACITY
        user_id = member.user_id
        if user_id is not None and max_per_user is not None and len(bus.users.get(user_id, ())) >= max_per_user:
            return Registration.TOO_MANY_FOR_USER
        bus.members[member.client_id] = member
        if user_id is not None:
            devices = bus.users.setdefault(user_id, {})
            devices[member.client_id] = member
            if len(devices) == 1:
                pending = bus.leaving.pop(user_id, None)
                if pending is not None:
                    pending.cancel()
                elif self._listener is not None:
                    self._listener.user_online(user_id)
        return Registration.OK

    async def unregister(self, member: Member, rooms: list[str]) -> None:
        self._forget(member, rooms)

    def _forget(self, member: Member, rooms: list[str]) -> None:
        bus = self.bus
        if bus.members.pop(member.client_id, None) is None:
            return
        for room in rooms:
            self._drop(room, member.client_id)
        user_id = member.user_id
        if user_id is None:
            return
        devices = bus.users.get(user_id)
        if devices is None:
            return
        devices.pop(member.client_id, None)
        if devices:
            return
        del bus.users[user_id]
        if bus.presence_grace > 0:
            loop = asyncio.get_running_loop()
            bus.leaving[user_id] = loop.call_later(bus.presence_grace, self._gone, user_id)
        else:
            self._gone(user_id)

    def _gone(self, user_id: str) -> None:
        bus = self.bus
        bus.leaving.pop(user_id, None)
        listener = bus.nodes.get(self.node_id) or next(iter(bus.nodes.values()), None)
        if listener is not None:
            listener.user_offline(user_id)

    def _drop(self, room: str, client_id: str) -> None:
        members = self.bus.rooms.get(room)
        if members is not None and members.pop(client_id, None) is not None and not members:
            del self.bus.rooms[room]

    async def join(self, room: str, member: Member) -> None:
        self.bus.rooms.setdefault(room, {})[member.client_id] = member

    async def leave(self, room: str, member: Member) -> None:
        self._drop(room, member.client_id)

    async def publish(self, publication: Publication) -> None:
        publication.origin = publication.origin or self.node_id
        for node_id, listener in list(self.bus.nodes.items()):
            if node_id != publication.origin:
                listener.deliver(publication)

    # ---- queries -----------------------------------------------------------------

    async def clients(self) -> list[str]:
        return list(self.bus.members)

    async def connection_count(self) -> int:
        return len(self.bus.members)

    async def locate(self, client_id: str) -> Member | None:
        return self.bus.members.get(client_id)

    async def room_members(self, room: str) -> list[Member]:
        return list(self.bus.rooms.get(room, {}).values())

    async def room_count(self, room: str) -> int:
        return len(self.bus.rooms.get(room, ()))

    async def rooms(self) -> list[str]:
        return list(self.bus.rooms)

    async def user_clients(self, user_id: str) -> list[str]:
        return list(self.bus.users.get(user_id, ()))

    async def is_online(self, user_id: str) -> bool:
        return user_id in self.bus.users or user_id in self.bus.leaving

    async def online_users(self) -> list[str]:
        bus = self.bus
        return [*bus.users, *(user for user in bus.leaving if user not in bus.users)]

    async def add_dropped(self, count: int) -> None:
        self.bus.dropped += count

    async def dropped_count(self) -> int:
        return self.bus.dropped
