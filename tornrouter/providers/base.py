"""Providers: where and how a canonical request is sent upstream.

``Provider`` is the interface; ``HTTPProvider`` is the shared transport for the
upstreams that speak an API over HTTP (``openai.py``, ``responses.py``,
``anthropic.py`` only add their path and auth headers); ``echo.py`` answers
without any network.

Every transport failure is mapped to ``errors.UpstreamError`` here and only
here: curl's 599 with errno 28 -> ``UpstreamTimeout`` (504); any other 599
(refused, reset, DNS) -> 502; an upstream 4xx a client must see keeps its status
and message (with ``Retry-After`` on 429); other statuses -> 502; a 2xx body that
is not this API's response -> 502.  An error body that is not the API's error
(a proxy's HTML page...) is summarised for the client (``error_body.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from typing import Any, ClassVar

import orjson
import pycurl
from tornado.curl_httpclient import CurlError
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders

from ..accumulate import replay
from ..breaker import CircuitBreaker
from ..canonical import ChatRequest, ChatResponse, Format
from ..check import check_response
from ..config import ProviderConfig
from ..errors import InvalidRequest, UpstreamError, UpstreamTimeout
from ..formats import codec_for
from ..formats.base import VERSION_HEADERS, short
from ..formats.overflow import overflow_body, overflow_in
from ..concurrency import ConcurrencyLimit
from .error_body import describe, logged
from ..sse import SSEDecoder
from .streaming import EventStream, ReplayStream, UpstreamStream


class Provider(ABC):
    """A configured upstream.  One instance per ``providers:`` entry.  ``vendor``
    is the kind the default prices are keyed by (``access.prices``)."""

    kind: ClassVar[str]
    counts_tokens: ClassVar[bool] = False  # its upstream has an endpoint that counts input tokens

    @property
    def vendor(self) -> str:
        return self.kind

    def __init__(self, config: ProviderConfig, http: AsyncHTTPClient) -> None:
        self.config = config
        self.name = config.name
        self.http = http
        self.breaker = CircuitBreaker(config.breaker) if config.breaker else None
        self.limit = ConcurrencyLimit(config.name, config.max_concurrent, config.max_queue)

    @property
    def in_flight(self) -> int:
        return self.limit.in_flight

    def healthy(self) -> bool:
        """Not known to be failing: no breaker, or one that would let a request through."""
        return self.breaker is None or self.breaker.would_allow()

    def status(self) -> dict[str, Any]:
        """Health details for ``/health?verbose=1`` and the dashboard (never the key)."""
        return {
            "kind": self.kind,
            "in_flight": self.limit.in_flight,
            "queued": self.limit.queued,
            "breaker": self.breaker.to_json() if self.breaker else None,
        }

    @abstractmethod
    async def send(self, request: ChatRequest) -> tuple[ChatResponse, list[str]]:
        """The upstream's answer to ``request`` and what the translation could
        not carry.  Raises ``UpstreamError`` when there is no answer."""

    async def open_stream(self, request: ChatRequest) -> tuple[EventStream, list[str]]:
        """``request`` as a stream of events, and what the translation could not
        carry.  This default answers whole and replays the answer as events."""
        response, lossy = await self.send(request)
        return ReplayStream(replay(response)), lossy

    async def count_tokens(self, request: ChatRequest) -> tuple[int, bytes]:
        """The upstream's own count of ``request``'s input tokens, with its
        answer body as it came.  Raises ``UpstreamError``.  Only for a provider
        whose ``counts_tokens`` is True (the router estimates for the others)."""
        raise NotImplementedError(f"provider kind {self.kind} does not count tokens")


class HTTPProvider(Provider):
    """An upstream speaking one of the APIs (``format``) over HTTP."""

    path: ClassVar[str]
    format: ClassVar[Format]
    # The API's own upstream: its error bodies are its API's, relayed as they came
    # to a client of that API.  Not for a cloud that wraps the API (Azure, Vertex,
    # Bedrock), whose errors are as much the cloud's own.
    relays_errors: ClassVar[bool] = True

    def __init__(self, config: ProviderConfig, http: AsyncHTTPClient) -> None:
        super().__init__(config, http)
        self.codec = codec_for(self.format)
        self.url = config.base_url.rstrip("/") + self.path
        # Names in lower case, as ChatRequest.headers has them: one dict merges both.
        headers = {"Content-Type": "application/json", **self.auth_headers(), **config.headers}
        self.headers = {name.lower(): value for name, value in headers.items()}

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate to the upstream (none for a keyless local server)."""

    def build(self, request: ChatRequest) -> tuple[HTTPRequest, list[str]]:
        """The upstream request for ``request``; ``InvalidRequest`` for one this
        API cannot serve at all, or (``hosted_tools: refuse``) one whose hosted
        tool it would drop."""
        body, lossy = self.encode(request)
        if self.config.hosted_tools == "refuse":
            self.refuse_hosted(request, lossy)
        http_request = HTTPRequest(
            self.endpoint(request),
            method="POST",
            headers=self.request_headers(request, lossy),
            body=orjson.dumps(body),
            connect_timeout=self.config.connect_timeout_s,
            request_timeout=self.config.timeout_s,
            decompress_response=True,
        )
        return http_request, lossy

    def endpoint(self, request: ChatRequest) -> str:
        """The URL ``request`` goes to: ``base_url`` + ``path``, unless the
        upstream puts the model or the streaming mode in it (``gemini.py``)."""
        return self.url

    def encode(self, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        """The upstream body for ``request`` and what it could not carry."""
        return self.codec.encode_request(request, default_max_tokens=self.config.default_max_tokens)

    def decode(self, payload: Any, request: ChatRequest) -> ChatResponse:
        """The canonical answer in a success body; ``ValueError`` for another body."""
        return self.codec.decode_response(payload)

    def framing(self) -> Any:
        """What cuts a streamed answer's bytes into events (``feed(chunk)`` ->
        ``ServerSentEvent``s): SSE, unless the upstream frames its stream
        otherwise (``bedrock.py``: AWS event streams)."""
        return SSEDecoder()

    def stream_decoder(self, request: ChatRequest) -> Any:
        """A fresh decoder of the upstream's stream for ``request``."""
        return self.codec.stream_decoder()

    def request_headers(self, request: ChatRequest, lossy: list[str]) -> dict[str, str]:
        """The upstream request's headers: this provider's (auth, ``headers:``),
        then, for a client of this API, the client's own API headers
        (``anthropic-beta``...), which go to an upstream of another API only as
        names in ``lossy``.  A version header is not lost: the translation
        writes the body in the target's own version."""
        if not request.headers:
            return self.headers
        if self.format == request.source:
            return {**self.headers, **request.headers}
        lossy += [name for name in request.headers if name not in VERSION_HEADERS and name not in lossy]
        return self.headers

    async def send(self, request: ChatRequest) -> tuple[ChatResponse, list[str]]:
        http_request, lossy = self.build(request)
        try:
            response = await self.http.fetch(http_request, raise_error=False)
        except HTTPClientError as exc:  # raise_error=False still raises for 599: no response at all
            raise self.transport_error(exc) from exc
        if response.code >= 300:
            raise self.status_error(response.code, response.body, response.headers, request)
        try:
            payload = orjson.loads(response.body)
        except ValueError as exc:  # a proxy's page where the answer should be: described, not quoted
            body = self.redacted(response.body)
            raise UpstreamError(
                self.name, f"upstream answered {response.code} {describe(response.headers.get('Content-Type'), body)}",
                body=logged(body),
            ) from exc
        try:
            return check_response(self.decode(payload, request)), lossy
        except ValueError as exc:
            raise UpstreamError(self.name, f"invalid response body ({exc}): {short(response.body)}") from exc

    async def open_stream(self, request: ChatRequest) -> tuple[EventStream, list[str]]:
        http_request, lossy = self.build(request)
        return UpstreamStream(self, request, http_request, self.stream_decoder(request)), lossy

    def refuse_hosted(self, request: ChatRequest, lossy: list[str]) -> None:
        """A hosted tool the translation dropped (named ``tools.<type>`` in
        ``lossy``) refuses the request, naming the tool."""
        for index, tool in enumerate(request.tools):
            if tool.builtin is not None and f"tools.{tool.builtin}" in lossy:
                raise InvalidRequest(
                    f"tools.{index}",
                    f"provider '{self.name}' ({self.kind}) cannot run the hosted tool '{tool.builtin}' "
                    "and is set to refuse such requests (hosted_tools: refuse)",
                )

    def transport_error(self, error: HTTPClientError) -> UpstreamError:
        """No HTTP response at all: a timeout (504) or a connection failure (502)."""
        if isinstance(error, CurlError) and error.errno == pycurl.E_OPERATION_TIMEDOUT:
            return UpstreamTimeout(self.name, f"timed out: {error.message}")
        if isinstance(error, CurlError) and error.errno == pycurl.E_WRITE_ERROR:
            # Only the client's body-size check refuses a write (Runtime sets max_body_size).
            limit = getattr(self.http, "max_body_size", None)
            return UpstreamError(self.name, f"answer larger than server.max_response_bytes ({limit} bytes)")
        return UpstreamError(self.name, f"request failed: {error.message}")

    def redacted(self, body: bytes) -> bytes:
        """``body`` without this provider's key: some upstreams quote the key they refused."""
        return body.replace(self.config.api_key.encode(), b"***") if self.config.api_key else body

    def status_error(self, status: int, body: bytes, headers: HTTPHeaders, request: ChatRequest) -> UpstreamError:
        """An answer with an error status, streamed or not.  The API's own error
        goes to a client of the same API as it came (``relay``: status, type,
        message), where the provider ``relays_errors``; to a client of another
        API it keeps its message, and a context overflow is reworded in that
        API's terms.  Any other body is
        described in one line, since a proxy's HTML page is no message for an
        API client."""
        body = self.redacted(body)
        parsed = self.codec.parse_error(body)
        relay: bytes | None = None
        if parsed is None:
            error_type, message = None, f"upstream returned {status} {describe(headers.get('Content-Type'), body)}"
        else:
            error_type, message = parsed[0], f"upstream returned {status}: {parsed[1]}"
            if self.format == request.source:
                relay = body if self.relays_errors else None
            elif (overflow := overflow_in(status, body)) is not None:
                relay = orjson.dumps(overflow_body(codec_for(request.source), overflow))
        retry_after = headers.get("Retry-After")
        error = UpstreamError(
            self.name,
            message,
            upstream_status=status,
            # The upstream's own error type means something only to a client of the same
            # API; for the other, None lets its codec name the type for the status.
            error_type=error_type if self.format == request.source else None,
            retry_after=retry_after if status in (429, 503, 529) else None,
            body=logged(body),
            relay=relay,
        )
        if relay is not None and self.format != request.source:
            error.status = 400  # the reworded overflow: both APIs say it with a 400
        return error


