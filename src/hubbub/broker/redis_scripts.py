"""Lua scripts of the Redis engine on one server: each cluster-wide decision is one atomic step.

(On a Redis Cluster the membership is sharded over hash slots instead: `redis_sharded_scripts`.)

Keys (prefix `ns`):
  ns:nodes            ZSET  node id -> lease expiry (ms, Redis's clock)
  ns:epochs           HASH  node id -> its current epoch (the fence of its writes)
  ns:reaped:<node>    STRING set when the node was reaped (an hour), so that it announces its members again
  ns:conns:<node>     HASH  client id -> member JSON {"c","n","u","i"}
  ns:crooms:<client>  SET   rooms of a client
  ns:room:<room>      HASH  client id -> member JSON
  ns:rooms            SET   rooms with members
  ns:user:<user>      HASH  client id -> node id
  ns:online           SET   users online (including those within the grace period)
  ns:gone:<user>      STRING token of a pending offline decision
  ns:leaving          ZSET  user -> when its pending offline decision is due (ms), for any node to make
  ns:dropped          INT   dropped-message count

Time comes from Redis (`TIME`), never from the caller: a lease renewed by a command that
waited in a stalled Redis counts from when Redis ran it, and the nodes' clocks may differ.

Fencing: every write a node makes carries its epoch, and is refused (-3) unless `ns:epochs`
holds that epoch for the node. Reaping a node deletes its epoch, so a write it sent before
it was reaped (delayed by a pause or the network) cannot bring back what the reaper removed;
the node takes a new epoch (`CLAIM`) and rewrites its state.
"""

from __future__ import annotations

from typing import Final

FENCED: Final = -3
"""What a write returns when the node's epoch is not the current one (it was reaped, or Redis lost it)."""

NOW: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""
"""Lua that sets `now` to Redis's time (ms)."""

_FENCE = """
if redis.call('HGET', ns .. ':epochs', node) ~= epoch then return -3 end
"""

CLAIM: Final = (
    """
local ns, node, epoch, lease = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
"""
    + NOW
    + """
redis.call('HSET', ns .. ':epochs', node, epoch)
redis.call('ZADD', ns .. ':nodes', now + lease, node)
local out = redis.call('HKEYS', ns .. ':conns:' .. node)
table.insert(out, 1, redis.call('DEL', ns .. ':reaped:' .. node))
table.insert(out, 1, now)
return out
"""
)
"""Take a new epoch and renew the lease; returns Redis's time (ms), 1 if the node had been reaped (0 otherwise),
then the client ids Redis holds for the node."""

RENEW: Final = (
    """
local ns, node, epoch, lease = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
"""
    + NOW
    + """
if redis.call('HGET', ns .. ':epochs', node) ~= epoch then return {now, -1} end
redis.call('ZADD', ns .. ':nodes', now + lease, node)
return {now, redis.call('HLEN', ns .. ':conns:' .. node)}
"""
)
"""The heartbeat: returns {Redis's time (ms), connections Redis holds for the node}, or {time, -1} when the
node's registration is gone (reaped, or Redis lost it): then nothing is renewed and the node must `CLAIM`."""

REGISTER: Final = (
    """
local ns, client, node, epoch, blob, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local max_conn, max_user = tonumber(ARGV[7]), tonumber(ARGV[8])
"""
    + _FENCE
    + NOW
    + """
if max_conn > 0 then
  local total = 0
  for _, n in ipairs(redis.call('ZRANGEBYSCORE', ns .. ':nodes', now, '+inf')) do
    total = total + redis.call('HLEN', ns .. ':conns:' .. n)
  end
  if total >= max_conn then return -1 end
end
local uk = ns .. ':user:' .. user
if user ~= '' and max_user > 0 and redis.call('HLEN', uk) >= max_user then return -2 end
redis.call('HSET', ns .. ':conns:' .. node, client, blob)
if user == '' then return 0 end
local before = redis.call('HLEN', uk)
redis.call('HSET', uk, client, node)
if before > 0 then return 0 end
if redis.call('DEL', ns .. ':gone:' .. user) == 1 then return 0 end
if redis.call('SADD', ns .. ':online', user) == 0 then return 0 end
return 1
"""
)
"""Returns 1 when the user came online, 0 otherwise, -1 over capacity, -2 too many for the user, -3 fenced."""

RESTORE: Final = (
    """
local ns, client, node, epoch, blob, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
"""
    + _FENCE
    + """
local wanted = {}
for i = 7, #ARGV do wanted[ARGV[i]] = true end
local ck = ns .. ':crooms:' .. client
for _, room in ipairs(redis.call('SMEMBERS', ck)) do
  if not wanted[room] then
    local rk = ns .. ':room:' .. room
    redis.call('HDEL', rk, client)
    if redis.call('HLEN', rk) == 0 then redis.call('SREM', ns .. ':rooms', room) end
    redis.call('SREM', ck, room)
  end
end
for i = 7, #ARGV do
  redis.call('HSET', ns .. ':room:' .. ARGV[i], client, blob)
  redis.call('SADD', ns .. ':rooms', ARGV[i])
  redis.call('SADD', ck, ARGV[i])
end
redis.call('HSET', ns .. ':conns:' .. node, client, blob)
if user == '' then return 0 end
local uk = ns .. ':user:' .. user
local before = redis.call('HLEN', uk)
redis.call('HSET', uk, client, node)
if before > 0 then return 0 end
if redis.call('DEL', ns .. ':gone:' .. user) == 1 then return 0 end
if redis.call('SADD', ns .. ':online', user) == 0 then return 0 end
return 1
"""
)
"""Write a live connection as the node knows it: registered, in exactly the rooms given (ARGV[7..]), no
limits checked. Returns 1 when its user came online, 0 otherwise, -3 fenced."""

UNREGISTER: Final = (
    """
local ns, client, node, epoch, grace, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
"""
    + _FENCE
    + NOW
    + """
local ck = ns .. ':conns:' .. node
local blob = redis.call('HGET', ck, client)
if not blob then return {0, ''} end
redis.call('HDEL', ck, client)
for _, room in ipairs(redis.call('SMEMBERS', ns .. ':crooms:' .. client)) do
  local rk = ns .. ':room:' .. room
  redis.call('HDEL', rk, client)
  if redis.call('HLEN', rk) == 0 then redis.call('SREM', ns .. ':rooms', room) end
end
redis.call('DEL', ns .. ':crooms:' .. client)
local user = cjson.decode(blob)['u']
if type(user) ~= 'string' then return {0, ''} end
local uk = ns .. ':user:' .. user
if redis.call('HDEL', uk, client) == 0 then return {0, user} end
if redis.call('HLEN', uk) > 0 then return {0, user} end
if grace <= 0 then
  redis.call('SREM', ns .. ':online', user)
  return {2, user}
end
redis.call('SET', ns .. ':gone:' .. user, token, 'PX', grace + 10000)
redis.call('ZADD', ns .. ':leaving', now + grace, user)
return {1, user}
"""
)
"""Returns {2, user} when the user went offline now, {1, user} when an offline decision is pending, {0, user}
otherwise (also when Redis no longer holds the connection: a reaper or an earlier unregister took it out),
or -3 fenced."""

OFFLINE_CHECK: Final = """
local ns, user, token = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HLEN', ns .. ':user:' .. user) > 0 then return 0 end
if redis.call('GET', ns .. ':gone:' .. user) ~= token then return 0 end
redis.call('DEL', ns .. ':gone:' .. user)
redis.call('ZREM', ns .. ':leaving', user)
return redis.call('SREM', ns .. ':online', user)
"""
"""Returns 1 when the user is now offline (exactly one caller in the cluster gets 1)."""

SWEEP_LEAVING: Final = (
    """
local ns = ARGV[1]
"""
    + NOW
    + """
local out = {}
for _, user in ipairs(redis.call('ZRANGEBYSCORE', ns .. ':leaving', '-inf', now)) do
  redis.call('ZREM', ns .. ':leaving', user)
  if redis.call('HLEN', ns .. ':user:' .. user) == 0 then
    redis.call('DEL', ns .. ':gone:' .. user)
    if redis.call('SREM', ns .. ':online', user) == 1 then table.insert(out, user) end
  end
end
return out
"""
)
"""Make the offline decisions that are due and that no node made (the user's node stopped or died within the
grace); returns the users now offline. Any node's heartbeat runs it; a decision is made once either way."""

JOIN: Final = (
    """
local ns, room, client, blob, node, epoch = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
"""
    + _FENCE
    + """
redis.call('HSET', ns .. ':room:' .. room, client, blob)
redis.call('SADD', ns .. ':rooms', room)
redis.call('SADD', ns .. ':crooms:' .. client, room)
return 1
"""
)
"""Returns 1, or -3 fenced."""

LEAVE: Final = (
    """
local ns, room, client, node, epoch = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
"""
    + _FENCE
    + """
local rk = ns .. ':room:' .. room
redis.call('HDEL', rk, client)
if redis.call('HLEN', rk) == 0 then redis.call('SREM', ns .. ':rooms', room) end
redis.call('SREM', ns .. ':crooms:' .. client, room)
return 1
"""
)
"""Returns 1, or -3 fenced."""

REAP: Final = (
    """
local ns, node, epoch = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', ns .. ':epochs', node) ~= epoch then return {} end
"""
    + NOW
    + """
local out = {}
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', ns .. ':nodes', '-inf', now - 1)) do
  if dead ~= node then
    redis.call('ZREM', ns .. ':nodes', dead)
    redis.call('HDEL', ns .. ':epochs', dead)
    redis.call('SET', ns .. ':reaped:' .. dead, '1', 'PX', 3600000)
    table.insert(out, 'node')
    table.insert(out, dead)
    table.insert(out, '')
    local conns = redis.call('HGETALL', ns .. ':conns:' .. dead)
    for i = 1, #conns, 2 do
      local client, blob = conns[i], conns[i + 1]
      for _, room in ipairs(redis.call('SMEMBERS', ns .. ':crooms:' .. client)) do
        local rk = ns .. ':room:' .. room
        redis.call('HDEL', rk, client)
        if redis.call('HLEN', rk) == 0 then redis.call('SREM', ns .. ':rooms', room) end
        table.insert(out, 'leave')
        table.insert(out, room)
        table.insert(out, blob)
      end
      redis.call('DEL', ns .. ':crooms:' .. client)
      local user = cjson.decode(blob)['u']
      if type(user) == 'string' then
        local uk = ns .. ':user:' .. user
        redis.call('HDEL', uk, client)
        if redis.call('HLEN', uk) == 0 then
          redis.call('DEL', ns .. ':gone:' .. user)
          if redis.call('SREM', ns .. ':online', user) == 1 then
            table.insert(out, 'offline')
            table.insert(out, user)
            table.insert(out, '')
          end
        end
      end
    end
    redis.call('DEL', ns .. ':conns:' .. dead)
  end
end
return out
"""
)
"""Forget every other node whose lease expired (only a node holding its own current epoch may reap); returns
triples ("node", id, ""), ("leave", room, member) and ("offline", user, "")."""

PUBLISH: Final = (
    """
local deadline = tonumber(ARGV[1])
"""
    + NOW
    + """
if now > deadline then return 0 end
for i = 2, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return 1
"""
)
"""Publish a batch (ARGV[2..]: channel, payload, ...) unless Redis runs it after `deadline` (ms, Redis's clock):
a batch held up in a stalled Redis is dropped whole, never delivered late. Returns 1 if sent, 0 if dropped."""

SPUBLISH: Final = PUBLISH.replace("'PUBLISH'", "'SPUBLISH'")
"""`PUBLISH` on a Redis Cluster: shard channels, one call per hash slot (`redis_shards.publish_sharded`)."""
