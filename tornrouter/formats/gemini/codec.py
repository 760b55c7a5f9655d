"""Google's Gemini ``generateContent`` wire format <-> canonical model.

An upstream API only: the router writes its requests and reads its answers and
streams, and no client speaks it, so the client-side half of ``Codec``
(``parse_request``, ``encode_response``, the stream encoder) refuses to run.
``decode.py`` reads parts and responses, ``encode.py`` writes requests,
``stream.py`` reads streams, ``shapes.py`` holds what they share.

Errors are Google's ``{"error": {"code", "message", "status"}}``; the
``status`` (``INVALID_ARGUMENT``, ``RESOURCE_EXHAUSTED``...) is the type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...canonical import ChatRequest, ChatResponse
from ..base import UpstreamCodec
from .decode import PartReader, response_from_wire
from .encode import request_to_wire
from .shapes import ERROR_STATUS_KEYS
from .stream import GeminiStreamDecoder


class GeminiCodec(UpstreamCodec):
    """``models/{model}:generateContent``: see ``formats.base.Codec`` for the contract of each method."""

    name = "gemini"
    error_type_keys = ERROR_STATUS_KEYS

    def encode_request(
        self, request: ChatRequest, *, default_max_tokens: int | None = None,
        signatures: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, Any], list[str]]:
        """``signatures``: thought signatures by function call id, for calls
        whose client had no thinking block to bring them back in."""
        return request_to_wire(request, signatures)

    def decode_response(self, body: dict[str, Any], reader: PartReader | None = None) -> ChatResponse:
        return response_from_wire(body, reader)

    def stream_decoder(self, reader: PartReader | None = None) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(reader)
