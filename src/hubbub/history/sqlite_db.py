"""One SQLite database file shared by the features that keep state in it (history, inboxes).

One connection, used by one worker thread, so the event loop never waits on the
disk. Writes are batched: every write asked for in one event-loop iteration goes
into one transaction, and each caller's future resolves once that transaction is
committed (WAL, synchronous=NORMAL: a committed write survives the process being
killed; `synchronous=FULL` in the URL's query also survives power loss).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

logger = logging.getLogger("hubbub.history.sqlite")

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], None]


class SqliteDatabase:
    """A SQLite file opened once: `run` a function on the connection, or `write` into the next batch."""

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hubbub-sqlite")
        self._batch: list[tuple[Write, asyncio.Future[None]]] = []
        self._scheduled = False
        self._writing: asyncio.Future[None] | None = None
        self.commits = 0
        """Transactions committed (each holds every write of one loop iteration, or more under load)."""

    async def open(self) -> None:
        """Open the file (created if missing) in WAL mode."""
        if self._conn is None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        self._conn = conn

    async def close(self) -> None:
        """Commit what is pending and close the file."""
        await self.flush()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._thread, conn.close)
        self._thread.shutdown(wait=False)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in the database thread (for reads and schema changes)."""
        conn = self._connection()
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, conn)

    def write(self, fn: Write) -> asyncio.Future[None]:
        """Queue `fn(connection)` for the next transaction; the future resolves when it is committed
        (or fails with the error that rolled it back)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._batch.append((fn, done))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start)
        return done

    async def flush(self) -> None:
        """Wait until every write queued so far is committed."""
        while self._batch or self._writing is not None:
            if self._writing is None:
                self._start()
            if self._writing is not None:
                await asyncio.gather(self._writing, return_exceptions=True)

    def _start(self) -> None:
        self._scheduled = False
        if self._writing is not None or not self._batch:
            return  # the commit in flight starts the next batch when it ends
        batch, self._batch = self._batch, []
        loop = asyncio.get_running_loop()
        self._writing = loop.run_in_executor(self._thread, self._commit, [fn for fn, _ in batch])
        self._writing.add_done_callback(lambda done: self._committed(done, batch))

    def _committed(self, done: asyncio.Future[None], batch: list[tuple[Write, asyncio.Future[None]]]) -> None:
        self._writing = None
        error = done.exception()
        if error is not None:
            logger.error("SQLite write to %s failed: %s", self.path, error)
        else:
            self.commits += 1
        for _, future in batch:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(None)
        if self._batch:
            self._start()

    def _commit(self, writes: list[Write]) -> None:
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            for fn in writes:
                fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"the SQLite database {self.path} is not open")
        return self._conn
