"""A client's position in each joined room's stream, and the merge that delivers every
publication once, in offset order, across reconnects and gaps.

A room that keeps history numbers its publications (offset N+1 follows N) and has an
epoch; the client remembers the last offset it delivered. A live publication is
delivered when it is the next one, dropped when it was already delivered, and held
when it comes while a join is in flight or after a gap; the join's reply (with
"since": the position) then supplies what was missed and the held ones follow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_HELD = 10_000
"""Live publications one room may hold while its join or recovery is in flight; past it the
oldest are dropped, and the gap they leave is recovered once the reply came."""

Wire = dict[str, Any]


@dataclass(slots=True)
class Settled:
    """What a join reply means for the app: the publications to deliver, in order, and
    whether the stream was recovered (None when no position was asked for)."""

    deliver: list[Wire]
    recovered: bool | None
    missed: int
    gap: bool = False


@dataclass(slots=True)
class RoomStream:
    """One joined room: its epoch ("" when the room keeps no history) and the offset of the
    last publication delivered to the app (None until the first join reply)."""

    room: str
    offset: int | None = None
    epoch: str = ""
    joining: bool = True
    held: list[Wire] = field(default_factory=list)
    joined: bool = False
    """Whether a join reply arrived once (only then is the room joined again after a reconnect)."""

    @property
    def tracked(self) -> bool:
        """Whether the room keeps history, so its publications carry offsets."""
        return bool(self.epoch) and self.offset is not None

    def since(self) -> dict[str, Any] | None:
        """The position to recover from, for hubbub.join's "since"."""
        if not self.tracked:
            return None
        return {"offset": self.offset, "epoch": self.epoch}

    def live(self, envelope: Wire, offset: int) -> list[Wire] | None:
        """What to deliver now for a live publication at `offset`; None means a gap was
        found and the room must recover (the publication is held meanwhile)."""
        if self.joining:
            self._hold(envelope)
            return []
        if self.offset is None or not self.epoch:
            return [envelope]
        if offset <= self.offset:
            return []
        if offset == self.offset + 1:
            self.offset = offset
            return [envelope]
        self._hold(envelope)
        self.joining = True
        return None

    def _hold(self, envelope: Wire) -> None:
        if len(self.held) >= MAX_HELD:
            self.held.pop(0)
        self.held.append(envelope)

    def settle(self, reply: dict[str, Any], *, recovering: bool) -> Settled:
        """Apply a hubbub.join reply and return what to deliver, in order, once. `recovering`:
        the join asked for "since" (then a `recovered: false` delivers none of the history).

        Held publications follow the reply's while they are contiguous; if one is missing
        (held ones were dropped), the rest stay held and `Settled.gap` asks for another recovery."""
        recovered = reply.get("recovered")
        epoch = reply.get("epoch")
        offset = reply.get("offset")
        self.epoch = epoch if isinstance(epoch, str) else ""
        deliver: list[Wire] = []
        last = self.offset if recovering and recovered is True else None
        if not (recovering and recovered is False):
            for item in reply.get("publications") or []:
                position = _offset_of(item)
                if position >= 0 and (last is None or position > last):
                    deliver.append(item)
                    last = position
        missed = len(deliver)
        if isinstance(offset, int) and (last is None or offset > last):
            last = offset
        held = sorted(self.held, key=_offset_of)
        self.held = []
        gap = False
        for index, item in enumerate(held):
            position = _offset_of(item)
            if last is not None and position <= last:
                continue
            if self.epoch and last is not None and position != last + 1:
                self.held = held[index:]
                gap = True
                break
            deliver.append(item)
            last = position
        self.offset = last if self.epoch else None
        self.joining = gap
        self.joined = True
        return Settled(deliver, recovered if recovering and isinstance(recovered, bool) else None, missed, gap)


def _offset_of(item: object) -> int:
    offset = item.get("offset") if isinstance(item, dict) else None
    return offset if isinstance(offset, int) and not isinstance(offset, bool) else -1
