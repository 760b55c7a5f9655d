"""A circuit breaker per provider: stop sending to an upstream that keeps failing.

::

    closed --(failures within window_s)--> open --(cooldown_s)--> half-open
       ^                                    ^                         |
       +------------- probe succeeds -------+---- probe fails --------+

While open, the provider is skipped (a fallback target answers, or the client
gets a 503).  After the cooldown one request is let through as a probe; its
outcome closes the circuit or opens it for another cooldown.  Successes in
between do not reset the count (a provider failing every other request is
failing), so size ``failures`` to the provider's traffic.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .config import BreakerConfig

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.state = CLOSED
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probing = False

    def allow(self) -> bool:
        """May a request go to this provider now?  In half-open, only one probe at a time."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self.clock() - self._opened_at < self.config.cooldown_s:
                return False
            self.state = HALF_OPEN
            self._probing = False
        if self._probing:
            return False
        self._probing = True
        return True

    def would_allow(self) -> bool:
        """``allow`` without taking the probe: for ordering targets."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return self.clock() - self._opened_at >= self.config.cooldown_s
        return not self._probing

    def release(self) -> None:
        """The request ``allow`` let through ended without a verdict (cancelled,
        or refused by the provider's queue): in half-open, the next may probe."""
        self._probing = False

    def success(self) -> None:
        """A good answer closes a circuit that is open or probing.  A closed one
        is left as it is: a failure leaves the count only by ageing out of
        ``window_s`` (N failures within the window open it, not N in a row)."""
        if self.state != CLOSED:
            self.state = CLOSED
            self._failures.clear()
        self._probing = False

    def failure(self) -> None:
        now = self.clock()
        if self.state == HALF_OPEN:
            self._open(now)
            return
        self._failures.append(now)
        self._forget(now)
        if len(self._failures) >= self.config.failures:
            self._open(now)

    def _forget(self, now: float) -> None:
        while self._failures and now - self._failures[0] > self.config.window_s:
            self._failures.popleft()

    def _open(self, now: float) -> None:
        self.state = OPEN
        self._opened_at = now
        self._probing = False
        self._failures.clear()

    def to_json(self) -> dict[str, Any]:
        self._forget(self.clock())
        out: dict[str, Any] = {"state": self.state, "recent_failures": len(self._failures)}
        if self.state == OPEN:
            out["retry_in_s"] = round(max(0.0, self._opened_at + self.config.cooldown_s - self.clock()), 1)
        return out
