"""The rooms a Client joined: join replies settled into the app's stream, gaps recovered with
hubbub.join "since", and every room joined again after a reconnect (see `streams`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hubbub.client.streams import RoomStream, Wire
from hubbub.errors import ClientError

Request = Callable[..., Awaitable[Any]]
Fire = Callable[..., None]
Spawn = Callable[[Awaitable[Any]], None]


class Rooms:
    """The joined rooms' streams, and the requests that keep them whole."""

    def __init__(self, request: Request, fire: Fire, spawn: Spawn, connected: Callable[[], bool]) -> None:
        self.streams: dict[str, RoomStream] = {}
        self._request = request
        self._fire = fire
        self._spawn = spawn
        self._connected = connected

    def settle(self, stream: RoomStream, reply: dict[str, Any], *, recovering: bool) -> bool | None:
        """Deliver what a join reply brought; report the recovery; recover again after a gap.
        Returns False when a recovery was asked for and failed, else None."""
        settled = stream.settle(reply, recovering=recovering)
        if settled.recovered is not None:
            self._fire(
                "recovery",
                {
                    "room": stream.room,
                    "recovered": settled.recovered,
                    "missed": settled.missed,
                    "offset": stream.offset,
                    "epoch": stream.epoch,
                },
            )
        for item in settled.deliver:
            self.deliver(item)
        if settled.gap:
            self._spawn(self.recover(stream))
        return False if settled.recovered is False else None

    def deliver(self, item: Wire) -> None:
        """Hand one publication to the listeners of its type."""
        kind = item.get("type")
        if isinstance(kind, str):
            self._fire(kind, item.get("data"))

    def live(self, kind: str, envelope: Wire, data: Any) -> None:
        """A live publication: in offset order for a joined room that keeps history, else at once."""
        offset = envelope.get("offset")
        room = envelope.get("room")
        if room is None and isinstance(data, dict):
            room = data.get("room")
        stream = self.streams.get(room) if isinstance(room, str) else None
        if stream is None or not isinstance(offset, int) or isinstance(offset, bool):
            self._fire(kind, data)
            return
        deliver = stream.live(envelope, offset)
        if deliver is None:
            self._spawn(self.recover(stream))
            return
        for item in deliver:
            self.deliver(item)

    async def recover(self, stream: RoomStream) -> None:
        """Ask for what `stream` missed (a gap in its offsets) with hubbub.join "since"."""
        since = stream.since()
        if since is None or not self._connected() or self.streams.get(stream.room) is not stream:
            return
        try:
            reply = await self._request("hubbub.join", {"room": stream.room, "since": since}, offline="fail")
        except ClientError as exc:
            if exc.code not in ("disconnected", "closed"):
                stream.joining = False  # the next publication after the gap asks again
                self._fire("error", {"error": exc, "phase": "recover", "room": stream.room})
            return
        if self.streams.get(stream.room) is stream:
            self.settle(stream, reply if isinstance(reply, dict) else {}, recovering=True)

    async def rejoin(self) -> None:
        """After a reconnect: join every room again, from its position when it keeps history."""
        streams = [stream for stream in self.streams.values() if stream.joined]
        if not streams:
            return
        results = await asyncio.gather(*(self._rejoin_one(stream) for stream in streams))
        outcome = list(zip(streams, results, strict=True))
        self._fire(
            "rejoin",
            {
                "rooms": [stream.room for stream, result in outcome if result is None or result is False],
                "failed": [{"room": stream.room, "error": result} for stream, result in outcome if result],
                "unrecovered": [stream.room for stream, result in outcome if result is False],
            },
        )

    async def _rejoin_one(self, stream: RoomStream) -> ClientError | bool | None:
        """None: joined again (and recovered, if asked); False: joined, not recovered; or the error."""
        since = stream.since()
        stream.joining = True
        data: dict[str, Any] = {"room": stream.room}
        if since is not None:
            data["since"] = since
        try:
            reply = await self._request("hubbub.join", data, offline="fail")
        except ClientError as exc:
            if exc.code not in ("disconnected", "closed") and self.streams.get(stream.room) is stream:
                del self.streams[stream.room]
            return exc
        if self.streams.get(stream.room) is stream:
            return self.settle(stream, reply if isinstance(reply, dict) else {}, recovering=since is not None)
        return None
