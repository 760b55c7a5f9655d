"""Responses wire -> canonical: requests (validated before) and responses (checked after)."""

from __future__ import annotations

import json
from typing import Any

from ...canonical import (
    Block,
    ChatRequest,
    ChatResponse,
    Message,
    Opaque,
    Reasoning,
    StopReason,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    new_id,
)
from ...errors import InvalidRequest
from ..base import file_from_data, others
from ..openai.decode import image_from_url
from ..openai.shapes import MODE_FROM_WIRE
from .shapes import (
    ARGUMENTS,
    EFFORT_KEY,
    FILE_PART_KEYS,
    FUNCTION_CALL_KEYS,
    FUNCTION_OUTPUT_KEYS,
    FUNCTION_TOOL_KEYS,
    IMAGE_PART_KEYS,
    INCOMPLETE_TO_STOP,
    ITEM,
    OUTPUT_ITEM_KEYS,
    REASONING_KEYS,
    REFUSAL_PART_KEYS,
    REQUEST_KEYS,
    RESPONSE_KEYS,
    ROLE_CONTENT_KEYS,
    STRING,
    TEXT_PART,
    TEXT_PART_KEYS,
    summary_to_wire,
    usage_from_wire,
)

_INSTRUCTION_ROLES = frozenset({"system", "developer"})
_CONTENT_KEY = frozenset({"content"})


# --- blocks -------------------------------------------------------------------------------


def _text(part: dict[str, Any], role: str) -> Text:
    """A text part; its ``type`` is kept only when it is not the role's usual one."""
    extra = others(part, TEXT_PART_KEYS)
    if part["type"] != TEXT_PART[role]:
        extra["type"] = part["type"]
    return Text(part["text"], extra)


def _part(part: dict[str, Any], role: str) -> Block:
    kind = part["type"]
    if kind in ("input_text", "output_text"):
        return _text(part, role)
    if kind == "refusal":
        return Text(part["refusal"], others(part, REFUSAL_PART_KEYS), refusal=True)
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return image_from_url(part["image_url"], part.get("detail"), others(part, IMAGE_PART_KEYS))
    if kind == "input_file":
        return file_from_data(
            part.get("file_data"), url=part.get("file_url"), file_id=part.get("file_id"), filename=part.get("filename"),
            extra=others(part, FILE_PART_KEYS),
        )
    return Opaque("responses", part)  # an image by file id, audio: OpenAI's own


def content_from_wire(content: str | list[dict[str, Any]], role: str) -> list[Block]:
    """A message's content; a string is one text block marked as sent so."""
    if isinstance(content, str):
        return [Text(content, {STRING: True})]
    return [_part(p, role) for p in content]


def tool_call_from_wire(item: dict[str, Any]) -> ToolCall:
    """A ``function_call`` item.  Arguments that parse as an object become the
    call's input, and are kept as sent (``ARGUMENTS``) so that a relay sends
    the same bytes (a prompt cache hit depends on them)."""
    arguments = item["arguments"]
    extra = others(item, FUNCTION_CALL_KEYS)
    try:
        parsed = json.loads(arguments) if arguments else {}
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        extra[ARGUMENTS] = arguments
        return ToolCall(item["call_id"], item["name"], parsed, extra=extra)
    return ToolCall(item["call_id"], item["name"], raw_arguments=arguments, extra=extra)


def thinking_from_wire(item: dict[str, Any]) -> Thinking:
    """A ``reasoning`` item: its summary texts, one paragraph each; the summary
    itself is kept only when they do not say it all (``extra["summary"]``)."""
    summary = item.get("summary") or []
    texts = [part.get("text") or "" for part in summary]
    thinking = Thinking("\n\n".join(texts), extra=others(item, REASONING_KEYS))
    if summary != summary_to_wire(thinking.thinking):
        thinking.extra["summary"] = summary
    return thinking


def _output_of(item: dict[str, Any]) -> list[Block]:
    output = item["output"]
    if isinstance(output, str):
        return [Text(output)]
    return [_part(p, "user") for p in output]


# --- the input: instructions, turns ---------------------------------------------------------


class _Turns:
    """Input items -> canonical turns.  The items of one assistant turn
    (messages, reasoning, function calls) form one assistant ``Message``, the
    first block of each message item marked with the item's fields
    (``ITEM``); consecutive tool outputs form one user ``Message``."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.side: str | None = None  # "assistant" or "results": what the last message collects

    def turn(self, side: str) -> Message:
        if self.side != side:
            self.messages.append(Message("assistant" if side == "assistant" else "user"))
            self.side = side
        return self.messages[-1]

    def add(self, item: dict[str, Any]) -> None:
        kind = item.get("type", "message")
        if kind == "message":
            role = item["role"]
            blocks = content_from_wire(item["content"], role)
            if role != "assistant":
                self.messages.append(Message(role, blocks, others(item, ROLE_CONTENT_KEYS)))
                self.side = None
                return
            if not blocks or not isinstance(blocks[0], Text):  # the mark needs a text to sit on
                blocks.insert(0, Text(""))
            blocks[0].extra[ITEM] = others(item, ROLE_CONTENT_KEYS)
            self.turn("assistant").content.extend(blocks)
        elif kind == "function_call":
            self.turn("assistant").content.append(tool_call_from_wire(item))
        elif kind == "reasoning":
            self.turn("assistant").content.append(thinking_from_wire(item))
        elif kind == "function_call_output":
            result = ToolResult(item["call_id"], _output_of(item), extra=others(item, FUNCTION_OUTPUT_KEYS))
            self.turn("results").content.append(result)
        elif kind.endswith("_output"):  # the output of a hosted or custom tool's call
            self.turn("results").content.append(Opaque("responses", item))
        elif kind == "item_reference":  # an item OpenAI stored: it stays where it stands
            (self.messages[-1] if self.messages else self.turn("results")).content.append(Opaque("responses", item))
        else:  # a hosted or custom tool's call, a compaction...: the model's side
            self.turn("assistant").content.append(Opaque("responses", item))


def _input_from_wire(data: dict[str, Any]) -> tuple[list[Text], list[Message]]:
    """``instructions`` and the leading system or developer messages as the
    system text (each message's first text marked with its fields), the rest as turns."""
    system: list[Text] = []
    if data.get("instructions") is not None:
        system.append(Text(data["instructions"]))
    items = data.get("input")
    if items is None:
        return system, []
    if isinstance(items, str):
        return system, [Message("user", [Text(items, {STRING: True})])]
    start = 0
    while start < len(items) and items[start].get("type", "message") == "message" and items[start]["role"] in _INSTRUCTION_ROLES:
        item = items[start]
        texts = content_from_wire(item["content"], item["role"])
        if not all(isinstance(t, Text) for t in texts) or not texts:
            break  # an instruction with an image, say: a turn of its own
        texts[0].extra[ITEM] = others(item, _CONTENT_KEY)
        system.extend(texts)  # type: ignore[arg-type]
        start += 1
    turns = _Turns()
    for item in items[start:]:
        turns.add(item)
    return system, turns.messages


# --- the request -------------------------------------------------------------------------------


def _tool_from_wire(raw: dict[str, Any]) -> Tool:
    kind = raw["type"]
    if kind == "function":
        extra = others(raw, FUNCTION_TOOL_KEYS)
        for key in ("parameters", "strict"):  # null as sent: written back so
            if key in raw and raw[key] is None:
                extra[key] = None
        return Tool(raw["name"], raw.get("description"), raw.get("parameters"), extra=extra, strict=raw.get("strict"))
    # Hosted tools (web_search, file_search, mcp...) and custom ones, relayed whole.
    return Tool(raw.get("name") or kind, builtin=kind, extra=raw)


def _tool_choice_from_wire(choice: Any, parallel: bool | None, extra: dict[str, Any]) -> ToolChoice | None:
    if choice is None:
        return None if parallel is None else ToolChoice("auto", parallel=parallel)
    if isinstance(choice, str):
        return ToolChoice(MODE_FROM_WIRE[choice], parallel=parallel)  # type: ignore[arg-type]
    if choice["type"] in ("function", "custom"):
        return ToolChoice("tool", choice["name"], parallel)
    # allowed_tools, a hosted tool's type, mcp...: kept as sent, approximated.
    extra["tool_choice"] = choice
    mode = "any" if choice["type"] == "allowed_tools" and choice.get("mode") == "required" else "auto"
    return ToolChoice(mode, parallel=parallel)  # type: ignore[arg-type]


def _reasoning_from_wire(data: dict[str, Any], extra: dict[str, Any]) -> Reasoning | None:
    """``reasoning.effort``; the object's other fields (``summary``) stay in
    ``extra["reasoning"]``, as does a reasoning object without an effort."""
    if "reasoning" not in data:
        return None
    raw = data["reasoning"]
    if not isinstance(raw, dict) or not isinstance(raw.get("effort"), str):
        extra["reasoning"] = raw
        return None
    rest = others(raw, EFFORT_KEY)
    if rest:
        extra["reasoning"] = rest
    effort = raw["effort"]
    return Reasoning("disabled" if effort == "none" else "enabled", effort)


def request_from_wire(data: dict[str, Any]) -> ChatRequest:
    """A validated request body as a ``ChatRequest``; values are shared, not copied."""
    extra = others(data, REQUEST_KEYS)
    if data.get("input") is None and not any(data.get(k) for k in ("previous_response_id", "conversation", "prompt")):
        raise InvalidRequest("input", "Missing data for required field.")
    if isinstance(data.get("input"), str):
        extra["input"] = None  # the mark of an input sent as a string (``encode``)
    system, messages = _input_from_wire(data)
    return ChatRequest(
        model=data["model"],
        source="responses",
        messages=messages,
        system=system,
        max_tokens=data.get("max_output_tokens"),
        temperature=data.get("temperature"),
        top_p=data.get("top_p"),
        stream=bool(data.get("stream")),
        tools=[_tool_from_wire(t) for t in data.get("tools") or ()],
        tool_choice=_tool_choice_from_wire(data.get("tool_choice"), data.get("parallel_tool_calls"), extra),
        user=data.get("user"),
        reasoning=_reasoning_from_wire(data, extra),
        extra=extra,
    )


# --- the response ----------------------------------------------------------------------------------


def output_from_wire(output: list[dict[str, Any]]) -> list[Block]:
    """A response's output items as blocks.  A message's status is the
    response's to say, so only its other fields are its mark."""
    blocks: list[Block] = []
    for item in output:
        kind = item.get("type")
        if kind == "message":
            content = [_part(p, "assistant") for p in item.get("content") or ()]
            if not content or not isinstance(content[0], Text):
                content.insert(0, Text(""))
            content[0].extra[ITEM] = others(item, OUTPUT_ITEM_KEYS)
            blocks.extend(content)
        elif kind == "function_call":
            call = tool_call_from_wire(item)
            call.extra.pop("status", None)
            blocks.append(call)
        elif kind == "reasoning":
            thinking = thinking_from_wire(item)
            thinking.extra.pop("status", None)
            blocks.append(thinking)
        else:
            blocks.append(Opaque("responses", item))
    return blocks


def stop_from_wire(status: str | None, incomplete: Any, blocks: list[Block]) -> StopReason:
    if status == "incomplete":
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return INCOMPLETE_TO_STOP.get(reason, "max_tokens")
    return "tool_use" if any(isinstance(b, ToolCall) for b in blocks) else "end_turn"


def response_from_wire(body: Any) -> ChatResponse:
    if not isinstance(body, dict) or body.get("object", "response") != "response" or not isinstance(body.get("output"), list):
        raise ValueError("not an OpenAI Responses response: expected an object 'response' with an output list")
    if body.get("status") == "failed":
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        raise ValueError(f"the response failed: {error.get('message') or 'no message'}")
    try:
        blocks = output_from_wire(body["output"])
        return ChatResponse(
            id=body.get("id") or new_id("resp"),
            model=body.get("model") or "",
            content=blocks,
            stop_reason=stop_from_wire(body.get("status"), body.get("incomplete_details"), blocks),
            usage=usage_from_wire(body.get("usage") or {}),
            source="responses",
            extra=others(body, RESPONSE_KEYS),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed OpenAI Responses response: {exc!r}") from exc
