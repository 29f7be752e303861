"""The Redis inbox engine: inboxes shared by every node of a cluster (redis-py asyncio).

Keys, beside the broker's (namespace `ns`, `hubbub` by default):

    ns:inbox:m:<user>     sorted set  offset -> "<offset>:<expires ms>:<body>"  (expires with the TTL)
    ns:inbox:last:<user>  string      the user's last offset (kept, so offsets are never reused)
    ns:inbox:cur:<user>   hash        device -> "<cursor>:<last seen ms>"        (expires with the TTL)

On a Redis Cluster (a `RedisCluster` client) the prefix `ns` becomes the user's hash tag
`{ns:u:<user>}`, so a user's three keys share one slot and each script stays on one master.

Each operation is one Lua script, so offsets are assigned atomically across nodes; the
scripts run in one loop iteration are sent in one pipeline.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from hubbub.broker.redis_batch import ScriptBatch
from hubbub.broker.redis_target import Keys
from hubbub.errors import BrokerUnavailable
from hubbub.inbox.base import Backlog, Clock, InboxLimits, InboxStore, StoredMessage, missed

_LIB = """
local function make_room(c, device, now, ttl, max_devices)
  local all = redis.call('HGETALL', c)
  local count, stalest, stalest_seen = 0, nil, nil
  for i = 1, #all, 2 do
    local v = all[i + 1]
    local seen = tonumber(string.sub(v, string.find(v, ':', 1, true) + 1))
    if seen + ttl <= now then
      redis.call('HDEL', c, all[i])
    elseif all[i] ~= device then
      count = count + 1
      if stalest == nil or seen < stalest_seen then stalest, stalest_seen = all[i], seen end
    end
  end
  if count >= max_devices then redis.call('HDEL', c, stalest) end
end
"""

APPEND = """
local m = ARGV[1] .. ':inbox:m:' .. ARGV[2]
local o = redis.call('INCR', ARGV[1] .. ':inbox:last:' .. ARGV[2])
local ttl = tonumber(ARGV[5])
redis.call('ZADD', m, o, o .. ':' .. (tonumber(ARGV[4]) + ttl) .. ':' .. ARGV[3])
redis.call('ZREMRANGEBYSCORE', m, '-inf', o - tonumber(ARGV[6]))
redis.call('PEXPIRE', m, ttl)
return o
"""

BACKLOG = (
    _LIB
    + """
local m = ARGV[1] .. ':inbox:m:' .. ARGV[2]
local c = ARGV[1] .. ':inbox:cur:' .. ARGV[2]
local device, now, ttl = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
while true do
  local first = redis.call('ZRANGE', m, 0, 0)
  if #first == 0 then break end
  local c1 = string.find(first[1], ':', 1, true)
  local c2 = string.find(first[1], ':', c1 + 1, true)
  if tonumber(string.sub(first[1], c1 + 1, c2 - 1)) > now then break end
  redis.call('ZREMRANGEBYRANK', m, 0, 0)
end
local last = tonumber(redis.call('GET', ARGV[1] .. ':inbox:last:' .. ARGV[2]) or '0')
make_room(c, device, now, ttl, tonumber(ARGV[6]))
local cursor
local known = redis.call('HGET', c, device)
if known then
  cursor = tonumber(string.sub(known, 1, string.find(known, ':', 1, true) - 1))
else
  local first = redis.call('ZRANGE', m, 0, 0, 'WITHSCORES')
  if #first > 0 then cursor = tonumber(first[2]) - 1 else cursor = last end
end
redis.call('HSET', c, device, cursor .. ':' .. now)
redis.call('PEXPIRE', c, ttl)
return {last, cursor, redis.call('ZRANGEBYSCORE', m, '(' .. cursor, '+inf')}
"""
)

ACK = (
    _LIB
    + """
local c = ARGV[1] .. ':inbox:cur:' .. ARGV[2]
local device, seq, now, ttl = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local known = redis.call('HGET', c, device)
if known then
  local old = tonumber(string.sub(known, 1, string.find(known, ':', 1, true) - 1))
  if old > seq then seq = old end
else
  make_room(c, device, now, ttl, tonumber(ARGV[7]))
end
redis.call('HSET', c, device, seq .. ':' .. now)
redis.call('PEXPIRE', c, ttl)
return seq
"""
)


class RedisInboxStore(InboxStore):
    """Inboxes in Redis, under the broker's namespace."""

    def __init__(
        self,
        redis: Any,
        limits: InboxLimits | None = None,
        *,
        namespace: str = "hubbub",
        clock: Clock = time.time,
        owns_client: bool = False,
    ) -> None:
        super().__init__(limits, clock=clock)
        self.redis = redis
        self.ns = namespace
        self._keys = Keys(namespace, cluster=isinstance(redis, RedisCluster))
        self._owns_client = owns_client
        self._scripts = ScriptBatch(lambda: redis, routed=self._keys.cluster)

    @classmethod
    def from_url(cls, url: str, limits: InboxLimits | None = None, **kwargs: Any) -> RedisInboxStore:
        """A store with a client of its own (closed with the store)."""
        from hubbub.broker.redis_target import RedisTarget

        target, options = RedisTarget.parse(url)
        kwargs.setdefault("namespace", options.get("namespace", "hubbub"))
        client = target.client(max_connections=32, socket_timeout=5.0)
        return cls(client, limits, owns_client=True, **kwargs)

    async def start(self) -> None:
        """Nothing to open: the client connects on first use."""

    async def close(self) -> None:
        await self._scripts.drain()
        if self._owns_client:
            await self.redis.aclose()

    async def _run(self, script: str, args: list[Any]) -> Any:
        """Run a script (pipelined with the others of this loop iteration)."""
        try:
            return await self._scripts.call(script, *args)
        except ResponseError:
            raise  # the script itself failed: not an outage
        except (RedisError, RedisClusterException, OSError) as exc:
            raise BrokerUnavailable(f"cannot reach the Redis inbox: {exc}") from None

    # ---- the store ----------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _ttl_ms(self) -> int:
        return max(1, int(self.limits.ttl * 1000))

    async def append(self, user_id: str, body: bytes) -> int:
        args = [self._keys.inbox(user_id), user_id, body, self._now_ms(), self._ttl_ms(), self.limits.size]
        return int(await self._run(APPEND, args))

    async def backlog(self, user_id: str, device: str) -> Backlog:
        args = [self._keys.inbox(user_id), user_id, device, self._now_ms(), self._ttl_ms(), self.limits.max_devices]
        last, cursor, entries = await self._run(BACKLOG, args)
        messages = []
        for entry in entries:
            offset, _, body = bytes(entry).split(b":", 2)
            messages.append(StoredMessage(int(offset), body))
        return Backlog(messages, int(last), missed(int(last), int(cursor), len(messages)))

    async def ack(self, user_id: str, device: str, offset: int) -> int:
        prefix = self._keys.inbox(user_id)
        args = [prefix, user_id, device, offset, self._now_ms(), self._ttl_ms(), self.limits.max_devices]
        return int(await self._run(ACK, args))

    async def cursor(self, user_id: str, device: str) -> int | None:
        raw = await self.redis.hget(f"{self._keys.inbox(user_id)}:inbox:cur:{user_id}", device)
        if raw is None:
            return None
        cursor, _, seen = bytes(raw).partition(b":")
        if int(seen) + self._ttl_ms() <= self._now_ms():
            return None
        return int(cursor)

    async def last(self, user_id: str) -> int:
        raw = await self.redis.get(f"{self._keys.inbox(user_id)}:inbox:last:{user_id}")
        return int(raw) if raw is not None else 0
