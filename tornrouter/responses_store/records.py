"""Where stored responses live: ``Records`` (the interface) and
``MemoryRecords``, this process's (``redis_records.RedisRecords`` shares them
between instances).

A record is one response of a conversation, kept as opaque bytes beside the
two fields the store needs without decoding it: the name of the key that
created it and the id of the response it continued.  A conversation is a
chain of records linked by ``prev``, newest first; saving a turn renews the
time to live of every record of its chain, so a conversation in use never
loses its beginning before its end.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

KEPT, TAKEN, TOO_LARGE = "kept", "taken", "too large"
MAX_CHAIN = 10_000  # links followed at most: a longer conversation is refused, never cut short
PRUNE_EVERY_S = 60.0
ENTRY_OVERHEAD_BYTES = 200  # what Python spends on an entry besides its strings, roughly


@dataclass(frozen=True, slots=True)
class Record:
    """``key``: the creating client key's name ("" on an open router);
    ``prev``: the ``previous_response_id`` it continued ("" for none)."""

    id: str
    key: str
    prev: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Chain:
    """A record and its ancestors, newest first.  ``missing`` is the id of the
    first link that is not stored (expired, deleted, or ``id`` itself), else
    "".  ``too_long``: ``MAX_CHAIN`` links and more beyond."""

    records: tuple[Record, ...]
    missing: str = ""
    too_long: bool = False


class Records(ABC):
    """Raise ``access.state.BackendUnavailable`` when they cannot answer."""

    where: str = "memory"

    @abstractmethod
    async def put(self, record: Record, ttl_s: float) -> str:
        """Keep ``record`` for ``ttl_s``, and its ancestors as long, unless its
        id is taken (a record is never replaced: not by another key's, and
        not into a loop).  ``KEPT``, ``TAKEN`` or ``TOO_LARGE``."""

    @abstractmethod
    async def chain(self, response_id: str) -> Chain:
        """The record ``response_id`` and every record before it."""

    @abstractmethod
    async def get(self, response_id: str) -> Record | None:
        """The record alone."""

    @abstractmethod
    async def delete(self, response_id: str, key: str) -> bool:
        """Delete the record if ``key`` owns it; whether it did."""

    async def aclose(self) -> None:
        """Release connections; the default has none."""


@dataclass(slots=True)
class _Entry:
    record: Record
    size: int
    expires_at: float


class MemoryRecords(Records):
    """An LRU map bounded in bytes, whose entries also expire.  Reading or
    continuing a conversation makes its records recent; when the store is
    over ``max_bytes``, the least recently used go first.  Every method runs
    without awaiting, so each is atomic on the event loop."""

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self.size = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._next_prune = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    async def put(self, record: Record, ttl_s: float) -> str:
        now = self.clock()
        self._prune(now)
        size = len(record.data) + len(record.id) + len(record.key) + len(record.prev) + ENTRY_OVERHEAD_BYTES
        if size > self.max_bytes:
            return TOO_LARGE
        if self._alive(record.id, now) is not None:
            return TAKEN
        expires_at = now + ttl_s
        prev, hops = record.prev, 0
        while prev and hops < MAX_CHAIN:  # renew (and make recent) the conversation's earlier records
            entry = self._alive(prev, now)
            if entry is None:
                break
            entry.expires_at = expires_at
            prev, hops = entry.record.prev, hops + 1
        self._entries[record.id] = _Entry(record, size, expires_at)
        self.size += size
        while self.size > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return KEPT

    async def chain(self, response_id: str) -> Chain:
        now = self.clock()
        records: list[Record] = []
        current = response_id
        while current:
            if len(records) == MAX_CHAIN:
                return Chain(tuple(records), too_long=True)
            entry = self._alive(current, now)
            if entry is None:
                return Chain(tuple(records), missing=current)
            records.append(entry.record)
            current = entry.record.prev
        return Chain(tuple(records))

    async def get(self, response_id: str) -> Record | None:
        entry = self._alive(response_id, self.clock())
        return entry.record if entry is not None else None

    async def delete(self, response_id: str, key: str) -> bool:
        entry = self._alive(response_id, self.clock())
        if entry is None or entry.record.key != key:
            return False
        self._drop(response_id)
        return True

    def _alive(self, response_id: str, now: float) -> _Entry | None:
        """The entry, made the most recently used, unless it has expired."""
        entry = self._entries.get(response_id)
        if entry is None:
            return None
        if entry.expires_at <= now:
            self._drop(response_id)
            return None
        self._entries.move_to_end(response_id)
        return entry

    def _drop(self, response_id: str) -> None:
        entry = self._entries.pop(response_id, None)
        if entry is not None:
            self.size -= entry.size

    def _prune(self, now: float) -> None:
        """Expired entries that nobody reads would hold memory until evicted:
        sweep them, at most once a minute."""
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_S
        for response_id in [i for i, e in self._entries.items() if e.expires_at <= now]:
            self._drop(response_id)
