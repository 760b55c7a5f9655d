"""Canonical -> Responses wire: requests for an upstream, with the names of what
the API cannot carry; ``echo``, the request's fields a response repeats (the
response itself: ``output``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ...canonical import (
    Block,
    ChatRequest,
    File,
    Image,
    Message,
    Opaque,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
)
from ..base import file_data, hosted_settings
from ..openai.encode import ToolChoiceWriter, image_url_of
from .shapes import (
    ARGUMENTS,
    ITEM,
    MARKS,
    STRING,
    TEXT_PART,
    summary_to_wire,
)

# Content part types; an opaque block of another type is an input item of its own.
_PART_TYPES = frozenset({"input_text", "input_image", "input_file", "input_audio", "output_text", "refusal"})
# Request extras written by hand, and ``previous_response_id``, which the router
# resolves from its own store (``handlers.responses``): the upstream gets the
# whole conversation in ``input``, never an id it did not issue.
_REQUEST_MARKS = frozenset({"input", "reasoning", "tool_choice", "previous_response_id"})
_SUMMARY = frozenset({"summary"})


def arguments_of(call: ToolCall, keep: bool) -> str:
    """A call's arguments as text: as the upstream sent them when they still
    say what its input says, else the input written out."""
    if call.raw_arguments is not None:
        return call.raw_arguments
    sent = call.extra.get(ARGUMENTS) if keep else None
    if isinstance(sent, str):
        try:
            if json.loads(sent) == call.input:
                return sent
        except ValueError:
            pass
    return json.dumps(call.input, ensure_ascii=False)


class _Writer(ToolChoiceWriter):
    """Canonical -> wire for one request or response, collecting what is lost (``formats.lossy``)."""

    __slots__ = ()
    target = "responses"

    @staticmethod
    def choice_wire(kind: str, name: str) -> dict[str, Any]:
        return {"type": kind, "name": name}

    @staticmethod
    def tool_name(tool: Mapping[str, Any]) -> str | None:
        return tool.get("name")

    # --- parts

    def text_part(self, block: Text, role: str) -> dict[str, Any]:
        if block.refusal and role == "assistant" and self.keep:
            out = {"type": "refusal", "refusal": block.text}
        else:
            kind = block.extra.get("type", TEXT_PART[role]) if self.keep else TEXT_PART[role]
            out = {"type": kind, "text": block.text}
        if block.extra:
            self.extra(out, block.extra, "text.", MARKS)
        return out

    def image_part(self, block: Image) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "input_image", "image_url": image_url_of(block)}
        detail = block.detail if self.keep else block.detail or "auto"  # the API wants one
        if detail is not None:
            out["detail"] = detail
        self.extra(out, block.extra, "image.")
        return out

    def file_part(self, block: File) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "input_file"}
        data = file_data(block)
        for key, value in (("file_data", data), ("file_url", block.url), ("file_id", block.file_id), ("filename", block.filename)):
            if value is not None:
                out[key] = value
        return self.extra(out, block.extra, "file.")

    def content(self, parts: list[dict[str, Any]], first: Block | None) -> str | list[dict[str, Any]]:
        """A message's content: a string when it came as one (or, from another
        API, when it is one plain text), else its parts."""
        if len(parts) == 1 and isinstance(first, Text) and parts[0].get("type") in ("input_text", "output_text"):
            plain = parts[0].keys() == {"type", "text"}
            if (first.extra.get(STRING) is True) if self.keep else plain:
                return parts[0]["text"]
        return parts

    # --- items

    def system(self, texts: list[Text]) -> tuple[str | None, list[dict[str, Any]]]:
        """``instructions`` and the leading instruction messages: each text
        marked with an item's fields starts that message (see ``codec``)."""
        if not self.keep:
            for text in texts:
                self.extra({}, text.extra, "text.")
            return ("\n".join(t.text for t in texts) if texts else None), []
        instructions: list[str] = []
        items: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        first: Text | None = None
        for text in texts:
            mark = text.extra.get(ITEM)
            if mark is not None:
                if first is not None:
                    items[-1]["content"] = self.content(parts, first)
                items.append(dict(mark))
                parts, first = [], text
            if first is None:
                instructions.append(text.text)
            else:
                parts.append(self.text_part(text, items[-1].get("role", "system")))
        if first is not None:
            items[-1]["content"] = self.content(parts, first)
        return ("\n".join(instructions) if instructions else None), items

    def turn(self, message: Message) -> list[dict[str, Any]]:
        if message.role == "assistant":
            return self.assistant(message.content)
        items: list[dict[str, Any]] = []  # tool outputs first, then the message of the rest
        parts: list[dict[str, Any]] = []
        blocks: list[Block] = []  # those the parts came from
        for block in message.content:
            if isinstance(block, ToolResult):
                items.append(self.tool_output(block))
            elif isinstance(block, Opaque) and block.format == "responses" and block.data.get("type") not in _PART_TYPES:
                items.append(block.data)  # a hosted tool's output, an item reference
            else:
                part = self.part(block, message.role)
                if part is not None:
                    parts.append(part)
                    blocks.append(block)
        if parts or not items:
            item = {"role": message.role, "content": self.content(parts, blocks[0] if blocks else None)}
            items.append(self.extra(item, message.extra, "messages."))
        return items

    def part(self, block: Block, role: str) -> dict[str, Any] | None:
        """A content part of a user (or instruction) message or of a tool's output."""
        if isinstance(block, Text):
            return self.text_part(block, role)
        if isinstance(block, Image):
            return self.image_part(block)
        if isinstance(block, File):
            return self.file_part(block)
        return self.unplaced(block)

    def tool_output(self, block: ToolResult) -> dict[str, Any]:
        parts = [p for p in (self.part(item, "user") for item in block.content) if p is not None]
        if block.is_error:
            self.lose("tool_result.is_error")
        plain = all(p.keys() == {"type", "text"} for p in parts) and len(parts) <= 1
        output = (parts[0]["text"] if parts else "") if plain else parts
        out = {"type": "function_call_output", "call_id": block.tool_call_id, "output": output}
        return self.extra(out, block.extra, "tool_result.")

    def assistant(self, blocks: Iterable[Block]) -> list[dict[str, Any]]:
        """An assistant turn as items: each run of texts one message (a mark
        starts another), each call, reasoning or hosted item one item."""
        items: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] | None = None  # those of the message item being filled
        first: Text | None = None

        def close() -> None:
            if parts is not None:
                items[-1]["content"] = self.content(parts, first)

        for block in blocks:
            if isinstance(block, Text):
                mark = block.extra.get(ITEM) if self.keep else None
                if parts is None or mark is not None:
                    close()
                    items.append({**(mark or {}), "role": "assistant"})
                    parts, first = [], block
                parts.append(self.text_part(block, "assistant"))
                continue
            close()
            parts = None
            if isinstance(block, ToolCall):
                items.append(self.function_call(block))
            elif isinstance(block, Thinking) and self.keep:
                items.append(self.reasoning(block))
            else:
                item = self.unplaced(block)
                if item is not None:
                    items.append(item)
        close()
        return items

    def function_call(self, block: ToolCall) -> dict[str, Any]:
        out = {"type": "function_call", "call_id": block.id, "name": block.name, "arguments": arguments_of(block, self.keep)}
        return self.extra(out, block.extra, "tool_call.", MARKS)

    def reasoning(self, block: Thinking) -> dict[str, Any]:
        """A reasoning item as it came (its id, encrypted content...)."""
        summary = block.extra.get("summary")
        out = {"type": "reasoning", "summary": summary if summary is not None else summary_to_wire(block.thinking)}
        return self.extra(out, block.extra, "thinking.", _SUMMARY)

    # --- tools

    def tool(self, tool: Tool) -> dict[str, Any] | None:
        if tool.builtin is not None:
            if self.keep:
                return tool.extra
            if tool.web_search:  # another API's web search: this one has its own
                self.lose_all(hosted_settings(tool))
                return {"type": "web_search"}
            self.lose(f"tools.{tool.builtin}")
            return None
        out: dict[str, Any] = {"type": "function", "name": tool.name}
        if tool.description is not None:
            out["description"] = tool.description
        if tool.parameters is not None or not self.keep:
            out["parameters"] = tool.parameters
        if tool.strict is not None or not self.keep:
            # Strict unless told otherwise, here; not so in the other APIs.
            out["strict"] = bool(tool.strict)
        return self.extra(out, tool.extra, "tools.")


def _web_search_tool(options: Mapping[str, Any]) -> dict[str, Any]:
    """Chat completions' ``web_search_options`` as a ``web_search`` tool."""
    tool: dict[str, Any] = {"type": "web_search"}
    if options.get("search_context_size") is not None:
        tool["search_context_size"] = options["search_context_size"]
    location = options.get("user_location")
    if isinstance(location, Mapping):
        approximate = location.get("approximate")
        tool["user_location"] = {"type": location.get("type", "approximate"), **(approximate if isinstance(approximate, Mapping) else {})}
    return tool


def _input(request: ChatRequest, w: _Writer, leading: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    items = list(leading)
    for message in request.messages:
        items.extend(w.turn(message))
    if w.keep and "input" in request.extra and len(items) == 1:  # it came as a string: so it goes, if it still is one
        only = items[0]
        if only.keys() == {"role", "content"} and only["role"] == "user" and isinstance(only["content"], str):
            return only["content"]
    return items


def request_to_wire(request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
    w = _Writer(request.source)
    instructions, leading = w.system(request.system)
    body: dict[str, Any] = {"model": request.model, "input": _input(request, w, leading)}
    if instructions is not None:
        body["instructions"] = instructions
    tools = [t for t in map(w.tool, request.tools) if t is not None]
    if request.web_search is not None:
        tools.append(_web_search_tool(request.web_search))
    if tools:
        body["tools"] = tools
    if w.keep and "tool_choice" in request.extra:  # a choice ToolChoice approximates
        body["tool_choice"] = request.extra["tool_choice"]
        if request.tool_choice is not None and request.tool_choice.parallel is not None:
            body["parallel_tool_calls"] = request.tool_choice.parallel
    elif request.tool_choice is not None:
        w.tool_choice(body, request.tool_choice)
    if request.max_tokens is not None:
        body["max_output_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        w.lose("stop" if request.source == "openai" else "stop_sequences")  # the API has no stop sequences
    if request.stream:
        body["stream"] = True
    if request.user is not None:
        body["user"] = request.user
    _reasoning(request, body, w)
    if w.keep:
        w.extra(body, request.extra, "", _REQUEST_MARKS)
    elif w.foreign is not None:
        carried, lost = w.foreign.carry_request(request.extra, "responses")
        for key, value in carried.items():
            body.setdefault(key, value)
        w.lose_all(lost)
    if not w.keep:
        body.setdefault("store", False)  # the other APIs keep nothing; neither should OpenAI
    return body, list(w.lossy)


def _reasoning(request: ChatRequest, body: dict[str, Any], w: _Writer) -> None:
    """``reasoning``: the effort, and (same format) the object's other fields.
    Thinking without an effort (Anthropic's budget) is not made into one, as
    for chat completions: a model that does not reason refuses the field."""
    reasoning = request.reasoning
    rest = request.extra.get("reasoning") if w.keep else None
    if reasoning is not None and reasoning.effort is not None:
        body["reasoning"] = {"effort": reasoning.effort, **(rest if isinstance(rest, dict) else {})}
    elif "reasoning" in request.extra and w.keep:
        body["reasoning"] = rest
    elif reasoning is not None and reasoning.mode != "disabled":
        w.lose("thinking")


def echo(request: ChatRequest) -> dict[str, Any]:
    """The request's fields a response repeats, as the SDK's ``Response`` has
    them (with the API's defaults for those the client left out)."""
    w = _Writer(request.source)
    instructions, _ = w.system(request.system)
    tools = [t for t in map(w.tool, request.tools) if t is not None]
    body: dict[str, Any] = {"tools": tools}
    if request.tool_choice is not None:
        w.tool_choice(body, request.tool_choice)
    extra = request.extra if w.keep else {}
    reasoning = request.reasoning
    return {
        "instructions": instructions,
        "max_output_tokens": request.max_tokens,
        "max_tool_calls": extra.get("max_tool_calls"),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": extra.get("previous_response_id"),
        "prompt_cache_key": extra.get("prompt_cache_key"),
        "reasoning": {
            "effort": reasoning.effort if reasoning is not None else None,
            "summary": (extra.get("reasoning") or {}).get("summary") if isinstance(extra.get("reasoning"), dict) else None,
        },
        "safety_identifier": extra.get("safety_identifier"),
        "store": extra.get("store", True),
        "temperature": request.temperature,
        "text": extra.get("text") or {"format": {"type": "text"}},
        "tool_choice": extra.get("tool_choice") or body.get("tool_choice", "auto"),
        "tools": tools,
        "top_p": request.top_p,
        "truncation": extra.get("truncation") or "disabled",
        "user": request.user,
        "metadata": extra.get("metadata") or {},
    }
