"""Type checks of canonical objects that did not come through a codec's validation.

Plugins change the request and the answer by hand, and upstreams send what they
like, so the canonical types are checked where either enters:
``check_request`` after each Start and PreRouting hook, ``check_response``
after every hook that leaves an answer and on every upstream answer,
``check_block`` on each block of a streamed one.  Each walks the fields once
with exact type tests (so ``True`` is not an integer), never a serialisation:
they run on every request.  Each raises ``ValueError('<field>: <what is
wrong>')``, the field named as the wire validation names it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

from .canonical import (
    Block, ChatRequest, ChatResponse, File, Format, Image, Message, Opaque, Reasoning, ReasoningMode, Role, Text, Thinking,
    Tool, ToolCall, ToolChoice, ToolChoiceMode, ToolResult, Usage,
)

_NONE = type(None)
_STR, _OPT_STR, _DICT = (str,), (str, _NONE), (dict,)
_NUMBER = (float, int, _NONE)

# What each field of each class may hold: its types...
_FIELDS: dict[type, tuple[tuple[str, tuple[type, ...]], ...]] = {
    Text: (("text", _STR), ("extra", _DICT), ("refusal", (bool,))),
    Image: (("url", _OPT_STR), ("media_type", _OPT_STR), ("data", _OPT_STR), ("extra", _DICT), ("detail", _OPT_STR)),
    File: (
        ("data", _OPT_STR), ("media_type", _OPT_STR), ("url", _OPT_STR), ("file_id", _OPT_STR), ("filename", _OPT_STR),
        ("extra", _DICT),
    ),
    ToolCall: (("id", _STR), ("name", _STR), ("input", _DICT), ("raw_arguments", _OPT_STR), ("extra", _DICT)),
    ToolResult: (("tool_call_id", _STR), ("content", (list, str)), ("is_error", (bool,)), ("extra", _DICT)),
    Thinking: (("thinking", _STR), ("signature", _OPT_STR), ("redacted", _OPT_STR), ("extra", _DICT)),
    Opaque: (("format", _STR), ("data", _DICT)),
    Message: (("role", _STR), ("content", (list, str)), ("extra", _DICT)),
    Tool: (
        ("name", _STR), ("description", _OPT_STR), ("parameters", (dict, _NONE)), ("builtin", _OPT_STR), ("extra", _DICT),
        ("strict", (bool, _NONE)),
    ),
    ToolChoice: (("mode", _STR), ("name", _OPT_STR), ("parallel", (bool, _NONE))),
    Reasoning: (("mode", _STR), ("effort", _OPT_STR), ("budget_tokens", (int, _NONE)), ("extra", _DICT)),
    ChatRequest: (
        ("model", _STR), ("source", _STR), ("messages", (list,)), ("system", (list, str)), ("max_tokens", (int, _NONE)),
        ("temperature", _NUMBER), ("top_p", _NUMBER), ("stop", (list,)), ("stream", (bool,)), ("tools", (list,)),
        ("tool_choice", (ToolChoice, _NONE)), ("user", _OPT_STR), ("reasoning", (Reasoning, _NONE)), ("web_search", (dict, _NONE)),
        ("extra", _DICT),
        ("tags", _DICT), ("forced_provider", _OPT_STR), ("headers", _DICT),
    ),
    Usage: (
        ("input_tokens", (int,)), ("output_tokens", (int,)), ("cache_read_tokens", (int,)),
        ("cache_creation_tokens", (int,)), ("extra", _DICT), ("reasoning_tokens", (int,)),
        ("cache_creation_1h_tokens", (int,)),
    ),
    ChatResponse: (
        ("id", _STR), ("model", _STR), ("content", (list, str)), ("stop_reason", _OPT_STR),
        ("stop_sequence", _OPT_STR), ("usage", (Usage,)), ("source", _OPT_STR), ("extra", _DICT),
    ),
}
# ... and, for the strings that name one of a few things, which.
_CHOICES: dict[type, tuple[str, frozenset[str]]] = {
    Opaque: ("format", frozenset(get_args(Format))),
    Message: ("role", frozenset(get_args(Role))),
    ToolChoice: ("mode", frozenset(get_args(ToolChoiceMode))),
    Reasoning: ("mode", frozenset(get_args(ReasoningMode))),
    ChatRequest: ("source", frozenset(get_args(Format))),
}
_BLOCKS = (Text, Image, File, ToolCall, ToolResult, Thinking, Opaque)
_TYPE_NAMES = {str: "a string", dict: "a dict", list: "a list", bool: "a boolean", int: "an integer", float: "a number", _NONE: "None"}


def _kind(types: tuple[type, ...]) -> str:
    return " or ".join(_TYPE_NAMES.get(t, f"a {t.__name__}") for t in types if not (t is int and float in types))


def _check_fields(obj: Any) -> None:
    """``ValueError('<field>: expected ..., got ...')`` for the first field of
    ``obj`` (a canonical object) that does not hold what it may."""
    cls = type(obj)
    for name, types in _FIELDS[cls]:
        value = getattr(obj, name)
        if type(value) not in types:
            raise ValueError(f"{name}: expected {_kind(types)}, got {type(value).__name__}")
    if cls in _CHOICES:
        name, allowed = _CHOICES[cls]
        if getattr(obj, name) not in allowed:
            raise ValueError(f"{name}: expected one of {', '.join(sorted(allowed))}, got {getattr(obj, name)!r}")


def _at(check: Callable[[Any], Any], obj: Any, *path: str | int) -> None:
    """``check(obj)``, its ``ValueError`` prefixed with where ``obj`` is (``messages.2``)."""
    try:
        check(obj)
    except ValueError as exc:
        raise ValueError(f"{'.'.join(map(str, path))}.{exc}") from None


def check_block(block: Block) -> Block:
    """``block`` if every field holds what the canonical model allows;
    ``ValueError`` naming the field otherwise (``text: expected a string, got
    int``).  A string in a tool result's content becomes a text block."""
    if type(block) not in _BLOCKS:
        raise ValueError(f"expected a content block, got {type(block).__name__}")
    _check_fields(block)
    if type(block) is ToolResult:
        block.content = _blocks(block.content, "content", _BLOCKS, "content block")
    return block


def _blocks(value: list[Any] | str, name: str, kinds: tuple[type, ...], noun: str) -> list[Any]:
    """``value`` (a field ``_check_fields`` passed) as a checked list of blocks
    of ``kinds``.  A plugin may write a string where such a list, or one of its
    blocks, is expected (``request.system = "be brief"``): it becomes a text
    block here (an empty string, no block)."""
    if type(value) is str:
        return [Text(value)] if value else []
    for i, block in enumerate(value):
        if type(block) is str:
            value[i] = Text(block)
        elif type(block) not in kinds:
            raise ValueError(f"{name}.{i}: expected a {noun}, got {type(block).__name__}")
        else:
            _at(check_block, block, name, i)
    return value


def _check_message(message: Message) -> None:
    _check_fields(message)
    message.content = _blocks(message.content, "content", _BLOCKS, "content block")


def check_request(request: Any) -> None:
    """Checks ``request`` after a plugin had it, normalising the forms a plugin
    may naturally write (a string for ``system`` or a message's ``content``, or
    for one of their blocks).  Raises ``ValueError('<field>: <what is wrong>')``,
    the field named as the wire validation names it (``messages.2.content.0``),
    for anything else that is not what the canonical model allows: an encoder,
    the router or the request log would otherwise fail on it later."""
    if type(request) is not ChatRequest:
        raise ValueError(f"request: expected a ChatRequest, got {type(request).__name__}")
    _check_fields(request)
    request.system = _blocks(request.system, "system", (Text,), "text block")
    for i, message in enumerate(request.messages):
        if type(message) is not Message:
            raise ValueError(f"messages.{i}: expected a Message, got {type(message).__name__}")
        _at(_check_message, message, "messages", i)
    for i, stop in enumerate(request.stop):
        if type(stop) is not str:
            raise ValueError(f"stop.{i}: expected a string, got {type(stop).__name__}")
    for i, tool in enumerate(request.tools):
        if type(tool) is not Tool:
            raise ValueError(f"tools.{i}: expected a Tool, got {type(tool).__name__}")
        _at(_check_fields, tool, "tools", i)
    if request.tool_choice is not None:
        _at(_check_fields, request.tool_choice, "tool_choice")
    if request.reasoning is not None:
        _at(_check_fields, request.reasoning, "reasoning")


def check_usage(usage: Usage) -> Usage:
    """``usage`` if its counts are token counts (integers, not negative)."""
    _check_fields(usage)
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "reasoning_tokens",
                 "cache_creation_1h_tokens"):
        if getattr(usage, name) < 0:
            raise ValueError(f"{name}: expected a token count, got {getattr(usage, name)}")
    return usage


def check_response(response: Any) -> ChatResponse:
    """``response`` if every field holds what the canonical model allows; a
    string for ``content`` (or for one of its blocks) becomes a text block."""
    if type(response) is not ChatResponse:
        raise ValueError(f"response: expected a ChatResponse, got {type(response).__name__}")
    _at(_check_fields, response, "response")
    _at(check_usage, response.usage, "response", "usage")
    response.content = _blocks(response.content, "response.content", _BLOCKS, "content block")
    return response

