"""Fuzz the envelope codecs: any text or binary frame decodes to an Envelope or is refused
with EnvelopeError(invalid_message); every decoded envelope encodes again in every codec
that can carry it, and decodes back. JSON data must fit every codec and every codec must carry
what it decoded itself; MessagePack data that JSON cannot carry is what a mixed channel refuses."""

from __future__ import annotations

from fuzz.runner import fuzz, instrumented

with instrumented():
    from hubbub.protocol.codecs import get_codec
    from hubbub.protocol.envelope import INVALID_MESSAGE, Envelope, EnvelopeError

CODECS = [get_codec(name) for name in ("json", "msgpack", "text", "bytes")]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    source = CODECS[data[0] % len(CODECS)]
    body = data[1:]
    frame: str | bytes = body.decode("utf-8", "replace") if data[0] & 0x80 else body
    try:
        envelope = source.decode(frame)
    except EnvelopeError as refused:
        if refused.code != INVALID_MESSAGE:
            raise AssertionError(f"decode refused with {refused.code}") from None
        return
    if not isinstance(envelope, Envelope):
        raise AssertionError(f"decoded {envelope!r}")
    for codec in CODECS:
        if not codec.whole_envelopes:
            continue
        try:
            encoded = codec.encode(envelope)
        except (TypeError, ValueError, OverflowError):
            if source.name == "json" or codec.name == source.name:
                raise
            # MessagePack data JSON cannot carry: a channel refuses such a publication with
            # bad_request before anyone gets it (Channel._check_portable).
            continue
        again = codec.decode(encoded)
        if (again.type, again.id) != (envelope.type, envelope.id):
            raise AssertionError(f"{codec.name} round trip changed type/id")


if __name__ == "__main__":
    fuzz(test_one_input)
