"""The offline inbox: durable messages for users, kept until each of their devices acknowledges them.

Engines: `MemoryInboxStore` (the default), `SQLiteInboxStore` (`sqlite:///inbox.db`),
`RedisInboxStore` (the default with the Redis broker); `open_inbox(url, redis_client)`
picks one. See docs/guide.md ("Offline inbox") and docs/protocol.md.
"""

from hubbub.inbox.base import (
    DEFAULT_MAX_DEVICES,
    DEFAULT_SIZE,
    DEFAULT_TTL,
    Backlog,
    InboxLimits,
    InboxStore,
    StoredMessage,
)
from hubbub.inbox.factory import open_inbox
from hubbub.inbox.inbox import Inbox
from hubbub.inbox.memory import MemoryInboxStore
from hubbub.inbox.wire import InboxEnvelope

__all__ = [
    "DEFAULT_MAX_DEVICES",
    "DEFAULT_SIZE",
    "DEFAULT_TTL",
    "Backlog",
    "Inbox",
    "InboxEnvelope",
    "InboxLimits",
    "InboxStore",
    "MemoryInboxStore",
    "StoredMessage",
    "open_inbox",
]
