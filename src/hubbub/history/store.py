"""Stores: where state that outlives a connection lives (room history; inboxes share them).

A store is named by a URL and opened once per app; features take what they need
from it (the SQLite database, the Redis client) so they share one file or one pool.

  memory                      in this process (the default)
  sqlite:///relative/path.db  a SQLite file (SQLAlchemy's spelling: three slashes, then the path;
  sqlite:////absolute/path.db four slashes for an absolute path); ?synchronous=FULL to fsync every commit
  redis://HOST:PORT/DB        Redis: the default with the Redis broker, and only with it
  redis+cluster://H:P,H:P     a Redis Cluster (history keys hash-tagged per room)
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import parse_qsl, urlsplit

from hubbub.broker.redis_target import is_redis_url
from hubbub.errors import ConfigurationError
from hubbub.history.base import HistoryEngine
from hubbub.history.memory import MemoryHistory

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from hubbub.broker.base import Broker
    from hubbub.broker.redis import RedisBroker
    from hubbub.broker.redis_batch import ScriptBatch
    from hubbub.broker.redis_target import Keys
    from hubbub.history.sqlite_db import SqliteDatabase


class Store:
    """A configured store: `open` before serving, `close` after; `history` is its history engine."""

    url: str = "memory"
    history: HistoryEngine

    async def open(self, broker: Broker | None) -> None:
        """Open files or connections (the hub calls it at start with the app's broker; None outside an app)."""
        await self.history.start()

    async def close(self) -> None:
        """Write out what is pending and close."""
        await self.history.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class MemoryStore(Store):
    """State in this process: lost when it exits."""

    def __init__(self) -> None:
        self.history = MemoryHistory()


class SqliteStore(Store):
    """State in one SQLite file (`database` is shared by every feature that keeps state)."""

    def __init__(self, path: str, *, synchronous: str = "NORMAL", url: str | None = None) -> None:
        from hubbub.history.sqlite import SqliteHistory
        from hubbub.history.sqlite_db import SqliteDatabase

        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigurationError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.url = url or f"sqlite:///{path}"
        self.database: SqliteDatabase = SqliteDatabase(path, synchronous=synchronous.upper())
        self.history = SqliteHistory(self.database)

    async def open(self, broker: Broker | None) -> None:
        if broker is not None and broker.is_cluster:
            raise ConfigurationError(
                "a SQLite store serves one process; with the Redis broker, state lives in Redis (leave the store out)"
            )
        await self.history.start()

    async def close(self) -> None:
        await self.history.stop()
        await self.database.close()


class RedisStore(Store):
    """State in Redis, beside the Redis broker's: its URL and namespace unless given."""

    def __init__(self, url: str | None = None, *, namespace: str | None = None) -> None:
        from hubbub.history.redis import RedisHistory

        self.url = url or "redis"
        self._given_url = url
        self.namespace = namespace or "hubbub"
        self._given_namespace = namespace
        self._client: aioredis.Redis | None = None
        self._scripts: ScriptBatch | None = None
        self._keys: Keys | None = None
        self.history = RedisHistory(self)

    async def open(self, broker: Broker | None) -> None:
        """Open the client; with an app, `broker` must be the Redis broker (whose subscriptions carry
        the publications the append script publishes). Without one (tools, tests) the URL is needed."""
        if _is_redis_broker(broker):
            self.url = self._given_url or broker.url
            self.namespace = self._given_namespace or broker.ns
        elif broker is not None or self._given_url is None:
            raise ConfigurationError("a Redis store needs the Redis broker (--broker redis://...)")
        from hubbub.broker.redis_batch import ScriptBatch
        from hubbub.broker.redis_target import RedisTarget

        target, options = RedisTarget.parse(self.url)
        self.namespace = self._given_namespace or options.get("namespace", self.namespace)
        self._keys = target.keys(self.namespace)
        client = self._client = target.client(max_connections=32, socket_timeout=5.0)
        self._scripts = ScriptBatch(lambda: client, routed=target.cluster)
        await self.history.start()

    async def close(self) -> None:
        await self.history.stop()
        if self._scripts is not None:
            await self._scripts.drain()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def client(self) -> aioredis.Redis:
        """The Redis client (open)."""
        if self._client is None:
            raise ConfigurationError("the Redis store is not open")
        return self._client

    @property
    def keys(self) -> Keys:
        """Key and channel names (hash-tagged per room on a Redis Cluster)."""
        if self._keys is None:
            raise ConfigurationError("the Redis store is not open")
        return self._keys

    @property
    def scripts(self) -> ScriptBatch:
        """Lua script calls, pipelined per loop iteration."""
        if self._scripts is None:
            raise ConfigurationError("the Redis store is not open")
        return self._scripts


def open_store(url: str | Store | None) -> Store | None:
    """The store a URL names (None: the default, decided by the broker when the app starts)."""
    if url is None or isinstance(url, Store):
        return url
    if url in ("memory", "memory://"):
        return MemoryStore()
    if is_redis_url(url):
        return RedisStore(url)
    if url.startswith("sqlite:"):
        return _sqlite(url)
    raise ConfigurationError(f"unsupported store URL {url!r}: use memory, sqlite:///PATH or redis://HOST:PORT/DB")


def _sqlite(url: str) -> SqliteStore:
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise ConfigurationError(
            f"bad SQLite URL {url!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    options: dict[str, Any] = dict(parse_qsl(parts.query))
    unknown = set(options) - {"synchronous"}
    if unknown:
        raise ConfigurationError(f"unknown SQLite URL option(s): {', '.join(sorted(unknown))}")
    return SqliteStore(parts.path[1:], url=url, **options)


def default_store(broker: Broker) -> Store:
    """The store of an app that named none: Redis with the Redis broker, else memory."""
    return RedisStore() if _is_redis_broker(broker) else MemoryStore()


def _is_redis_broker(broker: Broker | None) -> TypeGuard[RedisBroker]:
    """Whether `broker` is the Redis engine, without importing it (and redis-py) when it was never
    loaded: then no broker can be one, and an app on the embedded default needs no redis-py."""
    module = sys.modules.get("hubbub.broker.redis")
    return module is not None and isinstance(broker, module.RedisBroker)
