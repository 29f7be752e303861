"""Joining a room with history without a gap or a duplicate.

The hub subscribes the client first, holds back the room's live publications for it
(`Recovery.held`) while it reads the history, and merges the two by offset: the
reply lists the history and any held publication after it; `release()`, called once
the reply is on its way, sends the held ones the reply did not include.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hubbub.history.base import HistoryPage
from hubbub.protocol.envelope import Envelope

if TYPE_CHECKING:
    from hubbub.runtime.connection import Connection


@dataclass(slots=True)
class Published:
    """The answer to a publication in a room: where it went in the room's history (offset 0 and epoch ""
    when the room keeps none), how many local connections it was queued for, and whether its idempotency
    key had been seen (then it was not published again and `offset` is the first publication's)."""

    offset: int
    epoch: str
    delivered: int
    duplicate: bool = False


@dataclass(slots=True)
class Recovery:
    """A client's join: the room's position and, when asked, the publications it missed.

    `recovered` is None when no history was asked for; `publications` are wire maps
    ({"type", "data", "room", "offset"}), oldest first; `offset` is the position after them."""

    room: str
    offset: int = 0
    epoch: str = ""
    recovered: bool | None = None
    publications: list[dict[str, Any]] = field(default_factory=list)
    conn: Connection | None = None
    held: list[Envelope] = field(default_factory=list)
    on_release: Callable[[int], None] | None = None
    """Called by `release` with the last offset the client got: stop holding, keep that floor."""

    @classmethod
    def merge(
        cls,
        room: str,
        page: HistoryPage,
        held: list[Envelope],
        *,
        asked: bool,
        conn: Connection,
        on_release: Callable[[int], None],
    ) -> Recovery:
        """The reply to a join from a history page and what was held meanwhile."""
        recovery = cls(room, page.offset, page.epoch, page.complete if asked else None, [], conn, held, on_release)
        if asked:
            recovery.publications = page.publications()
            recovery.take_held()
        return recovery

    def take_held(self) -> None:
        """Move the held publications after the position into the reply."""
        for envelope in list(self.held):
            offset = envelope.offset
            if offset is not None and offset > self.offset:
                self.publications.append(envelope.to_dict())
                self.offset = offset

    def reply(self) -> dict[str, Any]:
        """The reply to hubbub.join."""
        out: dict[str, Any] = {"room": self.room, "offset": self.offset, "epoch": self.epoch}
        if self.recovered is not None:
            out["recovered"] = self.recovered
            out["publications"] = self.publications
        return out

    def release(self) -> None:
        """Stop holding live publications; send the held ones after the reply's position. Any publication
        at or below the last one the client got that arrives later still (from another node) is not sent."""
        conn = self.conn
        floor = self.offset
        if conn is not None:
            for envelope in self.held:
                if envelope.offset is None or envelope.offset > floor:
                    conn.send_nowait(envelope)
                    floor = max(floor, envelope.offset or 0)
        self.held = []
        if self.on_release is not None:
            self.on_release(floor)
            self.on_release = None
