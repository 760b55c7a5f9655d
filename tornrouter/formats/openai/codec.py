"""OpenAI chat completions (``POST /v1/chat/completions``) <-> canonical model.

``decode.py`` reads wire bodies, ``encode.py`` writes them, ``shapes.py`` holds
the vocabulary both share with the stream codec (``stream.py``); this module
puts them behind the ``Codec`` interface and maps errors.

Decoding keeps every wire field the canonical model does not name in ``extra``
at its own level (request, message, part, tool, tool call, response), so a
same-format relay writes back an equivalent body.  Encoding something that came
from Anthropic writes what this API can carry and returns the names of the rest
(``thinking``, ``top_k``, ``text.cache_control``, ``tools.web_search_20250305``...)
as lossy instead of dropping them silently.

What both APIs express has canonical fields: ``reasoning_effort`` is
``ChatRequest.reasoning`` (``mode`` ``disabled`` for ``none``, else
``enabled``, with the value as ``effort``); an assistant ``refusal`` is a
``Text`` with ``refusal`` set.  Where the OpenAI-only shape is kept (only this
codec reads it; ``shapes.FOREIGN`` names it for the other format's encoders):

- ``ChatRequest.extra["max_tokens"] = None``: the client used the legacy
  ``max_tokens`` key, whose value is ``request.max_tokens``; otherwise the
  limit is written as ``max_completion_tokens``.  Sent together, the latter is
  ``request.max_tokens`` and ``extra["max_tokens"]`` keeps the legacy value.
- ``ChatRequest.extra["tool_choice"]``: an ``allowed_tools`` choice, which
  ``ToolChoice`` can only approximate (``auto``/``any``).
- Leading ``system``/``developer`` messages are ``request.system``.  The first
  ``Text`` of each, except a plain first ``system`` message, carries
  ``extra["message"]``: the message's fields but ``content`` (``role``,
  ``name``...).  It marks where a message starts.
- An object with an inner object (image part / ``image_url``, tool and tool call
  / ``function``) keeps the outer object's unknown fields flat in ``extra``; the
  inner object's unknown fields go under ``extra[<inner key>]``.  An image's
  ``detail`` and a function's ``strict`` are ``Image.detail`` and ``Tool.strict``.
- ``ChatResponse.extra``: the completion's other non-null fields (``created``,
  ``system_fingerprint``...), plus ``choice`` (other fields of ``choices[0]``,
  e.g. ``logprobs``), ``message`` (other fields of its message, e.g.
  ``annotations``) and ``choices`` (``choices[1:]`` when ``n > 1``).
  ``reasoning_content`` (DeepSeek, vLLM) is a leading ``Thinking`` block.

Nothing is deep-copied: canonical objects share values with the body they came
from and encoded bodies share them with the canonical objects, so treat both as
read-only once encoded.
"""

from __future__ import annotations

from typing import Any

from ...canonical import ChatRequest, ChatResponse, Format
from ...errors import RouterError
from ..base import Codec, load_request
from .decode import request_from_wire, response_from_wire
from .encode import request_to_wire, response_to_wire
from .schemas import REQUEST_SCHEMA
from .shapes import error_type_for
from .stream import DONE, OpenAIStreamDecoder, OpenAIStreamEncoder


def error_to_wire(error: RouterError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.error_type or error_type_for(error.status),
            "param": error.param,
            "code": error.code,
        }
    }


class OpenAICodec(Codec):
    """The OpenAI chat-completions API; see the module docstring for where its own fields go."""

    name = "openai"
    error_type_keys = ("type", "code")

    def parse_request(self, body: bytes) -> ChatRequest:
        return request_from_wire(load_request(body, REQUEST_SCHEMA))

    def encode_request(
        self, request: ChatRequest, *, default_max_tokens: int | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        """``default_max_tokens`` is unused: OpenAI does not require a limit."""
        return request_to_wire(request)

    def decode_response(self, body: dict[str, Any]) -> ChatResponse:
        return response_from_wire(body)

    def encode_response(self, response: ChatResponse, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        return response_to_wire(response)

    def stream_decoder(self) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder()

    def stream_encoder(self, request: ChatRequest, *, source: Format | None) -> OpenAIStreamEncoder:
        options = request.extra.get("stream_options") if request.source == "openai" else None
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return OpenAIStreamEncoder(include_usage=include_usage, source=source)

    def stream_done(self) -> bytes:
        return DONE

    def error_body(self, error: RouterError) -> dict[str, Any]:
        return error_to_wire(error)
