"""``APIHandler``: what the API endpoints share.

A handler is thin: read the body, let the codec of its API parse it, hand it to
the pipeline, let the codec write the answer.  Every error, whatever raised it,
is rendered by ``write_error`` in the endpoint's own API shape and never as a
traceback; every request that reached the handler is recorded once, in
``on_finish``, which Tornado calls however the request ended.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from tornado.iostream import StreamClosedError
from tornado.web import HTTPError, RequestHandler, stream_request_body

from ..access import ANONYMOUS, Admission, ClientKey
from ..canonical import ChatRequest, StreamError
from ..context import RequestRecord
from ..errors import BodyTooLarge, Overloaded, RouterError, UpstreamError
from ..explain import DRY_RUN_HEADER, dry_run_requested, explain
from ..formats.base import Codec
from ..providers.streaming import EventStream
from .streaming import ClientStream

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("tornrouter")
_UNSAFE_IN_HEADER = re.compile(r"[^\x20-\x7e]")
CLIENT_CLOSED = 499  # nginx's status for a request whose client went away


def header_safe(text: str) -> str:
    """``text`` as a header value.  Model names, lossy field names and an
    upstream's ``Retry-After`` come from outside: a control character in one
    would make Tornado refuse the header and the client get a bare 500."""
    return _UNSAFE_IN_HEADER.sub("?", text)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


@stream_request_body
class APIHandler(RequestHandler):
    codec: ClassVar[Codec]
    endpoint: ClassVar[str]
    explains: ClassVar[bool] = True  # answers x-tornrouter-dry-run with an explanation (tornrouter/explain.py)

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.record = RequestRecord(secrets.token_hex(8), self.endpoint, runtime.http)
        runtime.in_flight.start(self.record)  # lifecycle: in flight until record() in on_finish
        runtime.metrics.started(self.endpoint)  # metrics and access: until on_finish too
        self.client_key: ClientKey | None = None
        self.admission: Admission | None = None
        self._chunks: list[bytes] = []
        self.source: EventStream | None = None
        self._reading_body = False  # from the end of prepare until post

    def prepare(self) -> None:
        # The router-wide cap (server.max_in_flight), before any other work; the
        # count includes this request (added in initialize).
        cap = self.runtime.config.server.max_in_flight
        if cap is not None and len(self.runtime.in_flight) > cap:
            raise Overloaded(f"the router is at its limit of {cap} requests in flight")
        # Who is calling (tornrouter/access): a 401 must not wait for the body.
        # A dry run may come with the admin key (when one is set), which may explain any model.
        access, headers = self.runtime.access, self.request.headers
        self.record.dry_run = self.explains and dry_run_requested(headers)
        as_admin = self.record.dry_run and not access.admin.open and access.admin.matches(headers)
        self.client_key = None if as_admin else access.authenticate(headers)
        self.record.key_name = self.client_key.name if self.client_key is not None else None
        # Refuse an oversized body before reading it (bodies without a length
        # are bounded by the server's max_body_size, the same limit).
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.runtime.config.server.max_body_bytes:
            raise BodyTooLarge(self.runtime.config.server.max_body_bytes)
        self._reading_body = True

    def data_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def body(self) -> bytes:
        return b"".join(self._chunks)

    async def read_request(self) -> ChatRequest:
        """The request, parsed by the endpoint's codec.  An endpoint whose API
        refers to earlier answers by id (the Responses API's
        ``previous_response_id``) puts them in here, before the request is
        admitted and run."""
        return self.codec.parse_request(self.body())

    async def answering(self, answer: dict[str, Any]) -> None:
        """Called with a whole answer's JSON body just before the client gets
        it: an endpoint whose API refers to earlier answers completes it and
        keeps it here, so that a client that names it at once finds it (a
        stream's answer it finds in what ``_send`` writes).  Does nothing by
        default."""

    def received(self, request: ChatRequest) -> None:
        """What the request brings beside its body: its API's headers
        (``anthropic-beta``...), the session it names (``sessions``)."""
        request.headers = self.codec.api_headers(self.request.headers)
        self.record.session = self.runtime.sessions.name(self.request.headers, self.body)

    async def post(self) -> None:
        self._reading_body = False
        record = self.record
        record.ctx.request = await self.read_request()
        self.received(record.request)
        self.runtime.cache.read_headers(record, self.request.headers)  # a bad Cache-Control is a 400, like a bad body
        if record.dry_run:
            await self.explain()
            return
        self.admission = await self.runtime.access.admit(record, self.client_key)  # 403, 429, 503
        if record.request.stream:
            await self.stream()
            return
        await self.runtime.pipeline.run(record)
        body, lossy = self.codec.encode_response(record.response, record.request)
        record.add_lossy(lossy)
        await self.answering(body)
        data = dumps(body)
        self.set_routing_headers()
        self.set_header("Content-Type", "application/json")
        self.finish(data)

    async def explain(self) -> None:
        """A dry run: the explanation as JSON, streamed request or not; nothing
        is sent upstream or billed (no admission: ``settle`` has nothing to count)."""
        data = dumps(await explain(self.runtime, self.record, self.client_key))
        self.set_routing_headers()
        self.set_header(DRY_RUN_HEADER, "1")
        self.set_header("Content-Type", "application/json")
        self.finish(data)

    async def stream(self) -> None:
        """A streamed request: the pipeline opens the stream, this writes it as it
        comes, then the pipeline's late stages see the assembled answer.

        Until the stream commits (the dispatcher's first real content) nothing is
        sent, so a failure there is retried or failed over, and in the end an
        ordinary HTTP error; after it, a failure ends the stream with the client
        API's own error event, never a truncated "success"."""
        record, pipeline = self.record, self.runtime.pipeline
        self.source = await pipeline.open_stream(record)
        if self.source is None:  # the client went away first: nothing failed, nothing to answer
            return
        out = ClientStream(self.codec, record.request, self.source.format, record.served_by or "plugin",
                           self.source.decoded_from)
        self.start_event_stream()
        try:
            while not out.finished:
                batch = await self.source.next_batch()
                if record.cancelled:
                    break
                await self._send(out.feed(batch) if batch is not None else out.end())
        except StreamClosedError:
            self.on_connection_close()
        except Exception:  # the 200 is out: whatever went wrong, the stream must end with an error
            log.exception("%s %s: stream failed", self.endpoint, record.id)
            out.error = StreamError(500, "internal error")
            await self._write_quietly(self.codec.stream_encoder(record.request, source=None).finish_with_error("internal error", 500))
        finally:
            self.source.close()  # stops a transfer still running, gives back the provider's slot
        if out.error is not None:
            record.error, record.failed_status = out.error.message, out.error.status
            log.warning("%s %s: %s", self.endpoint, record.id, out.error.message)
        record.add_lossy(out.lossy())
        await pipeline.finish_stream(record, out.response())
        if not record.cancelled:
            self.finish()

    def start_event_stream(self) -> None:
        self.set_routing_headers()
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        # Tornado leaves Nagle's algorithm on until finish(): each event would wait
        # for the previous one's ACK, adding tens of milliseconds to every token.
        self.request.connection.stream.set_nodelay(True)

    async def _send(self, data: bytes) -> None:
        if data:
            if self.record.first_byte_at is None:
                self.record.first_byte_at = time.perf_counter()
            self.write(data)
            await self.flush()

    async def _write_quietly(self, data: bytes) -> None:
        try:
            self.write(data)
            await self.flush()
        except StreamClosedError:
            self.on_connection_close()

    def on_connection_close(self) -> None:
        """The client went away, or the server closed a connection whose body was
        too slow (``server.body_timeout_s``): stop the upstream transfer, log the
        request as cancelled."""
        super().on_connection_close()  # fails a body upload still awaited, rather than waiting forever
        self.record.cancel()
        if self.source is not None:
            self.source.cancel()
        if self._reading_body:
            # Tornado drops a request whose body never came whole: it calls
            # neither ``post`` nor ``on_finish``, so the request ends here.
            self._reading_body = False
            self.record.error = ("the connection closed before the whole body arrived "
                              "(client gone, or slower than server.body_timeout_s)")
            self.on_finish()

    def set_routing_headers(self) -> None:
        record = self.record
        self.set_header("x-request-id", record.id)
        if record.served_by is not None:  # the provider that answered (or was tried last), or "plugin"
            self.set_header("x-tornrouter-provider", record.served_by)
        if record.target is not None:
            self.set_header("x-tornrouter-model", header_safe(record.target.model))
        if record.lossy:
            self.set_header("x-tornrouter-lossy", header_safe(", ".join(record.lossy)))
        self.set_header("x-tornrouter-overhead-ms", f"{record.overhead() * 1000:.2f}")
        if record.cache is not None:  # x-tornrouter-cache, and Age on a hit
            for name, value in record.cache.headers().items():
                self.set_header(name, value)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = as_router_error(status_code, kwargs.get("exc_info"))
        self.record.error = error.message
        self.set_status(error.status)
        for name, value in error.headers.items():
            self.set_header(name, header_safe(value))
        self.set_routing_headers()
        self.set_header("Content-Type", "application/json")
        relay = getattr(error, "relay", None)  # an upstream's own error, for a client of its API
        self.finish(relay if relay is not None else dumps(self.codec.error_body(error)))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, UpstreamError):
            log.warning("%s %s: %s", self.endpoint, self.record.id, value.message)
        elif isinstance(value, RouterError):
            log.info("%s %s: %s %s", self.endpoint, self.record.id, value.status, value.message)
        else:
            super().log_exception(typ, value, tb)

    def on_finish(self) -> None:
        """Settle, record and count the request once.  Each step stands alone:
        one that fails (on data a plugin left in a shape it cannot read) is
        logged and costs neither the others nor the request's log entry."""
        record, runtime = self.record, self.runtime
        record.status = CLIENT_CLOSED if record.cancelled else record.failed_status or self.get_status()
        for step, args in (
            (runtime.cache.finished, (record,)),  # a flight it still leads: the waiters go upstream
            (runtime.access.settle, (record, self.admission)),  # cost for the log; usage, spend, slots back
            (runtime.record, (record,)),
            (runtime.metrics.finished, (record, record.key_name or ANONYMOUS)),
            (runtime.mirrors.consider, (record,)),  # shadow traffic: its answer is on its way
        ):
            try:
                step(*args)
            except Exception:  # noqa: BLE001 - the request has ended: nothing may escape into Tornado
                log.exception("%s %s: %s failed", self.endpoint, record.id, step.__qualname__)


def as_router_error(status_code: int, exc_info: Any) -> RouterError:
    """Whatever ended the request, as a ``RouterError`` to render.  An unexpected
    exception becomes a bare 500 whose message reveals nothing internal."""
    exc = exc_info[1] if exc_info else None
    if isinstance(exc, RouterError):
        return exc
    if isinstance(exc, HTTPError):
        error = RouterError(exc.reason or exc.log_message or f"HTTP {exc.status_code}")
        error.status = exc.status_code
        return error
    error = RouterError("internal error" if status_code >= 500 else f"HTTP {status_code}")
    error.status = status_code
    return error
