"""The interface every wire format implements, and the helpers they share.

A codec is pure: bytes or dicts in, canonical objects out, and back; it never
does I/O.  The handler of an endpoint uses the codec of its API to read the
client's request and to write the answer; a provider uses the codec of its
``kind`` to write the upstream request and to read the upstream answer.  When
the two differ, whatever the target format cannot carry is returned as a list
of *lossy* field names next to the encoded body, never dropped silently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, NoReturn, Protocol

import orjson
from marshmallow import Schema, ValidationError

from ..canonical import ChatRequest, ChatResponse, File, Format, MessageStart, StreamEvent, Tool
from ..errors import InvalidRequest, RouterError
from ..sse import ServerSentEvent
from .accepts import schema_accepts
from .fields import first_problem


# The request headers (``ChatRequest.headers``) that say which revision of its
# API a body is written in, not what it asks: an encoder writes the body in
# its target's own revision, so a translation loses nothing of them.
VERSION_HEADERS = frozenset({"anthropic-version"})


class StreamDecoder(Protocol):
    """Reads one upstream stream of an API, event by event."""

    def feed_sse(self, sse: ServerSentEvent) -> list[StreamEvent]:
        """The canonical events one SSE event gives; ``ValueError`` on one it cannot read."""

    def close(self) -> list[StreamEvent]:
        """The events the end of the bytes implies (a ``StreamError`` for a cut stream)."""


class StreamEncoder(Protocol):
    """Writes canonical events as one client's stream of an API.

    ``lossy`` (an ordered set) names what the API could not carry;
    ``encode`` raises ``StreamOrderError`` on an event the stream grammar forbids.
    """

    lossy: dict[str, None]

    @property
    def terminated(self) -> bool:
        """True once the stream's end or an error has been written."""

    def encode(self, event: StreamEvent) -> bytes: ...

    def finish_with_error(self, message: str, status: int = 502) -> bytes:
        """End the stream with the API's error event."""

    def take_over(self, start: MessageStart, events: int) -> None:
        """Go on from a stream relayed byte for byte so far (its ``MessageStart``,
        and how many events it had): only ``finish_with_error`` follows."""


class Codec(ABC):
    """One API's wire format.  Subclasses implement every abstract method."""

    name: Format
    # The fields of an error object that may name its type, in order.
    error_type_keys: tuple[str, ...] = ("type",)

    @abstractmethod
    def parse_request(self, body: bytes) -> ChatRequest:
        """Validate a client's request body and decode it.

        Raises ``InvalidRequest`` naming the first offending field; nothing
        invalid gets past this point.
        """

    @abstractmethod
    def encode_request(self, request: ChatRequest, *, default_max_tokens: int | None = None) -> tuple[dict[str, Any], list[str]]:
        """The upstream request body for ``request`` and the list of what it could not carry.

        Raises ``InvalidRequest`` for what the target cannot do at all (``n > 1``
        to an API without ``n``).  ``default_max_tokens`` fills a required
        ``max_tokens`` the client did not send.
        """

    @abstractmethod
    def decode_response(self, body: dict[str, Any]) -> ChatResponse:
        """Decode an upstream's success body.  Raises ``ValueError`` on a body
        that is not a response of this API."""

    @abstractmethod
    def encode_response(self, response: ChatResponse, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        """The client's response body for ``response`` and what it could not carry."""

    @abstractmethod
    def stream_decoder(self) -> StreamDecoder:
        """A fresh decoder of this API's stream."""

    @abstractmethod
    def stream_encoder(self, request: ChatRequest, *, source: Format | None) -> StreamEncoder:
        """A fresh encoder of canonical events into this API's stream bytes for
        ``request``'s client.  ``source`` is the format the events came from."""

    @abstractmethod
    def stream_done(self) -> bytes:
        """The bytes that end a stream of this API (``[DONE]``, ``message_stop``)."""

    @abstractmethod
    def error_body(self, error: RouterError) -> dict[str, Any]:
        """The API's native error body for ``error``."""

    def parse_error(self, body: bytes) -> tuple[str | None, str] | None:
        """``(error_type, message)`` from an upstream's error body of this API;
        None when it is not this API's error (the provider describes the body).

        Both APIs nest ``{"type", "message"}`` under ``error``; some
        OpenAI-compatible servers send ``{"error": "..."}`` instead.  The type
        is the first string of the fields ``error_type_keys`` names.
        """
        try:
            data = orjson.loads(body)
        except ValueError:  # orjson's: bad JSON, bad UTF-8, nesting too deep
            return None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            kind = next((value for key in self.error_type_keys if (value := error.get(key))), None)
            return (kind if isinstance(kind, str) else None), error["message"]
        if isinstance(error, str):
            return None, error
        return None

    def api_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Of a client's request headers, those that are part of this API's
        request (``ChatRequest.headers``), names in lower case.  None by default."""
        return {}


class UpstreamCodec(Codec):
    """A codec of an API only upstreams speak (Gemini, Bedrock's Converse): no
    client sends it, so the client-side half is refused outright."""

    def _client_side(self) -> NoReturn:
        raise NotImplementedError(f"{self.name} is an upstream API only: no client speaks it to the router")

    def parse_request(self, body: bytes) -> ChatRequest:
        self._client_side()

    def encode_response(self, response: ChatResponse, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        self._client_side()

    def stream_encoder(self, request: ChatRequest, *, source: Format | None) -> StreamEncoder:
        self._client_side()

    def stream_done(self) -> bytes:
        self._client_side()

    def error_body(self, error: RouterError) -> dict[str, Any]:
        self._client_side()


class Foreign:
    """How a format's ``extra`` reads to an encoder of the other format.

    By default each field is lost under its key after the level's prefix
    (``text.cache_control``), and None and False carry nothing.  A format whose
    ``extra`` holds more than wire fields somewhere (marks of its codec, an
    inner object's fields) overrides the level it concerns.
    """

    def names(self, extra: Mapping[str, Any], prefix: str) -> list[str]:
        """The lossy names of ``extra``, the extras of an object at ``prefix``."""
        return [prefix + key for key, value in extra.items() if value is not None and value is not False]

    def request(self, extra: Mapping[str, Any], target: Format) -> list[str]:
        """The lossy names of a request's own extras, for an upstream of ``target``;
        ``InvalidRequest`` for one it cannot serve at all."""
        return self.names(extra, "")

    def carry_request(self, extra: Mapping[str, Any], target: Format) -> tuple[dict[str, Any], list[str]]:
        """What of a request's own extras an upstream of ``target`` has fields
        for, in its wire shape, and the lossy names of the rest; raises as
        ``request`` does.  By default ``target`` has a field for none of them."""
        return {}, self.request(extra, target)

    def response(self, extra: Mapping[str, Any]) -> list[str]:
        """The lossy names of a (non-streamed) response's own extras."""
        return self.names(extra, "")

    def delta(self, extra: Mapping[str, Any]) -> list[str]:
        """The lossy names of a stream ``BlockDelta``'s extras."""
        return self.names(extra, "")

    def cache_point(self, extra: Mapping[str, Any]) -> bool:
        """Whether a block's extras ask for a prompt-cache breakpoint after it
        (Anthropic's ``cache_control``; Bedrock Converse writes a ``cachePoint``)."""
        return False


def split_data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64 data)`` of a base64 ``data:`` URL; None for anything else."""
    if url.startswith("data:"):
        comma = url.find(",")
        head = url[5:comma]
        if comma > 0 and head.endswith(";base64"):
            return head[:-7], url[comma + 1 :]
    return None


def file_data(block: File) -> str | None:
    """A file's inline data as the OpenAI APIs send it: a ``data:`` URL (raw
    base64 when its media type is not known)."""
    if block.data is None:
        return None
    return block.data if block.media_type is None else f"data:{block.media_type};base64,{block.data}"


def file_from_data(data: str | None, **fields: Any) -> File:
    """A file whose inline data came as the OpenAI APIs send it (``file_data``)."""
    split = split_data_url(data) if data is not None else None
    if split is not None:
        return File(data=split[1], media_type=split[0], **fields)
    return File(data=data, **fields)


def hosted_settings(tool: Tool) -> list[str]:
    """The lossy names of a hosted tool's settings when another API's own
    equivalent runs in its place (a web search): its ``type`` and ``name``
    are the tool itself, its other fields settings of the original."""
    return [f"tools.{tool.builtin}.{k}" for k, v in tool.extra.items() if k not in ("type", "name") and v is not None]


def load_json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object."""
    if not body:
        raise InvalidRequest(None, "request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(None, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest(None, "request body must be a JSON object")
    return data


def invalid_from(error: ValidationError) -> InvalidRequest:
    """The first problem of a marshmallow error, as ``InvalidRequest('messages.0.role', ...)``."""
    path: list[str] = []
    node: Any = error.messages
    while True:
        if isinstance(node, dict) and node:
            key = next(iter(node))
            if key != "_schema":
                path.append(str(key))
            node = node[key]
        elif isinstance(node, list) and node and not isinstance(node[0], str):
            node = node[0]
        else:
            break
    message = node[0] if isinstance(node, list) and node else str(node)
    return InvalidRequest(".".join(path) or None, message)


def others(raw: Mapping[str, Any], named: frozenset[str]) -> dict[str, Any]:
    """The fields of a wire object that ``named`` does not list: its ``extra``."""
    if raw.keys() <= named:  # the usual case, checked in C
        return {}
    return {k: v for k, v in raw.items() if k not in named}


def load_request(body: bytes, schema: Schema) -> dict[str, Any]:
    """A client's body, parsed and validated against ``schema``; ``InvalidRequest``
    naming the first offending field otherwise."""
    data = load_json_object(body)
    if schema_accepts(schema)(data):
        return data
    problem = first_problem(schema, data)
    if problem is not None:
        raise invalid_from(ValidationError(problem))
    return data


def short(text: bytes | str, limit: int = 300) -> str:
    """An upstream body quoted in an error message: decoded, trimmed to ``limit`` chars."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
