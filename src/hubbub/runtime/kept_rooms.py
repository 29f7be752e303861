"""The hub's rooms that keep history: publishing with an offset, reading, and joining with recovery.

A client that joins with recovery gets the publications it missed, then the live ones: the
live publications made meanwhile are held for it until its answer went out, and those the
answer already covered (late from Redis) are not sent again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubbub.broker.base import Publication
from hubbub.history.base import HistoryPage, HistoryPolicy
from hubbub.history.recovery import Published, Recovery
from hubbub.protocol.envelope import Envelope

if TYPE_CHECKING:
    from hubbub.runtime.hub import Hub


class KeptRooms:
    """Publications to rooms that keep history, and the clients joining them with recovery."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._holding: dict[str, dict[str, list[Envelope]]] = {}
        """Per room, the clients joining with recovery and the live publications held for them meanwhile."""
        self._floors: dict[str, dict[str, int]] = {}
        """Per room, clients that were answered up to an offset: a live publication at or below it (late from
        Redis) is not sent again. Each floor goes at the first publication above it."""

    def policy(self, room: str) -> HistoryPolicy | None:
        """How the room keeps history; None if it keeps none."""
        rules = self._hub.history_rules
        return rules.policy(room) if rules else None

    async def publish(
        self, room: str, data: Envelope, exclude: str | None, key: str | None, policy: HistoryPolicy
    ) -> Published:
        """Keep a publication in the room's history, then deliver it (see `Hub.publish`)."""
        hub = self._hub
        publication = Publication.carrying("room", room, data, exclude)
        assert publication.envelope is not None and hub.store is not None
        engine = hub.store.history
        appended = await engine.append(room, publication.envelope, policy, key=key, publication=publication)
        if appended.duplicate:
            return Published(appended.offset, appended.epoch, 0, duplicate=True)
        if engine.orders_delivery:  # the engine carries it to every node, this one included
            members = hub._local.rooms.get(room)
            delivered = len(members) - (exclude in members) if members else 0
            return Published(appended.offset, appended.epoch, delivered)
        publication.offset = appended.offset
        await hub._publish(publication)
        kept = Envelope(data.type, data.data, room=room, offset=appended.offset)
        return Published(appended.offset, appended.epoch, self.deliver(room, kept, exclude))

    def deliver(self, room: str, kept: Envelope, exclude: str | None) -> int:
        """Deliver a kept publication to the room's local members; held back for those joining with recovery."""
        hub = self._hub
        members = hub._local.rooms.get(room)
        if not members:
            return 0
        holding = self._holding.get(room)
        floors = self._floors.get(room)
        if not holding and not floors:
            return hub._deliver(kept, list(members.values()), exclude, room)
        skip: set[str] = set()
        if holding:
            for client_id, held in holding.items():
                if client_id != exclude:
                    held.append(kept)
            skip.update(holding)
        if floors:
            offset = kept.offset or 0
            for client_id, floor in list(floors.items()):
                if offset <= floor:
                    skip.add(client_id)
                else:
                    del floors[client_id]
            if not floors:
                del self._floors[room]
        return hub._deliver(kept, [c for c in members.values() if c.id not in skip], exclude, room)

    async def join(
        self, room: str, client_id: str, *, since: int | None, epoch: str | None, last: int | None
    ) -> Recovery:
        """Join a local client and answer what it missed (see `Hub.join_with_history`)."""
        hub = self._hub
        asked = since is not None or last is not None
        policy = self.policy(room)
        conn = hub.get(client_id)
        if policy is None or conn is None or hub.store is None:
            await hub.join(room, client_id)
            return Recovery(room, recovered=False if asked else None)
        held: list[Envelope] = []
        holding = self._holding.setdefault(room, {})
        holding[client_id] = held

        def stop_holding(floor: int | None = None) -> None:
            waiting = self._holding.get(room)
            if waiting is not None and waiting.get(client_id) is held:
                del waiting[client_id]
                if not waiting:
                    del self._holding[room]
                if floor is not None and client_id in hub._local.rooms.get(room, ()):
                    self._floors.setdefault(room, {})[client_id] = floor

        try:
            await hub.join(room, client_id)
            page = await hub.store.history.read(room, policy, since=since, epoch=epoch, last=last)
        except BaseException:
            stop_holding()
            raise
        return Recovery.merge(room, page, held, asked=asked, conn=conn, on_release=stop_holding)

    async def read(
        self, room: str, *, since: int | None, epoch: str | None, limit: int | None, last: int | None
    ) -> HistoryPage:
        """Read a room's history (see `Hub.room_history`)."""
        policy = self.policy(room)
        store = self._hub.store
        if policy is None or store is None:
            return HistoryPage(0, "", [], since is None and last is None, room=room)
        return await store.history.read(room, policy, since=since, epoch=epoch, limit=limit, last=last)

    def forget(self, room: str, client_id: str) -> None:
        """A client left the room: drop its floor there."""
        floors = self._floors.get(room)
        if floors is not None and floors.pop(client_id, None) is not None and not floors:
            del self._floors[room]
