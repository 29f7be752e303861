"""Room history: streams with offsets and epochs, kept in memory, SQLite or Redis."""

from hubbub.history.base import Appended, Entry, HistoryEngine, HistoryPage, HistoryPolicy
from hubbub.history.rules import HistoryRules
from hubbub.history.store import MemoryStore, RedisStore, SqliteStore, Store, open_store

__all__ = [
    "Appended",
    "Entry",
    "HistoryEngine",
    "HistoryPage",
    "HistoryPolicy",
    "HistoryRules",
    "MemoryStore",
    "RedisStore",
    "SqliteStore",
    "Store",
    "open_store",
]
