"""Codecs: how a channel route turns frames into envelopes and back.

"json" (default, text frames, orjson) and "msgpack" (binary frames; the
`hubbub[msgpack]` extra) carry whole envelopes and are negotiated as the
subprotocols `hubbub.v1.json` and `hubbub.v1.msgpack`. "text" and "bytes" carry
bare payloads: every message is an event of type "message" whose data is the
str or bytes as received, and what the server sends is the envelope's data alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Final

import orjson

from hubbub.errors import ConfigurationError
from hubbub.protocol.envelope import INVALID_MESSAGE, Envelope, EnvelopeError

MESSAGE_TYPE: Final = "message"
"""The event type of every message on a "text" or "bytes" channel."""


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # pydantic models
    if dump is not None:
        return dump(mode="json")
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is optional
        pass
    else:
        if isinstance(value, msgspec.Struct):
            return msgspec.to_builtins(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _parse_map(obj: Any) -> Envelope:
    if not isinstance(obj, dict):
        raise EnvelopeError(INVALID_MESSAGE, "a message must be an object")
    kind = obj.get("type")
    if kind is not None and not isinstance(kind, str):
        raise EnvelopeError(INVALID_MESSAGE, "'type' must be a string")
    msg_id = obj.get("id")
    if msg_id is not None and (isinstance(msg_id, bool) or not isinstance(msg_id, str | int)):
        raise EnvelopeError(INVALID_MESSAGE, "'id' must be a string or an integer")
    error = obj.get("error")
    if kind is None and msg_id is None:
        raise EnvelopeError(INVALID_MESSAGE, "a message needs a 'type' (or an 'id' when it is a reply)")
    if error is not None and not isinstance(error, dict):
        raise EnvelopeError(INVALID_MESSAGE, "'error' must be an object")
    return Envelope(kind, obj.get("data"), id=msg_id, error=error)


class Codec(ABC):
    """Turns frames into envelopes and envelopes into frames."""

    name: str = ""
    subprotocol: str | None = None
    whole_envelopes: bool = True

    @abstractmethod
    def decode(self, data: str | bytes) -> Envelope:
        """The envelope in a received frame; raises EnvelopeError if it is not one."""

    @abstractmethod
    def encode(self, envelope: Envelope) -> str | bytes:
        """The frame payload for an envelope (str goes as text, bytes as binary)."""


class JsonCodec(Codec):
    """Envelopes as JSON objects in text frames."""

    name = "json"
    subprotocol = "hubbub.v1.json"

    def decode(self, data: str | bytes) -> Envelope:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise EnvelopeError(INVALID_MESSAGE, "not valid JSON") from None
        return _parse_map(obj)

    def encode(self, envelope: Envelope) -> str | bytes:
        return orjson.dumps(envelope.to_dict(), default=_default).decode("utf-8")


class MsgPackCodec(Codec):
    """Envelopes as MessagePack maps in binary frames."""

    name = "msgpack"
    subprotocol = "hubbub.v1.msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError:
            raise ConfigurationError("the msgpack codec needs msgpack: pip install 'hubbub[msgpack]'") from None
        self._msgpack = msgpack

    def decode(self, data: str | bytes) -> Envelope:
        if isinstance(data, str):
            raise EnvelopeError(INVALID_MESSAGE, "msgpack messages must be binary frames")
        try:
            obj = self._msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception:
            raise EnvelopeError(INVALID_MESSAGE, "not valid MessagePack") from None
        return _parse_map(obj)

    def encode(self, envelope: Envelope) -> str | bytes:
        packed: bytes = self._msgpack.packb(envelope.to_dict(), default=_default, use_bin_type=True)
        return packed


class TextCodec(Codec):
    """Bare text payloads: every message is a "message" event carrying the str."""

    name = "text"
    whole_envelopes = False

    def decode(self, data: str | bytes) -> Envelope:
        if not isinstance(data, str):
            raise EnvelopeError(INVALID_MESSAGE, "this route takes text messages")
        return Envelope(MESSAGE_TYPE, data)

    def encode(self, envelope: Envelope) -> str | bytes:
        data = envelope.error if envelope.error is not None else envelope.data
        if isinstance(data, str):
            return data
        return orjson.dumps(data, default=_default).decode("utf-8")


class BytesCodec(Codec):
    """Bare binary payloads: every message is a "message" event carrying the bytes."""

    name = "bytes"
    whole_envelopes = False

    def decode(self, data: str | bytes) -> Envelope:
        if not isinstance(data, bytes):
            raise EnvelopeError(INVALID_MESSAGE, "this route takes binary messages")
        return Envelope(MESSAGE_TYPE, data)

    def encode(self, envelope: Envelope) -> str | bytes:
        data = envelope.error if envelope.error is not None else envelope.data
        if isinstance(data, bytes | bytearray | memoryview):
            return bytes(data)
        if isinstance(data, str):
            return data.encode("utf-8")
        return orjson.dumps(data, default=_default)


_CODECS: dict[str, type[Codec]] = {
    "json": JsonCodec,
    "msgpack": MsgPackCodec,
    "text": TextCodec,
    "bytes": BytesCodec,
}


def get_codec(name: str) -> Codec:
    """The codec called `name` (json, msgpack, text or bytes)."""
    try:
        return _CODECS[name]()
    except KeyError:
        raise ConfigurationError(f"unknown codec {name!r}; choose one of {', '.join(_CODECS)}") from None


_JSON = JsonCodec()


def encode_for(data: str | bytes | Envelope, codec: Codec | None) -> str | bytes:
    """The frame payload of `data` for a connection using `codec` (raw routes get JSON envelopes)."""
    if isinstance(data, Envelope):
        return (codec or _JSON).encode(data)
    return data
