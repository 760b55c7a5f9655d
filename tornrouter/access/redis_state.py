"""``RedisBackend``: the state of ``state.py`` in one Redis, shared by every
tornrouter instance that points at it, so that N instances enforce one limit.

Admission is one Lua script (checked and counted in one step, atomic in
Redis, whatever the number of instances); settling is one MULTI transaction
of increments.  Times come from the instance (``now``), so instances need
synchronised clocks (NTP), as any fleet does.  Every call has a short timeout
and no retry: a Redis that does not answer at once is reported as
``BackendUnavailable`` and the router's ``on_error`` policy decides, rather
than requests waiting on it.

Layout, under ``prefix`` (default ``tornrouter:``)::

    <counter>                          window: hash second -> amount (expires 120 s after the last write)
    <counter>                          slots: sorted set request id -> lease end
    <counter>                          cap: a float (expires after its period)
    usage:<period>:<bucket>:<key>      hash "<model>\\x1f<metric>" -> value
    usage:<period>:<bucket>            set of the key names with usage in that bucket
    <pin key>                          a session's target (a string, expiring ttl_s after its last use)

A single Redis (or a primary with replicas); not Redis Cluster, whose slots
would split one admission's keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .state import METRICS, WINDOW_S, BackendUnavailable, Check, Refusal, Settlement, StateBackend, Totals

T = TypeVar("T")
SEP = "\x1f"  # between model and metric in a usage field: model names may hold ':' and '/'
WINDOW_TTL_S = 2 * WINDOW_S

# KEYS[i]: the counter of check i.  ARGV: now, member, lease_s, then four per
# check: kind, limit, amount, reset_s.  Returns {0, "0"} when admitted, else
# {i, retry_after_s} for the first check that fails ("-1": it never fits).
# Phase one only reads (and drops what has expired); phase two counts: all or nothing.
ADMIT_LUA = """
local now = tonumber(ARGV[1])
local second = math.floor(now)
local member = ARGV[2]
local lease = tonumber(ARGV[3])
for i = 1, #KEYS do
  local base = 3 + (i - 1) * 4
  local kind, limit, amount = ARGV[base + 1], tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  local key = KEYS[i]
  if kind == 'window' then
    local fields = redis.call('HGETALL', key)
    local used, stale, seconds = 0, {}, {}
    for j = 1, #fields, 2 do
      local s, v = tonumber(fields[j]), tonumber(fields[j + 1])
      if s <= second - %(window)d then
        stale[#stale + 1] = fields[j]
      else
        used = used + v
        seconds[#seconds + 1] = {s, v}
      end
    end
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    if used + amount > limit then
      if amount > limit then return {i, '-1'} end
      table.sort(seconds, function(a, b) return a[1] < b[1] end)
      local over = used + amount - limit
      for _, sv in ipairs(seconds) do
        over = over - sv[2]
        if over <= 0 then return {i, tostring(sv[1] + %(window)d - now)} end
      end
      return {i, '%(window)d'}
    end
  elseif kind == 'slots' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    if redis.call('ZCARD', key) + 1 > limit then return {i, '1'} end
  else
    local spent = tonumber(redis.call('GET', key) or '0')
    if spent >= limit then return {i, ARGV[base + 4]} end
  end
end
for i = 1, #KEYS do
  local base = 3 + (i - 1) * 4
  local kind = ARGV[base + 1]
  if kind == 'window' then
    redis.call('HINCRBY', KEYS[i], second, ARGV[base + 3])
    redis.call('EXPIRE', KEYS[i], %(window_ttl)d)
  elseif kind == 'slots' then
    redis.call('ZADD', KEYS[i], now + lease, member)
    redis.call('EXPIRE', KEYS[i], math.ceil(lease) + 60)
  end
end
return {0, '0'}
""" % {"window": WINDOW_S, "window_ttl": WINDOW_TTL_S}


def redacted(url: str) -> str:
    """``url`` without its password, for log lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str, timeout_s: float, *, decode_responses: bool = True) -> aioredis.Redis:
    """A client for ``url`` whose every call fails fast: ``timeout_s`` to connect
    and per reply, no retry.  Connections are opened on first use: nothing
    here touches the network."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=decode_responses,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),  # the caller's policy, not a retry loop, handles an outage
    )


async def call(awaitable: Awaitable[T], timeout_s: float, where: str) -> T:
    """The one place Redis failures become ``BackendUnavailable`` (for the
    limits here, ``responses_store`` and the response cache alike)."""
    try:
        return await asyncio.wait_for(awaitable, timeout=4 * timeout_s)
    except (RedisError, OSError, asyncio.TimeoutError) as exc:
        raise BackendUnavailable(f"redis at {where}: {exc.__class__.__name__}: {exc}") from exc


class RedisBackend(StateBackend):
    def __init__(self, url: str, *, prefix: str = "tornrouter:", timeout_s: float = 0.5) -> None:
        self.where = redacted(url)
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.redis = connect(url, timeout_s)
        self._admit = self.redis.register_script(ADMIT_LUA)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        return await call(awaitable, self.timeout_s, self.where)

    async def admit(self, checks: list[Check], member: str, now: float, lease_s: float) -> Refusal | None:
        if not checks:
            return None
        args: list[Any] = [repr(now), member, repr(lease_s)]
        for check in checks:
            args += [check.kind, repr(float(check.limit)), str(int(check.amount)), repr(check.reset_s)]
        index, retry = await self._call(self._admit(keys=[self.prefix + c.counter for c in checks], args=args))
        if int(index) == 0:
            return None
        retry_s = float(retry)
        return Refusal(int(index) - 1, None if retry_s < 0 else retry_s)

    async def used(self, checks: list[Check], now: float) -> list[float | None]:
        pipe = self.redis.pipeline(transaction=False)
        for check in checks:
            key = self.prefix + check.counter
            if check.kind == "window":
                pipe.hgetall(key)
            elif check.kind == "slots":
                pipe.zcount(key, f"({now!r}", "+inf")
            else:
                pipe.get(key)
        replies = await self._call(pipe.execute()) if checks else []
        out: list[float | None] = []
        for check, reply in zip(checks, replies):
            if check.kind == "window":
                out.append(sum(int(v) for s, v in reply.items() if int(s) > int(now) - WINDOW_S))
            else:
                out.append(float(reply or 0))
        return out

    async def settle(self, settlement: Settlement, now: float) -> None:
        p = self.prefix
        pipe = self.redis.pipeline(transaction=True)
        for counter in settlement.slots:
            pipe.zrem(p + counter, settlement.member)
        for counter, second, delta in settlement.corrections:
            pipe.hincrby(p + counter, str(second), delta)
            pipe.expire(p + counter, WINDOW_TTL_S)
        for counter, usd, ttl_s in settlement.spend:
            pipe.incrbyfloat(p + counter, usd)
            pipe.expire(p + counter, int(ttl_s))
        for record in settlement.usage:
            index = f"{p}usage:{record.period}:{record.bucket}"
            totals = f"{index}:{record.key}"
            for name, value in record.counts.items():
                field = f"{record.model}{SEP}{name}"
                if isinstance(value, int):
                    pipe.hincrby(totals, field, value)
                else:
                    pipe.hincrbyfloat(totals, field, value)
            pipe.expire(totals, int(record.ttl_s))
            pipe.sadd(index, record.key)
            pipe.expire(index, int(record.ttl_s))
        if len(pipe):
            await self._call(pipe.execute())

    async def usage(self, period: str, bucket: str, key: str | None) -> Totals:
        index = f"{self.prefix}usage:{period}:{bucket}"
        keys = [key] if key is not None else sorted(await self._call(self.redis.smembers(index)))
        pipe = self.redis.pipeline(transaction=False)
        for name in keys:
            pipe.hgetall(f"{index}:{name}")
        hashes = await self._call(pipe.execute()) if keys else []
        out: Totals = {}
        for name, fields in zip(keys, hashes):
            for field, value in fields.items():
                model, _, metric = field.rpartition(SEP)
                counts = out.setdefault(name, {}).setdefault(model, dict.fromkeys(METRICS, 0))
                counts[metric] = float(value) if metric.endswith("_usd") else int(value)
        return out

    async def pinned(self, key: str, ttl_s: float) -> str | None:
        # GETEX reads and renews in one step (Redis 6.2 and later).
        return await self._call(self.redis.getex(self.prefix + key, px=max(1, int(ttl_s * 1000))))

    async def pin(self, key: str, value: str, ttl_s: float, *, replace: bool) -> str:
        ttl_ms = max(1, int(ttl_s * 1000))
        if await self._call(self.redis.set(self.prefix + key, value, px=ttl_ms, nx=not replace)):
            return value
        # Another instance pinned this session meanwhile: its pin stands.
        return await self._call(self.redis.get(self.prefix + key)) or value

    async def aclose(self) -> None:
        await self.redis.aclose()
