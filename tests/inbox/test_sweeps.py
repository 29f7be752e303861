"""The periodic sweeps of the memory and SQLite engines: inboxes nobody touches do not stay forever."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hubbub.inbox import InboxLimits, MemoryInboxStore
from hubbub.inbox.sqlite import SQLiteInboxStore
from tests.inbox.conftest import Clock


async def test_the_memory_sweep_forgets_expired_inboxes_but_not_their_offsets() -> None:
    clock = Clock()
    store = MemoryInboxStore(InboxLimits(ttl=10), clock=clock)
    await store.append("alice", b"1")
    await store.backlog("alice", "phone")
    await store.append("bob", b"1")
    clock.advance(5)
    store.sweep()
    assert sorted(store._streams) == ["alice", "bob"]  # nothing expired yet
    clock.advance(6)
    store.sweep()
    assert store._streams == {}
    assert await store.append("alice", b"2") == 2


async def test_the_sqlite_sweep_deletes_expired_rows(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "inbox.db"
    store = SQLiteInboxStore(str(path), InboxLimits(ttl=10), clock=clock)
    await store.start()
    await store.append("alice", b"1")
    await store.backlog("alice", "phone")
    clock.advance(5)
    await store.append("alice", b"2")
    clock.advance(6)  # the first message and the cursor are 11 s old, the second 6 s
    await store.sweep()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT user, seq FROM inbox_messages").fetchall() == [("alice", 2)]
        assert db.execute("SELECT COUNT(*) FROM inbox_cursors").fetchone() == (0,)
        assert db.execute("SELECT user, last FROM inbox_users").fetchall() == [("alice", 2)]
    await store.close()
