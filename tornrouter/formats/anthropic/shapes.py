"""The Anthropic Messages wire vocabulary shared by the decoder, the encoder
and the stream codec: stop reasons, the field names each level of a body knows,
usage in both directions, and how this codec's ``extra`` reads to the other."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, get_args

from ...canonical import Format, ReasoningMode, StopReason, Usage
from ...check import check_usage
from ..base import Foreign, others
from ..gemini.carry import from_anthropic as gemini_from_anthropic

# Canonical stop reasons are this API's names.  A window overflow is, for the
# client, a length stop; an unknown future reason decodes as a natural end.
STOP_FROM_WIRE: Mapping[str, StopReason] = MappingProxyType(
    {
        "end_turn": "end_turn",
        "max_tokens": "max_tokens",
        "stop_sequence": "stop_sequence",
        "tool_use": "tool_use",
        "pause_turn": "pause_turn",
        "refusal": "refusal",
        "model_context_window_exceeded": "max_tokens",
    }
)
STOP_TO_WIRE: Mapping[str, str] = MappingProxyType(
    {
        "end_turn": "end_turn",
        "max_tokens": "max_tokens",
        "stop_sequence": "stop_sequence",
        "tool_use": "tool_use",
        "pause_turn": "pause_turn",
        "refusal": "refusal",
        "content_filter": "refusal",
    }
)

ERROR_TYPES: Mapping[int, str] = MappingProxyType(
    {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        422: "invalid_request_error",
        429: "rate_limit_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
)


def error_type_for(status: int) -> str:
    """The ``error.type`` this API gives a failure of ``status``."""
    return ERROR_TYPES.get(status, "api_error")

# The wire keys each decoder names; everything else goes to ``extra``.
REQUEST_KEYS = frozenset(
    {"model", "messages", "system", "max_tokens", "temperature", "top_p", "stop_sequences", "stream", "tools",
     "tool_choice", "metadata"}
)
RESPONSE_KEYS = frozenset({"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"})
_USAGE_KEYS = frozenset({"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"})
MESSAGE_KEYS = frozenset({"role", "content"})
USER_ID_KEY = frozenset({"user_id"})
TEXT_KEYS = frozenset({"type", "text"})
IMAGE_KEYS = frozenset({"type", "source"})
DOCUMENT_KEYS = frozenset({"type", "source", "title"})
# What a document's base64 source may hold; a file of another type is another API's to read.
DOCUMENT_MEDIA_TYPES = frozenset({"application/pdf"})
TOOL_USE_KEYS = frozenset({"type", "id", "name", "input"})
TOOL_RESULT_KEYS = frozenset({"type", "tool_use_id", "content", "is_error"})
THINKING_KEYS = frozenset({"type", "thinking", "signature"})
REDACTED_KEYS = frozenset({"type", "data"})
CUSTOM_TOOL_KEYS = frozenset({"name", "description", "input_schema"})
THINKING_TYPE_KEY = frozenset({"type"})
THINKING_ENABLED_KEYS = frozenset({"type", "budget_tokens"})
# The ``thinking`` types ``Reasoning.mode`` names; others (``between_tools``...) stay in ``extra``.
REASONING_MODES = frozenset(get_args(ReasoningMode))
BASE64_SOURCE_KEYS = frozenset({"type", "media_type", "data"})
URL_SOURCE_KEYS = frozenset({"type", "url"})

# reasoning_effort -> thinking budget; an approximation, always reported lossy.
EFFORT_BUDGET: Mapping[str, int] = MappingProxyType(
    {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
)
MIN_THINKING_BUDGET = 1024
# The server tool that runs another API's hosted web search.
WEB_SEARCH_TOOL: Mapping[str, str] = MappingProxyType({"type": "web_search_20250305", "name": "web_search"})
FALLBACK_MAX_TOKENS = 4096
# Anthropic accepts tool ids matching ^[a-zA-Z0-9_-]+$; some OpenAI-compatible
# upstreams mint ids like "functions.get_weather:0".
BAD_TOOL_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


class _Extras(Foreign):
    """This codec's ``extra`` holds wire fields only, each lost under its key; a
    ``citations_delta``'s citation (``BlockDelta.extra["citation"]``) is lost as
    the block's ``text.citations``."""

    def delta(self, extra: Mapping[str, Any]) -> list[str]:
        return ["text.citations" if key == "citation" else key for key in extra]

    def cache_point(self, extra: Mapping[str, Any]) -> bool:
        return extra.get("cache_control") is not None

    def carry_request(self, extra: Mapping[str, Any], target: Format) -> tuple[dict[str, Any], list[str]]:
        if target != "gemini":
            return {}, self.request(extra, target)
        carried, rest = gemini_from_anthropic(extra)
        return carried, self.request(rest, target)


FOREIGN = _Extras()


def usage_from_wire(d: Mapping[str, Any]) -> Usage:
    """A wire ``usage`` object; fields beyond the four token counts go to
    ``extra`` (``cache_creation``, its split by time to live, included: its
    one-hour part is also read, for the price)."""
    split = d.get("cache_creation")
    return check_usage(
        Usage(
            input_tokens=d.get("input_tokens") or 0,
            output_tokens=d.get("output_tokens") or 0,
            cache_read_tokens=d.get("cache_read_input_tokens") or 0,
            cache_creation_tokens=d.get("cache_creation_input_tokens") or 0,
            extra=others(d, _USAGE_KEYS),
            cache_creation_1h_tokens=(split.get("ephemeral_1h_input_tokens") or 0) if isinstance(split, dict) else 0,
        )
    )


def usage_to_wire(u: Usage, *, keep_extra: bool = False) -> dict[str, Any]:
    """The wire ``usage`` object.  ``keep_extra`` only when ``u`` was decoded from
    this format (``service_tier``, ``server_tool_use``...): another API's extras
    mean nothing here."""
    out = {
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_creation_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "output_tokens": u.output_tokens,
    }
    if keep_extra:
        out.update(u.extra)
    return out


# The request headers that are part of this API's request: ``anthropic-version``,
# ``anthropic-beta`` (a comma-separated list of beta flags; the SDK's ``betas``)
# and whatever ``anthropic-*`` header the API adds next.
HEADER_PREFIX = "anthropic-"


def api_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``anthropic-*`` headers of a client's request, names in lower case; a
    header sent on several lines is one, its values joined by commas (RFC 9110,
    section 5.3)."""
    out: dict[str, str] = {}
    get_list = getattr(headers, "get_list", None)
    for name in headers:
        lower = name.lower()
        if lower.startswith(HEADER_PREFIX) and lower not in out:
            out[lower] = ",".join(get_list(name)) if get_list is not None else headers[name]
    return out


def stop_from_wire(value: str | None) -> StopReason | None:
    return None if value is None else STOP_FROM_WIRE.get(value, "end_turn")
