"""The upstream call and its safety nets: retries, fallbacks, circuit breakers,
concurrency limits and, for streams, the commit point.

For each candidate of the routing decision, in order: skip it while its circuit
is open; take a slot under its ``max_concurrent`` (a full queue moves on to the
next candidate); send; on a failure worth another try (no response, a timeout,
408, 409, 429, 5xx, 529) retry the same provider up to ``retries`` times with
exponential backoff and jitter, honouring ``Retry-After`` up to a cap, then fall
back to the next candidate.  A failure that is the client's or the config's
(400, 401, 403, 404, 413, 422) ends the request at once: another provider would
refuse it too.  Every attempt is recorded in ``record.attempts`` for the log.

A stream commits when the upstream produces its first real content (a text,
tool call or thinking delta): until then nothing has been sent to the client,
so a failure is retried or failed over exactly like a non-streamed one.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

from .canonical import BlockDelta, BlockStart, ChatRequest, ChatResponse, MessageStop, Opaque, StreamError, StreamEvent, ToolCall
from .concurrency import ConcurrencyLimit
from .config import ProviderConfig
from .context import RequestRecord
from .errors import Overloaded, RouterError, UpstreamError
from .providers.streaming import EventStream, Piece
from .router import Candidate

T = TypeVar("T")

NOT_RETRIED = frozenset({400, 401, 403, 404, 413, 422})


def worth_retrying(error: RouterError) -> bool:
    """A failure another attempt may not meet: the upstream's, not the request's."""
    if isinstance(error, Overloaded):
        return True
    return isinstance(error, UpstreamError) and error.upstream_status not in NOT_RETRIED


class Dispatcher:
    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    async def send(self, record: RequestRecord) -> ChatResponse:
        """The answer of the first candidate that gives one (non-streamed)."""

        async def call(candidate: Candidate) -> ChatResponse:
            provider = candidate.provider
            await take_slot(record, provider.limit)
            try:
                response, lossy = await provider.send(record.request)
            finally:
                provider.limit.release()
            record.add_lossy(lossy)
            return response

        return await self._attempts(record, call)

    async def open_stream(
        self, record: RequestRecord, request: ChatRequest | None = None, candidates: Sequence[Candidate] | None = None
    ) -> EventStream:
        """A stream past its commit point, from the first candidate that gets there.
        ``request`` and ``candidates`` default to the record's (a continuation
        sends its own request to the candidates it has left)."""
        request = request or record.request

        async def call(candidate: Candidate) -> EventStream:
            provider = candidate.provider
            await take_slot(record, provider.limit)
            try:
                stream, lossy = await provider.open_stream(request)
            except BaseException:
                provider.limit.release()
                raise
            committed = CommittedStream(stream, provider.limit.release)
            try:
                await committed.wait_for_content(provider.name)
            except BaseException:
                committed.close()
                raise
            record.add_lossy(lossy)
            return committed

        return await self._attempts(record, call, request, candidates)

    async def _attempts(
        self,
        record: RequestRecord,
        call: Callable[[Candidate], Awaitable[T]],
        request: ChatRequest | None = None,
        candidates: Sequence[Candidate] | None = None,
    ) -> T:
        request = request or record.request
        last_error: RouterError | None = None
        for candidate in record.decision.candidates if candidates is None else candidates:
            provider, config = candidate.provider, candidate.provider.config
            breaker = provider.breaker
            for attempt in range(config.retries + 1):
                if breaker is not None and not breaker.allow():
                    record.record_attempt(candidate, None, "skipped: circuit open", 0.0)
                    last_error = last_error or Overloaded(f"provider '{provider.name}' is unavailable (circuit open)")
                    break
                record.target = candidate
                request.model = candidate.model
                started = time.perf_counter()
                judged = False  # the breaker heard how the attempt went
                try:
                    result = await call(candidate)
                except RouterError as error:
                    status = error.upstream_status if isinstance(error, UpstreamError) else error.status
                    body = error.body if isinstance(error, UpstreamError) else None
                    record.record_attempt(candidate, status, error.message, time.perf_counter() - started, body=body)
                    retry = worth_retrying(error)
                    if breaker is not None and not isinstance(error, Overloaded):  # a full queue says nothing of its health
                        breaker.failure() if retry else breaker.success()
                        judged = True
                    if not retry:
                        raise
                    last_error = error
                    if isinstance(error, Overloaded) or attempt == config.retries:
                        break
                    wait = self.backoff(config, attempt, getattr(error, "retry_after", None))
                    await asyncio.sleep(wait)
                    record.upstream_s += wait  # waiting on the upstream is not the router's overhead
                else:
                    record.record_attempt(candidate, 200, None, time.perf_counter() - started)
                    if breaker is not None:
                        breaker.success()
                        judged = True
                    return result
                finally:
                    if breaker is not None and not judged:
                        # No verdict (the client left, the provider was full): a
                        # half-open circuit must let another request probe.
                        breaker.release()
        assert last_error is not None
        raise last_error

    def backoff(self, config: ProviderConfig, attempt: int, retry_after: str | None) -> float:
        """Seconds before retry number ``attempt + 1``: the upstream's ``Retry-After``
        (capped) if it gave a usable one, else exponential with jitter."""
        wait = retry_after_seconds(retry_after)
        if wait is not None:
            return min(wait, config.retry_after_max_s)
        ceiling = min(config.retry_backoff_max_s, config.retry_backoff_s * 2**attempt)
        return ceiling * (0.5 + self.rng.random() / 2)


async def take_slot(record: RequestRecord, limit: ConcurrencyLimit) -> None:
    """A slot under the provider's ``max_concurrent``.  The time spent waiting
    for it is the request's queue time (``RequestRecord.queued``), neither the
    upstream's nor the router's own; a free slot is taken without a clock read."""
    if limit.try_acquire():
        return
    queued = time.perf_counter()
    try:
        await limit.wait()
    finally:  # a client who leaves while queued waited all the same
        record.queued(time.perf_counter() - queued)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP date
    (RFC 9110, section 10.2.3).  None when absent or unusable (negative, NaN,
    not a date): the caller then keeps its own schedule."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    return None if math.isnan(seconds) or seconds < 0 else seconds


class CommittedStream(EventStream):
    """An upstream stream whose first batches were read ahead, up to the first
    real content, and are replayed first.  Holds the provider's concurrency slot
    until ``close``."""

    def __init__(self, stream: EventStream, release: Callable[[], None]) -> None:
        self.stream = stream
        self.format = stream.format
        self._ahead: list[list[Piece]] = []
        self._release: Callable[[], None] | None = release

    async def wait_for_content(self, provider: str) -> None:
        """Read ahead until the commit point; raises the ``UpstreamError`` of a
        failure before it (nothing has reached the client: it may be retried)."""
        while True:
            batch = await self.stream.next_batch()
            if batch is None:
                raise UpstreamError(provider, "stream ended before any content")
            committed = False
            for _, events in batch:
                for event in events:
                    if isinstance(event, StreamError) and not committed:
                        raise self.stream.failure or UpstreamError(provider, event.message, upstream_status=event.status)
                    committed = committed or _is_content(event)
            self._ahead.append(batch)
            if committed:
                return

    async def next_batch(self) -> list[Piece] | None:
        if self._ahead:
            return self._ahead.pop(0)
        return await self.stream.next_batch()

    def cancel(self) -> None:
        self.stream.cancel()

    def close(self) -> None:
        self.stream.close()
        if self._release is not None:
            self._release, release = None, self._release
            release()


def _is_content(event: StreamEvent) -> bool:
    """The commit point: real content (or a complete, empty answer) has arrived."""
    if isinstance(event, (BlockDelta, MessageStop)):
        return True
    return isinstance(event, BlockStart) and isinstance(event.block, (ToolCall, Opaque))
