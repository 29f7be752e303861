"""Where Redis is: one server or a Redis Cluster, named by a URL, and the key names each needs.

    redis://HOST:PORT/DB, rediss://..., unix:///path.sock    one server (redis-py's URL forms)
    redis+cluster://HOST:PORT,HOST:PORT,...                  a Redis Cluster: the seed nodes (any of
    rediss+cluster://[USER:PASSWORD@]HOST:PORT,...           them; the others are discovered); TLS

hubbub's own query parameters (`namespace`, `node_timeout`) ride on either form. On a
cluster, every key a Lua script touches must hash to one slot, so keys carry hash tags
(`Keys`): a room's channel, history and members under `{ns:r:ROOM}`, a user's connections
and inbox under `{ns:u:USER}`, a node's connections under `{ns:n:NODE}`, and only the nodes'
leases under `{ns}` (`redis_sharded`). On one server the names stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from hubbub.errors import ConfigurationError

SERVER_SCHEMES = ("redis://", "rediss://", "unix://")
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
SCHEMES = SERVER_SCHEMES + CLUSTER_SCHEMES

OWN_OPTIONS = ("namespace", "node_timeout")


def is_redis_url(url: str) -> bool:
    """Whether `url` names a Redis server or a Redis Cluster."""
    return url.startswith(SCHEMES)


def split_options(url: str) -> tuple[str, dict[str, str]]:
    """Take hubbub's own query parameters (namespace, node_timeout) out of a Redis URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {key: value for key, value in query if key in OWN_OPTIONS and value}
    rest = urlencode([(key, value) for key, value in query if key not in OWN_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), own


@dataclass(frozen=True)
class Keys:
    """Key and channel names of one namespace; with `cluster`, hash-tagged so each script stays in one slot."""

    namespace: str
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.cluster and ("{" in self.namespace or "}" in self.namespace):
            raise ConfigurationError(f"a namespace on Redis Cluster cannot hold braces: {self.namespace!r}")

    @property
    def members(self) -> str:
        """The prefix of the broker's cluster-wide keys: on one server every membership key; on a cluster the
        nodes' leases and epochs (the rest is sharded: `node_slot`, `room_slot`, `user_slot`)."""
        return "{" + self.namespace + "}" if self.cluster else self.namespace

    def node_slot(self, node: str) -> str:
        """On a cluster, the prefix of a node's own keys (its connections and their rooms)."""
        return "{" + self.namespace + ":n:" + node + "}"

    def room_slot(self, room: str) -> str:
        """On a cluster, the prefix of a room's member keys (the slot of its channel and history)."""
        return "{" + self.namespace + ":r:" + room + "}"

    def user_slot(self, user: str) -> str:
        """On a cluster, the prefix of a user's connection keys (the slot of its inbox)."""
        return "{" + self.namespace + ":u:" + user + "}"

    def room_tag(self, room: str) -> str:
        """What every key and channel of a room starts or ends with (empty on one server)."""
        return self.room_slot(room) if self.cluster else ""

    def room_channel(self, room: str) -> str:
        """The pub/sub channel of a room."""
        if self.cluster:
            return f"{self.namespace}:ch:room:{self.room_tag(room)}"
        return f"{self.namespace}:ch:room:{room}"

    def history(self, room: str) -> str:
        """The prefix of a room's history keys (the stream itself, `:meta`, `:k:<key>`)."""
        if self.cluster:
            return f"{self.namespace}:hist:{self.room_tag(room)}"
        return f"{self.namespace}:hist:{room}"

    def inbox(self, user: str) -> str:
        """The prefix of a user's inbox keys (`<prefix>:inbox:m:<user>`, `:inbox:last:`, `:inbox:cur:`)."""
        return self.user_slot(user) if self.cluster else self.namespace


@dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis URL: one server (`url`, as redis-py takes it) or a cluster (`seeds`)."""

    url: str
    """The URL without hubbub's own options."""
    cluster: bool = False
    seeds: tuple[tuple[str, int], ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    """Client options of a cluster URL (username, password, ssl)."""

    @classmethod
    def parse(cls, url: str) -> tuple[RedisTarget, dict[str, str]]:
        """The target and hubbub's own options (`namespace`, `node_timeout`); ConfigurationError if malformed."""
        if not is_redis_url(url):
            raise ConfigurationError(
                f"not a Redis URL: {url!r} (expected redis://HOST:PORT/DB or redis+cluster://HOST:PORT,HOST:PORT)"
            )
        url, own = split_options(url)
        if not url.startswith(CLUSTER_SCHEMES):
            return cls(url), own
        parts = urlsplit(url)
        credentials, _, hosts = parts.netloc.rpartition("@")
        seeds = []
        for item in hosts.split(","):
            host, _, port = item.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ConfigurationError(f"bad Redis Cluster seed {item!r} in {url!r}: write HOST:PORT")
            seeds.append((host.strip("[]"), int(port)))
        if parts.path not in ("", "/", "/0"):
            raise ConfigurationError(f"a Redis Cluster has only database 0: {url!r}")
        if parts.query:
            raise ConfigurationError(f"unknown Redis Cluster URL option(s) in {url!r}: only namespace, node_timeout")
        options: dict[str, Any] = {"ssl": parts.scheme.startswith("rediss")}
        if credentials:
            user, _, password = credentials.partition(":")
            options["username"] = unquote(user) or None
            options["password"] = unquote(password) or None
        return cls(url, True, tuple(seeds), options), own

    def keys(self, namespace: str) -> Keys:
        """Key names for `namespace` on this target."""
        return Keys(namespace, self.cluster)

    def sync_client(self, *, socket_timeout: float, connect_timeout: float = 2.0) -> Any:
        """A new synchronous redis-py client, for a thread of its own (`redis_lease`)."""
        if self.cluster:
            from redis.cluster import ClusterNode, RedisCluster

            return RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in self.seeds],  # type: ignore[no-untyped-call]
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                **self.options,
            )
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout)

    def client(self, *, max_connections: int, socket_timeout: float, connect_timeout: float = 2.0) -> Any:
        """A new redis-py asyncio client: a `Redis` on a blocking pool, or a `RedisCluster`."""
        import redis.asyncio as aioredis

        if self.cluster:
            from redis.asyncio.cluster import ClusterNode, RedisCluster

            return RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in self.seeds],
                max_connections=max_connections,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                **self.options,
            )
        try:
            # Blocking: a burst waits for a free connection instead of failing with "Too many connections".
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=max_connections,
                timeout=10.0,
                socket_connect_timeout=connect_timeout,
                socket_timeout=socket_timeout,
            )
        except ValueError as exc:
            raise ConfigurationError(f"bad Redis URL {self.url!r}: {exc}") from None
        return aioredis.Redis(connection_pool=pool)
