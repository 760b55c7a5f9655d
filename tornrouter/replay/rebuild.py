"""A logged request made a request again (``rebuild``).

A log entry holds the messages (as ``Message.to_json`` writes them, or, under
``log.bodies: none`` or ``hash``, only their shape: each block's type and
length) and, in its ``request`` field, the other fields routing reads
(``request_shape``).  From a shape, each block is a stand-in of the same type
and length (placeholder text), the tool calls keep their names: what the
length- and shape-based classifiers read is as it was, so they decide as they
did; a keyword classifier, which reads the text, cannot.  Those requests are
marked ``from_shape``.  What no log keeps (tool schemas, sampling settings
but the temperature, the client's API headers) is not rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..canonical import Block, ChatRequest, File, Image, Message, Opaque, Reasoning, Text, Thinking, Tool, ToolCall, ToolChoice, ToolResult

# The endpoints whose requests can be replayed, and the API (format) of each.
ENDPOINTS = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic", "/v1/responses": "responses"}
PLACEHOLDER = "x"
INLINE_DATA = "<"  # an inline image or file is logged as "<N base64 chars>": its shape, not its bytes


class NotReplayable(Exception):
    """An entry that holds no request to rebuild (it failed before it was read,
    or its endpoint is not one of the three APIs)."""


@dataclass(slots=True)
class Rebuilt:
    request: ChatRequest
    endpoint: str
    from_shape: bool  # routed from the messages' shape only (log.bodies none or hash)
    sendable: bool  # whole enough to send again: full bodies, no inline data left out


def rebuild(entry: dict[str, Any]) -> Rebuilt:
    endpoint = entry.get("endpoint")
    source = ENDPOINTS.get(endpoint or "")
    if source is None:
        raise NotReplayable(f"endpoint {endpoint} is not replayed")
    model = entry.get("requested_model")
    if not isinstance(model, str):
        raise NotReplayable("no request in the entry (it failed before the body was read)")
    from_shape = entry.get("bodies", "full") != "full"
    whole = _Whole()
    request = ChatRequest(
        model=model,
        source=source,  # type: ignore[arg-type]
        messages=[_message(m, whole) for m in entry.get("messages") or []],
        system=_system(entry.get("system")),
        stream=bool(entry.get("stream")),
    )
    shape = entry.get("request") or {}
    request.max_tokens = shape.get("max_tokens")
    request.temperature = shape.get("temperature")
    hosted = shape.get("hosted_tools") or {}
    for name in shape.get("tools") or []:
        builtin = hosted.get(name)
        request.tools.append(Tool(name, parameters=None if builtin else {"type": "object"}, builtin=builtin))
    if shape.get("tool_choice"):
        request.tool_choice = ToolChoice(shape["tool_choice"])
    if shape.get("reasoning"):
        request.reasoning = Reasoning(**shape["reasoning"])
    if shape.get("web_search") and not any(tool.web_search for tool in request.tools):
        request.web_search = {}
    return Rebuilt(request, endpoint, from_shape, not from_shape and whole.yes)


class _Whole:
    """Whether every block came back whole (no inline data left out)."""

    def __init__(self) -> None:
        self.yes = True


def _system(system: Any) -> list[Text]:
    if isinstance(system, str):
        return [Text(system)]
    if isinstance(system, dict):  # {"chars": N}
        return [Text(PLACEHOLDER * int(system.get("chars") or 0))]
    return []


def _message(message: dict[str, Any], whole: _Whole) -> Message:
    return Message(message.get("role", "user"), [_block(b, whole, i) for i, b in enumerate(message.get("content") or [])],
                   extra=message.get("extra") or {})


def _block(block: dict[str, Any], whole: _Whole, index: int) -> Block:
    """A logged block as it was, or (a shape: ``chars`` and no content) a
    stand-in of its type and length."""
    kind = block.get("type")
    extra = block.get("extra") or {}
    if "chars" in block:
        return _stand_in(kind, int(block.get("chars") or 0), block, index)
    if kind == "text":
        return Text(block.get("text", ""), extra, bool(block.get("refusal")))
    if kind in ("image", "file"):
        data = block.get("data")
        if isinstance(data, str) and data.startswith(INLINE_DATA):
            whole.yes = False
            data = PLACEHOLDER
        if kind == "image":
            return Image(block.get("url"), block.get("media_type"), data, extra, block.get("detail"))
        return File(data, block.get("media_type"), block.get("url"), block.get("file_id"), block.get("filename"), extra)
    if kind in ("tool_call", "tool_use"):
        return ToolCall(block.get("id", f"call_{index}"), block.get("name", ""), block.get("input") or {},
                        block.get("raw_arguments"), extra)
    if kind == "tool_result":
        return ToolResult(block.get("tool_call_id", f"call_{index}"), [_block(b, whole, i) for i, b in enumerate(block.get("content") or [])],
                          bool(block.get("is_error")), extra)
    if kind == "thinking":
        return Thinking(block.get("thinking", ""), block.get("signature"), block.get("redacted"), extra)
    if kind == "opaque":
        return Opaque(block.get("format", "openai"), block.get("data") or {})
    whole.yes = False
    return Text(PLACEHOLDER * len(str(block)))


def _stand_in(kind: str | None, chars: int, block: dict[str, Any], index: int) -> Block:
    """A block of type ``kind`` whose length (as ``estimate_input_tokens``
    counts it) is ``chars``."""
    text = PLACEHOLDER * chars
    if kind == "image":
        return Image(url="https://placeholder.invalid/image")
    if kind == "file":
        return File(data=text, media_type="application/pdf")
    if kind in ("tool_call", "tool_use"):
        return ToolCall(f"call_{index}", block.get("name") or "tool", {PLACEHOLDER: PLACEHOLDER * max(0, chars - 9)})
    if kind == "tool_result":
        return ToolResult(f"call_{index}", [Text(text)])
    if kind == "thinking":
        return Thinking(text)
    return Text(text)
