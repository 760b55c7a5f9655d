"""The dashboard's aggregate: what ``/dashboard/stats`` and the feed's
``event: stats`` and ``event: health`` are read from.

Every request entry the process hears of (its own and, through the fleet
link, every other worker's and instance's) is counted into three rings of
buckets, one per resolution the API serves: 1 s buckets for the last 5 min,
10 s for the last hour, 60 s for the last 24 h.  That is 2,100 buckets in all,
each of fixed size (counters, three latency histograms of ``histogram.BINS``
bins, and at most ``MAX_NAMES`` named series of each kind plus ``other``), so
the memory is bounded whatever the traffic and however long it runs; a page
opened late reads the whole history at once.

Entries are queued as they are published and counted in batches (``flush``,
once a second and before a query), off the request's path.  Dry runs and
mirror records are not counted.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from typing import Any

import orjson

from . import histogram

WINDOWS = {300: 1, 3600: 10, 86400: 60}  # seconds shown -> seconds per step
MAX_NAMES = 20  # per kind (provider, model, key); the rest add up under "other"
MAX_PENDING = 10_000  # entries queued between flushes; more are counted at once
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "other")
NONE = "(none)"  # the name of a missing provider, model or key
OTHER = "other"


class Names:
    """The first ``limit`` names of a kind keep their own series; later ones are ``other``."""

    def __init__(self, limit: int = MAX_NAMES) -> None:
        self.limit = limit
        self.known: set[str] = set()

    def __call__(self, name: Any) -> str:
        name = NONE if name is None else str(name)
        if name in self.known:
            return name
        if len(self.known) < self.limit:
            self.known.add(name)
            return name
        return OTHER


class Sample:
    """What one entry adds to a bucket, read from it once for the three rings."""

    __slots__ = ("second", "status", "latency", "ttft", "overhead", "provider", "error", "model", "key", "cost",
                 "tokens_in", "tokens_out", "cache")

    def __init__(self, entry: dict[str, Any], names: tuple[Names, Names, Names]) -> None:
        self.second = int(entry["ts_ms"]) // 1000
        status = entry.get("status")
        self.status = status // 100 - 2 if isinstance(status, int) and 200 <= status < 600 else 4
        self.latency = _bin(entry.get("duration_ms"))
        self.ttft = _bin(entry.get("ttft_ms")) if entry.get("stream") else None
        self.overhead = _bin(entry.get("overhead_ms"))
        provider = entry.get("provider")
        self.provider = names[0](provider) if provider is not None else None
        self.error = not isinstance(status, int) or status >= 500
        self.model = names[1](entry.get("sent_model") or entry.get("requested_model"))
        self.key = names[2](entry.get("key"))
        cost = entry.get("cost_usd")
        self.cost = float(cost) if isinstance(cost, (int, float)) else 0.0
        usage = entry.get("usage") or {}
        self.tokens_in = _int(usage.get("input_tokens"))
        self.tokens_out = _int(usage.get("output_tokens"))
        outcome = (entry.get("cache") or {}).get("outcome")
        self.cache = 2 if outcome == "hit" else 1 if outcome in ("miss", "store") else 0


def _bin(ms: Any) -> int | None:
    return histogram.bin_of(ms) if isinstance(ms, (int, float)) and ms >= 0 else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


class ProviderCell:
    __slots__ = ("requests", "errors", "latency")

    def __init__(self, with_latency: bool) -> None:
        self.requests = 0
        self.errors = 0
        self.latency = histogram.new() if with_latency else None


class Bucket:
    """One step's totals."""

    __slots__ = ("start", "status", "latency", "ttft", "overhead", "tokens", "providers", "cost", "cache",
                 "provider_latency")

    def __init__(self, start: int, provider_latency: bool) -> None:
        self.provider_latency = provider_latency
        self.latency = histogram.new()
        self.ttft = histogram.new()
        self.overhead = histogram.new()
        self.reset(start)

    def reset(self, start: int) -> None:
        self.start = start
        self.status = [0] * len(STATUS_CLASSES)
        for counts in (self.latency, self.ttft, self.overhead):
            counts[:] = histogram.new()
        self.tokens = [0, 0]
        self.providers: dict[str, ProviderCell] = {}
        self.cost: tuple[dict[str, float], dict[str, float], dict[str, float]] = ({}, {}, {})
        self.cache = [0, 0]  # hits, lookups

    def add(self, s: Sample) -> None:
        self.status[s.status] += 1
        if s.latency is not None:
            self.latency[s.latency] += 1
        if s.ttft is not None:
            self.ttft[s.ttft] += 1
        if s.overhead is not None:
            self.overhead[s.overhead] += 1
        self.tokens[0] += s.tokens_in
        self.tokens[1] += s.tokens_out
        if s.provider is not None:
            cell = self.providers.get(s.provider)
            if cell is None:
                cell = self.providers[s.provider] = ProviderCell(self.provider_latency)
            cell.requests += 1
            cell.errors += s.error
            if cell.latency is not None and s.latency is not None:
                cell.latency[s.latency] += 1
        if s.cost:
            for series, name in zip(self.cost, (s.provider or NONE, s.model, s.key)):
                series[name] = series.get(name, 0.0) + s.cost
        if s.cache:
            self.cache[0] += s.cache == 2
            self.cache[1] += 1


class Ring:
    """``length`` buckets of ``step`` seconds; a bucket is reused for the step
    that falls on its slot once its own has left the window."""

    def __init__(self, step: int, length: int, provider_latency: bool = False) -> None:
        self.step = step
        self.length = length
        self.provider_latency = provider_latency
        self.slots: list[Bucket | None] = [None] * length

    def bucket(self, second: int, create: bool) -> Bucket | None:
        start = second - second % self.step
        index = (start // self.step) % self.length
        bucket = self.slots[index]
        if bucket is not None and bucket.start == start:
            return bucket
        if not create or (bucket is not None and bucket.start > start):
            return None  # nothing there, or the entry is older than the window
        if bucket is None:
            bucket = self.slots[index] = Bucket(start, self.provider_latency)
        else:
            bucket.reset(start)
        return bucket

    def span(self, first: int, count: int) -> list[Bucket | None]:
        return [self.bucket(first + i * self.step, create=False) for i in range(count)]


class Aggregate:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.rings = {step: Ring(step, window // step, provider_latency=step == 1) for window, step in WINDOWS.items()}
        self.names = (Names(), Names(), Names())  # providers, models, keys
        self._pending: list[dict[str, Any] | str] = []
        self.counted = 0  # entries counted since the start (dry runs and mirror records are not)

    def add(self, entry: dict[str, Any] | str) -> None:
        """Queue an entry (a dict, or its JSON line from another process) to be counted."""
        self._pending.append(entry)
        if len(self._pending) >= MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        rings = self.rings.values()
        for item in pending:
            try:
                entry = orjson.loads(item) if isinstance(item, (str, bytes)) else item
                if not isinstance(entry, dict) or entry.get("type") is not None or entry.get("dry_run"):
                    continue
                sample = Sample(entry, self.names)
            except (ValueError, TypeError, AttributeError, KeyError, OverflowError):
                continue  # not a request entry this can read (the feed still shows it)
            for ring in rings:
                bucket = ring.bucket(sample.second, create=True)
                if bucket is not None:
                    bucket.add(sample)
            self.counted += 1

    def window(self, seconds: int) -> dict[str, Any]:
        """``GET /dashboard/stats?window=seconds``: the window's steps up to the current one."""
        self.flush()
        step = WINDOWS[seconds]
        count = seconds // step
        now = int(self.clock())
        first = now - now % step - (count - 1) * step
        return {"window": seconds, "step": step, **self.series(step, first, count)}

    def seconds(self, first: int, count: int) -> dict[str, Any]:
        """The 1 s steps from ``first`` (``event: stats``)."""
        self.flush()
        return self.series(1, first, count)

    def series(self, step: int, first: int, count: int) -> dict[str, Any]:
        buckets = self.rings[step].span(first, count)
        live = [b for b in buckets if b is not None]

        def counts(read: Callable[[Bucket], float]) -> list[float]:
            return [read(b) if b is not None else 0 for b in buckets]

        def quantiles(read: Callable[[Bucket], array], *wanted: float) -> list[list[float | None]]:
            per_step = [histogram.percentiles(read(b), wanted) if b is not None else [None] * len(wanted)
                        for b in buckets]
            return [list(column) for column in zip(*per_step)] if per_step else [[] for _ in wanted]

        latency = quantiles(lambda b: b.latency, 0.5, 0.95, 0.99)
        ttft = quantiles(lambda b: b.ttft, 0.5, 0.95)
        overhead = quantiles(lambda b: b.overhead, 0.5, 0.95)
        providers = sorted({name for b in live for name in b.providers})
        cost_names = [sorted({name for b in live for name in b.cost[kind]}) for kind in range(3)]
        return {
            "t": [first + i * step for i in range(count)],
            "requests": {name: counts(lambda b, i=i: b.status[i]) for i, name in enumerate(STATUS_CLASSES)},
            "latency_ms": {"p50": latency[0], "p95": latency[1], "p99": latency[2]},
            "ttft_ms": {"p50": ttft[0], "p95": ttft[1]},
            "overhead_ms": {"p50": overhead[0], "p95": overhead[1]},
            "error_rate": {name: [_rate(b, name) for b in buckets] for name in providers},
            "tokens": {"in": counts(lambda b: b.tokens[0]), "out": counts(lambda b: b.tokens[1])},
            "cost": {
                kind: {name: [_usd(b.cost[k].get(name)) if b is not None else 0 for b in buckets]
                       for name in cost_names[k]}
                for k, kind in enumerate(("provider", "model", "key"))
            },
            "cache": {"hits": counts(lambda b: b.cache[0]), "lookups": counts(lambda b: b.cache[1])},
        }

    def recent(self, seconds: int = 60) -> dict[str, dict[str, Any]]:
        """Per provider over the last ``seconds`` (the health strip): requests,
        error rate and p95 latency."""
        self.flush()
        now = int(self.clock())
        out: dict[str, dict[str, Any]] = {}
        merged: dict[str, tuple[list[int], array]] = {}
        for bucket in self.rings[1].span(now - seconds + 1, seconds):
            if bucket is None:
                continue
            for name, cell in bucket.providers.items():
                totals, counts = merged.setdefault(name, ([0, 0], histogram.new()))
                totals[0] += cell.requests
                totals[1] += cell.errors
                histogram.add_into(counts, cell.latency)
        for name, ((requests, errors), counts) in merged.items():
            out[name] = {"requests": requests, "error_rate": round(errors / requests, 4) if requests else 0.0,
                         "p95_ms": histogram.percentiles(counts, (0.95,))[0]}
        return out


def _usd(total: float | None) -> float:
    return round(total, 6) if total else 0


def _rate(bucket: Bucket | None, provider: str) -> float | None:
    cell = bucket.providers.get(provider) if bucket is not None else None
    if cell is None or not cell.requests:
        return None
    return round(cell.errors / cell.requests, 4)
