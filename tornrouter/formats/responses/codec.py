"""The OpenAI Responses API (``POST /v1/responses``) <-> canonical model.

``decode.py`` reads wire bodies, ``encode.py`` writes requests and
``output.py`` responses, ``shapes.py`` holds
the vocabulary both share with the stream codec (``stream.py``), ``chat.py``
what this API says as chat completions does; this module puts them behind the
``Codec`` interface.  Errors have chat completions' shape.

The input is a list of items where the other APIs have turns.  Decoding
groups them: the leading ``system``/``developer`` messages (after
``instructions``) are ``request.system``; the items of one assistant turn
(messages, reasoning, function calls, hosted tools' calls) one assistant
``Message``; consecutive tool outputs one user ``Message`` of tool results;
each other message one ``Message``.  A ``function_call`` is a ``ToolCall`` (its
``call_id`` the call's id), a ``reasoning`` item a ``Thinking`` (its summary
texts as paragraphs), an input image by URL an ``Image``; what the canonical
model has no block for (files, images by file id, hosted tools' items) is
``Opaque``.  Hosted tools are ``Tool``s with ``builtin`` set to their type; a
web search is run by an Anthropic upstream's own search tool, and reported
lossy (or, with the provider's ``hosted_tools: refuse``, refused) elsewhere.

What only this codec reads, so that a same-format relay writes the same body:

- ``Text.extra["item"]``: on the first block of a message item folded into a
  turn (or into ``system``), the item's fields but its role and content (its
  ``type``, ``id``, ``status``, ``phase``...); it starts a new item.
- ``Text.extra["string"]``: the item's content came as a string.
- ``ToolCall.extra["arguments"]``: the arguments as sent, written back while
  they still parse to the call's input (a prompt cache depends on the bytes).
- ``Thinking.extra``: the item's ``id``, ``encrypted_content``...; its
  ``summary`` when the paragraphs do not say it all.
- ``ChatRequest.extra["input"] = None``: the input came as a string;
  ``extra["reasoning"]``: the ``reasoning`` object but its ``effort`` (which is
  ``request.reasoning``); ``extra["tool_choice"]``: a choice ``ToolChoice``
  only approximates (``allowed_tools``, a hosted tool's type).
- ``ChatResponse.extra``: the response's other fields (``created_at``, the
  request fields it repeats...).  Its ``status`` is the stop reason.

The id a client gets is a Responses upstream's own, or a fresh one of the
router's for an answer from any other API (``shapes.response_id``).
"""

from __future__ import annotations

from typing import Any

from ...canonical import ChatRequest, ChatResponse, Format
from ...errors import RouterError
from ..base import Codec, load_request
from ..openai.codec import error_to_wire
from .decode import request_from_wire, response_from_wire
from .encode import request_to_wire
from .output import response_to_wire
from .schemas import REQUEST_SCHEMA
from .stream import ResponsesStreamDecoder, ResponsesStreamEncoder


class ResponsesCodec(Codec):
    """``POST /v1/responses``: see ``formats.base.Codec`` for the contract of each method."""

    name = "responses"
    error_type_keys = ("type", "code")

    def parse_request(self, body: bytes) -> ChatRequest:
        return request_from_wire(load_request(body, REQUEST_SCHEMA))

    def encode_request(
        self, request: ChatRequest, *, default_max_tokens: int | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        """``default_max_tokens`` is unused: the API does not require a limit."""
        return request_to_wire(request)

    def decode_response(self, body: dict[str, Any]) -> ChatResponse:
        return response_from_wire(body)

    def encode_response(self, response: ChatResponse, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        return response_to_wire(response, request)

    def stream_decoder(self) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder()

    def stream_encoder(self, request: ChatRequest, *, source: Format | None) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(request, source=source)

    def stream_done(self) -> bytes:
        """Nothing: a Responses stream ends with its terminal event."""
        return b""

    def error_body(self, error: RouterError) -> dict[str, Any]:
        return error_to_wire(error)
