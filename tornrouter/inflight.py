"""``InFlight``: the API requests one ``Runtime`` is serving, so that a reload can
close the old runtime once its last request is done and a stop can wait for the
requests to finish (``server.drain_s``).

A request is added when its handler is made (``APIHandler.initialize``) and
ends when it is recorded (``Runtime.record``, called once from ``on_finish``,
which Tornado calls however the request ended).  A request still running when a
stop gives up on it is *abandoned*: the stop records it itself, and its own
recording, should it ever come, is refused, so each request is logged once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import RequestRecord


class InFlight:
    def __init__(self) -> None:
        self._live: set[RequestRecord] = set()
        self._abandoned: set[RequestRecord] = set()
        self._idle: asyncio.Event | None = None  # made on first wait: a runtime may be built before the loop runs

    def __len__(self) -> int:
        return len(self._live)

    def start(self, record: RequestRecord) -> None:
        self._live.add(record)
        if self._idle is not None:
            self._idle.clear()

    def end(self, record: RequestRecord) -> bool:
        """The request is done; False if it was abandoned (and so already recorded)."""
        if record in self._abandoned:
            return False
        self._live.discard(record)
        if not self._live and self._idle is not None:
            self._idle.set()
        return True

    def abandon(self) -> list[RequestRecord]:
        """Give up on every request still running: the caller records them."""
        abandoned, self._live = list(self._live), set()
        self._abandoned.update(abandoned)
        if self._idle is not None:
            self._idle.set()
        return abandoned

    async def wait_idle(self) -> None:
        """Return once no request is running (at once if none is)."""
        if not self._live:
            return
        if self._idle is None:
            self._idle = asyncio.Event()
        await self._idle.wait()
