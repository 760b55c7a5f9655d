"""Anthropic Messages wire format <-> canonical model.

``decode.py`` reads wire bodies, ``encode.py`` writes them, ``shapes.py`` holds
the vocabulary both share with the stream codec (``stream.py``); this module
puts them behind the ``Codec`` interface and maps errors.

Decoding keeps every wire field the canonical model does not name in ``extra``
at its own level (request, message, block, usage), and a block only this API
has as an ``Opaque``, so a same-format relay writes back an equivalent body.
``thinking`` of type ``enabled``, ``disabled`` or ``adaptive`` is
``ChatRequest.reasoning`` (``mode``, ``budget_tokens``, its other fields in its
``extra``); another type stays in ``extra`` as it came.

Encoding something that came from OpenAI reshapes it for this API's rules --
leading instructions in ``system``, strictly alternating turns, tool results
first in their user turn, ``max_tokens`` always present -- and returns the
names of whatever could not be carried (``logprobs``, ``messages.system``,
``image.detail``...) instead of dropping them silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...canonical import ChatRequest, ChatResponse, Format
from ...errors import RouterError
from ..base import Codec, load_request
from .decode import request_from_wire, response_from_wire
from .encode import request_to_wire, response_to_wire
from .schemas import COUNT_TOKENS_SCHEMA, REQUEST_SCHEMA
from .shapes import api_headers, error_type_for
from .stream import MESSAGE_STOP, AnthropicStreamDecoder, AnthropicStreamEncoder


class AnthropicCodec(Codec):
    """``POST /v1/messages``: see ``formats.base.Codec`` for the contract of each method."""

    name = "anthropic"

    def parse_request(self, body: bytes) -> ChatRequest:
        return request_from_wire(load_request(body, REQUEST_SCHEMA))

    def parse_count_tokens(self, body: bytes) -> ChatRequest:
        """A ``count_tokens`` body: a request as ``parse_request`` reads one,
        ``max_tokens`` optional (None when absent)."""
        return request_from_wire(load_request(body, COUNT_TOKENS_SCHEMA))

    def encode_count_tokens(self, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        """The upstream ``count_tokens`` body for ``request``: the request's body,
        without the ``max_tokens`` the client did not send."""
        body, lossy = request_to_wire(request, None)
        if request.max_tokens is None:
            body.pop("max_tokens", None)
        return body, lossy

    def encode_request(
        self, request: ChatRequest, *, default_max_tokens: int | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        return request_to_wire(request, default_max_tokens)

    def decode_response(self, body: dict[str, Any]) -> ChatResponse:
        return response_from_wire(body)

    def encode_response(self, response: ChatResponse, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        return response_to_wire(response, request)

    def stream_decoder(self) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()

    def stream_encoder(self, request: ChatRequest, *, source: Format | None) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(source=source)

    def stream_done(self) -> bytes:
        return MESSAGE_STOP

    def api_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return api_headers(headers)

    def error_body(self, error: RouterError) -> dict[str, Any]:
        error_type = error.error_type or error_type_for(error.status)
        return {"type": "error", "error": {"type": error_type, "message": error.message}}
