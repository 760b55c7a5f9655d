"""``APIHandler``: what the two API endpoints share.

A handler is thin: read the body, let the codec of its API parse it, hand it to
the pipeline, let the codec write the answer.  Every error, whatever raised it,
is rendered by ``write_error`` in the endpoint's own API shape and never as a
traceback; every request that reached the handler is recorded once, in
``on_finish``, which Tornado calls however the request ended.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import TYPE_CHECKING, Any, ClassVar

from tornado.web import HTTPError, RequestHandler, stream_request_body

from ..context import RequestContext
from ..errors import BodyTooLarge, RouterError, UpstreamError
from ..formats.base import Codec

if TYPE_CHECKING:
    from ..app import Runtime

log = logging.getLogger("tornrouter")


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@stream_request_body
class APIHandler(RequestHandler):
    codec: ClassVar[Codec]
    endpoint: ClassVar[str]

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.ctx = RequestContext(secrets.token_hex(8), self.endpoint, runtime.http)
        self._chunks: list[bytes] = []

    def prepare(self) -> None:
        # Refuse an oversized body before reading it (bodies without a length
        # are bounded by the server's max_body_size, the same limit).
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.runtime.config.server.max_body_bytes:
            raise BodyTooLarge(self.runtime.config.server.max_body_bytes)

    def data_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def body(self) -> bytes:
        return b"".join(self._chunks)

    async def post(self) -> None:
        ctx = self.ctx
        ctx.request = self.codec.parse_request(self.body())
        await self.runtime.pipeline.run(ctx)
        body, lossy = self.codec.encode_response(ctx.response, ctx.request)
        ctx.add_lossy(lossy)
        self.set_routing_headers()
        self.set_header("Content-Type", "application/json")
        self.finish(dumps(body))

    def set_routing_headers(self) -> None:
        ctx = self.ctx
        self.set_header("x-request-id", ctx.id)
        if ctx.decision is not None:
            self.set_header("x-tornrouter-provider", ctx.decision.provider.name)
            self.set_header("x-tornrouter-model", ctx.decision.model)
        elif ctx.response is not None:
            self.set_header("x-tornrouter-provider", "plugin")
        if ctx.lossy:
            self.set_header("x-tornrouter-lossy", ", ".join(ctx.lossy))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = _as_router_error(status_code, kwargs.get("exc_info"))
        self.ctx.error = error.message
        self.set_status(error.status)
        for name, value in error.headers.items():
            self.set_header(name, value)
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
        self.runtime.record(self.ctx, self.get_status())


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
