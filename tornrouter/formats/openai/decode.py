"""OpenAI wire -> canonical: requests (validated before) and responses (checked after)."""

from __future__ import annotations

import json
from itertools import islice
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
from ..base import file_from_data, others, split_data_url
from .shapes import (
    ASSISTANT_KEYS,
    CHOICE_KEYS,
    COMPLETION_KEYS,
    CONTENT_KEY,
    FILE_KEYS,
    FILE_PART_KEYS,
    FINISH_TO_STOP,
    FUNCTION_CALL_KEYS,
    FUNCTION_DEF_KEYS,
    IMAGE_PART_KEYS,
    IMAGE_URL_KEYS,
    INSTRUCTION_ROLES,
    MODE_FROM_WIRE,
    others_present,
    REQUEST_KEYS,
    RESPONSE_MESSAGE_KEYS,
    ROLE_CONTENT_KEYS,
    STOP_TO_FINISH,
    TEXT_PART_KEYS,
    TOOL_CALL_KEYS,
    TOOL_KEYS,
    TOOL_MESSAGE_KEYS,
    usage_from_wire,
)


# --- decoding a request --------------------------------------------------------------


def request_from_wire(data: dict[str, Any]) -> ChatRequest:
    """A validated request body as a ``ChatRequest``; values are shared, not copied."""
    extra = others(data, REQUEST_KEYS)
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
        reasoning=_reasoning_from_wire(extra),
        web_search=extra.pop("web_search_options") if isinstance(extra.get("web_search_options"), dict) else None,
        extra=extra,
    )


def _reasoning_from_wire(extra: dict[str, Any]) -> Reasoning | None:
    """``reasoning_effort``, taken out of ``extra``; a null one stays there, to be relayed as sent."""
    if extra.get("reasoning_effort") is None:
        return None
    effort = extra.pop("reasoning_effort")
    return Reasoning("disabled" if effort == "none" else "enabled", effort)


def _messages_from_wire(wire: list[dict[str, Any]]) -> tuple[list[Text], list[Message]]:
    """Leading instructions as system text; the rest as turns, runs of tool messages as one user turn."""
    system: list[Text] = []
    start = 0
    while start < len(wire) and wire[start]["role"] in INSTRUCTION_ROLES:
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
            result = ToolResult(raw["tool_call_id"], _texts(raw["content"]), extra=others(raw, TOOL_MESSAGE_KEYS))
            tool_turn.content.append(result)
            continue
        tool_turn = None
        if role == "assistant":
            messages.append(Message("assistant", _assistant_blocks(raw), others(raw, ASSISTANT_KEYS)))
        elif role == "user":
            messages.append(Message("user", _user_blocks(raw["content"]), others(raw, ROLE_CONTENT_KEYS)))
        else:
            messages.append(Message(role, _texts(raw["content"]), others(raw, ROLE_CONTENT_KEYS)))
    return system, messages


def _instruction_texts(raw: dict[str, Any], *, first: bool) -> list[Text]:
    texts = _texts(raw["content"])
    fields = others(raw, CONTENT_KEY)
    if not first or fields != {"role": "system"}:
        texts[0].extra["message"] = fields
    return texts


def _text(part: dict[str, Any]) -> Text:
    return Text(part["text"], others(part, TEXT_PART_KEYS))


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
        elif kind == "file":
            blocks.append(_file_from_wire(part))
        else:  # input_audio: nothing canonical to map it to
            blocks.append(Opaque("openai", part))
    return blocks


def _image_from_wire(part: dict[str, Any]) -> Image:
    image_url = part["image_url"]
    extra = others(part, IMAGE_PART_KEYS)
    inner = others(image_url, IMAGE_URL_KEYS)
    if inner:
        extra["image_url"] = inner
    return image_from_url(image_url["url"], image_url.get("detail"), extra)


def image_from_url(url: str, detail: str | None, extra: dict[str, Any]) -> Image:
    """An image given by URL, a base64 ``data:`` URL read as inline data."""
    inline = split_data_url(url)
    if inline is not None:
        return Image(media_type=inline[0], data=inline[1], extra=extra, detail=detail)
    return Image(url=url, extra=extra, detail=detail)


def _file_from_wire(part: dict[str, Any]) -> File:
    file = part["file"]
    extra = others(part, FILE_PART_KEYS)
    inner = others(file, FILE_KEYS)
    if inner:
        extra["file"] = inner
    return file_from_data(file.get("file_data"), file_id=file.get("file_id"), filename=file.get("filename"), extra=extra)


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
        blocks.append(Text(refusal, refusal=True))
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
    extra = others(raw, TOOL_CALL_KEYS)
    inner = others(function, FUNCTION_CALL_KEYS)
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
    extra = others(raw, TOOL_KEYS)
    inner = others(function, FUNCTION_DEF_KEYS)
    if inner:
        extra["function"] = inner
    return Tool(
        function["name"], function.get("description"), function.get("parameters"), extra=extra,
        strict=function.get("strict"),
    )


def _tool_choice_from_wire(choice: Any, parallel: bool | None, extra: dict[str, Any]) -> ToolChoice | None:
    if choice is None:
        return None if parallel is None else ToolChoice("auto", parallel=parallel)
    if isinstance(choice, str):
        return ToolChoice(MODE_FROM_WIRE[choice], parallel=parallel)  # type: ignore[arg-type]
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
    extra = others_present(body, COMPLETION_KEYS)
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
        choice_extra = others_present(first, CHOICE_KEYS)
        if STOP_TO_FINISH[stop] != finish:  # function_call, or a reason of a compatible server
            choice_extra["finish_reason"] = finish
        if choice_extra:
            extra["choice"] = choice_extra
        message_extra = others_present(message, RESPONSE_MESSAGE_KEYS)
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
