"""Lua scripts of the Redis engine on a Redis Cluster: the membership sharded over hash slots.

Every script touches the keys of one hash slot, named by its first argument (the slot's prefix):

  {ns}                       the nodes (low traffic: a heartbeat per node, a claim, a reap)
    :nodes        ZSET  node id -> lease expiry (ms, Redis's clock)
    :epochs       HASH  node id -> its current epoch
    :reaped:<n>   STRING set when a node was reaped (an hour), so that it announces its members again
    :orphans      HASH  node id -> its last epoch: a reaped or stopped node whose keys are still to clean
    :counted      HASH  node id -> its connections admitted under a cluster-wide limit
    :dropped      INT   dropped-message count
  {ns:n:NODE}                a node's own keys (written by that node only, and by whoever cleans it up)
    :epoch        STRING the node's current epoch (the fence of its writes here)
    :conns        HASH  client id -> member JSON
    :crooms:<c>   SET   rooms of a client
    :rooms        HASH  room -> how many of the node's connections are in it
    :users        HASH  user -> how many of the node's connections the user has
    :leaving      ZSET  "token:user" -> when the user's pending offline decision is due (ms)
  {ns:r:ROOM}                a room (the slot of its channel and its history)
    :members      HASH  client id -> member JSON, with the writer's epoch as "e"
  {ns:u:USER}                a user (the slot of its inbox)
    :conns        HASH  client id -> "node:epoch"
    :gone         STRING token of a pending offline decision
  and in each room and user slot
    :fence        HASH  node id -> the lowest epoch of that node still accepted here
    :fence_at     HASH  node id -> when its fence last rose (ms): fences older than an hour are pruned

One change (a connection opening, a join) is several steps, one per slot, in an order that
keeps one rule: whatever a node wrote in a room's or a user's slot is recorded in its own slot
first, and taken out of it last. So a node that dies between two steps leaves nothing that the
record of its own slot does not name, and the node that cleans up after it finds everything.

Fencing: epochs are numbers, growing with each claim of a node. A node's own slot refuses (-3)
a write whose epoch is not the current one. A room's or a user's slot keeps, per node, the
highest epoch it has seen, and refuses older ones: a write delayed past a newer claim cannot undo
what the newer epoch wrote. Cleaning up a dead node raises its fence past its last epoch in every
slot it cleans, so a write the dead node sent before dying cannot bring back what was removed.
"""

from __future__ import annotations

from typing import Final

from hubbub.broker.redis_scripts import NOW

_OWN_FENCE = """
if redis.call('GET', P .. ':epoch') ~= epoch then return -3 end
"""

_DECREMENT = """
local function decrement(key, field)
  if redis.call('HINCRBY', key, field, -1) <= 0 then redis.call('HDEL', key, field) end
end
"""

_FENCE_AT = """
local function raise_fence(floor)
  redis.call('HSET', P .. ':fence', node, floor)
  redis.call('HSET', P .. ':fence_at', node, now)
  if redis.call('HLEN', P .. ':fence_at') > 64 then
    local at = redis.call('HGETALL', P .. ':fence_at')
    for i = 1, #at, 2 do
      if tonumber(at[i + 1]) < now - 3600000 then
        redis.call('HDEL', P .. ':fence', at[i])
        redis.call('HDEL', P .. ':fence_at', at[i])
      end
    end
  end
end
local seen = tonumber(redis.call('HGET', P .. ':fence', node) or '0')
"""

_SLOT_FENCE = (
    NOW
    + _FENCE_AT
    + """
if epoch < seen then return -3 end
if epoch > seen then raise_fence(epoch) end
"""
)
"""The fence of a room's or a user's slot (expects P, node and a numeric epoch)."""

_EVICT_FENCE = (
    """
local P, node, dead, client = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
"""
    + NOW
    + _FENCE_AT
    + """
if seen <= dead then raise_fence(dead + 1) end
"""
)
"""The start of an eviction from a room's or a user's slot: refuse the dead node's epochs up to `dead` from now on."""

# ---- the nodes' slot {ns} ---------------------------------------------------------------------------------

CLAIM: Final = (
    """
local P, node, epoch, lease, counted = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
"""
    + NOW
    + """
redis.call('HSET', P .. ':epochs', node, epoch)
redis.call('ZADD', P .. ':nodes', now + lease, node)
redis.call('HSET', P .. ':counted', node, counted)
return {now, redis.call('DEL', P .. ':reaped:' .. node)}
"""
)
"""Record a node's new epoch, renew its lease and set its admitted count; returns {Redis's time (ms), 1 if the
node had been reaped}."""

RENEW: Final = (
    """
local P, node, epoch, lease = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
"""
    + NOW
    + """
if redis.call('HGET', P .. ':epochs', node) ~= epoch then return {now, -1} end
redis.call('ZADD', P .. ':nodes', now + lease, node)
return {now, 0}
"""
)
"""The heartbeat: {Redis's time (ms), 0}, or {time, -1} when the node's registration is gone."""

ADMIT: Final = (
    """
local P, node, epoch, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('HGET', P .. ':epochs', node) ~= epoch then return -3 end
"""
    + NOW
    + """
local total = 0
for _, n in ipairs(redis.call('ZRANGEBYSCORE', P .. ':nodes', now, '+inf')) do
  total = total + tonumber(redis.call('HGET', P .. ':counted', n) or '0')
end
if total >= limit then return -1 end
redis.call('HINCRBY', P .. ':counted', node, 1)
return 0
"""
)
"""Count a connection in under a cluster-wide limit: 0, -1 over capacity, -3 fenced. Only connections opened
under a limit touch this slot (a connection limit needs one count; the rest of the membership is sharded)."""

UNCOUNT: Final = """
local P, node, epoch = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', P .. ':epochs', node) ~= epoch then return -3 end
if redis.call('HINCRBY', P .. ':counted', node, -1) < 0 then redis.call('HSET', P .. ':counted', node, 0) end
return 1
"""
"""A connection counted in by `ADMIT` closed: 1, or -3 fenced."""

REAP: Final = (
    """
local P, node, epoch = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', P .. ':epochs', node) ~= epoch then return {} end
"""
    + NOW
    + """
local out = {}
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', P .. ':nodes', '-inf', now - 1)) do
  if dead ~= node then
    redis.call('ZREM', P .. ':nodes', dead)
    redis.call('HSET', P .. ':orphans', dead, redis.call('HGET', P .. ':epochs', dead) or '0')
    redis.call('HDEL', P .. ':epochs', dead)
    redis.call('HDEL', P .. ':counted', dead)
    redis.call('SET', P .. ':reaped:' .. dead, '1', 'PX', 3600000)
    table.insert(out, dead)
  end
end
return out
"""
)
"""Forget every other node whose lease expired (only a node holding its current epoch may reap), leaving
each as an orphan whose keys any node cleans up; returns their ids."""

STOP: Final = """
local P, node, epoch = ARGV[1], ARGV[2], ARGV[3]
redis.call('ZREM', P .. ':nodes', node)
redis.call('HDEL', P .. ':epochs', node)
redis.call('HDEL', P .. ':counted', node)
redis.call('HSET', P .. ':orphans', node, epoch)
return 1
"""
"""A node leaves the cluster: the others clean up what it leaves (its pending offline decisions)."""

ORPHAN_DONE: Final = """
local P, node, epoch = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', P .. ':orphans', node) == epoch then redis.call('HDEL', P .. ':orphans', node) end
return 1
"""
"""An orphan's keys are clean."""

# ---- a node's slot {ns:n:NODE} ----------------------------------------------------------------------------

OWN_CLAIM: Final = """
local P, epoch = ARGV[1], ARGV[2]
redis.call('SET', P .. ':epoch', epoch)
return redis.call('HKEYS', P .. ':conns')
"""
"""Take the epoch in the node's own slot; returns the client ids it holds."""

OWN_HELD: Final = """
local P, epoch = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':epoch') ~= epoch then return -1 end
return redis.call('HLEN', P .. ':conns')
"""
"""How many connections the node's slot holds, or -1 when its epoch is gone (Redis lost it, or a cleanup)."""

OWN_APPLY: Final = (
    """
local P, epoch = ARGV[1], ARGV[2]
"""
    + _OWN_FENCE
    + _DECREMENT
    + NOW
    + """
local conns, users, rooms = P .. ':conns', P .. ':users', P .. ':rooms'
local function register(client, blob, user)
  if redis.call('HSET', conns, client, blob) == 1 and user ~= '' then redis.call('HINCRBY', users, user, 1) end
  return 1
end
local function unregister(client, leaving)
  if leaving ~= '' then redis.call('ZREM', P .. ':leaving', leaving) end
  local blob = redis.call('HGET', conns, client)
  if not blob then return 0 end
  redis.call('HDEL', conns, client)
  local ck = P .. ':crooms:' .. client
  for _, room in ipairs(redis.call('SMEMBERS', ck)) do decrement(rooms, room) end
  redis.call('DEL', ck)
  local user = cjson.decode(blob)['u']
  if type(user) == 'string' then decrement(users, user) end
  return 1
end
local function join(client, room)
  if redis.call('SADD', P .. ':crooms:' .. client, room) == 1 then redis.call('HINCRBY', rooms, room, 1) end
  return 1
end
local function leave(client, room)
  if redis.call('SREM', P .. ':crooms:' .. client, room) == 1 then decrement(rooms, room) end
  return 1
end
local function pending(entry, delay, due)
  due = tonumber(due)
  if due <= 0 then due = now + tonumber(delay) end
  redis.call('ZADD', P .. ':leaving', due, entry)
  return 1
end
local changes = {register = register, unregister = unregister, join = join, leave = leave, leaving = pending}
local out = {}
local i = 3
while i <= #ARGV do
  local count = tonumber(ARGV[i + 1])
  table.insert(out, changes[ARGV[i]](unpack(ARGV, i + 2, i + 1 + count)))
  i = i + 2 + count
end
return out
"""
)
"""Apply a node's changes to its own slot, in order; ARGV[3..] holds each as its name, its argument count and its
arguments: `register` (client, member JSON, user or ""), `unregister` (client, a pending offline decision that
needs no keeping or ""), `join` and `leave` (client, room), `leaving` (a pending offline decision "token:user",
due in `delay` ms, or at `due` ms on Redis's clock if > 0). Returns one result per change (`unregister`: 0 if the
connection was not held), or -3 fenced (none applied)."""

OWN_PEEK: Final = """
local P, client = ARGV[1], ARGV[2]
local blob = redis.call('HGET', P .. ':conns', client)
if not blob then return {} end
local out = redis.call('SMEMBERS', P .. ':crooms:' .. client)
table.insert(out, 1, blob)
return out
"""
"""A held connection: {member JSON, rooms...}, or {} if not held."""

OWN_RESTORE: Final = (
    """
local P, epoch, client, blob, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
"""
    + _OWN_FENCE
    + _DECREMENT
    + """
local wanted = {}
for i = 6, #ARGV do wanted[ARGV[i]] = true end
local ck = P .. ':crooms:' .. client
local removed = {}
for _, room in ipairs(redis.call('SMEMBERS', ck)) do
  if not wanted[room] then
    redis.call('SREM', ck, room)
    decrement(P .. ':rooms', room)
    table.insert(removed, room)
  end
end
for i = 6, #ARGV do
  if redis.call('SADD', ck, ARGV[i]) == 1 then redis.call('HINCRBY', P .. ':rooms', ARGV[i], 1) end
end
if redis.call('HSET', P .. ':conns', client, blob) == 1 and user ~= '' then
  redis.call('HINCRBY', P .. ':users', user, 1)
end
return removed
"""
)
"""Write a connection as the node knows it, in exactly the rooms given (ARGV[6..]); returns the rooms Redis held
that it is no longer in (their slots still list it), or -3 fenced."""

OWN_DUE: Final = (
    """
local P, lag = ARGV[1], tonumber(ARGV[2])
"""
    + NOW
    + """
return redis.call('ZRANGEBYSCORE', P .. ':leaving', '-inf', now - lag)
"""
)
"""The node's pending offline decisions due more than `lag` ms ago (whose own timer did not run)."""

ORPHAN_TAKE: Final = """
local P, epoch = ARGV[1], ARGV[2]
if redis.call('GET', P .. ':epoch') == epoch then redis.call('DEL', P .. ':epoch') end
local conns = {}
local all = redis.call('HGETALL', P .. ':conns')
for i = 1, #all, 2 do
  local entry = redis.call('SMEMBERS', P .. ':crooms:' .. all[i])
  table.insert(entry, 1, all[i + 1])
  table.insert(conns, entry)
end
return {conns, redis.call('ZRANGE', P .. ':leaving', 0, -1, 'WITHSCORES')}
"""
"""Fence an orphan's own slot (unless it claimed a newer epoch since) and read it: {{member JSON, rooms...} per
connection, {"token:user", due, ...}}."""

ORPHAN_DROP: Final = """
local P = ARGV[1]
if redis.call('EXISTS', P .. ':epoch') == 1 then return 0 end
for _, client in ipairs(redis.call('HKEYS', P .. ':conns')) do redis.call('DEL', P .. ':crooms:' .. client) end
redis.call('DEL', P .. ':conns', P .. ':rooms', P .. ':users', P .. ':leaving')
return 1
"""
"""Delete an orphan's own slot, unless the node came back (it holds an epoch again): 1 dropped, 0 kept."""

# ---- a room's slot {ns:r:ROOM} ----------------------------------------------------------------------------

ROOM_JOIN: Final = (
    """
local P, node, epoch, client, blob = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
"""
    + _SLOT_FENCE
    + """
redis.call('HSET', P .. ':members', client, blob)
return 1
"""
)
"""Add a member: 1, or -3 fenced."""

ROOM_LEAVE: Final = (
    """
local P, node, epoch, client = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
"""
    + _SLOT_FENCE
    + """
local blob = redis.call('HGET', P .. ':members', client)
if blob and cjson.decode(blob)['n'] == node then return redis.call('HDEL', P .. ':members', client) end
return 0
"""
)
"""Take out a member of this node: 1, 0 if absent, -3 fenced."""

ROOM_EVICT: Final = (
    _EVICT_FENCE
    + """
local blob = redis.call('HGET', P .. ':members', client)
if not blob then return 0 end
local member = cjson.decode(blob)
if member['n'] ~= node or (tonumber(member['e']) or 0) > dead then return 0 end
return redis.call('HDEL', P .. ':members', client)
"""
)
"""Take out a dead node's member written with an epoch up to `dead`, and refuse those epochs from now on:
1 when this call took it out (exactly one cleaner announces the leave), 0 otherwise."""

# ---- a user's slot {ns:u:USER} ----------------------------------------------------------------------------

USER_REGISTER: Final = (
    """
local P, node, epoch, client, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
"""
    + _SLOT_FENCE
    + """
local before = redis.call('HLEN', P .. ':conns')
if limit > 0 and before >= limit then return -2 end
redis.call('HSET', P .. ':conns', client, node .. ':' .. epoch)
if before > 0 then return 0 end
if redis.call('DEL', P .. ':gone') == 1 then return 0 end
return 1
"""
)
"""Add a user's connection (`limit` > 0: at most that many): 1 when the user came online, 0 otherwise, -2 too many
for the user, -3 fenced."""

USER_UNREGISTER: Final = (
    """
local P, node, epoch, client, grace, token = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[6]
"""
    + _SLOT_FENCE
    + """
if redis.call('HDEL', P .. ':conns', client) == 0 then return 0 end
if redis.call('HLEN', P .. ':conns') > 0 then return 0 end
if grace <= 0 then return 2 end
redis.call('SET', P .. ':gone', token, 'PX', grace + 10000)
return 1
"""
)
"""Take out a user's connection: 2 when the user went offline now, 1 when an offline decision (`token`) is
pending, 0 otherwise, -3 fenced."""

USER_OFFLINE: Final = """
local P, token = ARGV[1], ARGV[2]
if redis.call('HLEN', P .. ':conns') > 0 then return 0 end
if redis.call('GET', P .. ':gone') ~= token then return 0 end
redis.call('DEL', P .. ':gone')
return 1
"""
"""Make a pending offline decision: 1 when the user is now offline (exactly one caller in the cluster gets 1)."""

USER_EVICT: Final = (
    _EVICT_FENCE
    + """
local owner = redis.call('HGET', P .. ':conns', client)
if not owner then return 0 end
local writer, written = string.match(owner, '^(.*):(%d+)$')
if writer ~= node or tonumber(written) > dead then return 0 end
redis.call('HDEL', P .. ':conns', client)
if redis.call('HLEN', P .. ':conns') > 0 or redis.call('EXISTS', P .. ':gone') == 1 then return 0 end
return 1
"""
)
"""Take out a dead node's connection of the user (epoch up to `dead`), refusing those epochs from now on: 1 when
the user went offline with it (exactly one cleaner gets 1), 0 otherwise."""
