"""Where cache entries live: ``CacheStore`` and its two implementations.

``MemoryStore`` (the default) is this process's: an LRU bounded in bytes, not
in entries, so that however many distinct requests come, and however large
their answers, it holds at most ``cache.max_bytes``.  ``RedisStore``
(``redis_store.py``, with ``state.backend: redis``) is shared by every instance pointed at that Redis:
entries are compressed, and Redis expires them.  A store that cannot be
reached raises ``BackendUnavailable``; the cache then goes upstream (fails
open), which is ``ResponseCache``'s policy, not the store's.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable

from ..access.state import BackendUnavailable

__all__ = ["BackendUnavailable", "CacheStore", "MemoryStore"]


class CacheStore(ABC):
    where: str
    max_value_bytes: int | None = None  # the largest entry it can hold at all (None: no bound of its own)

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The entry stored under ``key``, unless it has expired."""

    @abstractmethod
    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds, replacing any entry."""

    def put_now(self, key: str, value: bytes, ttl_s: float) -> bool:
        """``put`` without waiting, when this store can (it does no I/O);
        returns whether it did.  The default: False (the caller writes in a task)."""
        return False

    def size_bytes(self) -> int | None:
        """What it holds, in bytes, when it can tell at no cost (None: it cannot)."""
        return None

    async def aclose(self) -> None:
        """Release connections; the default has none."""


class MemoryStore(CacheStore):
    """An LRU of entries, bounded in bytes.  An entry costs its value, its key and
    ``OVERHEAD`` for the bookkeeping around them; storing one evicts the least
    recently used until the total is within ``max_bytes``.  An expired entry is
    dropped when it is next asked for, or evicted like any other.  Every method
    runs without awaiting: on one event loop, each is atomic."""

    where = "memory"
    OVERHEAD = 256  # the OrderedDict slot and links, the key's str object, the (value, expiry) tuple

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.max_bytes = max_bytes
        self.max_value_bytes = max_bytes - self.OVERHEAD - 64  # a key is 32 hex digits
        self.clock = clock
        self.size = 0
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        """Whether an entry is held under ``key`` (expired or not; its place in
        the LRU order is left as it is)."""
        return key in self._entries

    def _cost(self, key: str, value: bytes) -> int:
        return len(key) + len(value) + self.OVERHEAD

    async def get(self, key: str) -> bytes | None:
        item = self._entries.get(key)
        if item is None:
            return None
        value, expires_at = item
        if expires_at <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        self.put_now(key, value, ttl_s)

    def put_now(self, key: str, value: bytes, ttl_s: float) -> bool:
        cost = self._cost(key, value)
        if cost > self.max_bytes:
            return False  # it would evict everything and still not fit (the caller checks max_value_bytes)
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (value, self.clock() + ttl_s)
        self.size += cost
        while self.size > self.max_bytes:
            old, (old_value, _) = self._entries.popitem(last=False)
            self.size -= self._cost(old, old_value)
        return True

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self.size -= self._cost(key, value)

    def size_bytes(self) -> int:
        return self.size
