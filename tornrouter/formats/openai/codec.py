"""OpenAI chat completions (``POST /v1/chat/completions``) <-> canonical model, non-streamed.

Decoding keeps every wire field the canonical model does not name in ``extra``
at its own level (request, message, part, tool, tool call, response), so a
same-format relay writes back an equivalent body.  Encoding something that came
from Anthropic writes what this API can carry and returns the names of the rest
(``thinking``, ``top_k``, ``text.cache_control``, ``tools.web_search_20250305``...)
as lossy instead of dropping them silently.

Where the OpenAI-only shape is kept (other code reads ``extra``):

- ``ChatRequest.extra["max_tokens"] = None``: the client used the legacy
  ``max_tokens`` key, whose value is ``request.max_tokens``; otherwise the
  limit is written as ``max_completion_tokens``.  Sent together, the latter is
  ``request.max_tokens`` and ``extra["max_tokens"]`` keeps the legacy value.
- ``ChatRequest.extra["tool_choice"]``: an ``allowed_tools`` choice, which
  ``ToolChoice`` can only approximate (``auto``/``any``).
- Leading ``system``/``developer`` messages are ``request.system``.  The first
  ``Text`` of each, except a plain first ``system`` message, carries
  ``extra["message"]``: the message's fields but ``content`` (``role``,
  ``name``...).  It marks where a message starts.
- ``Text.extra["refusal"] is True``: an assistant ``refusal``.
- An object with an inner object (image part / ``image_url``, tool and tool call
  / ``function``) keeps the outer object's unknown fields flat in ``extra``, as
  it does ``detail`` and ``strict``; the inner object's unknown fields go under
  ``extra[<inner key>]``.
- ``ChatResponse.extra``: the completion's other non-null fields (``created``,
  ``system_fingerprint``...), plus ``choice`` (other fields of ``choices[0]``,
  e.g. ``logprobs``), ``message`` (other fields of its message, e.g.
  ``annotations``) and ``choices`` (``choices[1:]`` when ``n > 1``).
  ``reasoning_content`` (DeepSeek, vLLM) is a leading ``Thinking`` block.

Nothing is deep-copied: canonical objects share values with the body they came
from and encoded bodies share them with the canonical objects, so treat both as
read-only once encoded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from itertools import islice
from types import MappingProxyType
from typing import Any

from marshmallow import ValidationError

from ...canonical import (
    Block,
    ChatRequest,
    ChatResponse,
    Format,
    Image,
    Message,
    Opaque,
    StopReason,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Usage,
    new_id,
)
from ...errors import RouterError
from ..base import Codec, check_usage, invalid_from, load_json_object, short
from ..fields import first_problem
from .schemas import REQUEST_SCHEMA

FINISH_TO_STOP: Mapping[str, StopReason] = MappingProxyType(
    {
        "stop": "end_turn",
        "length": "max_tokens",
        "tool_calls": "tool_use",
        "function_call": "tool_use",
        "content_filter": "content_filter",
    }
)
# ``pause_turn`` (a server tool's turn cut short) has no OpenAI reason: it ends
# as "stop" and is reported lossy.
STOP_TO_FINISH: Mapping[str, str] = MappingProxyType(
    {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "pause_turn": "stop",
        "max_tokens": "length",
        "tool_use": "tool_calls",
        "content_filter": "content_filter",
        "refusal": "content_filter",
    }
)

_ERROR_TYPES: Mapping[int, str] = MappingProxyType(
    {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "invalid_request_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
    }
)
_MODE_FROM_WIRE: Mapping[str, str] = MappingProxyType({"auto": "auto", "required": "any", "none": "none"})
_MODE_TO_WIRE: Mapping[str, str] = MappingProxyType({"auto": "auto", "any": "required", "none": "none"})
# Where OpenAI draws the line on stop sequences; Anthropic allows more.
_MAX_STOP = 4

# The wire keys each decoder names; everything else goes to ``extra``.
_REQUEST_KEYS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "stream",
     "tools", "tool_choice", "parallel_tool_calls", "user"}
)
_INSTRUCTION_ROLES = frozenset({"system", "developer"})
_ROLE_CONTENT_KEYS = frozenset({"role", "content"})
_CONTENT_KEY = frozenset({"content"})
_ASSISTANT_KEYS = frozenset({"role", "content", "refusal", "tool_calls"})
_TOOL_MESSAGE_KEYS = frozenset({"role", "content", "tool_call_id"})
_TEXT_PART_KEYS = frozenset({"type", "text"})
_IMAGE_PART_KEYS = frozenset({"type", "image_url"})
_IMAGE_URL_KEYS = frozenset({"url", "detail"})
_TOOL_KEYS = frozenset({"type", "function"})
_FUNCTION_DEF_KEYS = frozenset({"name", "description", "parameters", "strict"})
_TOOL_CALL_KEYS = frozenset({"id", "type", "function"})
_FUNCTION_CALL_KEYS = frozenset({"name", "arguments"})
_COMPLETION_KEYS = frozenset({"id", "object", "model", "choices", "usage"})
_CHOICE_KEYS = frozenset({"index", "message", "finish_reason"})
_RESPONSE_MESSAGE_KEYS = frozenset({"role", "content", "refusal", "tool_calls", "reasoning_content"})
_USAGE_KEYS = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})
# Text.extra keys that are this codec's marks, not fields of a text part.
_TEXT_MARKS = frozenset({"message", "refusal"})
_LEGACY_MAX_TOKENS = frozenset({"max_tokens"})


def _rest(raw: Mapping[str, Any], named: frozenset[str]) -> dict[str, Any]:
    if raw.keys() <= named:  # the usual case, checked in C
        return {}
    return {k: v for k, v in raw.items() if k not in named}


def _present(raw: Mapping[str, Any], named: frozenset[str]) -> dict[str, Any]:
    """Like ``_rest`` without null and empty-list fields, which say nothing (``annotations: []``)."""
    return {k: v for k, v in raw.items() if k not in named and v is not None and v != []}


# --- shared with the stream codec ------------------------------------------------


def usage_from_wire(d: Mapping[str, Any]) -> Usage:
    """A wire ``usage`` object.  ``prompt_tokens`` includes cached (and cache-written)
    tokens; canonical ``input_tokens`` does not.  Token details go to ``extra``."""
    details = d.get("prompt_tokens_details") or {}
    prompt = check_usage(
        Usage(
            input_tokens=d.get("prompt_tokens") or 0,
            output_tokens=d.get("completion_tokens") or 0,
            cache_read_tokens=details.get("cached_tokens") or 0,
            cache_creation_tokens=details.get("cache_write_tokens") or 0,
            extra=_rest(d, _USAGE_KEYS),
        )
    )
    # prompt_tokens counts the cached ones too; the canonical input_tokens does not
    prompt.input_tokens = max(prompt.input_tokens - prompt.cache_read_tokens - prompt.cache_creation_tokens, 0)
    return prompt


def usage_to_wire(u: Usage, *, keep_extra: bool = False) -> dict[str, Any]:
    """The wire ``usage`` object.  ``keep_extra`` only when ``u`` was decoded from
    this format (token details): another API's extras mean nothing here.  A
    same-format usage without ``prompt_tokens_details`` (older or compatible
    servers) stays without, unless there are cache counts to report."""
    prompt = u.prompt_tokens
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
    }
    details: dict[str, Any] = {"cached_tokens": u.cache_read_tokens}
    if u.cache_creation_tokens:
        details["cache_write_tokens"] = u.cache_creation_tokens
    if keep_extra:
        out.update(u.extra)
        known = u.extra.get("prompt_tokens_details")
        if isinstance(known, dict):
            details = {**known, **details}
        elif not (u.cache_read_tokens or u.cache_creation_tokens):
            return out
    out["prompt_tokens_details"] = details
    return out


# --- decoding a request --------------------------------------------------------------


def request_from_wire(data: dict[str, Any]) -> ChatRequest:
    """A validated request body as a ``ChatRequest``; values are shared, not copied."""
    extra = _rest(data, _REQUEST_KEYS)
    max_tokens = data.get("max_completion_tokens")
    legacy = data.get("max_tokens")
    if legacy is not None:
        if max_tokens is None:
            max_tokens, legacy = legacy, None
        extra["max_tokens"] = legacy  # None: the key to write request.max_tokens under
    system, messages = _messages_from_wire(data["messages"])
    stop = data.get("stop")
    return ChatRequest(
        model=data["model"],
        source="openai",
        messages=messages,
        system=system,
        max_tokens=max_tokens,
        temperature=data.get("temperature"),
        top_p=data.get("top_p"),
        stop=[stop] if isinstance(stop, str) else stop or [],
        stream=bool(data.get("stream")),
        tools=[_tool_from_wire(t) for t in data.get("tools") or ()],
        tool_choice=_tool_choice_from_wire(data.get("tool_choice"), data.get("parallel_tool_calls"), extra),
        user=data.get("user"),
        extra=extra,
    )


def _messages_from_wire(wire: list[dict[str, Any]]) -> tuple[list[Text], list[Message]]:
    """Leading instructions as system text; the rest as turns, runs of tool messages as one user turn."""
    system: list[Text] = []
    start = 0
    while start < len(wire) and wire[start]["role"] in _INSTRUCTION_ROLES:
        system.extend(_instruction_texts(wire[start], first=start == 0))
        start += 1
    messages: list[Message] = []
    tool_turn: Message | None = None
    for raw in islice(wire, start, None):
        role = raw["role"]
        if role == "tool":
            if tool_turn is None:
                tool_turn = Message("user")
                messages.append(tool_turn)
            result = ToolResult(raw["tool_call_id"], _texts(raw["content"]), extra=_rest(raw, _TOOL_MESSAGE_KEYS))
            tool_turn.content.append(result)
            continue
        tool_turn = None
        if role == "assistant":
            messages.append(Message("assistant", _assistant_blocks(raw), _rest(raw, _ASSISTANT_KEYS)))
        elif role == "user":
            messages.append(Message("user", _user_blocks(raw["content"]), _rest(raw, _ROLE_CONTENT_KEYS)))
        else:
            messages.append(Message(role, _texts(raw["content"]), _rest(raw, _ROLE_CONTENT_KEYS)))
    return system, messages


def _instruction_texts(raw: dict[str, Any], *, first: bool) -> list[Text]:
    texts = _texts(raw["content"])
    fields = _rest(raw, _CONTENT_KEY)
    if not first or fields != {"role": "system"}:
        texts[0].extra["message"] = fields
    return texts


def _text(part: dict[str, Any]) -> Text:
    return Text(part["text"], _rest(part, _TEXT_PART_KEYS))


def _texts(content: str | list[dict[str, Any]]) -> list[Text]:
    """Content the schema allows only text parts in."""
    if isinstance(content, str):
        return [Text(content)]
    return [_text(p) for p in content]


def _user_blocks(content: str | list[dict[str, Any]]) -> list[Block]:
    if isinstance(content, str):
        return [Text(content)]
    blocks: list[Block] = []
    for part in content:
        kind = part["type"]
        if kind == "text":
            blocks.append(_text(part))
        elif kind == "image_url":
            blocks.append(_image_from_wire(part))
        else:  # input_audio, file: nothing canonical to map them to
            blocks.append(Opaque("openai", part))
    return blocks


def _image_from_wire(part: dict[str, Any]) -> Image:
    image_url = part["image_url"]
    extra = _rest(part, _IMAGE_PART_KEYS)
    if "detail" in image_url:
        extra["detail"] = image_url["detail"]
    inner = _rest(image_url, _IMAGE_URL_KEYS)
    if inner:
        extra["image_url"] = inner
    url: str = image_url["url"]
    if url.startswith("data:"):
        comma = url.find(",")
        head = url[5:comma]
        if comma > 0 and head.endswith(";base64"):
            return Image(media_type=head[:-7], data=url[comma + 1 :], extra=extra)
    return Image(url=url, extra=extra)


def _assistant_blocks(raw: dict[str, Any]) -> list[Block]:
    """An assistant message's text, refusal and tool calls, in the request or the response.

    Empty text is no block: clients send ``content: ""`` beside tool calls,
    which means nothing here and is refused as a block by Anthropic.
    """
    blocks: list[Block] = []
    content = raw.get("content")
    if isinstance(content, str):
        if content:
            blocks.append(Text(content))
    elif content:
        blocks.extend(_text(p) if p["type"] == "text" else Opaque("openai", p) for p in content)
    refusal = raw.get("refusal")
    if refusal is not None:
        blocks.append(Text(refusal, {"refusal": True}))
    blocks.extend(_tool_call_from_wire(c) for c in raw.get("tool_calls") or ())
    return blocks


def _tool_call_from_wire(raw: dict[str, Any]) -> Block:
    if raw.get("type", "function") != "function":  # a custom tool's call: free text, OpenAI only
        return Opaque("openai", raw)
    function = raw["function"]
    arguments = function["arguments"]
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = None
    extra = _rest(raw, _TOOL_CALL_KEYS)
    inner = _rest(function, _FUNCTION_CALL_KEYS)
    if inner:
        extra["function"] = inner
    if isinstance(parsed, dict):
        return ToolCall(raw["id"], function["name"], parsed, extra=extra)
    return ToolCall(raw["id"], function["name"], raw_arguments=arguments, extra=extra)


def _tool_from_wire(raw: dict[str, Any]) -> Tool:
    kind = raw["type"]
    if kind != "function":  # custom: hosted grammar/free-text tools, relayed whole
        spec = raw[kind]
        return Tool(spec["name"], spec.get("description"), builtin=kind, extra=raw)
    function = raw["function"]
    extra = _rest(raw, _TOOL_KEYS)
    if "strict" in function:
        extra["strict"] = function["strict"]
    inner = _rest(function, _FUNCTION_DEF_KEYS)
    if inner:
        extra["function"] = inner
    return Tool(function["name"], function.get("description"), function.get("parameters"), extra=extra)


def _tool_choice_from_wire(choice: Any, parallel: bool | None, extra: dict[str, Any]) -> ToolChoice | None:
    if choice is None:
        return None if parallel is None else ToolChoice("auto", parallel=parallel)
    if isinstance(choice, str):
        return ToolChoice(_MODE_FROM_WIRE[choice], parallel=parallel)  # type: ignore[arg-type]
    kind = choice["type"]
    if kind == "allowed_tools":
        extra["tool_choice"] = choice
        return ToolChoice("any" if choice["allowed_tools"]["mode"] == "required" else "auto", parallel=parallel)
    return ToolChoice("tool", choice[kind]["name"], parallel)


# --- decoding a response ----------------------------------------------------------------


def response_from_wire(body: Any) -> ChatResponse:
    if not isinstance(body, dict) or body.get("object", "chat.completion") != "chat.completion" or not isinstance(
        body.get("choices"), list
    ):
        raise ValueError("not an OpenAI chat completion: expected an object 'chat.completion' with a choices list")
    try:
        return _completion(body)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed OpenAI chat completion: {exc!r}") from exc


def _completion(body: dict[str, Any]) -> ChatResponse:
    extra = _present(body, _COMPLETION_KEYS)
    choices = body["choices"]
    content: list[Block] = []
    stop: StopReason | None = None
    if choices:
        first = choices[0]
        message = first["message"]
        content = _assistant_blocks(message)
        reasoning = message.get("reasoning_content")  # OpenAI-compatible servers (DeepSeek, vLLM)
        if isinstance(reasoning, str) and reasoning:
            content.insert(0, Thinking(reasoning))
        finish = first.get("finish_reason")
        stop = FINISH_TO_STOP.get(finish, "end_turn")
        choice_extra = _present(first, _CHOICE_KEYS)
        if STOP_TO_FINISH[stop] != finish:  # function_call, or a reason of a compatible server
            choice_extra["finish_reason"] = finish
        if choice_extra:
            extra["choice"] = choice_extra
        message_extra = _present(message, _RESPONSE_MESSAGE_KEYS)
        if message_extra:
            extra["message"] = message_extra
        if len(choices) > 1:
            extra["choices"] = choices[1:]
    usage = body.get("usage")
    return ChatResponse(
        id=body.get("id") or new_id("chatcmpl"),
        model=body.get("model") or "",
        content=content,
        stop_reason=stop,
        usage=usage_from_wire(usage) if usage else Usage(),
        source="openai",
        extra=extra,
    )


# --- encoding -----------------------------------------------------------------------------


class _Writer:
    """Canonical -> wire for one request or response, collecting what is lost.

    ``source`` is the format the canonical object came from: its extras are
    written back when it is this one, reported lossy when it is the other, and
    ignored when None (a response a plugin made).  Blocks this API has no place
    for are reported whatever the source.
    """

    __slots__ = ("keep", "report", "lossy")

    def __init__(self, source: Format | None) -> None:
        self.keep = source == "openai"
        self.report = source is not None and not self.keep
        self.lossy: dict[str, None] = {}  # an ordered set

    def lose(self, name: str) -> None:
        self.lossy[name] = None

    def extra(
        self, out: dict[str, Any], extra: Mapping[str, Any], prefix: str, skip: frozenset[str] = frozenset()
    ) -> None:
        """Write ``extra`` back, or name what it held; None and False carry nothing."""
        if self.keep:
            for key, value in extra.items():
                if key not in skip:
                    out[key] = value
        elif self.report:
            for key, value in extra.items():
                if key not in skip and value is not None and value is not False:
                    self.lose(prefix + key)

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

    def unplaced(self, block: Block) -> dict[str, Any] | None:
        """A block with no canonical counterpart here: an OpenAI part relayed, anything else lost."""
        if isinstance(block, Opaque) and block.format == "openai":
            return block.data
        if isinstance(block, Thinking):
            self.lose("thinking")
        else:
            self.lose(f"content.{block.data.get('type') if isinstance(block, Opaque) else block.type}")
        return None

    # --- parts and calls

    def text(self, block: Text) -> dict[str, Any]:
        out = {"type": "text", "text": block.text}
        if block.extra:
            self.extra(out, block.extra, "text.", _TEXT_MARKS)
        return out

    def image(self, block: Image) -> dict[str, Any]:
        url = block.url if block.data is None else f"data:{block.media_type};base64,{block.data}"
        image_url: dict[str, Any] = {"url": url}
        out = {"type": "image_url", "image_url": image_url}
        if block.extra:
            self.nested(out, image_url, block.extra, "image.", "image_url", frozenset({"detail"}))
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
                if block.extra.get("refusal") is True:
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

    def tool_choice(self, body: dict[str, Any], choice: ToolChoice) -> None:
        """``tool_choice`` and ``parallel_tool_calls``; only beside tools, which OpenAI
        requires, unless the client itself sent them so."""
        tools = body.get("tools")
        if choice.mode == "tool":
            wire = _named_choice(choice.name or "", tools or ())
            if wire is None and self.keep:
                wire = {"type": "function", "function": {"name": choice.name}}
            if wire is None:
                self.lose("tool_choice")
                return
            body["tool_choice"] = wire
        elif tools or (self.keep and choice.mode != "auto"):
            body["tool_choice"] = _MODE_TO_WIRE[choice.mode]
        elif choice.mode == "any":
            self.lose("tool_choice")
        if choice.parallel is not None and (tools or self.keep):
            body["parallel_tool_calls"] = choice.parallel


def _compact(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone plain text part as the string shorthand the API defines for it; no parts as ''."""
    if not parts:
        return ""
    if len(parts) == 1 and parts[0].keys() == _TEXT_PART_KEYS and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _named_choice(name: str, tools: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The wire choice of the written tool called ``name`` (a function or a custom tool)."""
    for tool in tools:
        kind = tool.get("type")
        if tool.get(kind, {}).get("name") == name:
            return {"type": kind, kind: {"name": name}}
    return None


def _foreign_extras(request: ChatRequest, body: dict[str, Any], w: _Writer) -> None:
    """Anthropic-only request fields, each named lossy.

    ``thinking`` is not turned into ``reasoning_effort``: a model that does not
    reason refuses that field, so it would fail requests a route sends to, say,
    gpt-4.1; a reasoning model reasons at its default effort anyway.
    """
    for key, value in request.extra.items():
        if value is None or value is False:
            continue
        if key == "thinking" and isinstance(value, Mapping) and value.get("type") == "disabled":
            continue
        w.lose(key)


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
        if not w.keep and len(request.stop) > _MAX_STOP:
            body["stop"] = request.stop[:_MAX_STOP]
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
    if w.keep:
        w.extra(body, request.extra, "", _LEGACY_MAX_TOKENS if legacy else frozenset())
    else:
        _foreign_extras(request, body, w)
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
    else:
        w.extra(body, response.extra, "")
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


# --- errors -------------------------------------------------------------------------------


def error_to_wire(error: RouterError) -> dict[str, Any]:
    status = error.status
    fallback = "server_error" if status >= 500 else _ERROR_TYPES.get(status, "invalid_request_error")
    return {
        "error": {
            "message": error.message,
            "type": error.error_type or fallback,
            "param": error.param,
            "code": error.code,
        }
    }


def error_from_wire(body: bytes) -> tuple[str | None, str]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, short(body)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        kind = error.get("type") or error.get("code")
        return (kind if isinstance(kind, str) else None), error["message"]
    if isinstance(error, str):  # some compatible servers: {"error": "..."}
        return None, error
    return None, short(body)


class OpenAICodec(Codec):
    """The OpenAI chat-completions API; see the module docstring for where its own fields go."""

    name = "openai"

    def parse_request(self, body: bytes) -> ChatRequest:
        data = load_json_object(body)
        problem = first_problem(REQUEST_SCHEMA, data)
        if problem is not None:
            raise invalid_from(ValidationError(problem))
        return request_from_wire(data)

    def encode_request(
        self, request: ChatRequest, *, default_max_tokens: int | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        """``default_max_tokens`` is unused: OpenAI does not require a limit."""
        return request_to_wire(request)

    def decode_response(self, body: dict[str, Any]) -> ChatResponse:
        return response_from_wire(body)

    def encode_response(self, response: ChatResponse, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        return response_to_wire(response)

    def stream_decoder(self) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder()

    def stream_encoder(self, request: ChatRequest, *, source: Format | None) -> OpenAIStreamEncoder:
        options = request.extra.get("stream_options") if request.source == "openai" else None
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return OpenAIStreamEncoder(include_usage=include_usage, source=source)

    def stream_done(self) -> bytes:
        return DONE

    def error_body(self, error: RouterError) -> dict[str, Any]:
        return error_to_wire(error)

    def parse_error(self, body: bytes) -> tuple[str | None, str]:
        return error_from_wire(body)


# The stream codec builds on this module's mappings, so it is imported last.
from .stream import DONE, OpenAIStreamDecoder, OpenAIStreamEncoder  # noqa: E402
