"""``ResponseCache``: whether a request is answered from the cache, and what
an upstream answer leaves in it.

A request meets it where the router knows where the request goes::

    handler.post()   read_headers  Cache-Control, the namespace      -> record.cache, a CacheTicket
    pipeline         lookup        after routing: the rule; bypass, or the key; then
                                   a hit (the stored answer, fresh objects), an identical
                                   request's answer waited for (single flight), or a miss
                     store         the upstream's answer, before any PostResponse hook
                                   touches it, if it may be kept; lands the flight
    on_finish()      finished      a flight still held is landed empty: waiters go upstream

Access control has admitted the request before (a hit counts against rpm
and, with its tokens, tpm) and settles it after (a hit costs nothing against
budgets; ``saved_usd`` is what it would have cost).  The answer of a hit runs
through PostResponse and End like any answer, and is logged once.

The store fails open: when it cannot be reached the request goes upstream
and nothing is stored, the outage logged once when it starts and once when it
ends (``access.control.Outage``), and the store tried again at most once a
second meanwhile.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from fnmatch import translate
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..access import ANONYMOUS
from ..access.control import Outage
from ..canonical import ChatResponse, ToolCall
from ..config import CacheRule, Config
from .directives import Directives, read_directives
from .entry import Entry, decode_entry, encode_entry
from .flight import Flight, Flights
from .key import cache_key, provider_fingerprint, request_form
from .store import BackendUnavailable, CacheStore, MemoryStore

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..context import RequestRecord
    from ..router import Candidate, Decision

HIT, MISS, STORE, BYPASS = "hit", "miss", "store", "bypass"
# Answers that are not whole: never stored, whatever the rule.
CUT_SHORT = {
    None: "the answer has no stop reason",
    "max_tokens": "the answer stopped at its token limit (max_tokens / length)",
    "pause_turn": "the answer is paused mid-turn",
    "content_filter": "the answer was cut by a content filter",
}


class CacheTicket:
    """One request's dealings with the cache: what its client asked
    (``directives``), the rule that applies, its key, and the outcome, for
    the headers, the log entry and the metrics.  ``outcome`` is None until
    the cache was consulted (a plugin's answer never is)."""

    __slots__ = (
        "directives", "rule", "form", "scope", "key", "outcome", "reason", "age_s", "coalesced", "flight",
        "lossy", "stored_bytes", "saved_usd",
    )

    def __init__(self, directives: Directives) -> None:
        self.directives = directives
        self.rule: CacheRule | None = None
        self.form: bytes | None = None  # the request's part of the key
        self.scope = ""  # whose entries: a client key's name, or "*" when shared
        self.key: str | None = None  # None: not keyed, so neither read nor written
        self.outcome: str | None = None  # hit, miss, store or bypass
        self.reason: str | None = None  # why not read, or not stored
        self.age_s: float | None = None  # a hit: how old the entry was
        self.coalesced = False  # a hit: the answer of an identical request in flight
        self.flight: Flight | None = None  # the flight this request leads, until it lands
        self.lossy: list[str] | None = None  # a stream: what the request lost in translation, at its commit
        self.stored_bytes = 0
        self.saved_usd: float | None = None  # a hit: what it would have cost upstream

    def bypass(self, reason: str) -> None:
        self.outcome, self.reason, self.key = BYPASS, reason, None

    def headers(self) -> dict[str, str]:
        """``x-tornrouter-cache`` once consulted, and ``Age`` on a hit.  A stream's
        go out before its answer is complete: a miss says ``miss`` there, and the
        log says whether it was then stored."""
        if self.outcome is None:
            return {}
        if self.outcome == HIT:
            return {"x-tornrouter-cache": HIT, "Age": str(int(self.age_s or 0))}
        return {"x-tornrouter-cache": self.outcome}

    def to_json(self) -> dict[str, Any] | None:
        """The log entry's ``cache`` field (None when the cache was not consulted)."""
        if self.outcome is None:
            return None
        out: dict[str, Any] = {"outcome": self.outcome, "key": self.key}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.outcome == HIT:
            out["age_s"] = round(self.age_s or 0.0, 3)
            out["coalesced"] = self.coalesced
            out["saved_usd"] = self.saved_usd
        if self.stored_bytes:
            out["bytes"] = self.stored_bytes
        if self.directives.namespace:
            out["namespace"] = self.directives.namespace
        return out


class ResponseCache:
    """The cache of one runtime.  Disabled (every method a no-op) when no
    route and no ``cache.models`` entry enables it: then it holds no store."""

    def __init__(self, config: Config, store: CacheStore | None, clock: Callable[[], float] = time.time) -> None:
        self.backend = store
        self.enabled = store is not None
        self.owns_store = True  # False once a reloaded successor took the store over
        self.route_rules = tuple(route.cache for route in config.router.routes)
        self._model_rules = [(re.compile(translate(glob)), rule) for glob, rule in config.cache.models]
        self.rule_for_model = lru_cache(maxsize=4096)(self._rule_for_model)
        self._fingerprints: dict[str, str] = {}
        self.flights = Flights()
        self.outage = Outage(
            f"{store.where if store else '-'} (response cache)",
            "the response cache is skipped: requests go upstream and answers are not stored",
        )
        self._writes: set[asyncio.Future[None]] = set()
        self.place = (config.state, config.cache.max_bytes)  # where the store is: a reload keeps it when the same
        self.clock = clock

    @classmethod
    def build(cls, config: Config, previous: ResponseCache | None = None) -> ResponseCache:
        """The cache for ``config``.  After a reload (``previous``) the store is
        shared, entries and all, when the config still puts it in the same
        place (the same ``state:`` and ``cache.max_bytes``); the caller then
        takes it over (``take_over``) once nothing else can fail.  A provider
        whose settings changed has another fingerprint, so its old entries are
        not served."""
        if not (config.cache.models or any(route.cache is not None for route in config.router.routes)):
            return cls(config, None)
        place = (config.state, config.cache.max_bytes)
        if previous is not None and previous.owns_store and previous.backend is not None and previous.place == place:
            return cls(config, previous.backend)
        return cls(config, make_store(config))

    def take_over(self, previous: ResponseCache | None) -> None:
        """Own the store shared with ``previous`` (closed with this cache, not that one)."""
        if previous is not None and previous.backend is not None and previous.backend is self.backend:
            previous.owns_store = False

    @property
    def clock(self) -> Callable[[], float]:
        """Seconds since the epoch: entries' ages and, in memory, their expiry."""
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        if isinstance(self.backend, MemoryStore):
            self.backend.clock = clock

    # --- the request's side ---------------------------------------------------------

    def read_headers(self, record: RequestRecord, headers: Mapping[str, str]) -> None:
        """The client's directives (``InvalidRequest`` naming a header it cannot read)."""
        if self.enabled:
            record.cache = CacheTicket(read_directives(headers))

    def _rule_for_model(self, model: str) -> CacheRule | None:
        for pattern, rule in self._model_rules:
            if pattern.match(model):
                return rule if rule.enabled else None
        return None

    def rule(self, record: RequestRecord) -> CacheRule | None:
        """The route's ``cache:``, else the first ``cache.models`` entry matching
        the requested model; None when neither enables the cache."""
        decision = record.decision
        if decision is not None and decision.matched == "route" and decision.index is not None:
            rule = self.route_rules[decision.index]
            if rule is not None:
                return rule if rule.enabled else None
        return self.rule_for_model(record.requested_model or "")

    async def lookup(self, record: RequestRecord) -> ChatResponse | None:
        """After routing: the answer to serve from the cache (the caller's to
        change), or None to go upstream (then ``store`` the answer)."""
        ticket = record.cache
        if ticket is None:
            return None
        rule = self.rule(record)
        if rule is None:
            record.cache = None  # not cached here: no header, no log field
            return None
        ticket.rule = rule
        if not self._keyed(record, ticket, rule):
            return None
        key = ticket.key
        assert key is not None
        if ticket.directives.no_cache:
            ticket.outcome, ticket.reason = BYPASS, "Cache-Control: no-cache"
            ticket.flight = self.flights.lead(key) if rule.coalesce else None
            return None
        flight = self.flights.under_way(key) if rule.coalesce else None
        if flight is not None:
            return await self._wait(record, ticket, flight)
        entry = await self._read(ticket, key)
        if entry is not None:
            age = max(0.0, self.clock() - entry.stored_at)
            max_age = ticket.directives.max_age
            if max_age is None or age <= max_age:
                return self._hit(record, ticket, entry)
            ticket.reason = f"the entry is {age:.0f} s old, more than Cache-Control: max-age={max_age}"
        if ticket.outcome is None:
            ticket.outcome = MISS
        if rule.coalesce:
            ticket.flight = self.flights.lead(key)
            if ticket.flight is None:  # an identical request missed while this one read (Redis): it leads
                return await self._wait(record, ticket, self.flights.under_way(key))
        return None

    async def would_hit(self, record: RequestRecord) -> dict[str, Any]:
        """A dry run's question, once routed: would the cache answer this
        request now?  The rule and the key are worked out and the store read,
        as ``lookup`` does, but no flight is led or waited for, nothing is
        stored, and the request leaves no trace of a lookup (``record.cache``
        is cleared: no header, no log field, no metric)."""
        ticket, record.cache = record.cache, None
        if ticket is None:
            return {"enabled": False}
        rule = self.rule(record)
        if rule is None:
            return {"enabled": False, "reason": "no cache: on the route nor in cache.models for this model"}
        if not self._keyed(record, ticket, rule):
            return {"enabled": True, "would_hit": False, "reason": ticket.reason}
        ticket.form = None
        out: dict[str, Any] = {"enabled": True, "key": ticket.key, "ttl_s": rule.ttl_s, "shared": rule.shared}
        if ticket.directives.no_cache:
            return {**out, "would_hit": False, "reason": "Cache-Control: no-cache"}
        if rule.coalesce and self.flights.under_way(ticket.key) is not None:
            return {**out, "would_hit": True, "reason": "an identical request is in flight: it would wait for its answer"}
        entry = await self._read(ticket, ticket.key)
        if entry is None:
            return {**out, "would_hit": False, "reason": ticket.reason or "no entry under the key"}
        age = max(0.0, self.clock() - entry.stored_at)
        max_age = ticket.directives.max_age
        if max_age is not None and age > max_age:
            return {**out, "would_hit": False, "reason": f"the entry is {age:.0f} s old, more than Cache-Control: max-age={max_age}"}
        return {**out, "would_hit": True, "age_s": round(age, 3), "target": f"{entry.provider}/{entry.model}"}

    async def _wait(self, record: RequestRecord, ticket: CacheTicket, flight: Flight | None) -> ChatResponse | None:
        """The answer of the identical request in flight, or None (go upstream, uncoalesced)."""
        shared = await self.flights.wait(flight) if flight is not None else None
        if shared is not None:
            return self._hit(record, ticket, decode_entry(shared), coalesced=True)
        ticket.outcome, ticket.reason = MISS, "the identical request waited for left no answer to share"
        return None

    def _keyed(self, record: RequestRecord, ticket: CacheTicket, rule: CacheRule) -> bool:
        """Work out the key, or bypass the cache (False) for a request it must not answer."""
        request = record.request
        if ticket.directives.no_store:
            ticket.bypass("Cache-Control: no-store")
            return False
        if not rule.nondeterministic:
            temperature = request.temperature
            if temperature is None:
                ticket.bypass("no temperature: the model samples at its default (cache nondeterministic is false)")
                return False
            if temperature > 0:
                ticket.bypass(f"temperature {temperature:g} > 0 (cache nondeterministic is false)")
                return False
        if not self.outage.worth_trying():
            ticket.bypass("the cache's store is unreachable")
            return False
        try:
            ticket.form = request_form(request)
        except TypeError as exc:
            ticket.bypass(f"the request cannot be keyed: {exc}")
            return False
        ticket.scope = "*" if rule.shared else (record.key_name or ANONYMOUS)
        ticket.key = self._key(ticket, record.decision.candidates[0])
        return True

    def _key(self, ticket: CacheTicket, candidate: Candidate) -> str:
        provider = candidate.provider
        fingerprint = self._fingerprints.get(provider.name)
        if fingerprint is None:
            fingerprint = self._fingerprints[provider.name] = provider_fingerprint(provider.config)
        assert ticket.form is not None
        return cache_key(ticket.form, kind=provider.kind, fingerprint=fingerprint, model=candidate.model,
                         scope=ticket.scope, namespace=ticket.directives.namespace)

    async def _read(self, ticket: CacheTicket, key: str) -> Entry | None:
        """The entry under ``key``, a fresh copy; None when there is none (or the
        store is unreachable: the ticket says so)."""
        assert self.backend is not None
        try:
            data = await self.backend.get(key)
        except BackendUnavailable as exc:
            self.outage.failed(exc)
            ticket.outcome, ticket.reason = BYPASS, "the cache's store is unreachable"
            return None
        self.outage.succeeded()
        if data is None:
            return None
        try:
            return decode_entry(data)
        except ValueError as exc:
            ticket.reason = f"the stored entry could not be read ({exc}); replaced by the next answer"
            return None

    def _hit(self, record: RequestRecord, ticket: CacheTicket, entry: Entry, *, coalesced: bool = False) -> ChatResponse:
        record.target = _candidate(record.decision, entry)
        record.add_lossy(entry.lossy)
        ticket.form = None
        ticket.outcome, ticket.age_s, ticket.coalesced = HIT, max(0.0, self.clock() - entry.stored_at), coalesced
        return entry.response

    # --- the answer's side ----------------------------------------------------------

    def committed(self, record: RequestRecord) -> None:
        """A stream has committed: what its request lost in translation is known
        now, before the client's stream encoder adds its own."""
        if record.cache is not None:
            record.cache.lossy = list(record.lossy)

    def store(self, record: RequestRecord, response: ChatResponse | None) -> None:
        """Keep ``response``, the upstream's answer, if it may be kept; in any
        case the flight this request leads lands (with the entry, or empty).
        Synchronous: the answer is serialised before any hook can change it."""
        ticket = record.cache
        if ticket is None:
            return
        try:
            if ticket.key is None or ticket.outcome == HIT or response is None or ticket.rule is None:
                return
            reason = self._unstorable(response, ticket.rule)
            if reason is not None:
                ticket.reason = reason
                return
            target = record.target
            first = record.decision.candidates[0]
            key = ticket.key if target == first else self._key(ticket, target)
            lossy = ticket.lossy if ticket.lossy is not None else list(record.lossy)
            try:
                data = encode_entry(Entry(response, self.clock(), target.provider.name, target.model, lossy))
            except TypeError as exc:
                ticket.reason = f"the answer cannot be stored: {exc}"
                return
            if len(data) > ticket.rule.max_entry_bytes:
                ticket.reason = f"the answer takes {len(data)} bytes, more than max_entry_bytes ({ticket.rule.max_entry_bytes})"
                return
            if self.backend.max_value_bytes is not None and len(data) > self.backend.max_value_bytes:
                ticket.reason = f"the answer takes {len(data)} bytes, more than the memory cache holds (cache.max_bytes)"
                return
            if ticket.flight is not None:
                self.flights.land(ticket.flight, data)
                ticket.flight = None
            if self._write(key, data, ticket.rule.ttl_s):
                ticket.outcome, ticket.stored_bytes = STORE, len(data)
        finally:
            self.finished(record)

    def store_stream(self, record: RequestRecord, response: ChatResponse | None) -> None:
        """``store`` for a stream that has ended: only one that ended whole, on
        the target it started with, and whose client stayed to the end."""
        ticket = record.cache
        if ticket is None:
            return
        if ticket.key is not None and ticket.outcome != HIT:
            if record.cancelled:
                ticket.reason = "the client left before the stream ended"
                response = None
            elif record.error is not None:
                ticket.reason = "the stream ended with an error"
                response = None
            elif record.continued is not None:
                ticket.reason = "the stream was continued on another target"
                response = None
        self.store(record, response)

    def _unstorable(self, response: ChatResponse, rule: CacheRule) -> str | None:
        """Why ``response`` must not be stored, or None."""
        if response.stop_reason in CUT_SHORT:
            return CUT_SHORT[response.stop_reason]
        if not rule.cache_tool_calls and (
            response.stop_reason == "tool_use" or any(isinstance(block, ToolCall) for block in response.content)
        ):
            return "the answer calls tools (cache_tool_calls is false)"
        usage = response.usage
        if not (usage.input_tokens or usage.output_tokens or usage.cache_read_tokens or usage.cache_creation_tokens):
            return "the answer's token usage is unknown (an OpenAI stream without stream_options.include_usage)"
        return None

    def _write(self, key: str, data: bytes, ttl_s: float) -> bool:
        """Start writing the entry; False when the store is known to be unreachable."""
        assert self.backend is not None
        if not self.outage.worth_trying():
            return False
        if self.backend.put_now(key, data, ttl_s):
            return True
        task = asyncio.ensure_future(self._put(key, data, ttl_s))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return True

    async def _put(self, key: str, data: bytes, ttl_s: float) -> None:
        assert self.backend is not None
        try:
            await self.backend.put(key, data, ttl_s)
        except BackendUnavailable as exc:
            self.outage.failed(exc)
        else:
            self.outage.succeeded()

    def finished(self, record: RequestRecord) -> None:
        """The request is done with the cache: a flight it still leads lands
        empty (its answer failed, or was not stored), and its waiters go upstream."""
        ticket = record.cache
        if ticket is None:
            return
        ticket.form = None  # the serialised request: as large as the request, and needed no more
        if ticket.flight is not None:
            self.flights.land(ticket.flight, None)
            ticket.flight = None

    # --- the process's side ---------------------------------------------------------

    def size_bytes(self) -> int | None:
        return self.backend.size_bytes() if self.backend is not None else None

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait (at most ``timeout`` seconds) for the entries being written."""
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=timeout)

    async def aclose(self) -> None:
        """At a stop: the writes in flight finished, the store closed (unless a
        reloaded successor uses it)."""
        await self.drain()
        if self.backend is not None and self.owns_store:
            await self.backend.aclose()


def _candidate(decision: Decision, entry: Entry) -> Candidate:
    """The candidate that gave ``entry`` (a waiter's leader may have failed over)."""
    for candidate in decision.candidates:
        if candidate.provider.name == entry.provider and candidate.model == entry.model:
            return candidate
    return decision.candidates[0]


def make_store(config: Config) -> CacheStore:
    if config.state.backend == "redis":
        from .redis_store import RedisStore  # only a Redis setup needs the library

        return RedisStore(config.state.url or "", prefix=config.state.prefix, timeout_s=config.state.timeout_s)
    return MemoryStore(config.cache.max_bytes)
