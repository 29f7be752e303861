"""Channel names and the publication format shared by the Redis engine and `Emitter`."""

from __future__ import annotations

import msgpack

from hubbub.broker.base import Publication
from hubbub.broker.redis_target import Keys


class Channels:
    """The pub/sub channel names of one namespace (on a cluster: shard channels, a room's in its slot)."""

    def __init__(self, namespace: str, *, cluster: bool = False) -> None:
        self.namespace = namespace
        self.cluster = cluster
        self._keys = Keys(namespace, cluster)
        self.all = f"{namespace}:ch:all"

    def room(self, room: str) -> str:
        """The channel of a room (subscribed by the nodes that have members in it)."""
        return self._keys.room_channel(room)

    def node(self, node_id: str) -> str:
        """A node's own channel (its liveness pings)."""
        return f"{self.namespace}:ch:node:{node_id}"

    def of(self, publication: Publication) -> str:
        """Where a publication goes: its room's channel, or the channel every node hears."""
        return self.room(str(publication.target)) if publication.kind == "room" else self.all


def pack(publication: Publication) -> bytes:
    """A publication as bytes on the wire (MessagePack)."""
    packed: bytes = msgpack.packb(publication.to_wire(), use_bin_type=True)
    return packed


def unpack(payload: bytes) -> Publication:
    """The inverse of `pack` (raises on malformed input)."""
    return Publication.from_wire(msgpack.unpackb(payload, raw=False))
