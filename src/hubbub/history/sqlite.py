"""The SQLite engine: streams kept in a SQLite file, so they outlive the process.

Reads and offset assignment are served from an in-memory copy of the live streams
(the memory engine), loaded from the file at start; every append is also written
to the file in the batch of its loop iteration, and `append` returns once that
batch is committed. Readers see only committed publications, so nothing a client
was shown can be lost by a crash. One process per file (workers need Redis).
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import orjson

from hubbub.errors import ConfigurationError
from hubbub.history.base import Appended, HistoryPage, HistoryPolicy, Payload
from hubbub.history.memory import MemoryHistory, Stream
from hubbub.history.sqlite_db import SqliteDatabase
from hubbub.protocol.codecs import _default

SCHEMA = """
CREATE TABLE IF NOT EXISTS hubbub_streams (
    room TEXT PRIMARY KEY, epoch TEXT NOT NULL, top INTEGER NOT NULL, ttl REAL NOT NULL, touched REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS hubbub_history (
    room TEXT NOT NULL, offset INTEGER NOT NULL, at REAL NOT NULL, key TEXT, kind TEXT NOT NULL, body BLOB,
    PRIMARY KEY (room, offset)
) WITHOUT ROWID;
"""


def encode(payload: Payload) -> tuple[str, bytes | str]:
    """A payload as (kind, body) columns: an envelope as JSON, text as text, bytes as a blob."""
    if isinstance(payload, dict):
        return "e", orjson.dumps(payload, default=_default)
    if isinstance(payload, str):
        return "t", payload
    return "b", bytes(payload)


def decode(kind: str, body: Any) -> Payload:
    """The inverse of `encode`."""
    if kind == "e":
        decoded: dict[str, Any] = orjson.loads(body)
        return decoded
    if kind == "t":
        return str(body)
    return bytes(body)


class SqliteHistory(MemoryHistory):
    """Streams in a SQLite file (with their live part in memory)."""

    durable = True

    def __init__(self, database: SqliteDatabase) -> None:
        super().__init__()
        self.database = database

    async def start(self) -> None:
        try:
            await self.database.open()
            await self.database.run(lambda conn: conn.executescript(SCHEMA))
            self.streams = await self.database.run(self._load)
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot use the SQLite database {self.database.path}: {exc}") from None

    async def stop(self) -> None:
        await self.database.flush()

    @staticmethod
    def _load(conn: sqlite3.Connection) -> dict[str, Stream]:
        streams: dict[str, Stream] = {}
        for room, epoch, top, ttl, touched in conn.execute("SELECT room, epoch, top, ttl, touched FROM hubbub_streams"):
            stream = streams[room] = Stream(epoch, ttl, top)
            stream.touched = touched
        rows = conn.execute("SELECT room, offset, at, key, kind, body FROM hubbub_history ORDER BY room, offset")
        for room, offset, at, key, kind, body in rows:
            kept = streams.get(room)
            if kept is not None and offset <= kept.top:
                kept.entries.append((offset, at, decode(kind, body), key))
                if key is not None:
                    kept.keys[key] = offset
        return streams

    def created(self, room: str, stream: Stream) -> None:
        row = (room, stream.epoch, stream.top, stream.ttl, stream.touched)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM hubbub_history WHERE room = ?", (room,))
            conn.execute("INSERT OR REPLACE INTO hubbub_streams VALUES (?, ?, ?, ?, ?)", row)

        self._keep(self.database.write(write))

    def sweep(self, now: float) -> list[str]:
        gone = super().sweep(now)
        if gone:
            rooms = [(room,) for room in gone]

            def write(conn: sqlite3.Connection) -> None:
                conn.executemany("DELETE FROM hubbub_history WHERE room = ?", rooms)
                conn.executemany("DELETE FROM hubbub_streams WHERE room = ?", rooms)

            self._keep(self.database.write(write))
        return gone

    async def append(
        self, room: str, payload: Payload, policy: HistoryPolicy, *, key: str | None = None, publication: Any = None
    ) -> Appended:
        kind, body = encode(payload)  # before anything changes: a payload that cannot be written is refused
        appended = self.append_now(room, payload, policy, key)
        stream = self.streams[room]
        if appended.duplicate:
            await self.database.flush()  # the first publish with this key may still be on its way to the disk
            return appended
        offset = appended.offset
        first = stream.first
        row = (room, offset, stream.touched, key, kind, body)
        head = (room, stream.epoch, offset, policy.ttl, stream.touched)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO hubbub_history VALUES (?, ?, ?, ?, ?, ?)", row)
            conn.execute("INSERT OR REPLACE INTO hubbub_streams VALUES (?, ?, ?, ?, ?)", head)
            if first > 1:
                conn.execute("DELETE FROM hubbub_history WHERE room = ? AND offset < ?", (room, first))

        await self.database.write(write)
        if offset > stream.durable:
            stream.durable = offset
        return appended

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
        return self.read_now(room, policy, since=since, epoch=epoch, limit=limit, last=last, durable_only=True)

    async def remove(self, room: str) -> None:
        self.streams.pop(room, None)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM hubbub_history WHERE room = ?", (room,))
            conn.execute("DELETE FROM hubbub_streams WHERE room = ?", (room,))

        await self.database.write(write)

    def _keep(self, future: asyncio.Future[None]) -> None:
        """A write nobody waits for: its failure is logged by the database, not raised."""
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
