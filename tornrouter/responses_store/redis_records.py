"""``RedisRecords``: stored responses in the Redis of ``state.url``, so that
any instance can continue, read or delete any conversation.

Layout, under ``state.prefix``::

    response:<id>    hash: key (the creating key's name), prev (the id it continued), data

each with its time to live in Redis.  Walking a conversation is one Lua
script (one round trip however long the chain), and so is saving a turn with
the renewal of its chain's time to live; deleting checks the owner in the same
step.  As for the limits, a single Redis is expected, not Redis Cluster (a
script reads keys it could not declare in advance).  Redis's own ``maxmemory``
bounds what it holds (``responses.max_bytes`` is the in-memory store's): with a
``volatile-lru`` policy, the least recently used stored responses go first.
"""

from __future__ import annotations

from ..access.redis_state import call, connect, redacted
from .records import KEPT, MAX_CHAIN, TAKEN, Chain, Record, Records

# KEYS[1]: the record.  ARGV: key, prev, data, ttl_ms, prefix, max hops.
# Returns 0 when the id is taken (nothing written), else 1.
PUT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'key', ARGV[1], 'prev', ARGV[2], 'data', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local prev = ARGV[2]
local hops = 0
while prev ~= '' and hops < tonumber(ARGV[6]) do
  local k = ARGV[5] .. 'response:' .. prev
  if redis.call('PEXPIRE', k, ARGV[4]) == 0 then break end
  prev = redis.call('HGET', k, 'prev') or ''
  hops = hops + 1
end
return 1
"""

# KEYS[1]: the newest record.  ARGV: its id, prefix, max hops.  Returns
# {records, missing, too_long}; records as {id, key, prev, data}, newest first.
CHAIN_LUA = """
local out = {}
local id = ARGV[1]
local k = KEYS[1]
while true do
  if #out == tonumber(ARGV[3]) then return {out, '', 1} end
  local f = redis.call('HMGET', k, 'key', 'prev', 'data')
  if not f[3] then return {out, id, 0} end
  out[#out + 1] = {id, f[1], f[2], f[3]}
  if f[2] == '' then return {out, '', 0} end
  id = f[2]
  k = ARGV[2] .. 'response:' .. id
end
"""

# KEYS[1]: the record.  ARGV[1]: the key name that must own it.
DELETE_LUA = """
if redis.call('HGET', KEYS[1], 'key') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisRecords(Records):
    def __init__(self, url: str, *, prefix: str = "tornrouter:", timeout_s: float = 0.5) -> None:
        self.where = redacted(url)
        self.prefix = prefix
        self.timeout_s = timeout_s
        # Bytes in and out: a record's data is JSON, kept as sent.
        self.redis = connect(url, timeout_s, decode_responses=False)
        self._put = self.redis.register_script(PUT_LUA)
        self._chain = self.redis.register_script(CHAIN_LUA)
        self._delete = self.redis.register_script(DELETE_LUA)

    def _name(self, response_id: str) -> str:
        return f"{self.prefix}response:{response_id}"

    async def put(self, record: Record, ttl_s: float) -> str:
        args = [record.key, record.prev, record.data, max(1, int(ttl_s * 1000)), self.prefix, MAX_CHAIN]
        written = await call(self._put(keys=[self._name(record.id)], args=args), self.timeout_s, self.where)
        return KEPT if written else TAKEN

    async def chain(self, response_id: str) -> Chain:
        found, missing, too_long = await call(
            self._chain(keys=[self._name(response_id)], args=[response_id, self.prefix, MAX_CHAIN]),
            self.timeout_s, self.where,
        )
        records = tuple(Record(i.decode(), key.decode(), prev.decode(), data) for i, key, prev, data in found)
        return Chain(records, missing.decode(), bool(too_long))

    async def get(self, response_id: str) -> Record | None:
        key, prev, data = await call(self.redis.hmget(self._name(response_id), "key", "prev", "data"),
                                     self.timeout_s, self.where)
        return None if data is None else Record(response_id, key.decode(), prev.decode(), data)

    async def delete(self, response_id: str, key: str) -> bool:
        deleted = await call(self._delete(keys=[self._name(response_id)], args=[key]), self.timeout_s, self.where)
        return bool(deleted)

    async def aclose(self) -> None:
        await self.redis.aclose()
