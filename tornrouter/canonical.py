"""The canonical request, response and stream events.

Both wire formats (``formats.openai``, ``formats.anthropic``) decode into these
types and encode out of them; the pipeline, router, plugins and providers only
ever see these.  Nothing here knows about HTTP, Tornado or marshmallow.

Fidelity rule: every object carries ``extra``, a dict of the wire fields of its
*source* format that the canonical model does not name (``logprobs``,
``cache_control``, fields a provider adds tomorrow...).  An encoder for the same
format writes them back unchanged; an encoder for the other format cannot, and
reports their names as lossy instead of dropping them silently.

A stream is a sequence of the events at the bottom of this module; the
non-streamed response is what ``accumulate`` builds from them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args

Format = Literal["openai", "anthropic"]
Role = Literal["user", "assistant", "system", "developer"]
ToolChoiceMode = Literal["auto", "any", "none", "tool"]
StopReason = Literal[
    "end_turn", "max_tokens", "tool_use", "stop_sequence", "content_filter", "refusal", "pause_turn"
]


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, {}, [])}


# --- content blocks ---------------------------------------------------------


@dataclass(slots=True)
class Text:
    text: str
    extra: dict[str, Any] = field(default_factory=dict)
    type = "text"

    def to_json(self) -> dict[str, Any]:
        return _drop_empty({"type": "text", "text": self.text, "extra": self.extra})


@dataclass(slots=True)
class Image:
    """An image given by URL (``url``) or inline (``media_type`` + base64 ``data``)."""

    url: str | None = None
    media_type: str | None = None
    data: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    type = "image"

    def to_json(self) -> dict[str, Any]:
        # The log keeps the shape of an inline image, not its megabytes.
        data = None if self.data is None else f"<{len(self.data)} base64 chars>"
        return _drop_empty(
            {"type": "image", "url": self.url, "media_type": self.media_type, "data": data, "extra": self.extra}
        )


@dataclass(slots=True)
class ToolCall:
    """A call the assistant makes: OpenAI ``tool_calls[]`` / Anthropic ``tool_use``.

    ``input`` is the parsed arguments object.  ``raw_arguments`` keeps an OpenAI
    ``arguments`` string that was not a JSON object, so it can still be relayed
    to an OpenAI upstream byte for byte.
    """

    id: str
    name: str
    input: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    type = "tool_call"

    def to_json(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "type": "tool_call",
                "id": self.id,
                "name": self.name,
                "input": self.input,
                "raw_arguments": self.raw_arguments,
                "extra": self.extra,
            }
        )


@dataclass(slots=True)
class ToolResult:
    """The result of a tool call, sent back by the client in a user turn.

    OpenAI carries these as ``role: tool`` messages; canonically they are blocks
    of a user message, as in Anthropic's API, so consecutive results form one turn.
    """

    tool_call_id: str
    content: list[Block] = field(default_factory=list)
    is_error: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    type = "tool_result"

    def to_json(self) -> dict[str, Any]:
        out = {
            "type": "tool_result",
            "tool_call_id": self.tool_call_id,
            "content": [b.to_json() for b in self.content],
            "extra": self.extra,
        }
        if self.is_error:
            out["is_error"] = True
        return _drop_empty(out)


@dataclass(slots=True)
class Thinking:
    """Model reasoning.  ``redacted`` holds an Anthropic ``redacted_thinking`` payload."""

    thinking: str = ""
    signature: str | None = None
    redacted: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    type = "thinking"

    def to_json(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "type": "thinking",
                "thinking": self.thinking,
                "signature": self.signature,
                "redacted": self.redacted,
                "extra": self.extra,
            }
        )


@dataclass(slots=True)
class Opaque:
    """A block only one API has (``server_tool_use``, ``document``, ``input_audio``...).

    ``data`` is the wire object as received; it is relayed unchanged to the same
    format and reported as lossy to the other.
    """

    format: Format
    data: dict[str, Any]
    type = "opaque"

    def to_json(self) -> dict[str, Any]:
        return {"type": "opaque", "format": self.format, "data": self.data}


Block = Union[Text, Image, ToolCall, ToolResult, Thinking, Opaque]


@dataclass(slots=True)
class Message:
    """One turn.  ``system``/``developer`` roles appear here only mid-conversation;
    leading instructions live in ``ChatRequest.system``."""

    role: Role
    content: list[Block] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, Text))

    def to_json(self) -> dict[str, Any]:
        return _drop_empty({"role": self.role, "content": [b.to_json() for b in self.content], "extra": self.extra})


# --- tools --------------------------------------------------------------------


@dataclass(slots=True)
class Tool:
    """A tool offered to the model.

    A function tool has ``name``, ``description`` and a JSON-schema
    ``parameters``.  A provider-hosted tool (Anthropic ``web_search_20250305``,
    OpenAI ``custom``) has ``builtin`` set to its wire ``type`` and its whole wire
    object in ``extra``.
    """

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    builtin: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
                "builtin": self.builtin,
                "extra": self.extra,
            }
        )


@dataclass(slots=True)
class ToolChoice:
    """``auto`` | ``any`` (OpenAI ``required``) | ``none`` | ``tool`` (with ``name``).

    ``parallel`` is OpenAI ``parallel_tool_calls`` and the negation of Anthropic
    ``disable_parallel_tool_use``; None when the client did not say.
    """

    mode: ToolChoiceMode = "auto"
    name: str | None = None
    parallel: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return _drop_empty({"mode": self.mode, "name": self.name, "parallel": self.parallel})


# --- request ------------------------------------------------------------------


@dataclass(slots=True)
class ChatRequest:
    """What a client asked for, in neither API's shape.

    ``source`` is the wire format the request arrived in: it says how to read
    ``extra`` at every level.  ``tags`` is filled by the classifiers
    (tag -> name of the classifier that set it); ``forced_provider`` by a
    ``provider,model`` model name.
    """

    model: str
    source: Format
    messages: list[Message] = field(default_factory=list)
    system: list[Text] = field(default_factory=list)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    forced_provider: str | None = None

    def last_user_text(self) -> str:
        """The text of the last user message ('' if there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return ""

    def system_text(self) -> str:
        return "\n".join(b.text for b in self.system)

    def to_json(self) -> dict[str, Any]:
        """The request as the request log and dashboard show it."""
        return {
            "model": self.model,
            "system": self.system_text() or None,
            "messages": [m.to_json() for m in self.messages],
        }


# --- checks -------------------------------------------------------------------
#
# Plugins change the request by hand and upstreams send what they like, so the
# types above are checked where either enters: ``check_request`` after each
# Start and PreRouting hook, ``check_block`` on every block of an upstream's
# answer.  Both walk the fields once with exact type tests (so ``True`` is not
# an integer), never a serialisation: they run on every request.

_NONE = type(None)
_STR, _OPT_STR, _DICT = (str,), (str, _NONE), (dict,)
_NUMBER = (float, int, _NONE)

# What each field of each class may hold: its types...
_FIELDS: dict[type, tuple[tuple[str, tuple[type, ...]], ...]] = {
    Text: (("text", _STR), ("extra", _DICT)),
    Image: (("url", _OPT_STR), ("media_type", _OPT_STR), ("data", _OPT_STR), ("extra", _DICT)),
    ToolCall: (("id", _STR), ("name", _STR), ("input", _DICT), ("raw_arguments", _OPT_STR), ("extra", _DICT)),
    ToolResult: (("tool_call_id", _STR), ("content", (list, str)), ("is_error", (bool,)), ("extra", _DICT)),
    Thinking: (("thinking", _STR), ("signature", _OPT_STR), ("redacted", _OPT_STR), ("extra", _DICT)),
    Opaque: (("format", _STR), ("data", _DICT)),
    Message: (("role", _STR), ("content", (list, str)), ("extra", _DICT)),
    Tool: (("name", _STR), ("description", _OPT_STR), ("parameters", (dict, _NONE)), ("builtin", _OPT_STR), ("extra", _DICT)),
    ToolChoice: (("mode", _STR), ("name", _OPT_STR), ("parallel", (bool, _NONE))),
    ChatRequest: (
        ("model", _STR), ("source", _STR), ("messages", (list,)), ("system", (list, str)), ("max_tokens", (int, _NONE)),
        ("temperature", _NUMBER), ("top_p", _NUMBER), ("stop", (list,)), ("stream", (bool,)), ("tools", (list,)),
        ("tool_choice", (ToolChoice, _NONE)), ("user", _OPT_STR), ("extra", _DICT), ("tags", _DICT),
        ("forced_provider", _OPT_STR),
    ),
}
# ... and, for the strings that name one of a few things, which.
_CHOICES: dict[type, tuple[str, frozenset[str]]] = {
    Opaque: ("format", frozenset(get_args(Format))),
    Message: ("role", frozenset(get_args(Role))),
    ToolChoice: ("mode", frozenset(get_args(ToolChoiceMode))),
    ChatRequest: ("source", frozenset(get_args(Format))),
}
_BLOCKS = (Text, Image, ToolCall, ToolResult, Thinking, Opaque)
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


# --- response -----------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    """Token counts.  ``input_tokens`` excludes cached tokens, as Anthropic counts;
    OpenAI's ``prompt_tokens`` is ``input_tokens + cache_read + cache_creation``."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens

    def to_json(self) -> dict[str, Any]:
        out = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.cache_read_tokens:
            out["cache_read_tokens"] = self.cache_read_tokens
        if self.cache_creation_tokens:
            out["cache_creation_tokens"] = self.cache_creation_tokens
        return out


@dataclass(slots=True)
class ChatResponse:
    """One assistant answer.  ``source`` is the wire format it was decoded from
    (None for one a plugin or the echo provider made)."""

    id: str
    model: str
    content: list[Block] = field(default_factory=list)
    stop_reason: StopReason | None = "end_turn"
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    source: Format | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_text(cls, text: str, *, model: str, id: str | None = None) -> ChatResponse:
        """A plain text answer, e.g. a plugin's short-circuit reply."""
        return cls(id=id or new_id("msg"), model=model, content=[Text(text)])

    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, Text))

    def to_json(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "id": self.id,
                "model": self.model,
                "content": [b.to_json() for b in self.content],
                "stop_reason": self.stop_reason,
                "stop_sequence": self.stop_sequence,
                "usage": self.usage.to_json(),
            }
        )


def new_id(prefix: str) -> str:
    """A fresh random id in the style both APIs use (``msg_…``, ``chatcmpl-…``)."""
    sep = "-" if prefix == "chatcmpl" else "_"
    return f"{prefix}{sep}{secrets.token_hex(12)}"


# --- stream events --------------------------------------------------------------
#
# A stream is: MessageStart, then for each content block BlockStart, any number of
# BlockDelta, BlockStop (blocks may interleave only as their indices allow), then
# MessageDelta and MessageStop -- or StreamError at any point, which ends it.


@dataclass(slots=True)
class MessageStart:
    id: str
    model: str
    usage: Usage = field(default_factory=Usage)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BlockStart:
    """``block`` is the block as it starts: ``Text('')``, ``ToolCall(id, name)``,
    ``Thinking('')``, or an ``Opaque`` block carried whole."""

    index: int
    block: Block


@dataclass(slots=True)
class BlockDelta:
    """``kind`` is ``text``, ``tool_input`` (a fragment of the JSON arguments),
    ``thinking`` or ``signature``."""

    index: int
    kind: Literal["text", "tool_input", "thinking", "signature"]
    value: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BlockStop:
    index: int


@dataclass(slots=True)
class MessageDelta:
    stop_reason: StopReason | None
    stop_sequence: str | None = None
    usage: Usage | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class MessageStop:
    pass


@dataclass(slots=True)
class StreamError:
    """The upstream failed after the stream began; ends the stream."""

    status: int
    message: str


StreamEvent = Union[MessageStart, BlockStart, BlockDelta, BlockStop, MessageDelta, MessageStop, StreamError]
