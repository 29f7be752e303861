"""Choosing an inbox engine from a store URL."""

from __future__ import annotations

from typing import Any

from hubbub.broker.redis_target import is_redis_url
from hubbub.errors import ConfigurationError
from hubbub.inbox.base import InboxLimits, InboxStore


def sqlite_path(url: str) -> str:
    """The file of a SQLAlchemy-style SQLite URL: `sqlite:///relative.db`, `sqlite:////absolute.db`."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ConfigurationError(f"a SQLite store URL is sqlite:///relative.db or sqlite:////absolute.db, not {url!r}")
    return url[len(prefix) :]


def open_inbox(
    store_url: str | None,
    redis_client: Any = None,
    *,
    limits: InboxLimits | None = None,
    namespace: str = "hubbub",
) -> InboxStore:
    """The inbox engine for a store URL: None or `memory://` (memory, unless `redis_client` is
    given: then Redis), `sqlite:///path.db` (SQLite), `redis://...` or `redis+cluster://...` (Redis, its own
    client)."""
    if store_url is None or store_url == "memory://":
        if redis_client is not None and store_url is None:
            from hubbub.inbox.redis import RedisInboxStore

            return RedisInboxStore(redis_client, limits, namespace=namespace)
        from hubbub.inbox.memory import MemoryInboxStore

        return MemoryInboxStore(limits)
    if store_url.startswith("sqlite:"):
        from hubbub.inbox.sqlite import SQLiteInboxStore

        return SQLiteInboxStore(sqlite_path(store_url), limits)
    if is_redis_url(store_url):
        from hubbub.inbox.redis import RedisInboxStore

        return RedisInboxStore.from_url(store_url, limits)
    raise ConfigurationError(f"unknown store URL {store_url!r}: use memory://, sqlite:///file.db or redis://...")


def redis_of(broker: Any) -> tuple[Any, str]:
    """A new Redis client and the namespace of a Redis broker, or (None, "hubbub") for any other broker."""
    url = getattr(broker, "url", None)
    namespace = getattr(broker, "ns", None)
    if not broker.is_cluster or not isinstance(url, str) or not isinstance(namespace, str):
        return None, "hubbub"
    return broker.target.client(max_connections=32, socket_timeout=5.0), namespace
