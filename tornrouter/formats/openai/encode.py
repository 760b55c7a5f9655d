"""Canonical -> OpenAI wire: requests for an upstream, responses for a client,
with the names of what the API cannot carry."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
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
)
from ..base import file_data
from ..lossy import Carry
from .shapes import (
    LEGACY_MAX_TOKENS,
    MAX_STOP,
    MODE_TO_WIRE,
    STOP_TO_FINISH,
    TEXT_MARKS,
    TEXT_PART_KEYS,
    usage_to_wire,
)


class ToolChoiceWriter(Carry):
    """``tool_choice`` and ``parallel_tool_calls`` for both OpenAI APIs, which
    differ only in how a named tool is written (``choice_wire``, ``tool_name``)."""

    __slots__ = ()

    @staticmethod
    def choice_wire(kind: str, name: str) -> dict[str, Any]:
        return {"type": kind, kind: {"name": name}}

    @staticmethod
    def tool_name(tool: Mapping[str, Any]) -> str | None:
        return (tool.get(tool.get("type")) or {}).get("name")

    def tool_choice(self, body: dict[str, Any], choice: ToolChoice) -> None:
        """Only beside tools, which OpenAI requires, unless the client itself sent them so."""
        tools = body.get("tools")
        if choice.mode == "tool":
            name = choice.name or ""
            kind = next((t.get("type") for t in tools or () if t.get("type") in ("function", "custom")
                         and self.tool_name(t) == name), None)
            if kind is None and self.keep:
                kind = "function"
            if kind is None:
                self.lose("tool_choice")
                return
            body["tool_choice"] = self.choice_wire(kind, name)
        elif tools or (self.keep and choice.mode != "auto"):
            body["tool_choice"] = MODE_TO_WIRE[choice.mode]
        elif choice.mode == "any":
            self.lose("tool_choice")
        if choice.parallel is not None and (tools or self.keep):
            body["parallel_tool_calls"] = choice.parallel


class _Writer(ToolChoiceWriter):
    """Canonical -> wire for one request or response, collecting what is lost
    (``formats.lossy``).  Blocks this API has no place for are reported whatever
    the source."""

    __slots__ = ()
    target = "openai"

    def nested(
        self,
        out: dict[str, Any],
        inner: dict[str, Any],
        extra: Mapping[str, Any],
        prefix: str,
        key: str,
        flat: frozenset[str],
    ) -> None:
        """``extra`` of an object with an inner object, each field back at its level (see the module doc)."""
        if not self.keep:
            self.extra(out, extra, prefix)
            return
        for name, value in extra.items():
            if name == key:
                inner.update(value)
            elif name in flat:
                inner[name] = value
            else:
                out[name] = value

    # --- parts and calls

    def text(self, block: Text) -> dict[str, Any]:
        out = {"type": "text", "text": block.text}
        if block.extra:
            self.extra(out, block.extra, "text.", TEXT_MARKS)
        return out

    def image(self, block: Image) -> dict[str, Any]:
        image_url: dict[str, Any] = {"url": image_url_of(block)}
        if block.detail is not None:
            image_url["detail"] = block.detail
        out = {"type": "image_url", "image_url": image_url}
        if block.extra:
            self.nested(out, image_url, block.extra, "image.", "image_url", frozenset({"detail"}))
        return out

    def file(self, block: File) -> dict[str, Any] | None:
        """A ``file`` part; a file by URL alone has none (the API reads no URLs)."""
        file: dict[str, Any] = {}
        data = file_data(block)
        if data is not None:
            file["file_data"] = data
        if block.file_id is not None:
            file["file_id"] = block.file_id
        if not file:
            self.lose("content.file")
            return None
        if block.url is not None:
            self.lose("file.url")
        if block.filename is not None:
            file["filename"] = block.filename
        out = {"type": "file", "file": file}
        if block.extra:
            self.nested(out, file, block.extra, "file.", "file", frozenset())
        return out

    def tool_call(self, block: ToolCall) -> dict[str, Any]:
        if block.raw_arguments is not None:
            arguments = block.raw_arguments
        else:
            arguments = json.dumps(block.input, ensure_ascii=False)
        function = {"name": block.name, "arguments": arguments}
        out = {"id": block.id, "type": "function", "function": function}
        if block.extra:
            self.nested(out, function, block.extra, "tool_call.", "function", frozenset())
        return out

    def tool(self, tool: Tool) -> dict[str, Any] | None:
        if tool.builtin is not None:
            if self.keep:
                return tool.extra
            self.lose(f"tools.{tool.builtin}")
            return None
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        if tool.parameters is not None:
            function["parameters"] = tool.parameters
        if tool.strict is not None:
            function["strict"] = tool.strict
        out = {"type": "function", "function": function}
        if tool.extra:
            self.nested(out, function, tool.extra, "tools.", "function", frozenset({"strict"}))
        return out

    # --- turns

    def system(self, texts: list[Text]) -> list[dict[str, Any]]:
        """Leading instructions: one message per ``extra["message"]`` mark (one in all from Anthropic)."""
        turns: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        for block in texts:
            fields = block.extra.get("message") if self.keep else None
            if fields is not None or not turns:
                turns.append((dict(fields) if fields else {"role": "system"}, []))
            turns[-1][1].append(self.text(block))
        for turn, parts in turns:
            turn["content"] = _compact(parts)
        return [turn for turn, _ in turns]

    def instruction(self, message: Message) -> dict[str, Any]:
        """A system or developer turn mid-conversation."""
        parts = []
        for block in message.content:
            part = self.text(block) if isinstance(block, Text) else self.unplaced(block)
            if part is not None:
                parts.append(part)
        out = {"role": message.role, "content": _compact(parts)}
        self.extra(out, message.extra, "messages.")
        return out

    def user(self, message: Message) -> list[dict[str, Any]]:
        """A user turn; its tool results come first, as ``tool`` messages."""
        turns: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        for block in message.content:
            if isinstance(block, Text):
                parts.append(self.text(block))
            elif isinstance(block, Image):
                parts.append(self.image(block))
            elif isinstance(block, ToolResult):
                turns.append(self.tool_message(block))
            elif isinstance(block, File):
                part = self.file(block)
                if part is not None:
                    parts.append(part)
            else:
                part = self.unplaced(block)
                if part is not None:
                    parts.append(part)
        turn = {"role": "user", "content": _compact(parts)}
        self.extra(turn, message.extra, "messages.")
        if parts or not turns:
            turns.append(turn)
        return turns

    def tool_message(self, block: ToolResult) -> dict[str, Any]:
        parts = []
        for item in block.content:
            if isinstance(item, Text):
                parts.append(self.text(item))
            else:  # a tool message holds text only
                self.lose(f"tool_result.{item.data.get('type') if isinstance(item, Opaque) else item.type}")
        if block.is_error:
            self.lose("tool_result.is_error")
        out = {"role": "tool", "tool_call_id": block.tool_call_id, "content": _compact(parts)}
        self.extra(out, block.extra, "tool_result.")
        return out

    def assistant(self, message: Message) -> dict[str, Any]:
        parts, refusal, calls = self.assistant_parts(message.content, None)
        out: dict[str, Any] = {"role": "assistant", "content": _compact(parts) if parts else None}
        if refusal:
            out["refusal"] = "".join(refusal)
        if calls:
            out["tool_calls"] = calls
        self.extra(out, message.extra, "messages.")
        return out

    def assistant_parts(
        self, blocks: Iterable[Block], reasoning: list[str] | None
    ) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
        """Content parts, refusal texts and tool calls of an assistant turn.

        Thinking goes to ``reasoning`` when given (a same-format response's
        ``reasoning_content``), else it is lost: OpenAI takes no reasoning back.
        """
        parts: list[dict[str, Any]] = []
        refusal: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in blocks:
            if isinstance(block, Text):
                if block.refusal:
                    refusal.append(block.text)
                else:
                    parts.append(self.text(block))
            elif isinstance(block, ToolCall):
                calls.append(self.tool_call(block))
            elif isinstance(block, Opaque) and block.format == "openai" and "id" in block.data:
                calls.append(block.data)  # a custom tool's call
            elif isinstance(block, Thinking) and reasoning is not None:
                reasoning.append(block.thinking)
            else:
                part = self.unplaced(block)
                if part is not None:
                    parts.append(part)
        return parts, refusal, calls


def image_url_of(block: Image) -> str:
    """The image's URL, an inline image as a ``data:`` URL."""
    return block.url if block.data is None else f"data:{block.media_type};base64,{block.data}"


def _compact(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone plain text part as the string shorthand the API defines for it; no parts as ''."""
    if not parts:
        return ""
    if len(parts) == 1 and parts[0].keys() == TEXT_PART_KEYS and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _reasoning(body: dict[str, Any], reasoning: Reasoning, w: _Writer) -> None:
    """``reasoning_effort``, when there is an effort.

    Thinking without one (Anthropic's budget) is not turned into an effort: a
    model that does not reason refuses that field, so it would fail requests a
    route sends to, say, gpt-4.1; a reasoning model reasons at its default
    effort anyway.
    """
    if reasoning.effort is not None:
        body["reasoning_effort"] = reasoning.effort
    elif reasoning.mode != "disabled":
        w.lose("thinking")


def request_to_wire(request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
    w = _Writer(request.source)
    messages = w.system(request.system)
    for message in request.messages:
        if message.role == "user":
            messages.extend(w.user(message))
        elif message.role == "assistant":
            messages.append(w.assistant(message))
        else:
            messages.append(w.instruction(message))
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    legacy = w.keep and request.extra.get("max_tokens", 0) is None
    if request.max_tokens is not None:
        body["max_tokens" if legacy else "max_completion_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = request.stop
        if not w.keep and len(request.stop) > MAX_STOP:
            body["stop"] = request.stop[:MAX_STOP]
            w.lose("stop_sequences")
    if request.stream:
        body["stream"] = True
        if not w.keep:  # Anthropic streams always report usage
            body["stream_options"] = {"include_usage": True}
    if request.user is not None:
        body["user"] = request.user
    tools = [t for t in map(w.tool, request.tools) if t is not None]
    if tools:
        body["tools"] = tools
    if request.tool_choice is not None:
        w.tool_choice(body, request.tool_choice)
        if w.keep and "tool_choice" in request.extra:  # an allowed_tools choice, which ToolChoice approximates
            body["tool_choice"] = request.extra["tool_choice"]
    if w.keep:
        w.extra(body, request.extra, "", LEGACY_MAX_TOKENS if legacy else frozenset())
    elif w.foreign is not None:
        carried, lost = w.foreign.carry_request(request.extra, "openai")
        for key, value in carried.items():
            body.setdefault(key, value)
        w.lose_all(lost)
    if request.reasoning is not None:
        _reasoning(body, request.reasoning, w)
    if request.web_search is not None:
        body["web_search_options"] = request.web_search
    return body, list(w.lossy)


def response_to_wire(response: ChatResponse) -> tuple[dict[str, Any], list[str]]:
    w = _Writer(response.source)
    reasoning: list[str] | None = [] if w.keep else None
    parts, refusal, calls = w.assistant_parts(response.content, reasoning)
    texts = []
    for part in parts:  # the message content is a string: text parts only
        if part.get("type") == "text":
            texts.append(part["text"])
        else:
            w.lose(f"content.{part.get('type')}")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": "".join(refusal) if refusal else None,
    }
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    stop = response.stop_reason or "end_turn"
    if stop == "pause_turn":
        w.lose("pause_turn")
    if response.stop_sequence is not None:
        w.lose("stop_sequence")  # OpenAI's "stop" does not say which sequence matched
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": STOP_TO_FINISH.get(stop, "stop")}
    body: dict[str, Any] = {
        "id": response.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model,
        "choices": [choice],
        "usage": usage_to_wire(response.usage, keep_extra=w.keep),
    }
    w.extra({}, response.usage.extra, "usage.")
    if w.keep:
        _restore_completion(body, response.extra)
    elif w.foreign is not None:
        w.lose_all(w.foreign.response(response.extra))
    return body, list(w.lossy)


def _restore_completion(body: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Put a same-format response's extras back at the level each came from."""
    choice = body["choices"][0]
    for key, value in extra.items():
        if key == "choice":
            choice.update(value)
        elif key == "message":
            choice["message"].update(value)
        elif key == "choices":
            body["choices"].extend(value)
        else:
            body[key] = value
