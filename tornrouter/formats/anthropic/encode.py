"""Canonical -> Anthropic wire: requests for an upstream, responses for a client,
with the names of what the API cannot carry."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...canonical import (
    Block,
    ChatRequest,
    ChatResponse,
    File,
    Image,
    Opaque,
    Reasoning,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from ..base import hosted_settings
from ..gemini.shapes import SIGNATURE_PREFIX as GEMINI_SIGNATURE
from ..lossy import Carry
from .shapes import (
    BAD_TOOL_ID_CHARS,
    DOCUMENT_MEDIA_TYPES,
    EFFORT_BUDGET,
    FALLBACK_MAX_TOKENS,
    MIN_THINKING_BUDGET,
    STOP_TO_WIRE,
    TEXT_KEYS,
    WEB_SEARCH_TOOL,
    usage_to_wire,
)

class _Writer(Carry):
    """Canonical -> wire for one request, collecting what is lost (``formats.lossy``)."""

    __slots__ = ()
    target = "anthropic"
    for_request = True

    def tool_id(self, tool_id: str) -> str:
        return tool_id if self.keep or not self.for_request else BAD_TOOL_ID_CHARS.sub("_", tool_id)

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
        if isinstance(block, File):
            return self.document(block)
        return self.tool_result(block)

    def text(self, block: Text) -> dict[str, Any] | None:
        if not block.text and self.for_request and not self.keep:
            return None  # the API refuses empty text blocks in a request
        out = {"type": "text", "text": block.text}
        if block.extra:
            self.extra(out, block.extra, "text.")
        return out

    def image(self, block: Image) -> dict[str, Any]:
        out = {"type": "image", "source": _image_source(block)}
        if block.detail not in (None, "auto"):
            self.lose("image.detail")
        self.extra(out, block.extra, "image.")
        return out

    def document(self, block: File) -> dict[str, Any] | None:
        """A ``document``: a PDF by base64 data or URL (its title the file's
        name).  An OpenAI file id means nothing here; other types of data are
        not documents this API reads."""
        if block.data is not None and (self.keep or block.media_type in DOCUMENT_MEDIA_TYPES):
            source: dict[str, Any] = {"type": "base64", "media_type": block.media_type, "data": block.data}
        elif block.url is not None:
            source = {"type": "url", "url": block.url}
        else:
            self.lose("content.file")
            return None
        if block.file_id is not None:
            self.lose("file.file_id")
        out: dict[str, Any] = {"type": "document", "source": source}
        if block.filename is not None:
            out["title"] = block.filename
        self.extra(out, block.extra, "file.")
        return out

    def tool_use(self, block: ToolCall) -> dict[str, Any]:
        out = {"type": "tool_use", "id": self.tool_id(block.id), "name": block.name, "input": self.tool_input(block)}
        self.extra(out, block.extra, "tool_call.")
        return out

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
        elif self.for_request and (block.signature is None or block.signature.startswith(GEMINI_SIGNATURE)):
            self.lose("thinking")  # the API refuses thinking it did not sign (Gemini's signed its own)
            self.extra({}, block.extra, "thinking.")
            return None
        else:
            out = {"type": "thinking", "thinking": block.thinking, "signature": block.signature or ""}
        self.extra(out, block.extra, "thinking.")
        return out

    def tool(self, tool: Tool) -> dict[str, Any] | None:
        if tool.builtin is not None:
            if self.keep:
                return tool.extra or {"type": tool.builtin, "name": tool.name}
            if tool.web_search:  # another API's hosted web search: this one's server tool searches
                self.lose_all(hosted_settings(tool))
                return dict(WEB_SEARCH_TOOL)
            self.lose(f"tools.{tool.builtin}")
            return None
        out: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            out["description"] = tool.description
        out["input_schema"] = {"type": "object", "properties": {}} if tool.parameters is None else tool.parameters
        if tool.strict:
            self.lose("tools.strict")
        self.extra(out, tool.extra, "tools.")
        return out


class _ResponseWriter(_Writer):
    """The same for a response: a ``Message`` holds no images or tool results,
    and the rules only a request must obey (tool id characters, no empty text,
    signed thinking) do not apply."""

    __slots__ = ()
    for_request = False


def _compact(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone plain text block as the string shorthand the API defines for it."""
    if len(blocks) == 1 and blocks[0].keys() == TEXT_KEYS and blocks[0]["type"] == "text":
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


def _thinking(request: ChatRequest, reasoning: Reasoning, body: dict[str, Any], w: _Writer) -> None:
    """``thinking`` from ``reasoning``: as it is when it has no effort (this API's
    own shape), else a budget approximating the effort (``_thinking_from_effort``)."""
    if reasoning.effort is not None:
        _thinking_from_effort(request, reasoning.effort, body, w)
        return
    thinking: dict[str, Any] = {"type": reasoning.mode}
    if reasoning.budget_tokens is not None:
        thinking["budget_tokens"] = reasoning.budget_tokens
    body["thinking"] = w.extra(thinking, reasoning.extra, "thinking.")


def _thinking_from_effort(request: ChatRequest, effort: str, body: dict[str, Any], w: _Writer) -> None:
    """OpenAI ``reasoning_effort`` as a thinking budget, where the API allows thinking.

    Thinking needs temperature 1, top_p >= 0.95, tool_choice auto/none, and a
    signed thinking block before the last assistant tool call -- which a
    conversation from OpenAI never has.  A budget comes out of ``max_tokens``
    the client set (as OpenAI counts reasoning tokens), or is added to a default.
    """
    if effort == "none":
        return
    w.lose("reasoning_effort")
    budget = EFFORT_BUDGET.get(effort)
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
        if budget < MIN_THINKING_BUDGET:
            return
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}


def request_to_wire(request: ChatRequest, default_max_tokens: int | None) -> tuple[dict[str, Any], list[str]]:
    w = _Writer(request.source)
    messages, system = _messages(request, w)
    max_tokens = request.max_tokens
    if max_tokens is None:
        max_tokens = FALLBACK_MAX_TOKENS if default_max_tokens is None else default_max_tokens
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
    # The source's verdict first: it raises for what this API cannot serve at all.
    lost = w.foreign.request(request.extra, "anthropic") if w.foreign is not None else ()
    if request.reasoning is not None:
        _thinking(request, request.reasoning, body, w)
    if request.web_search is not None:
        w.lose("web_search_options")  # Anthropic searches through a server tool, which needs its own settings
    if w.keep:
        w.extra(body, request.extra, "")
    w.lose_all(lost)
    return body, list(w.lossy)


def response_to_wire(response: ChatResponse, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
    """A complete ``Message``.  From OpenAI, token breakdowns (``prompt_tokens_details``...)
    are not reported lossy: the totals they break down are carried."""
    w = _ResponseWriter(response.source)
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
    if w.foreign is None:
        w.extra(body, response.extra, "")
        return body, list(w.lossy)
    if response.stop_reason == "end_turn" and request.stop:
        w.lose("stop_sequence")  # OpenAI's "stop" does not say whether a sequence matched
    w.lose_all(w.foreign.response(response.extra))
    return body, list(w.lossy)
