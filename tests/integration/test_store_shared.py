"""One store setting for history and the inbox: `App(store=...)` / `hubbub run --store` cover both."""

from __future__ import annotations

from pathlib import Path

from hubbub import App, Envelope
from hubbub.inbox.memory import MemoryInboxStore
from hubbub.inbox.sqlite import SQLiteInboxStore
from hubbub.testing import serve_app


async def test_the_inbox_follows_the_apps_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "kept.db"
    app = App(store=f"sqlite:///{path}")
    async with serve_app(app):
        assert isinstance(app.hub.inbox.store, SQLiteInboxStore)
        assert await app.hub.send_to_user("away", Envelope("note", "hi"), durable=True) == 0
    again = App(store=f"sqlite:///{path}")
    async with serve_app(again):
        assert again.hub.inbox.store is not None
        assert await again.hub.inbox.store.append("away", b'{"type":"note"}') == 2  # the first one was kept


async def test_use_store_moves_the_inbox_too_unless_it_was_given(tmp_path: Path) -> None:
    app = App()
    app.use_store(f"sqlite:///{tmp_path / 'a.db'}")
    async with serve_app(app):
        assert isinstance(app.hub.inbox.store, SQLiteInboxStore)
    own = App(inbox="memory://")
    own.use_store(f"sqlite:///{tmp_path / 'b.db'}")
    async with serve_app(own):
        assert isinstance(own.hub.inbox.store, MemoryInboxStore)
