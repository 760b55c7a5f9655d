"""A prompt longer than the model's context window, as each API words it.

Agents keep a long conversation going by compacting it when the API says the
prompt no longer fits, and they recognise that answer by its wording: Claude
Code looks for Anthropic's ``prompt is too long: N tokens > M maximum``, OpenAI
clients for the ``context_length_exceeded`` code.  An upstream of the other API
says it in its own words, so the router rewords it for the client
(``overflow_in`` reads it, ``overflow_body`` writes it); the upstream's own
error, relayed to a client of the same API, is already in the right words.

What upstreams send, as seen in the field:

- Anthropic: 400 ``invalid_request_error``, ``prompt is too long: 210000 tokens > 200000 maximum``;
- OpenAI: 400, code ``context_length_exceeded``, ``This model's maximum context
  length is 128000 tokens. However, your messages resulted in 210000 tokens...``
  (``you requested N tokens`` when the completion is counted in);
- vLLM and other OpenAI-compatible servers: the same sentence, often without the code;
- llama.cpp: type ``exceed_context_size_error``, ``n_prompt_tokens`` and ``n_ctx``
  in the error object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import RouterError
from .base import Codec

OVERFLOW_STATUSES = frozenset({400, 413, 422})
OPENAI_CODE = "context_length_exceeded"
_CODES = frozenset({OPENAI_CODE, "exceed_context_size_error"})
_WORDING = re.compile(
    r"prompt is too long|input is too long|maximum context length|context[_ ]length|context window"
    r"|exceeds? the (?:available )?context",
    re.IGNORECASE,
)
_ANTHROPIC_COUNTS = re.compile(r"(\d+)\s*tokens?\s*>\s*(\d+)")
_OPENAI_LIMIT = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
_OPENAI_TOKENS = re.compile(r"(?:resulted in|requested|you sent) (\d+) tokens", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Overflow:
    """The prompt's size and the window's, where the upstream said them; and what it said."""

    message: str
    tokens: int | None = None
    limit: int | None = None


def overflow_in(status: int, body: bytes) -> Overflow | None:
    """The context overflow an upstream's error body reports, of either API; None
    for any other error (or a body that is no API error at all)."""
    if status not in OVERFLOW_STATUSES:
        return None
    try:
        data = orjson.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    message = error["message"]
    if error.get("code") not in _CODES and error.get("type") not in _CODES and not _WORDING.search(message):
        return None
    counts = _ANTHROPIC_COUNTS.search(message)
    if counts is not None:
        return Overflow(message, int(counts[1]), int(counts[2]))
    limit, tokens = _OPENAI_LIMIT.search(message), _OPENAI_TOKENS.search(message)
    return Overflow(
        message,
        int(tokens[1]) if tokens else _count(error.get("n_prompt_tokens")),
        int(limit[1]) if limit else _count(error.get("n_ctx")),
    )


def overflow_body(codec: Codec, overflow: Overflow) -> dict[str, Any]:
    """The error body a client of ``codec``'s API gets for ``overflow``, in that
    API's own words (status 400)."""
    known = overflow.tokens is not None and overflow.limit is not None
    if codec.name == "anthropic":
        message = (f"prompt is too long: {overflow.tokens} tokens > {overflow.limit} maximum" if known
                   else f"prompt is too long: {overflow.message}")
        error = RouterError(message, error_type="invalid_request_error")
    else:
        message = (f"This model's maximum context length is {overflow.limit} tokens. However, your messages "
                   f"resulted in {overflow.tokens} tokens. Please reduce the length of the messages." if known
                   else f"This model's maximum context length was exceeded: {overflow.message}")
        error = RouterError(message, param="messages", error_type="invalid_request_error")
        error.code = OPENAI_CODE
    error.status = 400
    return codec.error_body(error)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
