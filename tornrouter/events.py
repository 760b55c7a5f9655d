"""The dashboard's event bus: every handled request's log entry, fanned out to
the open ``/dashboard/events`` feeds.

Publishing never waits: each subscriber has a bounded buffer, and a subscriber
too slow to keep up loses its oldest entries, not the router's time.  A short
history is kept so a page that opens sees the latest requests at once.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Subscriber:
    """One open feed: entries waiting to be sent, and a flag to wake its writer."""

    def __init__(self, history: deque[str], limit: int) -> None:
        self.pending: deque[str] = deque(history, maxlen=limit)
        self.ready = asyncio.Event()
        if self.pending:
            self.ready.set()

    def push(self, line: str) -> None:
        self.pending.append(line)
        self.ready.set()

    async def next_batch(self, timeout: float) -> list[str]:
        """The entries that arrived since the last call, waiting up to
        ``timeout`` seconds for one; ``[]`` on timeout (time for a keep-alive)."""
        if not self.pending:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except asyncio.TimeoutError:
                return []
        batch = list(self.pending)
        self.pending.clear()
        return batch


class EventBus:
    def __init__(self, history: int = 50, per_subscriber: int = 1000) -> None:
        self._history: deque[str] = deque(maxlen=history)
        self._per_subscriber = per_subscriber
        self._subscribers: set[Subscriber] = set()

    def publish(self, line: str) -> None:
        self._history.append(line)
        for subscriber in self._subscribers:
            subscriber.push(line)

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber(self._history, self._per_subscriber)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
