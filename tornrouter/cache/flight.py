"""Single flight: identical requests in flight at once make one upstream call.

The first request for a key *leads*: it looks the key up, and on a miss goes
upstream.  Those that come for the same key meanwhile *wait* for it.  The
leader *lands* its flight with the entry it stored, and each waiter gets its
own copy of that answer (a stream, its own replay); or it lands with None
(its answer failed, was not storable, or its client left) and the waiters go
upstream each on their own, as if there were no cache: they never queue up
behind one another.  Flights are per process.
"""

from __future__ import annotations

import asyncio


class Flight:
    __slots__ = ("key", "done", "waiting")

    def __init__(self, key: str) -> None:
        self.key = key
        self.done: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self.waiting = 0


class Flights:
    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def waiting(self) -> int:
        """How many requests are waiting for another's answer."""
        return sum(flight.waiting for flight in self._flights.values())

    def lead(self, key: str) -> Flight | None:
        """A new flight for ``key``, led by the caller; None if one is under way."""
        if key in self._flights:
            return None
        flight = self._flights[key] = Flight(key)
        return flight

    def under_way(self, key: str) -> Flight | None:
        return self._flights.get(key)

    async def wait(self, flight: Flight) -> bytes | None:
        """The entry the leader landed with (None: nothing to share).  A waiter
        that is cancelled (its client left) leaves the flight as it was."""
        flight.waiting += 1
        try:
            return await asyncio.shield(flight.done)
        finally:
            flight.waiting -= 1

    def land(self, flight: Flight, entry: bytes | None) -> None:
        """End ``flight`` with ``entry``; later calls do nothing."""
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
        if not flight.done.done():
            flight.done.set_result(entry)
