"""Lua scripts of the Redis engine: each cluster-wide decision is one atomic step.

Keys (prefix `ns`):
  ns:nodes            ZSET  node id -> lease expiry (ms)
  ns:conns:<node>     HASH  client id -> member JSON {"c","n","u","i"}
  ns:crooms:<client>  SET   rooms of a client
  ns:room:<room>      HASH  client id -> member JSON
  ns:rooms            SET   rooms with members
  ns:user:<user>      HASH  client id -> node id
  ns:online           SET   users online (including those within the grace period)
  ns:gone:<user>      STRING token of a pending offline decision
  ns:leaving          ZSET  user -> when its pending offline decision is due (ms), for any node to make
  ns:dropped          INT   dropped-message count
"""

from __future__ import annotations

from typing import Final

REGISTER: Final = """
local ns, now, client, node, blob, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local max_conn, max_user = tonumber(ARGV[7]), tonumber(ARGV[8])
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
"""Returns 1 when the user came online, 0 otherwise, -1 over capacity, -2 too many for the user."""

UNREGISTER: Final = """
local ns, client, node, user, grace, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local now = tonumber(ARGV[7])
redis.call('HDEL', ns .. ':conns:' .. node, client)
for _, room in ipairs(redis.call('SMEMBERS', ns .. ':crooms:' .. client)) do
  local rk = ns .. ':room:' .. room
  redis.call('HDEL', rk, client)
  if redis.call('HLEN', rk) == 0 then redis.call('SREM', ns .. ':rooms', room) end
end
redis.call('DEL', ns .. ':crooms:' .. client)
if user == '' then return 0 end
local uk = ns .. ':user:' .. user
if redis.call('HDEL', uk, client) == 0 then return 0 end
if redis.call('HLEN', uk) > 0 then return 0 end
if grace <= 0 then
  redis.call('SREM', ns .. ':online', user)
  return 2
end
redis.call('SET', ns .. ':gone:' .. user, token, 'PX', grace + 10000)
redis.call('ZADD', ns .. ':leaving', now + grace, user)
return 1
"""
"""Returns 2 when the user went offline now, 1 when an offline decision is pending, else 0 (also when the
client was not the user's any more: a reaper or an earlier unregister already took it out)."""

OFFLINE_CHECK: Final = """
local ns, user, token = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HLEN', ns .. ':user:' .. user) > 0 then return 0 end
if redis.call('GET', ns .. ':gone:' .. user) ~= token then return 0 end
redis.call('DEL', ns .. ':gone:' .. user)
redis.call('ZREM', ns .. ':leaving', user)
return redis.call('SREM', ns .. ':online', user)
"""
"""Returns 1 when the user is now offline (exactly one caller in the cluster gets 1)."""

SWEEP_LEAVING: Final = """
local ns, now = ARGV[1], ARGV[2]
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
"""Make the offline decisions that are due and that no node made (the user's node stopped or died within the
grace); returns the users now offline. Any node's heartbeat runs it; a decision is made once either way."""

JOIN: Final = """
local ns, room, client, blob = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HSET', ns .. ':room:' .. room, client, blob)
redis.call('SADD', ns .. ':rooms', room)
redis.call('SADD', ns .. ':crooms:' .. client, room)
return 1
"""

LEAVE: Final = """
local ns, room, client = ARGV[1], ARGV[2], ARGV[3]
local rk = ns .. ':room:' .. room
redis.call('HDEL', rk, client)
if redis.call('HLEN', rk) == 0 then redis.call('SREM', ns .. ':rooms', room) end
redis.call('SREM', ns .. ':crooms:' .. client, room)
return 1
"""

REAP_NODE: Final = """
local ns, dead, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local lease = redis.call('ZSCORE', ns .. ':nodes', dead)
if lease and tonumber(lease) > now then return {} end
redis.call('ZREM', ns .. ':nodes', dead)
local out = {}
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
return out
"""
"""Forget a node whose lease expired; returns triples ("leave", room, member) and ("offline", user, "")."""
