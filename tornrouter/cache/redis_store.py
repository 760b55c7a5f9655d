"""``RedisStore``: the response cache in the Redis of ``state.backend: redis``,
shared by every instance pointed at it.  Imported only then."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable
from typing import TypeVar

from ..access.redis_state import call, connect, redacted
from .store import CacheStore

T = TypeVar("T")


class RedisStore(CacheStore):
    """Entries under ``<prefix>cache:<key>``, zlib-compressed, with Redis's own
    expiry (``SET ... PX``).  Every call has the state's short timeout and no
    retry.  A value that does not decompress (not one of ours) is a miss, and
    is overwritten by the next answer stored."""

    def __init__(self, url: str, *, prefix: str = "tornrouter:", timeout_s: float = 0.5) -> None:
        self.where = redacted(url)
        self.prefix = prefix + "cache:"
        self.timeout_s = timeout_s
        self.redis = connect(url, timeout_s, decode_responses=False)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        return await call(awaitable, self.timeout_s, self.where)

    async def get(self, key: str) -> bytes | None:
        raw = await self._call(self.redis.get(self.prefix + key))
        if raw is None:
            return None
        try:
            return zlib.decompress(raw)
        except zlib.error:
            return None

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._call(self.redis.set(self.prefix + key, zlib.compress(value), px=max(1, round(ttl_s * 1000))))

    async def aclose(self) -> None:
        await self.redis.aclose()
