"""The SQLite inbox engine (stdlib sqlite3, WAL): inboxes that survive a restart of the process.

All database work runs on one worker thread, so the event loop never waits on the
disk. The appends and acks made in one loop iteration are written in one
transaction; each caller resumes once that transaction is committed. With WAL and
`synchronous=NORMAL` a committed message survives the process being killed
(SIGKILL); a power loss may lose the last transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hubbub.inbox.base import Backlog, Clock, InboxLimits, InboxStore, StoredMessage, missed

SWEEP_EVERY = 60.0
"""Seconds between sweeps of expired messages and forgotten devices."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox_users (user TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS inbox_messages (user TEXT NOT NULL, seq INTEGER NOT NULL, expires REAL NOT NULL,"
    " body BLOB NOT NULL, PRIMARY KEY (user, seq)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS inbox_messages_expires ON inbox_messages (expires)",
    "CREATE TABLE IF NOT EXISTS inbox_cursors (user TEXT NOT NULL, device TEXT NOT NULL, seq INTEGER NOT NULL,"
    " seen REAL NOT NULL, PRIMARY KEY (user, device)) WITHOUT ROWID",
)

_Op = Callable[[sqlite3.Connection], Any]


class SQLiteInboxStore(InboxStore):
    """Inboxes in a SQLite file (tables `inbox_users`, `inbox_messages`, `inbox_cursors`)."""

    def __init__(self, path: str, limits: InboxLimits | None = None, *, clock: Clock = time.time) -> None:
        super().__init__(limits, clock=clock)
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._batch: list[tuple[_Op, asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # ---- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="hubbub-inbox-sqlite")
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="hubbub-inbox-sqlite-sweep")

    def _open(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        for statement in _SCHEMA:
            db.execute(statement)
        self._db = db

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        while self._batch or self._flushes:
            if self._batch:
                self._flush()
            await asyncio.gather(*self._flushes, return_exceptions=True)
        db, self._db = self._db, None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=True)
        self._executor = None

    # ---- running SQL on the worker thread ------------------------------------------

    async def _in_thread(self, op: _Op) -> Any:
        executor = self._executor
        if executor is None:
            raise RuntimeError("the SQLite inbox is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, self._call, op)

    def _call(self, op: _Op) -> Any:
        db = self._db
        if db is None:
            raise RuntimeError("the SQLite inbox is closed")
        return op(db)

    async def _write(self, op: _Op) -> Any:
        """Queue a write for this loop iteration's transaction; its result once committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._flush)
        self._batch.append((op, future))
        return await future

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            task = asyncio.ensure_future(self._commit(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _commit(self, batch: list[tuple[_Op, asyncio.Future[Any]]]) -> None:
        try:
            results = await self._in_thread(lambda db: _transaction(db, [op for op, _ in batch]))
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(min(SWEEP_EVERY, self.limits.ttl))
            with contextlib.suppress(sqlite3.Error):
                await self.sweep()

    async def sweep(self) -> None:
        """Drop expired messages and forgotten device cursors everywhere."""
        now = self.clock()
        ttl = self.limits.ttl

        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM inbox_messages WHERE expires <= ?", (now,))
            db.execute("DELETE FROM inbox_cursors WHERE seen <= ?", (now - ttl,))

        await self._write(op)

    # ---- the store ----------------------------------------------------------------

    async def append(self, user_id: str, body: bytes) -> int:
        now = self.clock()
        size, ttl = self.limits.size, self.limits.ttl

        def op(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT last FROM inbox_users WHERE user = ?", (user_id,)).fetchone()
            offset = (row[0] if row else 0) + 1
            db.execute(
                "INSERT INTO inbox_users (user, last) VALUES (?, ?)"
                " ON CONFLICT (user) DO UPDATE SET last = excluded.last",
                (user_id, offset),
            )
            db.execute(
                "INSERT INTO inbox_messages (user, seq, expires, body) VALUES (?, ?, ?, ?)",
                (user_id, offset, now + ttl, body),
            )
            db.execute("DELETE FROM inbox_messages WHERE user = ? AND seq <= ?", (user_id, offset - size))
            return offset

        result: int = await self._write(op)
        return result

    async def backlog(self, user_id: str, device: str) -> Backlog:
        now = self.clock()
        max_devices, ttl = self.limits.max_devices, self.limits.ttl

        def op(db: sqlite3.Connection) -> Backlog:
            db.execute("DELETE FROM inbox_messages WHERE user = ? AND expires <= ?", (user_id, now))
            db.execute("DELETE FROM inbox_cursors WHERE user = ? AND seen <= ?", (user_id, now - ttl))
            row = db.execute("SELECT last FROM inbox_users WHERE user = ?", (user_id,)).fetchone()
            last = row[0] if row else 0
            known = db.execute(
                "SELECT seq FROM inbox_cursors WHERE user = ? AND device = ?", (user_id, device)
            ).fetchone()
            if known is None:
                first = db.execute("SELECT MIN(seq) FROM inbox_messages WHERE user = ?", (user_id,)).fetchone()[0]
                cursor = first - 1 if first is not None else last
                _forget_stalest(db, user_id, max_devices)
            else:
                cursor = known[0]
            db.execute(
                "INSERT INTO inbox_cursors (user, device, seq, seen) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user, device) DO UPDATE SET seen = excluded.seen",
                (user_id, device, cursor, now),
            )
            rows = db.execute(
                "SELECT seq, body FROM inbox_messages WHERE user = ? AND seq > ? ORDER BY seq", (user_id, cursor)
            ).fetchall()
            messages = [StoredMessage(seq, bytes(body)) for seq, body in rows]
            return Backlog(messages, last, missed(last, cursor, len(messages)))

        result: Backlog = await self._write(op)
        return result

    async def ack(self, user_id: str, device: str, offset: int) -> int:
        now = self.clock()
        max_devices = self.limits.max_devices

        def op(db: sqlite3.Connection) -> int:
            known = db.execute(
                "SELECT seq FROM inbox_cursors WHERE user = ? AND device = ?", (user_id, device)
            ).fetchone()
            if known is None:
                _forget_stalest(db, user_id, max_devices)
            cursor = max(offset, known[0]) if known is not None else offset
            db.execute(
                "INSERT INTO inbox_cursors (user, device, seq, seen) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user, device) DO UPDATE SET seq = excluded.seq, seen = excluded.seen",
                (user_id, device, cursor, now),
            )
            return cursor

        result: int = await self._write(op)
        return result

    async def cursor(self, user_id: str, device: str) -> int | None:
        since = self.clock() - self.limits.ttl

        def op(db: sqlite3.Connection) -> int | None:
            row = db.execute(
                "SELECT seq FROM inbox_cursors WHERE user = ? AND device = ? AND seen > ?", (user_id, device, since)
            ).fetchone()
            return row[0] if row else None

        result: int | None = await self._in_thread(op)
        return result

    async def last(self, user_id: str) -> int:
        def op(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT last FROM inbox_users WHERE user = ?", (user_id,)).fetchone()
            return row[0] if row else 0

        result: int = await self._in_thread(op)
        return result


def _transaction(db: sqlite3.Connection, ops: list[_Op]) -> list[Any]:
    """Run the ops in one transaction (all or nothing)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        results = [op(db) for op in ops]
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return results


def _forget_stalest(db: sqlite3.Connection, user_id: str, max_devices: int) -> None:
    """Make room for one more device cursor of a user."""
    count = db.execute("SELECT COUNT(*) FROM inbox_cursors WHERE user = ?", (user_id,)).fetchone()[0]
    if count >= max_devices:
        db.execute(
            "DELETE FROM inbox_cursors WHERE user = ? AND device = "
            "(SELECT device FROM inbox_cursors WHERE user = ? ORDER BY seen LIMIT 1)",
            (user_id, user_id),
        )
