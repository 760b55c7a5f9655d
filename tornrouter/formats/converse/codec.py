"""Bedrock's Converse API (``/model/{modelId}/converse``) <-> canonical model.

An upstream API only (``kind: bedrock`` for models other than Anthropic's), so
the client-side half of ``Codec`` refuses to run.  Requests: ``system``,
``messages`` of content blocks (``text``, ``image`` and ``document`` as bytes,
``toolUse``, ``toolResult``, ``reasoningContent``), ``inferenceConfig``,
``toolConfig``; a block an Anthropic client marked with ``cache_control`` is
followed by a ``cachePoint``.  Responses: ``output.message``, ``stopReason``
(guardrails as the content filter), ``usage`` with cache reads and writes.
Errors are Bedrock's ``{"message"}`` (the provider reads them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...canonical import (
    Block, ChatRequest, ChatResponse, File, Image, Opaque, Text, Thinking, Tool, ToolCall, ToolResult, new_id,
)
from ..base import UpstreamCodec, hosted_settings, split_data_url
from ..gemini.shapes import SIGNATURE_PREFIX as GEMINI_SIGNATURE
from ..lossy import Carry
from .shapes import CACHE_POINT, DOCUMENT_FORMATS, IMAGE_FORMATS, RESPONSE_KEYS, stop_from_wire, usage_from_wire
from .stream import ConverseStreamDecoder


class _Writer(Carry):
    __slots__ = ()
    target = "converse"

    def blocks(self, blocks: Iterable[Block]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for block in blocks:
            wire = self.block(block)
            if wire is not None:
                out.append(wire)
                if self.cached(getattr(block, "extra", {}), block.type):
                    out.append(dict(CACHE_POINT))
        return out

    def cached(self, extra: dict[str, Any], kind: str) -> bool:
        """Whether the block asks for a cache point; its other extras are lost."""
        if self.foreign is None or not extra:
            return False
        self.lose_all(n for n in self.foreign.names(extra, f"{kind}.") if not n.endswith(".cache_control"))
        return self.foreign.cache_point(extra)

    def block(self, block: Block) -> dict[str, Any] | None:
        if isinstance(block, Text):
            return {"text": block.text} if block.text else None
        if isinstance(block, ToolCall):
            return {"toolUse": {"toolUseId": block.id, "name": block.name, "input": self.tool_input(block)}}
        if isinstance(block, ToolResult):
            return self.tool_result(block)
        if isinstance(block, Image):
            return self.image(block)
        if isinstance(block, File):
            return self.document(block)
        if isinstance(block, Thinking):
            if block.signature and not block.redacted and not block.signature.startswith(GEMINI_SIGNATURE):
                return {"reasoningContent": {"reasoningText": {"text": block.thinking, "signature": block.signature}}}
            if block.redacted:
                return {"reasoningContent": {"redactedContent": block.redacted}}
            self.lose("thinking")  # unsigned reasoning cannot go back
            return None
        if isinstance(block, Opaque):
            self.lose(f"content.{block.data.get('type')}")
        return None

    def tool_result(self, block: ToolResult) -> dict[str, Any]:
        content = []
        for inner in block.content:
            if isinstance(inner, Text):
                content.append({"text": inner.text})
            elif isinstance(inner, Image) and (image := self.image(inner)) is not None:
                content.append(image)
            else:
                self.lose(f"tool_result.{inner.type}")
        result = {"toolUseId": block.tool_call_id, "content": content or [{"text": ""}]}
        if block.is_error:
            result["status"] = "error"
        return {"toolResult": result}

    def image(self, block: Image) -> dict[str, Any] | None:
        data, media_type = block.data, block.media_type
        if data is None and block.url and (split := split_data_url(block.url)) is not None:
            media_type, data = split
        fmt = IMAGE_FORMATS.get(media_type or "")
        if data is None or fmt is None:
            self.lose("image.url" if data is None else "image.media_type")  # Converse takes bytes (or S3) only
            return None
        if block.detail not in (None, "auto"):
            self.lose("image.detail")
        return {"image": {"format": fmt, "source": {"bytes": data}}}

    def document(self, block: File) -> dict[str, Any] | None:
        fmt = DOCUMENT_FORMATS.get(block.media_type or "")
        if block.data is None or fmt is None:
            self.lose("content.file")
            return None
        return {"document": {"format": fmt, "name": _document_name(block.filename), "source": {"bytes": block.data}}}

    def tool(self, tool: Tool) -> dict[str, Any] | None:
        if tool.builtin is not None:
            self.lose(f"tools.{tool.builtin}")
            self.lose_all(hosted_settings(tool))
            return None
        spec: dict[str, Any] = {"name": tool.name, "inputSchema": {"json": tool.parameters or {"type": "object", "properties": {}}}}
        if tool.description:
            spec["description"] = tool.description
        if tool.strict:
            self.lose("tools.strict")
        return {"toolSpec": spec}


def _document_name(filename: str | None) -> str:
    """Converse allows letters, digits, spaces, hyphens, parentheses and brackets."""
    name = "".join(c if c.isalnum() or c in " -()[]" else " " for c in (filename or "document"))
    return " ".join(name.split()) or "document"


def request_to_wire(request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
    w = _Writer(request.source)
    system = list(request.system)
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role in ("system", "developer"):
            if messages:
                w.lose("messages.system")
            system.extend(b for b in message.content if isinstance(b, Text))
            continue
        if message.extra and w.foreign is not None:
            w.lose_all(w.foreign.names(message.extra, "messages."))
        content = w.blocks(message.content)
        if not content:
            continue
        if messages and messages[-1]["role"] == message.role:
            messages[-1]["content"].extend(content)
        else:
            messages.append({"role": message.role, "content": content})
    for turn in messages:  # tool results lead their user turn, as Anthropic's models need
        if turn["role"] == "user":
            turn["content"].sort(key=lambda b: "toolResult" not in b)
    body: dict[str, Any] = {"messages": messages}
    system_wire = w.blocks(system)
    if system_wire:
        body["system"] = system_wire
    inference: dict[str, Any] = {}
    if request.max_tokens is not None:
        inference["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    if request.stop:
        inference["stopSequences"] = list(request.stop)
    if inference:
        body["inferenceConfig"] = inference
    tools = [t for t in map(w.tool, request.tools) if t is not None]
    if tools:
        config: dict[str, Any] = {"tools": tools}
        choice = request.tool_choice
        if choice is not None and choice.mode != "none":
            config["toolChoice"] = {"tool": {"name": choice.name}} if choice.mode == "tool" else {choice.mode: {}}
        if choice is not None and choice.mode == "none":
            w.lose("tool_choice")
        body["toolConfig"] = config
    if request.reasoning is not None and request.reasoning.budget_tokens is not None:
        body["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": request.reasoning.budget_tokens}}
    elif request.reasoning is not None and request.reasoning.mode != "disabled":
        w.lose("reasoning_effort" if request.reasoning.effort else "thinking")
    if request.user is not None:
        w.lose("user")
    if w.foreign is not None:
        w.lose_all(w.foreign.request(request.extra, "converse"))
    return body, list(w.lossy)


def block_from_wire(raw: dict[str, Any]) -> Block:
    if "text" in raw:
        return Text(raw["text"])
    if "toolUse" in raw:
        use = raw["toolUse"]
        return ToolCall(use["toolUseId"], use["name"], use.get("input") or {})
    if "reasoningContent" in raw:
        content = raw["reasoningContent"]
        if "redactedContent" in content:
            return Thinking(redacted=content["redactedContent"])
        text = content.get("reasoningText") or {}
        return Thinking(text.get("text") or "", text.get("signature"))
    key = next(iter(raw), "block")
    return Opaque("converse", {"type": key, **raw})


def response_from_wire(body: Any) -> ChatResponse:
    message = ((body.get("output") or {}).get("message") if isinstance(body, dict) else None)
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise ValueError("not a Bedrock Converse response: expected output.message with a content list")
    try:
        return ChatResponse(
            id=new_id("msg"),
            model="",
            content=[block_from_wire(b) for b in message["content"]],
            stop_reason=stop_from_wire(body.get("stopReason")),
            usage=usage_from_wire(body.get("usage") or {}),
            source="converse",
            extra={k: v for k, v in body.items() if k not in RESPONSE_KEYS},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed Bedrock Converse response: {exc!r}") from exc


class ConverseCodec(UpstreamCodec):
    name = "converse"

    def encode_request(self, request: ChatRequest, *, default_max_tokens: int | None = None) -> tuple[dict[str, Any], list[str]]:
        return request_to_wire(request)

    def decode_response(self, body: dict[str, Any]) -> ChatResponse:
        return response_from_wire(body)

    def stream_decoder(self) -> ConverseStreamDecoder:
        return ConverseStreamDecoder()
