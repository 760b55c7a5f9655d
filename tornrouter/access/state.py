"""Where limits, budgets, usage totals and sessions' targets live:
``StateBackend`` and its in-process implementation, ``MemoryBackend``
(``redis_state.RedisBackend`` shares them between instances).

A backend knows three kinds of counters, named by the caller:

``window``
    a sliding one-minute window at one-second resolution: a hash of
    second -> amount, summed over the last 60 seconds.  Exact for "N requests in
    any minute" (no doubled burst at a minute boundary, as fixed windows allow),
    bounded in size (60 fields), and correctable afterwards (the tokens a
    request really used replace its estimate in the second it was admitted).
``slots``
    requests in flight, each held under the request's id with a lease: a slot
    whose instance died without giving it back expires after ``lease_s``.
``cap``
    a running total with a ceiling, for spend per day or month: admission only
    checks it (the cost is known afterwards), settling adds to it.

Beside the counters, a backend keeps *pins*: a session's target (``sessions``),
a string under a key, forgotten ``ttl_s`` after it was last read or written.

``admit`` checks every limit of a request and, only if all pass, counts the
request against all of them: one atomic step (one Lua script in Redis), so
concurrent requests on any number of instances cannot both take the last
place.  ``settle`` records what the request really used, once it has ended.
A backend that cannot answer raises ``BackendUnavailable``; what the router
then does is ``limits.AccessControl``'s policy, not the backend's.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

WINDOW, SLOTS, CAP = "window", "slots", "cap"
WINDOW_S = 60
METRICS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "cost_usd",
           "cache_hits", "cache_saved_usd")  # the last two: answers from the response cache, what they saved
PRUNE_EVERY_S = 60.0


class BackendUnavailable(Exception):
    """The backend could not be reached, or did not answer in time."""


@dataclass(frozen=True, slots=True)
class Check:
    """One limit of a request.  ``amount``: what the request adds to a window
    (1 request, N estimated tokens); ``reset_s``: for a cap, the seconds until
    its period ends, which is when a refused request may try again."""

    kind: str
    counter: str
    limit: float
    amount: int = 1
    reset_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Check number ``index`` failed.  ``retry_after_s`` is None when the request
    can never fit (it alone is over the limit)."""

    index: int
    retry_after_s: float | None


@dataclass(slots=True)
class UsageRecord:
    """What one request adds to the totals of ``key`` and ``model`` for one
    period (``day`` or ``month``) and its bucket (``2025-06-01``, ``2025-06``)."""

    period: str
    bucket: str
    key: str
    model: str
    counts: dict[str, float]
    ttl_s: float


@dataclass(slots=True)
class Settlement:
    """What to record once a request has ended: the slots it leaves
    (``member`` is its id), corrections of its window amounts
    (counter, second, delta), spend on caps (counter, USD, ttl_s), usage."""

    member: str
    slots: tuple[str, ...] = ()
    corrections: tuple[tuple[str, int, int], ...] = ()
    spend: tuple[tuple[str, float, float], ...] = ()
    usage: tuple[UsageRecord, ...] = ()


Totals = dict[str, dict[str, dict[str, float]]]  # key -> model -> metric -> value


class StateBackend(ABC):
    @abstractmethod
    async def admit(self, checks: list[Check], member: str, now: float, lease_s: float) -> Refusal | None:
        """Check all of ``checks``; if every one passes, count the request
        against each (take a slot as ``member``) and return None."""

    @abstractmethod
    async def settle(self, settlement: Settlement, now: float) -> None:
        """Leave the slots, correct the windows, add spend and usage."""

    async def used(self, checks: list[Check], now: float) -> list[float | None]:
        """What each check's counter holds now (a window's sum over the last
        minute, the slots held, a cap's spend), counting nothing: what a dry
        run reports.  None where this backend cannot tell (the default)."""
        return [None] * len(checks)

    def settle_now(self, settlement: Settlement, now: float) -> bool:
        """``settle`` without waiting, when this backend can (it does no I/O);
        returns whether it did.  Settling happens once per request, in
        ``on_finish``: a backend that says False is settled in a task, one
        that says True saves the router that task.  The default: False."""
        return False

    @abstractmethod
    async def usage(self, period: str, bucket: str, key: str | None) -> Totals:
        """The usage totals of one period's bucket: of ``key``, or of every key."""

    @abstractmethod
    async def pinned(self, key: str, ttl_s: float) -> str | None:
        """The value pinned under ``key``, its time to live renewed to ``ttl_s``
        (a session in use keeps its target); None if there is none."""

    @abstractmethod
    async def pin(self, key: str, value: str, ttl_s: float, *, replace: bool) -> str:
        """Pin ``value`` under ``key`` for ``ttl_s``, and return what is pinned
        then: without ``replace``, a value pinned meanwhile (by a request of the
        same session on another instance) stays, and is returned."""

    async def aclose(self) -> None:
        """Release connections; the default has none."""


@dataclass
class _Expiring:
    value: Any
    expires_at: float


@dataclass
class MemoryBackend(StateBackend):
    """One process's state, in dicts.  Every method runs to completion without
    awaiting, so on one event loop each is atomic, as a Lua script is in Redis."""

    windows: dict[str, dict[int, int]] = field(default_factory=dict)
    slots: dict[str, dict[str, float]] = field(default_factory=dict)  # counter -> member -> lease end
    caps: dict[str, _Expiring] = field(default_factory=dict)
    totals: dict[tuple[str, str, str], _Expiring] = field(default_factory=dict)  # (period, bucket, key) -> model -> counts
    pins: dict[str, _Expiring] = field(default_factory=dict)
    next_prune: float = 0.0

    async def admit(self, checks: list[Check], member: str, now: float, lease_s: float) -> Refusal | None:
        second = int(now)
        for index, check in enumerate(checks):
            retry = self._refuses(check, now, second)
            if retry is not False:
                return Refusal(index, retry)
        for check in checks:
            if check.kind == WINDOW:
                buckets = self.windows.setdefault(check.counter, {})
                buckets[second] = buckets.get(second, 0) + check.amount
            elif check.kind == SLOTS:
                self.slots.setdefault(check.counter, {})[member] = now + lease_s
        return None

    async def used(self, checks: list[Check], now: float) -> list[float | None]:
        out: list[float | None] = []
        for check in checks:
            if check.kind == WINDOW:
                out.append(sum(v for s, v in self.windows.get(check.counter, {}).items() if s > int(now) - WINDOW_S))
            elif check.kind == SLOTS:
                out.append(sum(1 for until in self.slots.get(check.counter, {}).values() if until > now))
            else:
                cap = self.caps.get(check.counter)
                out.append(cap.value if cap is not None and cap.expires_at > now else 0.0)
        return out

    def _refuses(self, check: Check, now: float, second: int) -> float | None | bool:
        """False if ``check`` passes, else the seconds until it may (None: never)."""
        if check.kind == WINDOW:
            buckets = self.windows.get(check.counter, {})
            for stale in [s for s in buckets if s <= second - WINDOW_S]:
                del buckets[stale]
            return window_retry(buckets, check.amount, check.limit, now)
        if check.kind == SLOTS:
            held = self.slots.get(check.counter, {})
            for expired in [m for m, until in held.items() if until <= now]:
                del held[expired]
            return 1.0 if len(held) + 1 > check.limit else False
        cap = self.caps.get(check.counter)
        spent = cap.value if cap is not None and cap.expires_at > now else 0.0
        return check.reset_s if spent >= check.limit else False

    async def settle(self, settlement: Settlement, now: float) -> None:
        self.settle_now(settlement, now)

    def settle_now(self, settlement: Settlement, now: float) -> bool:
        for counter in settlement.slots:
            self.slots.get(counter, {}).pop(settlement.member, None)
        for counter, second, delta in settlement.corrections:
            buckets = self.windows.get(counter)
            if buckets is not None and second in buckets:
                buckets[second] += delta
        for counter, usd, ttl_s in settlement.spend:
            cap = self.caps.get(counter)
            if cap is None or cap.expires_at <= now:
                cap = self.caps[counter] = _Expiring(0.0, now + ttl_s)
            cap.value += usd
        for record in settlement.usage:
            slot = (record.period, record.bucket, record.key)
            entry = self.totals.get(slot)
            if entry is None:
                entry = self.totals[slot] = _Expiring({}, now + record.ttl_s)
            counts = entry.value.setdefault(record.model, dict.fromkeys(METRICS, 0))
            for name, value in record.counts.items():
                counts[name] = counts.get(name, 0) + value
        if now >= self.next_prune:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        """Drop the caps, totals and pins past their time to live."""
        self.next_prune = now + PRUNE_EVERY_S
        for table in (self.caps, self.totals, self.pins):
            for name in [name for name, item in table.items() if item.expires_at <= now]:
                del table[name]

    async def usage(self, period: str, bucket: str, key: str | None) -> Totals:
        return {
            k: {model: dict(counts) for model, counts in entry.value.items()}
            for (p, b, k), entry in self.totals.items()
            if p == period and b == bucket and (key is None or k == key)
        }

    async def pinned(self, key: str, ttl_s: float) -> str | None:
        now = time.time()
        entry = self.pins.get(key)
        if entry is None or entry.expires_at <= now:
            return None
        entry.expires_at = now + ttl_s
        return entry.value

    async def pin(self, key: str, value: str, ttl_s: float, *, replace: bool) -> str:
        now = time.time()
        entry = self.pins.get(key)
        if replace or entry is None or entry.expires_at <= now:
            entry = self.pins[key] = _Expiring(value, now + ttl_s)
        if now >= self.next_prune:
            self._prune(now)
        return entry.value


def window_retry(buckets: dict[int, int], amount: int, limit: float, now: float) -> float | None | bool:
    """For a window (second -> amount, stale seconds already gone): False if
    ``amount`` more fits under ``limit``; else the seconds until enough of the
    oldest seconds have left the window; None if it can never fit."""
    used = sum(buckets.values())
    if used + amount <= limit:
        return False
    if amount > limit:
        return None
    over = used + amount - limit
    for second in sorted(buckets):
        over -= buckets[second]
        if over <= 0:
            return second + WINDOW_S - now
    return float(WINDOW_S)
