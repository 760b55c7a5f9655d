"""Responses API items as the store takes and gives them.

A request's ``input`` is a string or a list of items; the store keeps the list
exactly as the client sent it (what is sent upstream again must not gain ids
the upstream never issued).  Only ``input_items`` shows the items as the API
lists them: each with a ``type`` and an ``id``, a message's text as content
parts.  An item the client sent without an id gets one derived from its
response and its position, so the same item has the same id on every page.
"""

from __future__ import annotations

from typing import Any

ID_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "reasoning": "rs",
}


def as_input_items(value: Any) -> list[Any]:
    """A request's ``input`` as a list of items: a string is one user message.
    Anything else is returned as it is, for the request's validation to judge."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def listed(item: Any, response_id: str, position: int) -> Any:
    """``item``, the ``position``-th input of ``response_id``, as
    ``GET /v1/responses/{id}/input_items`` shows it."""
    if not isinstance(item, dict):
        return item
    shown = dict(item)
    if "type" not in shown and "role" in shown:
        shown["type"] = "message"
    if shown.get("type") == "message":
        content = shown.get("content")
        if isinstance(content, str):
            part = "output_text" if shown.get("role") == "assistant" else "input_text"
            shown["content"] = [{"type": part, "text": content, **({"annotations": []} if part == "output_text" else {})}]
        shown.setdefault("status", "completed")
    if "id" not in shown:
        prefix = ID_PREFIX.get(str(shown.get("type")), "item")
        shown["id"] = f"{prefix}_{response_id.removeprefix('resp_')}_{position}"
    return shown
