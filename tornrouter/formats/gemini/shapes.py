"""The Gemini ``generateContent`` wire vocabulary shared by the decoder, the
encoder and the stream decoder: finish reasons, usage, the fields each level of
a body knows, and thought signatures as the canonical model carries them.

Gemini is an upstream API only (no client speaks it to the router), so only a
response's extras are ever read by another format's encoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ...canonical import StopReason, Usage
from ...check import check_usage
from ..base import Foreign

# Safety, recitation and policy blocks are the client API's content-filter
# outcome; a malformed or unexpected tool call ends the turn as it stands.
FINISH_FROM_WIRE: Mapping[str, StopReason] = MappingProxyType(
    {
        "STOP": "end_turn",
        "MAX_TOKENS": "max_tokens",
        "SAFETY": "content_filter",
        "RECITATION": "content_filter",
        "BLOCKLIST": "content_filter",
        "PROHIBITED_CONTENT": "content_filter",
        "SPII": "content_filter",
        "IMAGE_SAFETY": "content_filter",
        "IMAGE_PROHIBITED_CONTENT": "content_filter",
        "LANGUAGE": "content_filter",
    }
)

# A thought signature is opaque and valid only for Gemini.  In a client's
# thinking block it carries this prefix, so that the encoder tells it from a
# signature another API made (which Gemini would refuse).
SIGNATURE_PREFIX = "gemini:"

# What a part may hold besides the fields the canonical model names.
PART_KEYS = frozenset({"text", "thought", "thoughtSignature", "functionCall", "inlineData", "fileData"})
# A candidate's fields that tell nothing a client API has a place for.
SILENT_CANDIDATE_KEYS = frozenset({"content", "finishReason", "index", "safetyRatings", "avgLogprobs", "tokenCount"})
RESPONSE_KEYS = frozenset({"candidates", "usageMetadata", "modelVersion", "responseId", "promptFeedback", "createTime"})

# reasoning_effort -> thinkingBudget; an approximation, reported lossy.  Gemini
# takes 0 for no thinking and -1 for a budget the model picks.
EFFORT_BUDGET: Mapping[str, int] = MappingProxyType(
    {"none": 0, "minimal": 512, "low": 2048, "medium": 8192, "high": 24576, "xhigh": 32768}
)
DYNAMIC_BUDGET = -1

ERROR_STATUS_KEYS = ("status",)


def finish_from_wire(value: str | None, has_calls: bool) -> StopReason | None:
    """The stop reason of a candidate's ``finishReason``.  Gemini ends a turn
    with function calls as ``STOP``; the client APIs call that a tool-use stop."""
    if value is None:
        return None
    reason = FINISH_FROM_WIRE.get(value, "end_turn")
    return "tool_use" if reason == "end_turn" and has_calls else reason


def usage_from_wire(d: Mapping[str, Any]) -> Usage:
    """``usageMetadata``.  ``promptTokenCount`` includes the cached tokens and
    ``candidatesTokenCount`` excludes the thoughts; canonically input excludes
    the cache and output includes the reasoning, as the client APIs count."""
    prompt = (d.get("promptTokenCount") or 0) + (d.get("toolUsePromptTokenCount") or 0)
    cached = d.get("cachedContentTokenCount") or 0
    thoughts = d.get("thoughtsTokenCount") or 0
    return check_usage(
        Usage(
            input_tokens=max(prompt - cached, 0),
            output_tokens=(d.get("candidatesTokenCount") or 0) + thoughts,
            cache_read_tokens=cached,
            reasoning_tokens=thoughts,
        )
    )


class _Extras(Foreign):
    """A response's extras are wire fields, each lost under its own name."""


FOREIGN = _Extras()
