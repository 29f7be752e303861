"""The Redis engine: streams in Redis, shared by every node of a cluster on the Redis broker.

The append script gives the offset, adds the publication to the room's Redis stream
and publishes it on the room's channel in one atomic step, prefixed with its offset
(`#<offset>:<packed publication>`); every node, the publishing one included, delivers
it from its subscription, so every member sees a room's publications in offset order.
On a Redis Cluster the stream, its keys and the room's shard channel share the room's hash
slot (`{ns:r:ROOM}`), so the script stays on one master and publishes with SPUBLISH.
An append returns once Redis ran the script (durable as far as Redis persistence is:
appendonly yes; appendfsync always for no loss at all on a Redis crash).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubbub.broker.base import Publication
from hubbub.history import redis_scripts as lua
from hubbub.history.base import (
    Appended,
    Entry,
    HistoryEngine,
    HistoryPage,
    HistoryPolicy,
    Payload,
    check_read,
    new_epoch,
    window,
)

if TYPE_CHECKING:
    from hubbub.history.store import RedisStore


def payload_of(publication: Publication) -> Payload:
    """What a history entry holds of a publication."""
    if publication.envelope is not None:
        return publication.envelope
    return publication.data if publication.data is not None else b""


class RedisHistory(HistoryEngine):
    """Streams in Redis; appends and reads are Lua scripts sent in one pipeline per loop iteration."""

    durable = True
    orders_delivery = True

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def _keys(self, room: str) -> tuple[str, str]:
        prefix = self.store.keys.history(room)
        return prefix, prefix + ":meta"

    async def append(
        self, room: str, payload: Payload, policy: HistoryPolicy, *, key: str | None = None, publication: Any = None
    ) -> Appended:
        from hubbub.broker.redis_wire import pack

        if publication is None:
            publication = (
                Publication(kind="room", target=room, envelope=payload)
                if isinstance(payload, dict)
                else Publication(kind="room", target=room, data=payload)
            )
        stream, meta = self._keys(room)
        keys = self.store.keys
        result = await self.store.scripts.call(
            lua.APPEND_SHARDED if keys.cluster else lua.APPEND,
            stream,
            meta,
            keys.room_channel(room),
            pack(publication),
            policy.size,
            max(1, int(policy.ttl * 1000)),
            key or "",
            new_epoch(),
        )
        offset, epoch, duplicate = result
        return Appended(int(offset), _text(epoch), bool(int(duplicate)))

    async def read(
        self,
        room: str,
        policy: HistoryPolicy,
        *,
        since: int | None = None,
        epoch: str | None = None,
        limit: int | None = None,
        last: int | None = None,
    ) -> HistoryPage:
        from hubbub.broker.redis_wire import unpack

        check_read(since, last, limit)
        stream, meta = self._keys(room)
        mode, n = ("since", since) if since is not None else ("last", last) if last is not None else ("none", 0)
        top, stream_epoch, first, found = await self.store.scripts.call(
            lua.READ,
            stream,
            meta,
            max(1, int(policy.ttl * 1000)),
            new_epoch(),
            mode,
            n or 0,
            "" if limit is None else limit,
        )
        top, first, stream_epoch = int(top), int(first), _text(stream_epoch)
        low, high, complete = window(top, stream_epoch, first, since=since, want_epoch=epoch, limit=limit, last=last)
        entries: list[Entry] = []
        for i in range(0, len(found), 2):
            offset = int(found[i])
            if low <= offset <= high:
                entries.append(Entry(offset, payload_of(unpack(found[i + 1]))))
        entries.sort(key=lambda entry: entry.offset)
        return HistoryPage(top, stream_epoch, entries, complete, room=room)

    async def remove(self, room: str) -> None:
        stream, meta = self._keys(room)
        await self.store.client().delete(stream, meta)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
