"""Anthropic Messages wire format <-> canonical model (non-streamed).

Decoding keeps every wire field the canonical model does not name in ``extra``
at its own level (request, message, block, usage), and a block only this API
has as an ``Opaque``, so a same-format relay writes back an equivalent body.

Encoding something that came from OpenAI reshapes it for this API's rules --
leading instructions in ``system``, strictly alternating turns, tool results
first in their user turn, ``max_tokens`` always present -- and returns the
names of whatever could not be carried (``logprobs``, ``messages.system``,
``image.detail``...) instead of dropping them silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from marshmallow import ValidationError

from ...canonical import (
    Block,
    ChatRequest,
    ChatResponse,
    Format,
    Image,
    Message,
    Opaque,
    StopReason,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Usage,
    new_id,
)
from ...errors import InvalidRequest, RouterError
from ..base import Codec, check_usage, invalid_from, load_json_object, short
from ..fields import first_problem
from .schemas import REQUEST_SCHEMA

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

_ERROR_TYPES: Mapping[int, str] = MappingProxyType(
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

# The wire keys each decoder names; everything else goes to ``extra``.
_REQUEST_KEYS = frozenset(
    {"model", "messages", "system", "max_tokens", "temperature", "top_p", "stop_sequences", "stream", "tools",
     "tool_choice", "metadata"}
)
_RESPONSE_KEYS = frozenset({"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"})
_USAGE_KEYS = frozenset({"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"})
_MESSAGE_KEYS = frozenset({"role", "content"})
_USER_ID_KEY = frozenset({"user_id"})
_ROLE_KEY = frozenset({"role"})
_TEXT_KEYS = frozenset({"type", "text"})
_IMAGE_KEYS = frozenset({"type", "source"})
_TOOL_USE_KEYS = frozenset({"type", "id", "name", "input"})
_TOOL_RESULT_KEYS = frozenset({"type", "tool_use_id", "content", "is_error"})
_THINKING_KEYS = frozenset({"type", "thinking", "signature"})
_REDACTED_KEYS = frozenset({"type", "data"})
_CUSTOM_TOOL_KEYS = frozenset({"name", "description", "input_schema"})
_BASE64_SOURCE_KEYS = frozenset({"type", "media_type", "data"})
_URL_SOURCE_KEYS = frozenset({"type", "url"})

# OpenAI request fields with nothing to carry: ``stream_options`` is honoured
# by the stream translator, ``n`` is checked on its own.
_SILENT_OPENAI = frozenset({"stream_options", "n"})
# reasoning_effort -> thinking budget; an approximation, always reported lossy.
_EFFORT_BUDGET: Mapping[str, int] = MappingProxyType(
    {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
)
_MIN_THINKING_BUDGET = 1024
_FALLBACK_MAX_TOKENS = 4096
# What the OpenAI codec leaves in ``extra`` beyond wire fields (its module doc):
# marks on Text -- where a leading instruction message began (its other fields)
# and that a text was a refusal -- and a completion's ``created``, ``choice``
# (fields of choices[0]) and ``message`` (fields of its message).
_OPENAI_TEXT_MARKS = frozenset({"message", "refusal"})
_OPENAI_NESTED_EXTRAS = frozenset({"choice", "message"})
_OPENAI_EMPTY_EXTRAS = frozenset({"created"})
# Anthropic accepts tool ids matching ^[a-zA-Z0-9_-]+$; some OpenAI-compatible
# upstreams mint ids like "functions.get_weather:0".
_BAD_TOOL_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def _rest(raw: Mapping[str, Any], named: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in named}


# --- shared with the stream codec ------------------------------------------------


def usage_from_wire(d: Mapping[str, Any]) -> Usage:
    """A wire ``usage`` object; fields beyond the four token counts go to ``extra``."""
    return check_usage(
        Usage(
            input_tokens=d.get("input_tokens") or 0,
            output_tokens=d.get("output_tokens") or 0,
            cache_read_tokens=d.get("cache_read_input_tokens") or 0,
            cache_creation_tokens=d.get("cache_creation_input_tokens") or 0,
            extra=_rest(d, _USAGE_KEYS),
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


def stop_from_wire(value: str | None) -> StopReason | None:
    return None if value is None else STOP_FROM_WIRE.get(value, "end_turn")


# --- decoding ---------------------------------------------------------------------


def _text(raw: dict[str, Any]) -> Block:
    return Text(raw["text"], _rest(raw, _TEXT_KEYS))


def _image(raw: dict[str, Any]) -> Block:
    """An image the other API can show too; any other source (``file``...) stays opaque."""
    source = raw["source"]
    kind = source.get("type")
    if kind == "base64" and source.keys() <= _BASE64_SOURCE_KEYS:
        return Image(media_type=source["media_type"], data=source["data"], extra=_rest(raw, _IMAGE_KEYS))
    if kind == "url" and source.keys() <= _URL_SOURCE_KEYS:
        return Image(url=source["url"], extra=_rest(raw, _IMAGE_KEYS))
    return Opaque("anthropic", raw)


def _tool_use(raw: dict[str, Any]) -> Block:
    if not isinstance(raw["input"], dict):
        return Opaque("anthropic", raw)
    return ToolCall(raw["id"], raw["name"], raw["input"], extra=_rest(raw, _TOOL_USE_KEYS))


def _tool_result(raw: dict[str, Any]) -> Block:
    content = raw.get("content")
    return ToolResult(
        raw["tool_use_id"],
        [] if content is None else content_from_wire(content),
        bool(raw.get("is_error")),
        _rest(raw, _TOOL_RESULT_KEYS),
    )


def _thinking(raw: dict[str, Any]) -> Block:
    return Thinking(raw["thinking"], raw.get("signature"), extra=_rest(raw, _THINKING_KEYS))


def _redacted(raw: dict[str, Any]) -> Block:
    return Thinking(redacted=raw["data"], extra=_rest(raw, _REDACTED_KEYS))


_DECODERS = MappingProxyType(
    {
        "text": _text,
        "image": _image,
        "tool_use": _tool_use,
        "tool_result": _tool_result,
        "thinking": _thinking,
        "redacted_thinking": _redacted,
    }
)


def block_from_wire(raw: dict[str, Any]) -> Block:
    decode = _DECODERS.get(raw["type"])
    return decode(raw) if decode else Opaque("anthropic", raw)


def content_from_wire(content: str | list[dict[str, Any]]) -> list[Block]:
    if isinstance(content, str):
        return [Text(content)]
    return [block_from_wire(b) for b in content]


def _tool_from_wire(raw: dict[str, Any]) -> Tool:
    kind = raw.get("type")
    if kind is None or kind == "custom":
        return Tool(raw["name"], raw.get("description"), raw["input_schema"], extra=_rest(raw, _CUSTOM_TOOL_KEYS))
    return Tool(raw.get("name") or kind, builtin=kind, extra=raw)


def _tool_choice_from_wire(raw: dict[str, Any] | None) -> ToolChoice | None:
    if raw is None:
        return None
    disable = raw.get("disable_parallel_tool_use")
    return ToolChoice(raw["type"], raw.get("name"), None if disable is None else not disable)


def _message_from_wire(raw: dict[str, Any]) -> Message:
    return Message(raw["role"], content_from_wire(raw["content"]), _rest(raw, _MESSAGE_KEYS))


def request_from_wire(data: dict[str, Any]) -> ChatRequest:
    """A validated request body as a canonical request."""
    metadata = data.get("metadata") or {}
    extra = _rest(data, _REQUEST_KEYS)
    other_metadata = _rest(metadata, _USER_ID_KEY)
    if other_metadata:
        extra["metadata"] = other_metadata
    system = data.get("system")
    return ChatRequest(
        model=data["model"],
        source="anthropic",
        messages=[_message_from_wire(m) for m in data["messages"]],
        system=[] if system is None else [b for b in content_from_wire(system) if isinstance(b, Text)],
        max_tokens=data["max_tokens"],
        temperature=data.get("temperature"),
        top_p=data.get("top_p"),
        stop=list(data.get("stop_sequences") or ()),
        stream=bool(data.get("stream")),
        tools=[_tool_from_wire(t) for t in data.get("tools") or ()],
        tool_choice=_tool_choice_from_wire(data.get("tool_choice")),
        user=metadata.get("user_id"),
        extra=extra,
    )


# --- encoding ---------------------------------------------------------------------


class _Writer:
    """Canonical -> wire for one request or response, collecting what is lost.

    ``source`` is the format the canonical object came from: its extras are
    written back when it is this one, reported lossy when it is the other, and
    ignored when None (a response a plugin made).
    """

    __slots__ = ("keep", "report", "for_request", "lossy")

    def __init__(self, source: Format | None, *, for_request: bool) -> None:
        self.keep = source == "anthropic"
        self.report = source is not None and not self.keep
        self.for_request = for_request
        self.lossy: dict[str, None] = {}  # an ordered set

    def lose(self, name: str) -> None:
        self.lossy[name] = None

    def extra(self, out: dict[str, Any], extra: Mapping[str, Any], prefix: str) -> None:
        """Write ``extra`` back, or name what it held; None and False carry nothing."""
        if self.keep:
            for key, value in extra.items():
                out.setdefault(key, value)
        elif self.report:
            for key, value in extra.items():
                if value is not None and value is not False:
                    self.lose(prefix + key)

    def tool_id(self, tool_id: str) -> str:
        return tool_id if self.keep or not self.for_request else _BAD_TOOL_ID_CHARS.sub("_", tool_id)

    def blocks(self, blocks: Iterable[Block]) -> list[dict[str, Any]]:
        out = []
        for block in blocks:
            wire = self.block(block)
            if wire is not None:
                out.append(wire)
        return out

    def content(self, blocks: Iterable[Block]) -> str | list[dict[str, Any]]:
        return _compact(self.blocks(blocks))

    def block(self, block: Block) -> dict[str, Any] | None:
        if isinstance(block, Text):
            return self.text(block)
        if isinstance(block, ToolCall):
            return self.tool_use(block)
        if isinstance(block, Thinking):
            return self.thinking(block)
        if isinstance(block, Opaque):
            if block.format == "anthropic":
                return block.data
            self.lose(f"content.{block.data.get('type')}")
            return None
        if not self.for_request:  # a Message holds no images or tool results
            self.lose(f"content.{block.type}")
            return None
        if isinstance(block, Image):
            return self.image(block)
        return self.tool_result(block)

    def text(self, block: Text) -> dict[str, Any] | None:
        if not block.text and self.for_request and not self.keep:
            return None  # the API refuses empty text blocks in a request
        out = {"type": "text", "text": block.text}
        if not block.extra:
            return out
        if self.report:
            message = block.extra.get("message")
            if isinstance(message, Mapping):
                self.extra({}, _rest(message, _ROLE_KEY), "messages.")
            self.extra(out, _rest(block.extra, _OPENAI_TEXT_MARKS), "text.")
        else:
            self.extra(out, block.extra, "text.")
        return out

    def image(self, block: Image) -> dict[str, Any]:
        out = {"type": "image", "source": _image_source(block)}
        self.extra(out, block.extra, "image.")
        return out

    def tool_use(self, block: ToolCall) -> dict[str, Any]:
        out = {"type": "tool_use", "id": self.tool_id(block.id), "name": block.name, "input": self.tool_input(block)}
        self.extra(out, block.extra, "tool_call.")
        return out

    def tool_input(self, block: ToolCall) -> dict[str, Any]:
        """``input`` must be an object: arguments that were not one are wrapped."""
        if block.raw_arguments is None:
            return block.input
        try:
            parsed = json.loads(block.raw_arguments)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
        self.lose("tool_call.arguments")
        return {"arguments": block.raw_arguments}

    def tool_result(self, block: ToolResult) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "tool_result", "tool_use_id": self.tool_id(block.tool_call_id)}
        content = self.content(block.content)
        if content or (self.keep and block.content):
            out["content"] = content
        if block.is_error:
            out["is_error"] = True
        self.extra(out, block.extra, "tool_result.")
        return out

    def thinking(self, block: Thinking) -> dict[str, Any] | None:
        if block.redacted is not None:
            out = {"type": "redacted_thinking", "data": block.redacted}
        elif block.signature is None and self.for_request:
            self.lose("thinking")  # the API refuses thinking it did not sign
            return None
        else:
            out = {"type": "thinking", "thinking": block.thinking, "signature": block.signature or ""}
        self.extra(out, block.extra, "thinking.")
        return out

    def tool(self, tool: Tool) -> dict[str, Any] | None:
        if tool.builtin is not None:
            if self.keep:
                return tool.extra or {"type": tool.builtin, "name": tool.name}
            self.lose(f"tools.{tool.builtin}")
            return None
        out: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            out["description"] = tool.description
        out["input_schema"] = {"type": "object", "properties": {}} if tool.parameters is None else tool.parameters
        self.extra(out, tool.extra, "tools.")
        return out


def _compact(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone plain text block as the string shorthand the API defines for it."""
    if len(blocks) == 1 and blocks[0].keys() == _TEXT_KEYS and blocks[0]["type"] == "text":
        return blocks[0]["text"]
    return blocks


def _image_source(block: Image) -> dict[str, Any]:
    if block.data is not None:
        return {"type": "base64", "media_type": block.media_type, "data": block.data}
    url = block.url or ""
    if url.startswith("data:"):
        head, comma, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if comma and encoding == "base64":
            return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _messages(request: ChatRequest, w: _Writer) -> tuple[list[dict[str, Any]], list[Text]]:
    """The wire turns and the system text.

    Same-format turns are relayed as they are.  Others are reshaped: system and
    developer turns join ``system`` (lossy past the first user or assistant
    turn), consecutive same-role turns merge, tool results lead their turn.
    """
    system = list(request.system)
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "developer" or (message.role == "system" and not w.keep):
            if turns:
                w.lose("messages.system")
            system.extend(b for b in message.content if isinstance(b, Text))
            continue
        blocks = w.blocks(message.content)
        if w.keep:
            turn = {"role": message.role, "content": _compact(blocks)}
            w.extra(turn, message.extra, "messages.")
            turns.append(turn)
            continue
        w.extra({}, message.extra, "messages.")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": message.role, "content": blocks})
    if not w.keep:
        for turn in turns:
            if turn["role"] == "user":
                turn["content"].sort(key=lambda b: b.get("type") != "tool_result")
            turn["content"] = _compact(turn["content"])
    return turns, system


def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
    out: dict[str, Any] = {"type": choice.mode}
    if choice.mode == "tool":
        out["name"] = choice.name
    if choice.parallel is not None and choice.mode != "none":
        out["disable_parallel_tool_use"] = not choice.parallel
    return out


def _thinking_from_effort(request: ChatRequest, body: dict[str, Any], w: _Writer) -> None:
    """OpenAI ``reasoning_effort`` as a thinking budget, where the API allows thinking.

    Thinking needs temperature 1, top_p >= 0.95, tool_choice auto/none, and a
    signed thinking block before the last assistant tool call -- which a
    conversation from OpenAI never has.  A budget comes out of ``max_tokens``
    the client set (as OpenAI counts reasoning tokens), or is added to a default.
    """
    effort = request.extra.get("reasoning_effort")
    if effort is None or effort == "none":
        return
    w.lose("reasoning_effort")
    budget = _EFFORT_BUDGET.get(effort)
    last_assistant = next((m for m in reversed(request.messages) if m.role == "assistant"), None)
    if (
        budget is None
        or request.temperature not in (None, 1)
        or (request.top_p is not None and request.top_p < 0.95)
        or (request.tool_choice is not None and request.tool_choice.mode in ("any", "tool"))
        or (last_assistant is not None and any(isinstance(b, ToolCall) for b in last_assistant.content))
    ):
        return
    if request.max_tokens is None:
        body["max_tokens"] += budget
    else:
        budget = min(budget, body["max_tokens"] // 2)
        if budget < _MIN_THINKING_BUDGET:
            return
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _openai_extras(request: ChatRequest, body: dict[str, Any], w: _Writer) -> None:
    """OpenAI-only request fields: refused, approximated, or named lossy."""
    n = request.extra.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("n", "the Anthropic Messages API supports only n=1")
    _thinking_from_effort(request, body, w)
    for key, value in request.extra.items():
        if key not in _SILENT_OPENAI and key != "reasoning_effort" and value is not None and value is not False:
            w.lose(key)


def request_to_wire(request: ChatRequest, default_max_tokens: int | None) -> tuple[dict[str, Any], list[str]]:
    w = _Writer(request.source, for_request=True)
    messages, system = _messages(request, w)
    max_tokens = request.max_tokens
    if max_tokens is None:
        max_tokens = _FALLBACK_MAX_TOKENS if default_max_tokens is None else default_max_tokens
    body: dict[str, Any] = {"model": request.model, "max_tokens": max_tokens, "messages": messages}
    system_wire = w.content(system)
    if system_wire:
        body["system"] = system_wire
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1)
        if request.temperature > 1:
            w.lose("temperature")
    if request.top_p is not None:
        body["top_p"] = request.top_p
    tools = [t for t in map(w.tool, request.tools) if t is not None]
    if tools:
        body["tools"] = tools
    if request.tool_choice is not None and (tools or w.keep):
        body["tool_choice"] = _tool_choice(request.tool_choice)
    metadata = dict(request.extra.get("metadata") or {}) if w.keep else {}
    if request.user is not None:
        metadata["user_id"] = request.user
    if metadata:
        body["metadata"] = metadata
    if request.stream:
        body["stream"] = True
    if w.keep:
        w.extra(body, request.extra, "")
    else:
        _openai_extras(request, body, w)
    return body, list(w.lossy)


def response_to_wire(response: ChatResponse, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
    """A complete ``Message``.  From OpenAI, token breakdowns (``prompt_tokens_details``...)
    are not reported lossy: the totals they break down are carried."""
    w = _Writer(response.source, for_request=False)
    body: dict[str, Any] = {
        "id": response.id,
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": w.blocks(response.content),
        "stop_reason": STOP_TO_WIRE.get(response.stop_reason or "end_turn", "end_turn"),
        "stop_sequence": response.stop_sequence,
        "usage": usage_to_wire(response.usage, keep_extra=w.keep),
    }
    if not w.report:
        w.extra(body, response.extra, "")
        return body, list(w.lossy)
    if response.stop_reason == "end_turn" and request.stop:
        w.lose("stop_sequence")  # OpenAI's "stop" does not say whether a sequence matched
    for key, value in response.extra.items():
        if key in _OPENAI_NESTED_EXTRAS and isinstance(value, Mapping):
            w.extra({}, value, "")
        elif key not in _OPENAI_EMPTY_EXTRAS:
            w.extra({}, {key: value}, "")
    return body, list(w.lossy)


def response_from_wire(body: Any) -> ChatResponse:
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, list) or body.get("type", "message") != "message":
        raise ValueError("not an Anthropic Messages response: expected an object of type 'message' with a content list")
    try:
        return ChatResponse(
            id=body.get("id") or new_id("msg"),
            model=body.get("model") or "",
            content=[block_from_wire(b) for b in content],
            stop_reason=stop_from_wire(body.get("stop_reason")),
            stop_sequence=body.get("stop_sequence"),
            usage=usage_from_wire(body.get("usage") or {}),
            source="anthropic",
            extra=_rest(body, _RESPONSE_KEYS),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed Anthropic Messages response: {exc!r}") from exc


class AnthropicCodec(Codec):
    """``POST /v1/messages``: see ``formats.base.Codec`` for the contract of each method."""

    name = "anthropic"

    def parse_request(self, body: bytes) -> ChatRequest:
        data = load_json_object(body)
        problem = first_problem(REQUEST_SCHEMA, data)
        if problem is not None:
            raise invalid_from(ValidationError(problem))
        return request_from_wire(data)

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

    def error_body(self, error: RouterError) -> dict[str, Any]:
        error_type = error.error_type or _ERROR_TYPES.get(error.status, "api_error")
        return {"type": "error", "error": {"type": error_type, "message": error.message}}

    def parse_error(self, body: bytes) -> tuple[str | None, str]:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            error_type = error.get("type")
            return (error_type if isinstance(error_type, str) else None), error["message"]
        if isinstance(error, str):
            return None, error
        return None, short(body) or "empty error body"


# The stream codec builds on this module's mappings, so it is imported last.
from .stream import MESSAGE_STOP, AnthropicStreamDecoder, AnthropicStreamEncoder  # noqa: E402
