"""``log.bodies``: how much of the conversation a request log entry keeps.

``full`` keeps the text (the entry as ``request_log`` builds it); ``none``
keeps only its shape (each block's type and length), so the log can be kept
where the conversations may not; ``hash`` adds each block's SHA-256, so that
identical prompts and answers can still be found and counted without being
read.  Token figures, usage, tags and routing are not content and stay.

A block's length and hash are of its text (text, thinking) or of its JSON
(a tool call's arguments, a tool result's content, an opaque block); an
image or a file is measured by its data (base64) or its URL.  A tool call's
``name`` is kept: it says which tool, not what was asked of it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from .canonical import File, Image, Text, Thinking, ToolCall, ToolResult

if TYPE_CHECKING:
    from .canonical import Block, ChatRequest, ChatResponse, Message

BODIES = ("full", "none", "hash")
# The canonical block type each kind of block is logged as; a tool call by the
# name the log's readers know it under.
TYPE_NAMES = {ToolCall: "tool_use"}


def block_payload(block: Block) -> str:
    """The text a block's length and hash are taken of."""
    if isinstance(block, Text):
        return block.text
    if isinstance(block, Thinking):
        return block.thinking or block.redacted or ""
    if isinstance(block, ToolCall):
        if block.raw_arguments is not None:
            return block.raw_arguments
        return orjson.dumps(block.input, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(block, ToolResult):
        return orjson.dumps([b.to_json() for b in block.content], option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(block, (Image, File)):
        return block.data or block.url or getattr(block, "file_id", None) or ""
    return orjson.dumps(block.to_json(), option=orjson.OPT_SORT_KEYS, default=str).decode()


def measured(text: str, hashed: bool) -> dict[str, Any]:
    """``{"chars": N}``, and the text's ``sha256`` when ``hashed``."""
    out: dict[str, Any] = {"chars": len(text)}
    if hashed:
        out["sha256"] = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return out


def block_shape(block: Block, hashed: bool) -> dict[str, Any]:
    shape = {"type": TYPE_NAMES.get(type(block), block.type), **measured(block_payload(block), hashed)}
    if isinstance(block, ToolCall):
        shape["name"] = block.name
    return shape


def message_shape(message: Message, hashed: bool) -> dict[str, Any]:
    return {"role": message.role, "content": [block_shape(b, hashed) for b in message.content]}


def system_shape(request: ChatRequest, hashed: bool) -> dict[str, Any] | None:
    text = request.system_text()
    return measured(text, hashed) if text else None


def response_shape(response: ChatResponse, hashed: bool) -> dict[str, Any]:
    return {
        "content": [block_shape(b, hashed) for b in response.content],
        "stop_reason": response.stop_reason,
        "model": response.model,
    }


def changes_shape(steps: list[dict[str, Any]], hashed: bool) -> list[dict[str, Any]]:
    """The plugins' changes (``plugin_changes``) with each before and after
    measured, not kept: which plugin, hook and path changed stays."""
    return [
        {**step, "changes": [
            {**change, **{side: measured(_value_text(change[side]), hashed) for side in ("before", "after") if side in change}}
            for change in step["changes"]
        ]}
        for step in steps
    ]


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


# The entry fields that hold content, each rebuilt as its shape from the record's canonical objects.
SHAPED_FIELDS = {
    "system": lambda r, hashed: system_shape(r.request, hashed) if r.request else None,
    "messages": lambda r, hashed: [message_shape(m, hashed) for m in r.request.messages] if r.request else [],
    "response": lambda r, hashed: response_shape(r.response, hashed) if r.response else None,
    "plugin_changes": lambda r, hashed: changes_shape(r.plugin_changes, hashed) if r.plugin_changes else None,
}
