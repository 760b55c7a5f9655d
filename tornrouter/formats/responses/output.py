"""Canonical -> the Responses API's ``response`` object for a client: its output
items (also written one by one by the stream encoder), its status, usage, and
the request's fields it repeats; with the names of what it cannot carry."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ...canonical import Block, ChatRequest, ChatResponse, Opaque, Text, Thinking, ToolCall, new_id
from ..lossy import Carry
from .encode import arguments_of, echo
from .shapes import ITEM, MARKS, STOP_TO_INCOMPLETE, response_id, summary_to_wire, usage_to_wire


class _Writer(Carry):
    """What a response's encoding keeps of the extras, or names lost (``formats.lossy``)."""

    __slots__ = ()
    target = "responses"


def status_of(response: ChatResponse, w: Carry) -> tuple[str, dict[str, Any] | None]:
    """The response's ``status`` and ``incomplete_details``, from its stop reason."""
    stop = response.stop_reason or "end_turn"
    if stop == "pause_turn":
        w.lose("pause_turn")
    if response.stop_sequence is not None:
        w.lose("stop_sequence")  # the API does not say which sequence matched
    reason = STOP_TO_INCOMPLETE.get(stop)
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def text_part_out(block: Text, w: Carry) -> dict[str, Any]:
    """An output message's content part."""
    if block.refusal:
        out: dict[str, Any] = {"type": "refusal", "refusal": block.text}
    else:
        out = {"type": "output_text", "annotations": [], "logprobs": [], "text": block.text}
        if w.keep:
            del out["annotations"], out["logprobs"]  # as the upstream sent them, below
    if block.extra:
        w.extra(out, block.extra, "text.", MARKS)
    if not block.refusal:
        out.setdefault("annotations", [])
    return out


def message_item(mark: Mapping[str, Any] | None, status: str) -> dict[str, Any]:
    """An output message item without its content."""
    item = {"id": new_id("msg"), "type": "message", "status": status, "content": [], "role": "assistant"}
    if mark:
        item.update(mark)
    return item


def function_call_item(block: ToolCall, w: Carry, status: str = "completed", arguments: str | None = None) -> dict[str, Any]:
    item = {
        "id": new_id("fc"), "type": "function_call", "status": status,
        "arguments": arguments_of(block, w.keep) if arguments is None else arguments,
        "call_id": block.id, "name": block.name,
    }
    if w.keep:
        item.update(others_than_marks(block.extra))
    elif block.extra:
        w.extra({}, block.extra, "tool_call.")
    return item


def reasoning_item(block: Thinking, w: Carry, summary: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """A reasoning item; None (lossy) for a redacted one, whose text nobody may read."""
    if block.redacted is not None:
        w.lose("thinking")
        return None
    item: dict[str, Any] = {"id": new_id("rs"), "type": "reasoning", "summary": summary_to_wire(block.thinking) if summary is None else summary}
    if w.keep:
        item.update(others_than_marks(block.extra))
    else:
        if block.signature:
            w.lose("thinking.signature")  # Anthropic's: its reasoning cannot be sent back
        w.extra({}, block.extra, "thinking.")
    return item


def others_than_marks(extra: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in extra.items() if k not in MARKS}


def output_to_wire(content: list[Block], status: str, w: Carry) -> list[dict[str, Any]]:
    """A response's content as output items; the last message is ``incomplete``
    when the response is."""
    output: list[dict[str, Any]] = []
    message: dict[str, Any] | None = None
    for block in content:
        if isinstance(block, Text):
            mark = block.extra.get(ITEM) if w.keep else None
            if message is None or mark is not None:
                message = message_item(mark, "completed")
                output.append(message)
            message["content"].append(text_part_out(block, w))
            continue
        message = None
        if isinstance(block, ToolCall):
            output.append(function_call_item(block, w))
        elif isinstance(block, Thinking):
            item = reasoning_item(block, w)
            if item is not None:
                output.append(item)
        elif isinstance(block, Opaque) and block.format == "responses":
            output.append(block.data)
        else:
            w.lose(f"content.{block.data.get('type') if isinstance(block, Opaque) else block.type}")
    if status == "incomplete":
        last = next((item for item in reversed(output) if item.get("type") == "message"), None)
        if last is not None:
            last["status"] = "incomplete"
    return output


def response_to_wire(response: ChatResponse, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
    w = _Writer(response.source)
    status, incomplete = status_of(response, w)
    body: dict[str, Any] = {
        "id": response_id(response.id),
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": incomplete,
        "model": response.model,
        "output": output_to_wire(response.content, status, w),
        "usage": usage_to_wire(response.usage, keep_extra=w.keep),
    }
    if w.keep:
        body.update(response.extra)  # the upstream's own account of the request comes first
    elif w.foreign is not None:
        w.lose_all(w.foreign.response(response.extra))
        w.extra({}, {k: v for k, v in response.usage.extra.items() if not k.endswith("_details")}, "usage.")
    for key, value in echo(request).items():
        body.setdefault(key, value)
    return body, list(w.lossy)
