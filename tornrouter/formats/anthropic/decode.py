"""Anthropic wire -> canonical: requests (validated before) and responses (checked after)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from ...canonical import (
    Block,
    ChatRequest,
    ChatResponse,
    File,
    Image,
    Message,
    Opaque,
    Reasoning,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    new_id,
)
from ..base import others
from .shapes import (
    BASE64_SOURCE_KEYS,
    CUSTOM_TOOL_KEYS,
    DOCUMENT_KEYS,
    IMAGE_KEYS,
    MESSAGE_KEYS,
    REASONING_MODES,
    REDACTED_KEYS,
    REQUEST_KEYS,
    RESPONSE_KEYS,
    stop_from_wire,
    TEXT_KEYS,
    THINKING_ENABLED_KEYS,
    THINKING_KEYS,
    THINKING_TYPE_KEY,
    TOOL_RESULT_KEYS,
    TOOL_USE_KEYS,
    URL_SOURCE_KEYS,
    usage_from_wire,
    USER_ID_KEY,
)

def _text(raw: dict[str, Any]) -> Block:
    return Text(raw["text"], others(raw, TEXT_KEYS))


def _image(raw: dict[str, Any]) -> Block:
    """An image the other API can show too; any other source (``file``...) stays opaque."""
    source = raw["source"]
    kind = source.get("type")
    if kind == "base64" and source.keys() <= BASE64_SOURCE_KEYS:
        return Image(media_type=source["media_type"], data=source["data"], extra=others(raw, IMAGE_KEYS))
    if kind == "url" and source.keys() <= URL_SOURCE_KEYS:
        return Image(url=source["url"], extra=others(raw, IMAGE_KEYS))
    return Opaque("anthropic", raw)


def _document(raw: dict[str, Any]) -> Block:
    """A document by base64 data or URL (its ``title`` the file's name); other
    sources (plain text, content, a file id of this API's) stay opaque."""
    source = raw["source"]
    kind = source.get("type")
    extra = others(raw, DOCUMENT_KEYS)
    if kind == "base64" and source.keys() <= BASE64_SOURCE_KEYS:
        return File(data=source["data"], media_type=source["media_type"], filename=raw.get("title"), extra=extra)
    if kind == "url" and source.keys() <= URL_SOURCE_KEYS:
        return File(url=source["url"], filename=raw.get("title"), extra=extra)
    return Opaque("anthropic", raw)


def _tool_use(raw: dict[str, Any]) -> Block:
    if not isinstance(raw["input"], dict):
        return Opaque("anthropic", raw)
    return ToolCall(raw["id"], raw["name"], raw["input"], extra=others(raw, TOOL_USE_KEYS))


def _tool_result(raw: dict[str, Any]) -> Block:
    content = raw.get("content")
    return ToolResult(
        raw["tool_use_id"],
        [] if content is None else content_from_wire(content),
        bool(raw.get("is_error")),
        others(raw, TOOL_RESULT_KEYS),
    )


def _thinking(raw: dict[str, Any]) -> Block:
    return Thinking(raw["thinking"], raw.get("signature"), extra=others(raw, THINKING_KEYS))


def _redacted(raw: dict[str, Any]) -> Block:
    return Thinking(redacted=raw["data"], extra=others(raw, REDACTED_KEYS))


_DECODERS = MappingProxyType(
    {
        "text": _text,
        "image": _image,
        "document": _document,
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
        return Tool(raw["name"], raw.get("description"), raw["input_schema"], extra=others(raw, CUSTOM_TOOL_KEYS))
    return Tool(raw.get("name") or kind, builtin=kind, extra=raw)


def _tool_choice_from_wire(raw: dict[str, Any] | None) -> ToolChoice | None:
    if raw is None:
        return None
    disable = raw.get("disable_parallel_tool_use")
    return ToolChoice(raw["type"], raw.get("name"), None if disable is None else not disable)


def _message_from_wire(raw: dict[str, Any]) -> Message:
    return Message(raw["role"], content_from_wire(raw["content"]), others(raw, MESSAGE_KEYS))


def _reasoning_from_wire(extra: dict[str, Any]) -> Reasoning | None:
    """``thinking`` of a type the canonical model names, taken out of ``extra``;
    a null one, or one of a type it does not know, stays there to be relayed as sent."""
    thinking = extra.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") not in REASONING_MODES:
        return None
    del extra["thinking"]
    mode = thinking["type"]
    if mode == "enabled":
        return Reasoning(mode, budget_tokens=thinking["budget_tokens"], extra=others(thinking, THINKING_ENABLED_KEYS))
    return Reasoning(mode, extra=others(thinking, THINKING_TYPE_KEY))


def request_from_wire(data: dict[str, Any]) -> ChatRequest:
    """A validated request body as a canonical request."""
    metadata = data.get("metadata") or {}
    extra = others(data, REQUEST_KEYS)
    reasoning = _reasoning_from_wire(extra)
    other_metadata = others(metadata, USER_ID_KEY)
    if other_metadata:
        extra["metadata"] = other_metadata
    system = data.get("system")
    return ChatRequest(
        model=data["model"],
        source="anthropic",
        messages=[_message_from_wire(m) for m in data["messages"]],
        system=[] if system is None else [b for b in content_from_wire(system) if isinstance(b, Text)],
        max_tokens=data.get("max_tokens"),  # absent only in a count_tokens body
        temperature=data.get("temperature"),
        top_p=data.get("top_p"),
        stop=list(data.get("stop_sequences") or ()),
        stream=bool(data.get("stream")),
        tools=[_tool_from_wire(t) for t in data.get("tools") or ()],
        tool_choice=_tool_choice_from_wire(data.get("tool_choice")),
        user=metadata.get("user_id"),
        reasoning=reasoning,
        extra=extra,
    )


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
            extra=others(body, RESPONSE_KEYS),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed Anthropic Messages response: {exc!r}") from exc
