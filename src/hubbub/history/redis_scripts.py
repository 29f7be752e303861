"""Lua scripts of the Redis history engine.

Keys (per room, prefix `ns:hist:<room>`; on a Redis Cluster `ns:hist:{ns:r:<room>}`, one hash slot per room):
  <prefix>            STREAM  entry id "<offset>-0", fields t (ms, Redis clock) and p (the packed publication)
  <prefix>:meta       HASH    e: epoch, o: the last offset given
  <prefix>:k:<key>    STRING  "<epoch>:<offset>" of the publication made with an idempotency key
All expire `ttl` after the room's last publication; entries older than `ttl` are removed from the head.
"""

from __future__ import annotations

from typing import Final

_CLOCK_AND_EXPIRY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function expire_head(stream, oldest)
  while true do
    local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
    if #head == 0 or tonumber(head[1][2][2]) >= oldest then return head end
    redis.call('XDEL', stream, head[1][1])
  end
end
"""

APPEND: Final = (
    _CLOCK_AND_EXPIRY
    + """
local stream, meta, channel, payload = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local size, ttl, key, fresh = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = fresh
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
end
if key ~= '' then
  local seen = redis.call('GET', stream .. ':k:' .. key)
  if seen then
    local sep = string.find(seen, ':', 1, true)
    if string.sub(seen, 1, sep - 1) == epoch then return {tonumber(string.sub(seen, sep + 1)), epoch, 1} end
  end
end
local offset = redis.call('HINCRBY', meta, 'o', 1)
redis.call('XADD', stream, 'MAXLEN', size, offset .. '-0', 't', now, 'p', payload)
expire_head(stream, now - ttl)
redis.call('PEXPIRE', stream, ttl)
redis.call('PEXPIRE', meta, ttl)
if key ~= '' then redis.call('SET', stream .. ':k:' .. key, epoch .. ':' .. offset, 'PX', ttl) end
redis.call('PUBLISH', channel, '#' .. offset .. ':' .. payload)
return {offset, epoch, 0}
"""
)
"""Give the next offset, keep the publication and publish it, in one step: no node can see offset 8 before 7.
Returns {offset, epoch, duplicate (1 when the idempotency key was seen: nothing was appended)}."""

APPEND_SHARDED: Final = APPEND.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'")
"""`APPEND` on a Redis Cluster: the room's shard channel is in the stream's hash slot."""

READ: Final = (
    _CLOCK_AND_EXPIRY
    + """
local stream, meta, ttl, fresh = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local mode, n, limit = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', fresh, 'o', 0)
  redis.call('PEXPIRE', meta, ttl)
  return {0, fresh, 1, {}}
end
local top = tonumber(redis.call('HGET', meta, 'o'))
local head = expire_head(stream, now - ttl)
local first = top + 1
if #head > 0 then first = tonumber(string.match(head[1][1], '^(%d+)')) end
local found = {}
if mode == 'since' and n < top then
  if limit == '' then
    found = redis.call('XRANGE', stream, (n + 1) .. '-0', '+')
  else
    found = redis.call('XRANGE', stream, (n + 1) .. '-0', '+', 'COUNT', tonumber(limit))
  end
elseif mode == 'last' and n > 0 then
  found = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', n)
end
local out = {}
for _, entry in ipairs(found) do
  table.insert(out, string.match(entry[1], '^(%d+)'))
  table.insert(out, entry[2][4])
end
return {top, epoch, first, out}
"""
)
"""Returns {top, epoch, first kept offset, {offset, payload, ...}}; a missing stream begins (a new epoch)."""
