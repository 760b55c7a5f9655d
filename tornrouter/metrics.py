"""Prometheus metrics: what ``GET /metrics`` exposes.

Each ``Runtime`` has its own ``Metrics`` in its own ``CollectorRegistry`` (not
the library's global one), so several routers in one process (the tests) do
not collide.  Everything is observed once per request, in
``APIHandler.on_finish``, from the request's record; the circuit breakers'
states and the state backend's health are read when scraped.

Several processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (to an empty
directory, before the router starts) the library's multiprocess mode keeps
every process's values in files there, and a scrape of any process reports
the sum of all (``MultiProcessCollector``).  Gauges say how they combine:
in-flight requests add up over the live processes; a breaker state is 1 if it
holds in any live process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

if TYPE_CHECKING:
    from .context import RequestRecord
    from .errors import RateLimited
    from .providers.base import Provider

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
BREAKER_STATES = ("closed", "open", "half_open")
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation")
NONE = "none"  # label value for "no provider / no model": a request refused or failed before routing


class Metrics:
    def __init__(self) -> None:
        # The library picks its value store when imported, from the same variable.
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.providers: list[Provider] = []
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.state_up_now: Callable[[], bool] = lambda: True
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "tornrouter_requests", "Requests handled, by endpoint, provider, model (as sent) and HTTP status.",
            ["endpoint", "provider", "model", "status"], registry=r,
        )
        self.duration = Histogram(
            "tornrouter_request_duration_seconds", "Whole request, as the client saw it.",
            ["endpoint", "provider", "model"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.ttft = Histogram(
            "tornrouter_time_to_first_token_seconds", "Streams: from the request to the first byte of content sent.",
            ["endpoint", "provider", "model"], buckets=TTFT_BUCKETS, registry=r,
        )
        self.upstream = Histogram(
            "tornrouter_upstream_attempt_duration_seconds",
            "Each upstream attempt (retries and fallbacks included); for streams, until the stream commits.",
            ["provider", "model", "status"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.overhead = Histogram(
            "tornrouter_router_overhead_seconds",
            "The router's own time: until the answer's head went out (streams: their first byte), less upstream attempts.",
            ["endpoint"], buckets=OVERHEAD_BUCKETS, registry=r,
        )
        self.tokens = Counter(
            "tornrouter_tokens", "Tokens as reported by the providers.", ["provider", "model", "key", "type"], registry=r,
        )
        self.cost = Counter("tornrouter_cost_usd", "Cost from the price table, in USD.", ["provider", "model", "key"], registry=r)
        self.in_flight = Gauge(
            "tornrouter_requests_in_flight", "Requests being handled.", ["endpoint"], registry=r, multiprocess_mode="livesum",
        )
        self.breaker = Gauge(
            "tornrouter_circuit_state", "1 for the state each provider's circuit breaker is in.",
            ["provider", "state"], registry=r, multiprocess_mode="livemax",
        )
        self.rate_limited = Counter(
            "tornrouter_rate_limited", "Requests refused with 429, by whose limit (key or model) and which.",
            ["scope", "limit", "key"], registry=r,
        )
        self.state_up = Gauge(
            "tornrouter_state_backend_up", "1 while the state backend (memory or Redis) answers.", registry=r,
            multiprocess_mode="livemin",
        )
        # The response cache (tornrouter/cache).
        self.cache_size_now: Callable[[], int | None] = lambda: None
        self.cache_requests = Counter(
            "tornrouter_cache_requests", "Requests the response cache was consulted for, by outcome: "
            "hit, miss, store (a miss whose answer was stored), bypass (not read: no-store, no-cache, temperature...).",
            ["outcome"], registry=r,
        )
        self.cache_stored_bytes = Counter(
            "tornrouter_cache_stored_bytes", "Bytes of answers written to the response cache.", registry=r,
        )
        self.cache_bytes = Gauge(
            "tornrouter_cache_bytes", "Bytes the in-memory response cache holds, bookkeeping included.", registry=r,
            multiprocess_mode="livesum",
        )
        self.cache_saved = Counter(
            "tornrouter_cache_saved_usd", "What the answers served from the cache would have cost upstream, in USD.",
            ["provider", "model", "key"], registry=r,
        )
        # The dashboard's fleet link (tornrouter/fleet).
        self.fleet_dropped = Counter(
            "tornrouter_dashboard_dropped", "Messages for the other processes' dashboards dropped rather than waited "
            "for (a worker not reading, or Redis away): their feeds and charts miss those entries.", ["link"], registry=r,
        )

    # --- per request ------------------------------------------------------------------

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: the library's own lookup (label
        validation, a lock) cost a loaded router several percent of its time."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def started(self, endpoint: str) -> None:
        self._child(self.in_flight, endpoint).inc()

    def finished(self, record: RequestRecord, key: str) -> None:
        """Everything one handled request contributes; called once, from ``on_finish``."""
        self._child(self.in_flight, record.endpoint).dec()
        provider = record.served_by or NONE
        model = record.target.model if record.target else NONE
        duration = time.perf_counter() - record.started
        self._child(self.requests, record.endpoint, provider, model, str(record.status)).inc()
        self._child(self.duration, record.endpoint, provider, model).observe(duration)
        if record.first_byte_at is not None:
            self._child(self.ttft, record.endpoint, provider, model).observe(record.first_byte_at - record.started)
        for attempt in record.attempts:
            seconds = (attempt.get("duration_ms") or 0.0) / 1000
            status_label = str(attempt["status"]) if attempt.get("status") is not None else NONE
            self._child(self.upstream, attempt["provider"], attempt["model"], status_label).observe(seconds)
        if record.attempts:
            self._child(self.overhead, record.endpoint).observe(record.overhead())
        if record.usage is not None:
            usage = record.usage
            counts = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_creation_tokens)
            for kind, count in zip(TOKEN_TYPES, counts):
                if count:
                    self._child(self.tokens, provider, model, key, kind).inc(count)
        if record.cost_usd:
            self._child(self.cost, provider, model, key).inc(record.cost_usd)
        ticket = record.cache
        if ticket is not None and ticket.outcome is not None:
            self._child(self.cache_requests, ticket.outcome).inc()
            if ticket.stored_bytes:
                self.cache_stored_bytes.inc(ticket.stored_bytes)
            if ticket.saved_usd:
                self._child(self.cache_saved, provider, model, key).inc(ticket.saved_usd)
        if self.multiprocess:
            self.refresh()  # a scrape reaches one process: each keeps its own states current

    def refused(self, error: RateLimited, key: str) -> None:
        self.rate_limited.labels(error.scope, error.limit, key).inc()

    # --- at scrape time ------------------------------------------------------------------

    def watch_cache(self, size_now: Callable[[], int | None]) -> None:
        """What ``refresh`` reads of the response cache: its size in bytes (None
        when its store cannot tell, as Redis cannot cheaply)."""
        self.cache_size_now = size_now

    def watch(self, providers: Iterable[Provider], state_up: Callable[[], bool]) -> None:
        """What ``refresh`` reads: the providers' breakers and the state backend's
        health (set again when a reload brings new ones)."""
        self.providers = list(providers)
        self.state_up_now = state_up

    def refresh(self) -> None:
        """Read the states that live elsewhere (breakers, the state backend)."""
        for provider in self.providers:
            state = provider.breaker.state if provider.breaker is not None else "closed"
            for name in BREAKER_STATES:
                self.breaker.labels(provider.name, name).set(1 if name == state else 0)
        self.state_up.set(1 if self.state_up_now() else 0)
        size = self.cache_size_now()
        if size is not None:
            self.cache_bytes.set(size)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, states read as of now."""
        self.refresh()
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def process_exited(pid: int) -> None:
    """For ``--processes``: a worker has exited, so its live gauges (in flight,
    breaker states) stop counting.  Without multiprocess mode there is nothing
    to do."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
