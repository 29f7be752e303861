"""Delivery to this node's connections: one message, encoded once per codec, queued on many connections.

Anything the hub sends is text (str), binary (bytes) or an `Envelope`; an envelope is
encoded once per codec in use and each encoding's frame is built once.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from hubbub.broker.base import Member, Publication
from hubbub.protocol.codecs import encode_for
from hubbub.protocol.envelope import Envelope
from hubbub.transport.message import BackpressurePolicy, Outgoing

if TYPE_CHECKING:
    from hubbub.protocol.codecs import Codec
    from hubbub.runtime.connection import Connection

Sendable = str | bytes | Envelope


class Delivery:
    """One message on its way to many connections: one Outgoing per encoding."""

    __slots__ = ("data", "key", "policy", "_plain", "_by_codec")

    def __init__(self, data: Sendable, key: Hashable | None = None, policy: BackpressurePolicy | None = None) -> None:
        self.data = data
        self.key = key
        self.policy = policy
        self._plain: Outgoing | None = None if isinstance(data, Envelope) else Outgoing(data, key, policy)
        self._by_codec: dict[str | None, Outgoing] = {}

    def for_codec(self, codec: Codec | None) -> Outgoing:
        """The message as a connection speaking this codec (None: raw text or bytes) gets it."""
        plain = self._plain
        if plain is not None:
            return plain
        key = codec.name if codec is not None else None
        message = self._by_codec.get(key)
        if message is None:
            message = self._by_codec[key] = Outgoing(encode_for(self.data, codec), self.key, self.policy)
        return message


def deliver(
    data: Sendable,
    conns: list[Connection],
    exclude: str | None,
    key: Hashable | None = None,
    policy: BackpressurePolicy | None = None,
) -> int:
    """Queue the message on each connection (but `exclude`); return how many took it."""
    delivery = Delivery(data, key, policy)
    sent = 0
    for conn in conns:
        if conn.id != exclude and conn.deliver(delivery.for_codec(conn.codec)):
            sent += 1
    return sent


def member_of(conn: Connection, node_id: str) -> Member:
    """How the cluster knows a connection."""
    user = conn.user
    return Member(conn.id, node_id, user.id if user is not None else None, dict(user.info) if user is not None else {})


def carried(publication: Publication) -> Sendable:
    """What a publication from another node carries: its envelope, or its raw text or bytes."""
    raw = publication.envelope
    if raw is not None:
        return Envelope(raw.get("type"), raw.get("data"), id=raw.get("id"), error=raw.get("error"))
    return publication.data if publication.data is not None else b""


def durable_envelope(data: Sendable) -> Envelope:
    """The envelope of a durable message; TypeError for anything an inbox cannot keep."""
    if not isinstance(data, Envelope) or data.type is None:
        raise TypeError("a durable message must be an Envelope with a type (text and bytes cannot be acknowledged)")
    return data
