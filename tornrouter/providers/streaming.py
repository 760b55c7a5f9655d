"""Streamed upstream transfers: bytes from curl in, batches of events out.

``CurlAsyncHTTPClient`` calls ``streaming_callback`` on the IOLoop with each
chunk, with no way to wait for the reader; ``UpstreamStream`` decodes each chunk
there (SSE, then the provider API's stream decoder) into one batch and queues
it, and the handler pulls batches with ``next_batch``, writing and flushing each
before taking the next.  A batch is a list of pieces ``(raw, events)``: the
event's bytes as the upstream sent them (relayed unchanged to a client of the
same API) and the canonical events it means (for translation and the log).

A failure has one representation on its way to the client: a ``StreamError``
event, the stream's last.  An error event of the upstream's own, an event that
cannot be read, a timeout and a broken transfer all end the stream so, with the
provider named in its message; the ``UpstreamError`` behind it is kept in
``failure`` for the dispatcher, which retries or fails over a stream that fails
before its commit point.

Tornado cannot cancel a fetch in flight (tornado issues 157, 3289), so every
transfer gets libcurl's progress callback, which aborts it once the stream is
stopped: by ``cancel`` (the client went away), a timeout, or an event that
cannot be read (the error it makes is the stream's last).  Under the
multi-socket API libcurl looks at a transfer only when its socket or one of its
timers fires, so a stalled transfer would keep its handle until its total
timeout.  Stopping therefore pauses the transfer and unpauses it at once: an
unpause makes libcurl run the transfer on the loop's next turn, and so call
the progress callback, which aborts it; its curl handle goes back to the pool.
(A low-speed limit would do it too, once a second, but its timer is re-armed
on every read, and that cost a paced stream a fifth of its CPU time.)  The
handles are pooled, so the options are set on every request, not once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

import pycurl
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse

from ..canonical import ChatRequest, Format, MessageStop, StreamError, StreamEvent
from ..errors import UpstreamError, UpstreamTimeout
from ..sse import encode_event
from .error_body import READ_LIMIT

if TYPE_CHECKING:
    from .base import HTTPProvider

Piece = tuple[bytes | None, list[StreamEvent]]
TRAILING_S = 5.0  # how long a finished stream's transfer may take to end by itself


class EventStream(ABC):
    """What a provider's ``open_stream`` returns: batches of pieces, then None."""

    format: Format | None = None  # the API whose stream the raw bytes are (None: no bytes to relay)
    failure: UpstreamError | None = None  # what its StreamError, if it ended with one, stands for
    decoded_from: Format | None = None  # without bytes to relay: the API whose extras the events carry

    @abstractmethod
    async def next_batch(self) -> list[Piece] | None:
        """The next batch, or None after the last.  Never raises: a failure is a
        ``StreamError`` event, the last one."""

    def cancel(self) -> None:
        """Stop the transfer (the client went away); later calls do nothing."""

    def close(self) -> None:
        """Release what the stream holds once its reader is done with it, finished
        or not: a transfer still running is stopped.  Later calls do nothing."""


class ReplayStream(EventStream):
    """Events known in advance (an echo answer, a plugin's answer, a cached
    answer) as one batch.  ``decoded_from``: the API the answer was decoded
    from, whose extras it still carries (a cached answer's ``source``)."""

    def __init__(self, events: list[StreamEvent], decoded_from: Format | None = None) -> None:
        self._batches: deque[list[Piece]] = deque([[(None, events)]])
        self.decoded_from = decoded_from

    async def next_batch(self) -> list[Piece] | None:
        return self._batches.popleft() if self._batches else None


class UpstreamStream(EventStream):
    def __init__(self, provider: HTTPProvider, request: ChatRequest, http_request: HTTPRequest, decoder: Any) -> None:
        self.format = provider.format
        self.provider = provider
        self.request = request
        self.sse = provider.framing()  # bytes -> ServerSentEvents: SSE, or another framing read as such
        self.decoder = decoder  # the provider API's stream decoder: feed_sse(sse), close()
        self.status = 0
        self.received_any = False
        self.failure: UpstreamError | None = None
        self._batches: deque[list[Piece]] = deque()
        self._early: list[bytes] | None = []  # chunks that came before the status (None once the transfer ended)
        self._error_body = bytearray()
        # False while the transfer runs; then None (it ended) or the error next_batch raises.
        self._end: UpstreamError | None | bool = False
        self._waiter: asyncio.Future[None] | None = None
        self._curl: pycurl.Curl | None = None  # the transfer's handle while it runs
        self._stopping = False  # the progress callback aborts the transfer
        self._cancelled = False  # the client went away: there is no next batch
        self._terminal = False  # the stream's own end (or error) event has arrived
        self._last_byte = 0.0  # loop time of the last byte: comments keep a stream alive too
        config = provider.config
        self._first_byte_timeout = config.first_byte_timeout_s
        self._idle_timeout = config.idle_timeout_s
        http_request.streaming_callback = self._on_chunk
        http_request.header_callback = self._on_header
        http_request.prepare_curl_callback = self._prepare_curl
        future = provider.http.fetch(http_request, raise_error=False)
        future.add_done_callback(self._on_done)

    # --- the curl side (IOLoop callbacks) ---

    def _prepare_curl(self, curl: pycurl.Curl) -> None:
        curl.setopt(pycurl.NOPROGRESS, 0)
        curl.setopt(pycurl.XFERINFOFUNCTION, self._on_progress)
        self._curl = curl

    def _on_progress(self, *_: int) -> int:
        return 1 if self._stopping else 0  # non-zero aborts the transfer

    def _on_header(self, line: str) -> None:
        if line.startswith("HTTP/"):
            parts = line.split(" ", 2)
            if len(parts) > 1 and parts[1].isdigit():
                self.status = int(parts[1])  # the last status line wins (100 Continue, redirects)

    def _on_chunk(self, chunk: bytes) -> None:
        if self._stopping:
            return
        if not self.status and self._early is not None:
            # Tornado queues the header lines for the IOLoop but hands over the chunks
            # that arrive with a transfer's end at once: a short answer (an error
            # body, a whole stream in one read) comes before its status.
            self._early.append(chunk)
            return
        if self.status >= 300:
            if len(self._error_body) < READ_LIMIT:  # enough for its message and the log
                self._error_body += chunk
            return
        self._last_byte = asyncio.get_running_loop().time()
        pieces: list[Piece] = []
        try:
            for sse in self.sse.feed(chunk):
                events = self.decoder.feed_sse(sse)
                if events and isinstance(events[-1], (MessageStop, StreamError)):
                    self._terminal = True
                    self._named(events, sse.data)
                pieces.append((encode_event(sse.data, sse.event), events))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # Malformed JSON, or an event whose fields are not what the API says:
            # the upstream's bytes are untrusted input, read here and nowhere else.
            pieces.append((None, self._named([StreamError(502, f"malformed stream event: {exc}")])))
            self._stop()  # the error ends the stream: read no further
        if pieces:
            self.received_any = True
            self._batches.append(pieces)
            self._wake()

    def _on_done(self, future: asyncio.Future[HTTPResponse]) -> None:
        self._curl = None  # back in the pool: another transfer's now
        # The header lines were queued before the transfer ended: the status is known now.
        early, self._early = self._early or [], None
        for chunk in early:
            self._on_chunk(chunk)
        end: UpstreamError | None = None
        try:
            response = future.result()
        except HTTPClientError as exc:  # 599: no HTTP response, or the transfer was aborted
            if not self._stopping:  # an abort was ours, and its reason is already queued or raised
                end = self.provider.transport_error(exc)
        else:
            if response.code >= 300:
                end = self.provider.status_error(response.code, bytes(self._error_body), response.headers, self.request)
            elif not self._stopping:
                tail = self._named(self.decoder.close())
                if tail:
                    self._batches.append([(None, tail)])
        if self._end is False:
            self._end = end
        self._wake()

    def _named(self, events: list[StreamEvent], data: str | None = None) -> list[StreamEvent]:
        """``events``, with a final ``StreamError`` naming this provider, and
        kept in ``failure`` as the ``UpstreamError`` it means.  ``data`` is the
        upstream's own error event, which a client of the same API gets as it
        came should the stream fail before its commit point."""
        if events and isinstance(events[-1], StreamError):
            error = events[-1]
            same = data is not None and self.format == self.request.source and self.provider.relays_errors
            relay = data.encode() if same else None
            self.failure = UpstreamError(self.provider.name, error.message, upstream_status=error.status, relay=relay)
            events[-1] = StreamError(error.status, self.failure.message)
        return events

    def _stop(self) -> None:
        """Abort the transfer at libcurl's next progress call, which comes at once;
        batches already queued stay."""
        self._stopping = True
        if self._curl is not None:
            try:  # see the module docstring: the progress callback runs next, even on a silent upstream
                self._curl.pause(pycurl.PAUSE_ALL)
                self._curl.pause(pycurl.PAUSE_CONT)
            except pycurl.error:  # the transfer has just ended
                pass
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- the handler side ---

    async def next_batch(self) -> list[Piece] | None:
        while not self._cancelled:
            if self._batches:
                # All that came since the last call, as one batch: one write and
                # one flush for the client, however many curl chunks it took.
                batch = self._batches.popleft()
                while self._batches:
                    batch += self._batches.popleft()
                return batch
            if self._end is not False:
                end, self._end = self._end, None
                if end is None:
                    return None
                self.failure = end
                return [(None, [StreamError(end.status, end.message)])]
            timeout = self._idle_timeout if self.received_any else self._first_byte_timeout
            if await self._wait(timeout) or self._end is not False or self._batches:
                continue
            if asyncio.get_running_loop().time() - self._last_byte < timeout:
                continue  # bytes without events (SSE comments) arrived meanwhile: still alive
            what = "between stream events" if self.received_any else "waiting for the first byte"
            self._end = UpstreamTimeout(self.provider.name, f"timed out after {timeout:g} s {what}")
            self._stop()
        return None

    async def _wait(self, timeout: float) -> bool:
        """Wait for a batch or the end; False on timeout."""
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._wake()

        timer = loop.call_later(timeout, expire)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None
        return not expired

    def cancel(self) -> None:
        self._cancelled = True
        self._stop()

    def close(self) -> None:
        if self._end is not False:
            return
        if self._terminal:
            # The stream has its end event; let the transfer finish so the upstream
            # connection is kept for reuse, but not forever.
            asyncio.get_running_loop().call_later(TRAILING_S, self._stop)
        else:
            self._stop()
