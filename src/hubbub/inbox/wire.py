"""The inbox on the wire: the `device` handshake parameter, `"inbox": N` on durable
messages, the `hubbub.inbox` notice and the `hubbub.ack` request (docs/protocol.md, "Offline inbox")."""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from hubbub.protocol.codecs import _default
from hubbub.protocol.envelope import Envelope

DEVICE_PARAM: Final = "device"
"""The handshake query parameter naming the connecting device."""
ACK: Final = "hubbub.ack"
"""Client to server: `{"inbox": N}` acknowledges every durable message up to offset N."""
NOTICE: Final = "hubbub.inbox"
"""Server to client, first on a device connection: `{"device", "pending", "missed"}`."""

_DEVICE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
BAD_DEVICE: Final = "invalid device id: 1-64 characters of A-Z a-z 0-9 _ . : -"


def valid_device(device: str) -> bool:
    """Whether a device id is acceptable."""
    return _DEVICE.fullmatch(device) is not None


class InboxEnvelope(Envelope):
    """A durable message: an envelope that carries its offset in the user's inbox."""

    __slots__ = ("inbox",)

    def __init__(self, type: str | None, data: Any = None, *, inbox: int) -> None:
        super().__init__(type, data)
        self.inbox = inbox

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "inbox": self.inbox, "data": self.data}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> InboxEnvelope:
        """From the map a publication carried between nodes."""
        return cls(raw.get("type"), raw.get("data"), inbox=int(raw["inbox"]))


def encode_body(envelope: Envelope) -> bytes:
    """What the store keeps of a durable envelope: its type and data as JSON."""
    if not isinstance(envelope, Envelope) or envelope.type is None:
        raise TypeError("a durable message must be an Envelope with a type")
    return orjson.dumps({"type": envelope.type, "data": envelope.data}, default=_default)


def decode_body(body: bytes, offset: int) -> InboxEnvelope:
    """A stored message as it is delivered."""
    raw = orjson.loads(body)
    return InboxEnvelope(raw["type"], raw.get("data"), inbox=offset)
