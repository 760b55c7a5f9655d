"""Canonical -> Gemini wire: the ``generateContent`` request body, with the
names of what the API cannot carry.

Reshaped for this API's rules: leading instructions in ``systemInstruction``,
``user``/``model`` turns (consecutive turns of one role merged), tool results
as ``functionResponse`` parts named after the call they answer, images and
files as ``inlineData`` (base64) or ``fileData`` (a URI), sampling and output
settings under ``generationConfig``.  A thought signature goes back on the
part it came with: from a ``Thinking`` block Gemini signed (the next part of
the turn, or the previous when none follows), or for a function call, from
``signatures`` (call id -> signature) when the client's API has no thinking
block to carry it.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterable, Mapping
from typing import Any

from ...canonical import Block, ChatRequest, File, Image, Message, Opaque, Reasoning, Text, Thinking, Tool, ToolCall, ToolResult
from ..base import hosted_settings, split_data_url
from ..lossy import Carry
from .shapes import DYNAMIC_BUDGET, EFFORT_BUDGET, SIGNATURE_PREFIX

_MODES = {"auto": "AUTO", "any": "ANY", "none": "NONE", "tool": "ANY"}


class _Writer(Carry):
    """Canonical -> wire for one request, collecting what is lost (``formats.lossy``)."""

    __slots__ = ("signatures", "names")
    target = "gemini"

    def __init__(self, request: ChatRequest, signatures: Mapping[str, str]) -> None:
        super().__init__(request.source)
        self.signatures = signatures
        # A functionResponse names its function; the canonical result knows only the call id.
        self.names = {
            b.id: b.name for m in request.messages for b in m.content if isinstance(b, ToolCall)
        }

    def parts(self, blocks: Iterable[Block]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        pending: str | None = None  # a signature for the next part
        for block in blocks:
            if isinstance(block, Thinking):
                signature = self.thinking(block)
                if signature is not None:
                    pending = signature
                continue
            part = self.part(block)
            if part is None:
                continue
            if pending is None and isinstance(block, ToolCall):
                pending = self.signatures.get(block.id)
            if pending is not None:
                part["thoughtSignature"] = pending
                pending = None
            out.append(part)
        if pending is not None:
            if out and "thoughtSignature" not in out[-1]:
                out[-1]["thoughtSignature"] = pending
            elif not out:
                out.append({"text": "", "thoughtSignature": pending})
        return out

    def thinking(self, block: Thinking) -> str | None:
        """The Gemini signature a thinking block carries; its thoughts are not
        sent back (Gemini needs only the signature), another API's reasoning is lost."""
        if block.signature and block.signature.startswith(SIGNATURE_PREFIX):
            return block.signature[len(SIGNATURE_PREFIX):]
        if block.thinking or block.redacted or block.signature:
            self.lose("thinking")
        return None

    def part(self, block: Block) -> dict[str, Any] | None:
        if isinstance(block, Text):
            if block.extra and self.foreign is not None:
                self.lose_all(self.foreign.names(block.extra, "text."))
            return {"text": block.text} if block.text else None
        if isinstance(block, ToolCall):
            return self.function_call(block)
        if isinstance(block, ToolResult):
            return self.function_response(block)
        if isinstance(block, Image):
            if block.detail not in (None, "auto"):
                self.lose("image.detail")
            return self.media(block.data, block.media_type, block.url, block.extra, "image.")
        if isinstance(block, File):
            if block.file_id is not None and block.data is None and block.url is None:
                self.lose("content.file")
                return None
            if block.filename is not None:
                self.lose("file.filename")
            return self.media(block.data, block.media_type, block.url, block.extra, "file.")
        if isinstance(block, Opaque):
            self.lose(f"content.{block.data.get('type')}")
        return None

    def media(self, data: str | None, media_type: str | None, url: str | None,
              extra: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        if extra and self.foreign is not None:
            self.lose_all(self.foreign.names(extra, prefix))
        if data is None and url is not None and (split := split_data_url(url)) is not None:
            media_type, data = split
        if data is not None:
            return {"inlineData": {"mimeType": media_type or "application/octet-stream", "data": data}}
        file_data: dict[str, Any] = {"fileUri": url}
        guessed = media_type or mimetypes.guess_type(url or "")[0]
        if guessed is not None:
            file_data["mimeType"] = guessed
        return {"fileData": file_data}

    def function_call(self, block: ToolCall) -> dict[str, Any]:
        args: Any = block.input
        if block.raw_arguments is not None:
            try:
                args = json.loads(block.raw_arguments)
            except ValueError:
                args = None
            if not isinstance(args, dict):
                self.lose("tool_call.arguments")
                args = {"arguments": block.raw_arguments}
        if block.extra and self.foreign is not None:
            self.lose_all(self.foreign.names(block.extra, "tool_call."))
        return {"functionCall": {"name": block.name, "args": args}}

    def function_response(self, block: ToolResult) -> dict[str, Any]:
        """The result as ``{"output": text}`` (``{"error": text}`` for a failed
        call), the shape Gemini's function-calling guide gives."""
        texts = []
        for inner in block.content:
            if isinstance(inner, Text):
                texts.append(inner.text)
            else:
                self.lose(f"tool_result.{inner.type}")
        if block.extra and self.foreign is not None:
            self.lose_all(self.foreign.names(block.extra, "tool_result."))
        name = self.names.get(block.tool_call_id, block.tool_call_id)
        return {"functionResponse": {"name": name, "response": {"error" if block.is_error else "output": "".join(texts)}}}

    def tools(self, tools: list[Tool]) -> list[dict[str, Any]]:
        declarations: list[dict[str, Any]] = []
        out: list[dict[str, Any]] = []
        for tool in tools:
            if tool.builtin is not None:
                if tool.web_search:  # another API's hosted web search: Gemini's grounding searches
                    self.lose_all(hosted_settings(tool))
                    out.append({"googleSearch": {}})
                else:
                    self.lose(f"tools.{tool.builtin}")
                continue
            declaration: dict[str, Any] = {"name": tool.name, "description": tool.description or ""}
            if tool.parameters is not None:
                declaration["parametersJsonSchema"] = tool.parameters
            if tool.strict:
                self.lose("tools.strict")
            if tool.extra and self.foreign is not None:
                self.lose_all(self.foreign.names(tool.extra, "tools."))
            declarations.append(declaration)
        if declarations:
            out.insert(0, {"functionDeclarations": declarations})
        return out


def _contents(request: ChatRequest, w: _Writer) -> tuple[list[dict[str, Any]], list[Text]]:
    """The wire turns and the system text: system and developer turns join
    ``systemInstruction`` (lossy past the first turn), the rest alternate."""
    system = list(request.system)
    contents: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role in ("system", "developer"):
            if contents:
                w.lose("messages.system")
            system.extend(b for b in message.content if isinstance(b, Text))
            continue
        _turn(message, w, contents)
    return contents, system


def _turn(message: Message, w: _Writer, contents: list[dict[str, Any]]) -> None:
    if message.extra and w.foreign is not None:
        w.lose_all(w.foreign.names(message.extra, "messages."))
    parts = w.parts(message.content)
    if not parts:
        return
    role = "model" if message.role == "assistant" else "user"
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _thinking_config(reasoning: Reasoning, w: _Writer) -> dict[str, Any]:
    if reasoning.mode == "disabled":
        return {"thinkingBudget": 0}
    if reasoning.budget_tokens is not None:
        budget = reasoning.budget_tokens
    elif reasoning.effort is not None:
        if reasoning.effort == "none":
            return {"thinkingBudget": 0}
        w.lose("reasoning_effort")  # a budget approximates an effort
        budget = EFFORT_BUDGET.get(reasoning.effort, DYNAMIC_BUDGET)
    else:
        budget = DYNAMIC_BUDGET
    if reasoning.extra and w.foreign is not None:
        w.lose_all(w.foreign.names(reasoning.extra, "thinking."))
    return {"thinkingBudget": budget, "includeThoughts": True}


def request_to_wire(request: ChatRequest, signatures: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The body of ``models/{model}:generateContent`` (the model is in the URL)."""
    w = _Writer(request, signatures or {})
    contents, system = _contents(request, w)
    body: dict[str, Any] = {"contents": contents}
    for block in system:
        if block.extra and w.foreign is not None:
            w.lose_all(w.foreign.names(block.extra, "text."))
    system_text = "\n\n".join(b.text for b in system if b.text)
    if system_text:
        body["systemInstruction"] = {"parts": [{"text": system_text}]}
    tools = w.tools(request.tools)
    if tools:
        body["tools"] = tools
    choice = request.tool_choice
    if choice is not None and tools:
        config: dict[str, Any] = {"mode": _MODES[choice.mode]}
        if choice.mode == "tool":
            config["allowedFunctionNames"] = [choice.name]
        body["toolConfig"] = {"functionCallingConfig": config}
        if choice.parallel is False:
            w.lose("parallel_tool_calls")
    generation: dict[str, Any] = {}
    if request.max_tokens is not None:
        generation["maxOutputTokens"] = request.max_tokens
    if request.temperature is not None:
        generation["temperature"] = request.temperature
    if request.top_p is not None:
        generation["topP"] = request.top_p
    if request.stop:
        generation["stopSequences"] = list(request.stop)
    lost: list[str] = []
    if w.foreign is not None:
        carried, lost = w.foreign.carry_request(request.extra, "gemini")
        generation.update(carried)
    if request.reasoning is not None:
        generation["thinkingConfig"] = _thinking_config(request.reasoning, w)
    if generation:
        body["generationConfig"] = generation
    if request.user is not None:
        w.lose("user")
    if request.web_search is not None and not any("googleSearch" in t for t in tools):
        body.setdefault("tools", []).append({"googleSearch": {}})
        w.lose_all(f"web_search_options.{k}" for k, v in request.web_search.items() if v is not None)
    w.lose_all(lost)
    return body, list(w.lossy)
