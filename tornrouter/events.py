"""The dashboard's event bus: every handled request's log entry, fanned out to
the open ``/dashboard/events`` feeds.

Publishing never waits: each subscriber has a bounded buffer, and a subscriber
too slow to keep up loses its oldest entries, not the router's time.  A short
history is kept so a page that opens sees the latest requests at once.

Entries come from this process (``publish``, which also hands them to the
``taps``: the fleet link and the aggregate) or from the rest of the fleet
(``deliver``: to the feeds only).  Named events (``announce``: the
once-a-second ``stats`` and ``health``) go to the open feeds, in their own
bounded buffer, and are not kept in the history.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

NAMED_LIMIT = 120  # named events a feed may have waiting (a minute of stats and health)


class Subscriber:
    """One open feed: entries waiting to be sent, and a flag to wake its writer."""

    def __init__(self, history: deque[str], limit: int) -> None:
        self.pending: deque[str] = deque(history, maxlen=limit)
        self.named: deque[str] = deque(maxlen=NAMED_LIMIT)  # whole SSE events, ``event:`` line and all
        self.ready = asyncio.Event()
        self.closed = False
        if self.pending:
            self.ready.set()

    def close(self) -> None:
        """The feed is going away: wake its writer, so that it leaves."""
        self.closed = True
        self.ready.set()

    def push(self, line: str) -> None:
        self.pending.append(line)
        self.ready.set()

    def push_named(self, event: str) -> None:
        self.named.append(event)
        self.ready.set()

    async def next_batch(self, timeout: float) -> list[str]:
        """The entries that arrived since the last call, waiting up to
        ``timeout`` seconds for one; ``[]`` on timeout.  Named events wait
        for ``next_events``."""
        await self._wait(timeout, lambda: bool(self.pending))
        return self._take(self.pending)

    async def next_events(self, timeout: float) -> tuple[list[str], list[str]]:
        """The named events and the entries that arrived since the last call,
        waiting up to ``timeout`` seconds for one of either; both empty on
        timeout (time for a keep-alive)."""
        await self._wait(timeout, lambda: bool(self.pending or self.named))
        return self._take(self.named), self._take(self.pending)

    async def _wait(self, timeout: float, arrived: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not arrived() and not self.closed:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                return

    @staticmethod
    def _take(waiting: deque[str]) -> list[str]:
        taken = list(waiting)
        waiting.clear()
        return taken


class EventBus:
    def __init__(self, history: int = 50, per_subscriber: int = 1000) -> None:
        self._history: deque[str] = deque(maxlen=history)
        self._per_subscriber = per_subscriber
        self._subscribers: set[Subscriber] = set()
        # Called with each entry of this process, as its line and (when there is one) its dict.
        self.taps: list[Callable[[str, dict[str, Any] | None], None]] = []

    def publish(self, line: str, entry: dict[str, Any] | None = None) -> None:
        """An entry of this process: to the feeds, then to the taps."""
        self.deliver(line)
        for tap in self.taps:
            tap(line, entry)

    def deliver(self, line: str) -> None:
        """An entry (of this process or of another in the fleet) to the feeds."""
        self._history.append(line)
        for subscriber in self._subscribers:
            subscriber.push(line)

    def announce(self, name: str, data: str) -> None:
        """A named event (``event: name``, one line of JSON) to the open feeds."""
        event = f"event: {name}\ndata: {data}\n\n"
        for subscriber in self._subscribers:
            subscriber.push_named(event)

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber(self._history, self._per_subscriber)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
