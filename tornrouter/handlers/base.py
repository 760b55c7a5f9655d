"""``APIHandler``: what the two API endpoints share.

A handler is thin: read the body, let the codec of its API parse it, hand it to
the pipeline, let the codec write the answer.  Every error, whatever raised it,
is rendered by ``write_error`` in the endpoint's own API shape and never as a
traceback; every request that reached the handler is recorded once, in
``on_finish``, which Tornado calls however the request ended.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from tornado.iostream import StreamClosedError
from tornado.web import HTTPError, RequestHandler, stream_request_body

from ..access import ANONYMOUS, Admission, ClientKey
from ..accumulate import StreamOrderError, replay
from ..context import RequestContext
from ..continuation import ContinuingStream
from ..errors import BodyTooLarge, Overloaded, RouterError, UpstreamError
from ..formats.base import Codec
from ..providers.streaming import EventStream, ReplayStream
from .streaming import ClientStream

if TYPE_CHECKING:
    from ..app import Runtime

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

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.ctx = RequestContext(secrets.token_hex(8), self.endpoint, runtime.http)
        runtime.in_flight.start(self.ctx)  # lifecycle: in flight until record() in on_finish
        runtime.metrics.started(self.endpoint)  # metrics and access: until on_finish too
        self.client_key: ClientKey | None = None
        self.admission: Admission | None = None
        self._chunks: list[bytes] = []
        self.source: EventStream | None = None
        self._opening: asyncio.Future[EventStream] | None = None
        self._reading_body = False  # from the end of prepare until post

    def prepare(self) -> None:
        # The router-wide cap (server.max_in_flight), before any other work; the
        # count includes this request (added in initialize).
        cap = self.runtime.config.server.max_in_flight
        if cap is not None and len(self.runtime.in_flight) > cap:
            raise Overloaded(f"the router is at its limit of {cap} requests in flight")
        # Who is calling (tornrouter/access): a 401 must not wait for the body.
        self.client_key = self.runtime.access.authenticate(self.request.headers)
        self.ctx.key_name = self.client_key.name if self.client_key is not None else None
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

    async def post(self) -> None:
        self._reading_body = False
        ctx = self.ctx
        ctx.request = self.codec.parse_request(self.body())
        self.admission = await self.runtime.access.admit(ctx, self.client_key)  # 403, 429, 503
        if ctx.request.stream:
            await self.stream()
            return
        await self.runtime.pipeline.run(ctx)
        body, lossy = self.codec.encode_response(ctx.response, ctx.request)
        ctx.add_lossy(lossy)
        self.set_routing_headers()
        self.set_header("Content-Type", "application/json")
        self.finish(dumps(body))

    async def stream(self) -> None:
        """A streamed request: the pipeline up to routing, the stream, then the
        PostResponse and End stages over the assembled response.

        Until the stream commits (the dispatcher's first real content) nothing is
        sent, so a failure there is retried or failed over, and in the end an
        ordinary HTTP error; after it, a failure ends the stream with the client
        API's own error event, never a truncated "success"."""
        ctx, pipeline = self.ctx, self.runtime.pipeline
        plugins = await pipeline.prepare(ctx)
        late_stages_ran = False
        if ctx.decision is None:
            if ctx.response is None:
                await pipeline.finish(ctx, plugins)  # NoResponse, unless a late hook answers
                late_stages_ran = True
            self.source, source_format = ReplayStream(replay(ctx.response)), None
        elif ctx.cancelled:  # the client left during the plugins: open nothing
            return
        else:
            # A task, so that a client who leaves meanwhile can cancel it (on_connection_close).
            self._opening = asyncio.ensure_future(pipeline.dispatcher.open_stream(ctx))
            try:
                self.source = await self._opening
            except asyncio.CancelledError:
                if not ctx.cancelled:
                    raise
                return  # the client went away first: nothing failed, nothing to answer
            finally:
                self._opening = None
            source_format = ctx.target.provider.kind if self.source.relayable else None
            if ctx.decision.continue_on_failure:  # a later target may take over mid-stream (continuation.py)
                self.source = ContinuingStream(self.source, ctx, pipeline.dispatcher)
        relay = self.source.relayable and source_format == self.codec.name
        out = ClientStream(self.codec, ctx.request, source_format, relay=relay)
        batch = await self.source.next_batch()
        self.set_routing_headers()
        self.set_header("Content-Type", "text/event-stream")
        # Tornado leaves Nagle's algorithm on until finish(): each event would wait
        # for the previous one's ACK, adding tens of milliseconds to every token.
        self.request.connection.stream.set_nodelay(True)
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        try:
            while batch is not None and not ctx.cancelled:
                data = out.feed(batch)
                if data:
                    if ctx.first_byte_at is None:
                        ctx.first_byte_at = time.perf_counter()
                    self.write(data)
                    await self.flush()
                if out.finished:
                    break
                batch = await self.source.next_batch()
            else:
                if not ctx.cancelled:
                    raise UpstreamError(self._source_name(), "stream ended before it finished")
            if out.error is not None:  # the upstream's own error event, or one it implied
                ctx.error = f"provider '{self._source_name()}': {out.error.message}"
                ctx.failed_status = out.error.status
        except (UpstreamError, StreamOrderError) as exc:
            error = exc if isinstance(exc, UpstreamError) else UpstreamError(self._source_name(), f"broken stream: {exc}")
            ctx.error, ctx.failed_status = error.message, error.status
            log.warning("%s %s: %s", self.endpoint, ctx.id, error.message)
            await self._write_quietly(out.fail(error.message, error.status))
        except StreamClosedError:
            self.on_connection_close()
        except Exception as exc:
            # The 200 is out: whatever went wrong, the client must see the stream
            # end with an error, not a truncated "success".
            log.exception("%s %s: stream failed", self.endpoint, ctx.id)
            ctx.error, ctx.failed_status = f"internal error: {exc!r}", 500
            await self._write_quietly(self.codec.stream_encoder(ctx.request, source=None).finish_with_error("internal error", 500))
        finally:
            self.source.close()  # stops a transfer still running, gives back the provider's slot
        ctx.add_lossy(out.lossy())
        ctx.response = out.response()
        if ctx.response is not None and not late_stages_ran:
            try:
                await pipeline.finish(ctx, plugins)
            except RouterError as exc:  # the stream is sent: the failure is the log's to tell
                log.warning("%s %s: after the stream: %s", self.endpoint, ctx.id, exc.message)
                ctx.error = exc.message
        if not ctx.cancelled:
            self.finish()

    def _source_name(self) -> str:
        return self.ctx.target.provider.name if self.ctx.target is not None else "plugin"

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
        self.ctx.cancelled = True
        if self._opening is not None:
            self._opening.cancel()
        if self.source is not None:
            self.source.cancel()
        if self._reading_body:
            # Tornado drops a request whose body never came whole: it calls
            # neither ``post`` nor ``on_finish``, so the request ends here.
            self._reading_body = False
            self.ctx.error = ("the connection closed before the whole body arrived "
                              "(client gone, or slower than server.body_timeout_s)")
            self.on_finish()

    def set_routing_headers(self) -> None:
        ctx = self.ctx
        self.set_header("x-request-id", ctx.id)
        if ctx.target is not None:  # the candidate that answered, or was tried last
            self.set_header("x-tornrouter-provider", ctx.target.provider.name)
            self.set_header("x-tornrouter-model", header_safe(ctx.target.model))
        elif ctx.response is not None:
            self.set_header("x-tornrouter-provider", "plugin")
        if ctx.lossy:
            self.set_header("x-tornrouter-lossy", header_safe(", ".join(ctx.lossy)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = _as_router_error(status_code, kwargs.get("exc_info"))
        self.ctx.error = error.message
        self.set_status(error.status)
        for name, value in error.headers.items():
            self.set_header(name, header_safe(value))
        self.set_routing_headers()
        self.set_header("Content-Type", "application/json")
        self.finish(dumps(self.codec.error_body(error)))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, UpstreamError):
            log.warning("%s %s: %s", self.endpoint, self.ctx.id, value.message)
        elif isinstance(value, RouterError):
            log.info("%s %s: %s %s", self.endpoint, self.ctx.id, value.status, value.message)
        else:
            super().log_exception(typ, value, tb)

    def on_finish(self) -> None:
        """Settle, record and count the request once.  Each step stands alone:
        one that fails (on data a plugin left in a shape it cannot read) is
        logged and costs neither the others nor the request's log entry."""
        ctx, runtime = self.ctx, self.runtime
        status = CLIENT_CLOSED if ctx.cancelled else ctx.failed_status or self.get_status()
        for step, args in (
            (runtime.access.settle, (ctx, self.admission)),  # cost for the log; usage, spend, slots back
            (runtime.record, (ctx, status)),
            (runtime.metrics.finished, (ctx, status, ctx.key_name or ANONYMOUS)),
        ):
            try:
                step(*args)
            except Exception:  # noqa: BLE001 - the request has ended: nothing may escape into Tornado
                log.exception("%s %s: %s failed", self.endpoint, ctx.id, step.__qualname__)


def _as_router_error(status_code: int, exc_info: Any) -> RouterError:
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
