"""The Responses API wire vocabulary shared by the decoder, the encoder and the
stream codec: the field names each level of a body knows, the codec's marks,
stop reasons, usage in both directions, and how this codec's ``extra`` reads
to the other formats' encoders."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ...accumulate import BLOCK_EXTRA
from ...canonical import Format, StopReason, Usage, new_id
from ...check import check_usage
from ...errors import InvalidRequest
from ..base import Foreign, others
from ..gemini.carry import from_chat as gemini_from_chat
from ..openai.shapes import error_type_for  # the error body is chat completions' own
from .chat import carried_to_chat

__all__ = ["error_type_for"]

# The wire keys each decoder names; everything else goes to ``extra``.
REQUEST_KEYS = frozenset(
    {"model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "stream", "tools",
     "tool_choice", "parallel_tool_calls", "user", "reasoning"}
)
ROLE_CONTENT_KEYS = frozenset({"role", "content"})
TEXT_PART_KEYS = frozenset({"type", "text"})
REFUSAL_PART_KEYS = frozenset({"type", "refusal"})
IMAGE_PART_KEYS = frozenset({"type", "image_url", "detail"})
FILE_PART_KEYS = frozenset({"type", "file_data", "file_url", "file_id", "filename"})
FUNCTION_CALL_KEYS = frozenset({"type", "call_id", "name", "arguments"})
FUNCTION_OUTPUT_KEYS = frozenset({"type", "call_id", "output"})
REASONING_KEYS = frozenset({"type", "summary"})
FUNCTION_TOOL_KEYS = frozenset({"type", "name", "description", "parameters", "strict"})
EFFORT_KEY = frozenset({"effort"})
# Fields of an output item the encoder writes itself (``status`` follows the stop reason).
OUTPUT_ITEM_KEYS = frozenset({"type", "role", "content", "status"})
RESPONSE_KEYS = frozenset({"id", "object", "model", "output", "usage", "status", "incomplete_details"})
_USAGE_KEYS = frozenset({"input_tokens", "output_tokens", "total_tokens"})

# The codec's marks in a block's ``extra`` (see ``codec``): fields of the item a
# block begins, a message content sent as a string, tool arguments as sent.
ITEM, STRING, ARGUMENTS = "item", "string", "arguments"
MARKS = frozenset({ITEM, STRING, ARGUMENTS})

# The part type each role's text takes when the client did not say otherwise.
TEXT_PART = MappingProxyType({"user": "input_text", "system": "input_text", "developer": "input_text", "assistant": "output_text"})

INCOMPLETE_TO_STOP: Mapping[str, StopReason] = MappingProxyType(
    {"max_output_tokens": "max_tokens", "content_filter": "content_filter"}
)
STOP_TO_INCOMPLETE: Mapping[str, str] = MappingProxyType(
    {"max_tokens": "max_output_tokens", "content_filter": "content_filter", "refusal": "content_filter"}
)
# A failed response's ``error.code`` and the status it stands for.
ERROR_STATUS: Mapping[str, int] = MappingProxyType(
    {"rate_limit_exceeded": 429, "server_error": 500, "invalid_prompt": 400, "vector_store_timeout": 504}
)
STATUS_CODE: Mapping[int, str] = MappingProxyType({429: "rate_limit_exceeded", 400: "invalid_prompt"})

# Request fields that need state an upstream of another API does not have: refused.
# (``previous_response_id`` is not one: the router's store has put the
# conversation it names in ``input`` before the request reaches a provider.)
_STATEFUL = ("conversation", "prompt")
# Request fields that carry nothing for another API (``store`` is the router's
# to keep, whatever the upstream), or whose default asks for nothing.
_SILENT_REQUEST_KEYS = frozenset({"stream_options", "store", "previous_response_id"})
_DEFAULTS = MappingProxyType({"truncation": "disabled", "background": False})
_REASONING_FIELDS = frozenset({"encrypted_content", "content", "summary"})
# Fields of an item that only identify it (ids, status): nothing is lost without them.
_IDENTITY = frozenset({"id", "type", "status", "role"})
# Response fields that echo the request, or say nothing another API could use.
_ECHOES = frozenset(
    {"created_at", "completed_at", "instructions", "tools", "tool_choice", "parallel_tool_calls", "temperature",
     "top_p", "max_output_tokens", "max_tool_calls", "text", "reasoning", "metadata", "store", "truncation",
     "previous_response_id", "user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "top_logprobs",
     "background", "error", "prompt", "conversation", "include"}
)


def response_id(upstream_id: str) -> str:
    """The id a Responses client gets for an answer whose upstream id is
    ``upstream_id``: a Responses upstream's own, else one of the router's.
    Called once per answer (the stream encoder keeps it).  Another API's id
    cannot serve: a stored response is found by it, and local servers repeat
    theirs (``chatcmpl-123``), which would continue one conversation with
    another's history."""
    return upstream_id if upstream_id.startswith("resp_") else new_id("resp")


def summary_to_wire(text: str) -> list[dict[str, Any]]:
    """A reasoning item's summary of one text (none for no text)."""
    return [{"type": "summary_text", "text": text}] if text else []


class _Extras(Foreign):
    """This codec's ``extra`` as another format reads it.

    Marks are no fields; an ``item`` mark loses the item's own fields as
    ``messages.<field>`` (not its id, type or status); empty ``annotations``
    and ``logprobs`` say nothing, nor does a part's or an item's ``type``.
    Request fields chat completions also has go to a chat-completions upstream
    (``chat.carried_to_chat``); ``conversation`` and ``prompt`` cannot be
    served by another API at all: the history or the prompt they stand for is
    OpenAI's.  ``previous_response_id`` says nothing more: the router has put
    the conversation it names in the request."""

    def names(self, extra: Mapping[str, Any], prefix: str) -> list[str]:
        if not prefix:  # a stream's message-level fields: the response's
            return self.response(extra)
        lost: list[str] = []
        for key, value in extra.items():
            if key in MARKS:
                if key == ITEM and isinstance(value, Mapping):
                    lost += super().names(others(value, _IDENTITY), "messages.")
            elif key in _IDENTITY or value == [] or key == "summary" or key.endswith("_details"):
                continue  # identities, nothing, a summary's text carried, a usage's breakdowns
            elif value is not None and value is not False:
                lost.append(prefix + key)
        return lost

    def request(self, extra: Mapping[str, Any], target: Format) -> list[str]:
        for key in _STATEFUL:
            if extra.get(key) is not None:
                raise InvalidRequest(
                    key, "only an upstream of the Responses API can follow it; send the whole conversation in 'input'"
                )
        lost: list[str] = []
        for key, value in extra.items():
            if key in _SILENT_REQUEST_KEYS or value is None or value is False or value == [] or _DEFAULTS.get(key) == value:
                continue
            if key in ("text", "reasoning") and isinstance(value, Mapping):
                lost += [f"{key}.{k}" for k, v in value.items() if v is not None and v != {"type": "text"}]
            else:
                lost.append(key)
        return lost

    def carry_request(self, extra: Mapping[str, Any], target: Format) -> tuple[dict[str, Any], list[str]]:
        if target == "gemini":  # the chat fields a Responses request makes, then Gemini's of those
            chat, rest = carried_to_chat(extra)
            carried, left = gemini_from_chat(chat)
            return carried, self.request({**rest, **left}, target)
        if target != "openai":
            return {}, self.request(extra, target)
        carried, rest = carried_to_chat(extra)
        return carried, self.request(rest, target)

    def response(self, extra: Mapping[str, Any]) -> list[str]:
        return [k for k, v in extra.items() if k not in _ECHOES and v is not None and v is not False and v != []]

    def delta(self, extra: Mapping[str, Any]) -> list[str]:
        """A text delta's ``logprobs``; the fields a block's end brought
        (``BLOCK_EXTRA``): a reasoning item's as ``thinking.<field>``, a text
        part's as ``text.<field>``."""
        lost: list[str] = []
        for key, value in extra.items():
            if key == BLOCK_EXTRA and isinstance(value, Mapping):
                lost += self.names(value, "thinking." if _REASONING_FIELDS & value.keys() else "text.")
            elif value:
                lost.append(key)
        return lost


FOREIGN = _Extras()


def usage_from_wire(d: Mapping[str, Any]) -> Usage:
    """A wire ``usage`` object.  ``input_tokens`` includes the cached ones; the
    canonical count does not.  The details objects stay in ``extra``."""
    details = d.get("input_tokens_details") or {}
    usage = check_usage(
        Usage(
            input_tokens=d.get("input_tokens") or 0,
            output_tokens=d.get("output_tokens") or 0,
            cache_read_tokens=details.get("cached_tokens") or 0,
            cache_creation_tokens=details.get("cache_write_tokens") or 0,
            extra=others(d, _USAGE_KEYS),
            reasoning_tokens=(d.get("output_tokens_details") or {}).get("reasoning_tokens") or 0,
        )
    )
    usage.input_tokens = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_creation_tokens, 0)
    return usage


def usage_to_wire(u: Usage, *, keep_extra: bool = False) -> dict[str, Any]:
    """The wire ``usage`` object, every field the SDK requires present.
    ``keep_extra`` only for a usage decoded from this format."""
    prompt = u.prompt_tokens
    out: dict[str, Any] = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens, "cache_write_tokens": u.cache_creation_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": prompt + u.output_tokens,
    }
    if keep_extra:
        out.update(u.extra)  # the upstream's breakdowns, as it gave them
    return out
