"""``ConcurrencyLimit``: at most N requests in flight to one provider, a bounded
queue beyond it, and a clear refusal beyond that.

Waiters are served first come, first served; a waiter whose request goes away
(cancelled) leaves the queue without taking a slot.
"""

from __future__ import annotations

import asyncio
from collections import deque

from .errors import Overloaded


class ConcurrencyLimit:
    def __init__(self, name: str, max_concurrent: int | None, max_queue: int) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting in the queue if needed; ``Overloaded`` (503) if it is full."""
        if not self.try_acquire():
            await self.wait()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits for it, without waiting:
        lets a caller time only the requests that do wait (``dispatch.take_slot``)."""
        if self.max_concurrent is None or (self.in_flight < self.max_concurrent and not self._waiters):
            self.in_flight += 1
            return True
        return False

    async def wait(self) -> None:
        """Wait in the queue for a slot (after ``try_acquire`` failed); ``Overloaded`` (503) if it is full."""
        if len(self._waiters) >= self.max_queue:
            raise Overloaded(f"provider '{self.name}' is at its limit of {self.max_concurrent} concurrent requests and {self.max_queue} queued")
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # release() hands its slot over: in_flight already counts us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot arrived as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter
                return
        self.in_flight -= 1
