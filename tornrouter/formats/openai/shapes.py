"""The OpenAI chat-completions wire vocabulary shared by the decoder, the
encoder and the stream codec: stop-reason and tool-choice mappings, the field
names each level of a body knows, and usage in both directions."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ...canonical import Format, StopReason, Usage
from ...check import check_usage
from ...errors import InvalidRequest
from ..base import Foreign, others
from ..gemini.carry import from_chat as gemini_from_chat
from ..responses.chat import carried_from_chat


FINISH_TO_STOP: Mapping[str, StopReason] = MappingProxyType(
    {
        "stop": "end_turn",
        "length": "max_tokens",
        "tool_calls": "tool_use",
        "function_call": "tool_use",
        "content_filter": "content_filter",
    }
)
# ``pause_turn`` (a server tool's turn cut short) has no OpenAI reason: it ends
# as "stop" and is reported lossy.
STOP_TO_FINISH: Mapping[str, str] = MappingProxyType(
    {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "pause_turn": "stop",
        "max_tokens": "length",
        "tool_use": "tool_calls",
        "content_filter": "content_filter",
        "refusal": "content_filter",
    }
)

ERROR_TYPES: Mapping[int, str] = MappingProxyType(
    {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "invalid_request_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
    }
)


def error_type_for(status: int) -> str:
    """The ``error.type`` this API gives a failure of ``status``."""
    return "server_error" if status >= 500 else ERROR_TYPES.get(status, "invalid_request_error")
MODE_FROM_WIRE: Mapping[str, str] = MappingProxyType({"auto": "auto", "required": "any", "none": "none"})
MODE_TO_WIRE: Mapping[str, str] = MappingProxyType({"auto": "auto", "any": "required", "none": "none"})
# Where OpenAI draws the line on stop sequences; Anthropic allows more.
MAX_STOP = 4

# The wire keys each decoder names; everything else goes to ``extra``.
REQUEST_KEYS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "stream",
     "tools", "tool_choice", "parallel_tool_calls", "user"}
)
INSTRUCTION_ROLES = frozenset({"system", "developer"})
ROLE_CONTENT_KEYS = frozenset({"role", "content"})
CONTENT_KEY = frozenset({"content"})
ASSISTANT_KEYS = frozenset({"role", "content", "refusal", "tool_calls"})
TOOL_MESSAGE_KEYS = frozenset({"role", "content", "tool_call_id"})
TEXT_PART_KEYS = frozenset({"type", "text"})
IMAGE_PART_KEYS = frozenset({"type", "image_url"})
IMAGE_URL_KEYS = frozenset({"url", "detail"})
FILE_PART_KEYS = frozenset({"type", "file"})
FILE_KEYS = frozenset({"file_data", "file_id", "filename"})
TOOL_KEYS = frozenset({"type", "function"})
FUNCTION_DEF_KEYS = frozenset({"name", "description", "parameters", "strict"})
TOOL_CALL_KEYS = frozenset({"id", "type", "function"})
FUNCTION_CALL_KEYS = frozenset({"name", "arguments"})
COMPLETION_KEYS = frozenset({"id", "object", "model", "choices", "usage"})
CHOICE_KEYS = frozenset({"index", "message", "finish_reason"})
RESPONSE_MESSAGE_KEYS = frozenset({"role", "content", "refusal", "tool_calls", "reasoning_content"})
_USAGE_KEYS = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})
# Text.extra keys that are this codec's marks, not fields of a text part.
TEXT_MARKS = frozenset({"message"})
LEGACY_MAX_TOKENS = frozenset({"max_tokens"})
_ROLE_KEY = frozenset({"role"})
# Request fields with nothing to carry elsewhere: ``stream_options`` is honoured
# by the stream translator, ``n`` is checked on its own.
_SILENT_REQUEST_KEYS = frozenset({"stream_options", "n"})
# Response extras that hold the fields of an inner object (choices[0], its message).
_NESTED_RESPONSE_KEYS = frozenset({"choice", "message"})
_SILENT_RESPONSE_KEYS = frozenset({"created"})
_API_NAMES: Mapping[str, str] = MappingProxyType(
    {"anthropic": "Anthropic Messages", "openai": "OpenAI", "responses": "OpenAI Responses", "gemini": "Gemini", "converse": "Bedrock Converse"}
)


class _Extras(Foreign):
    """This codec's ``extra`` as another format loses it (see ``codec`` for what it
    keeps where): a leading instruction message's fields but its role are lost as
    ``messages.<field>``; a completion's ``choice`` and ``message`` by their own
    fields, its ``created`` silently; ``n`` above 1 cannot be served at all.
    The fields a Responses request has too go to a Responses upstream
    (``responses.chat.carried_from_chat``)."""

    def names(self, extra: Mapping[str, Any], prefix: str) -> list[str]:
        if prefix != "text." or "message" not in extra:
            return super().names(extra, prefix)
        message = extra["message"]
        own = others(message, _ROLE_KEY) if isinstance(message, Mapping) else {}
        return super().names(own, "messages.") + super().names(others(extra, TEXT_MARKS), prefix)

    def request(self, extra: Mapping[str, Any], target: Format) -> list[str]:
        n = extra.get("n")
        if n is not None and n != 1:
            raise InvalidRequest("n", f"the {_API_NAMES[target]} API supports only n=1")
        return [k for k, v in extra.items() if k not in _SILENT_REQUEST_KEYS and v is not None and v is not False]

    def carry_request(self, extra: Mapping[str, Any], target: Format) -> tuple[dict[str, Any], list[str]]:
        if target == "gemini":
            carried, rest = gemini_from_chat(extra)
            return carried, self.request(rest, target)
        if target != "responses":
            return {}, self.request(extra, target)
        carried, rest = carried_from_chat(extra)
        return carried, self.request(rest, target)

    def response(self, extra: Mapping[str, Any]) -> list[str]:
        lost: list[str] = []
        for key, value in extra.items():
            if key in _NESTED_RESPONSE_KEYS and isinstance(value, Mapping):
                lost += self.names(value, "")
            elif key not in _SILENT_RESPONSE_KEYS and value is not None and value is not False:
                lost.append(key)
        return lost


FOREIGN = _Extras()


def others_present(raw: Mapping[str, Any], named: frozenset[str]) -> dict[str, Any]:
    """Like ``others`` without null and empty-list fields, which say nothing (``annotations: []``)."""
    return {k: v for k, v in raw.items() if k not in named and v is not None and v != []}


def usage_from_wire(d: Mapping[str, Any]) -> Usage:
    """A wire ``usage`` object.  ``prompt_tokens`` includes cached (and cache-written)
    tokens; canonical ``input_tokens`` does not.  Token details go to ``extra``."""
    details = d.get("prompt_tokens_details") or {}
    completion = d.get("completion_tokens_details") or {}
    prompt = check_usage(
        Usage(
            input_tokens=d.get("prompt_tokens") or 0,
            output_tokens=d.get("completion_tokens") or 0,
            cache_read_tokens=details.get("cached_tokens") or 0,
            cache_creation_tokens=details.get("cache_write_tokens") or 0,
            extra=others(d, _USAGE_KEYS),
            reasoning_tokens=completion.get("reasoning_tokens") or 0,
        )
    )
    # prompt_tokens counts the cached ones too; the canonical input_tokens does not
    prompt.input_tokens = max(prompt.input_tokens - prompt.cache_read_tokens - prompt.cache_creation_tokens, 0)
    return prompt


def usage_to_wire(u: Usage, *, keep_extra: bool = False) -> dict[str, Any]:
    """The wire ``usage`` object.  ``keep_extra`` only when ``u`` was decoded from
    this format (token details): another API's extras mean nothing here.  A
    same-format usage without ``prompt_tokens_details`` (older or compatible
    servers) stays without, unless there are cache counts to report."""
    prompt = u.prompt_tokens
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
    }
    details: dict[str, Any] = {"cached_tokens": u.cache_read_tokens}
    if u.cache_creation_tokens:
        details["cache_write_tokens"] = u.cache_creation_tokens
    if keep_extra:
        out.update(u.extra)
        known = u.extra.get("prompt_tokens_details")
        if isinstance(known, dict):
            details = {**known, **details}
        elif not (u.cache_read_tokens or u.cache_creation_tokens):
            return out
    elif u.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    out["prompt_tokens_details"] = details
    return out
