"""The canonical request, response and stream events.

The wire formats (``formats.openai``, ``formats.anthropic``, ``formats.responses``)
decode into these types and encode out of them; the pipeline, router, plugins and providers only
ever see these.  Nothing here knows about HTTP, Tornado or marshmallow.

Fidelity rule: every object carries ``extra``, a dict of the wire fields of its
*source* format that the canonical model does not name (``logprobs``,
``cache_control``, fields a provider adds tomorrow...).  An encoder for the same
format writes them back unchanged; an encoder for the other format cannot, and
reports their names as lossy instead of dropping them silently.  What two APIs
express alike has a field of its own (``ChatRequest.reasoning``, ``Text.refusal``), so
no code but the source format's codec ever reads an ``extra``.

A stream is a sequence of the events at the bottom of this module; the
non-streamed response is what ``accumulate`` builds from them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Literal, Union

Format = Literal["openai", "anthropic", "responses", "gemini", "converse"]  # the last two: upstream APIs only
Role = Literal["user", "assistant", "system", "developer"]
ToolChoiceMode = Literal["auto", "any", "none", "tool"]
ReasoningMode = Literal["enabled", "disabled", "adaptive"]
StopReason = Literal[
    "end_turn", "max_tokens", "tool_use", "stop_sequence", "content_filter", "refusal", "pause_turn"
]


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, {}, [])}


# --- content blocks ---------------------------------------------------------


@dataclass(slots=True)
class Text:
    """Text.  ``refusal`` marks the model's refusal to answer (OpenAI's assistant
    ``refusal``); an API without a place for one carries it as plain text."""

    text: str
    extra: dict[str, Any] = field(default_factory=dict)
    refusal: bool = False
    type = "text"

    def to_json(self) -> dict[str, Any]:
        out = {"type": "text", "text": self.text, "extra": self.extra}
        if self.refusal:
            out["refusal"] = True
        return _drop_empty(out)


@dataclass(slots=True)
class Image:
    """An image given by URL (``url``) or inline (``media_type`` + base64 ``data``).
    ``detail`` is OpenAI's (``low``, ``high``, ``auto``...), None when not given."""

    url: str | None = None
    media_type: str | None = None
    data: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    detail: str | None = None
    type = "image"

    def to_json(self) -> dict[str, Any]:
        # The log keeps the shape of an inline image, not its megabytes.
        data = None if self.data is None else f"<{len(self.data)} base64 chars>"
        return _drop_empty(
            {"type": "image", "url": self.url, "media_type": self.media_type, "data": data, "detail": self.detail,
             "extra": self.extra}
        )


@dataclass(slots=True)
class File:
    """A document (a PDF...) given inline (``media_type`` + base64 ``data``), by
    URL, or by ``file_id``: the id OpenAI's file store gave it, which only an
    OpenAI upstream can read.  ``filename`` as the client named it (Anthropic's
    document ``title``)."""

    data: str | None = None
    media_type: str | None = None
    url: str | None = None
    file_id: str | None = None
    filename: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    type = "file"

    def to_json(self) -> dict[str, Any]:
        data = None if self.data is None else f"<{len(self.data)} base64 chars>"  # the shape, not the megabytes
        return _drop_empty(
            {"type": "file", "url": self.url, "media_type": self.media_type, "data": data, "file_id": self.file_id,
             "filename": self.filename, "extra": self.extra}
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


Block = Union[Text, Image, File, ToolCall, ToolResult, Thinking, Opaque]


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
    ``parameters``; ``strict`` is OpenAI's (the arguments must follow the
    schema exactly), None when not given.  A provider-hosted tool (Anthropic
    ``web_search_20250305``, OpenAI ``custom``, the Responses API's
    ``web_search``, ``file_search``...) has ``builtin`` set to its wire ``type``
    and its whole wire object in ``extra``.
    """

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    builtin: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    strict: bool | None = None

    @property
    def web_search(self) -> bool:
        """A hosted web search, whichever API offers it: both name its type
        ``web_search...`` (Anthropic ``web_search_20250305``, Responses
        ``web_search``, ``web_search_preview``)."""
        return self.builtin is not None and self.builtin.startswith("web_search")

    def to_json(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
                "builtin": self.builtin,
                "strict": self.strict,
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


@dataclass(slots=True)
class Reasoning:
    """How the model should reason before it answers, whichever API asked.

    ``mode`` is ``enabled``, ``disabled`` (OpenAI ``reasoning_effort: none``,
    Anthropic ``thinking.type: disabled``) or ``adaptive`` (the model decides,
    Anthropic ``thinking.type: adaptive``).  ``effort`` is OpenAI's
    ``reasoning_effort`` as sent (``minimal``, ``low``, ``medium``, ``high``...);
    ``budget_tokens`` is Anthropic's ``thinking.budget_tokens``, the most tokens
    the reasoning may take out of ``max_tokens``.  A client sets one or the
    other; an encoder for the other API translates or reports what it cannot.
    """

    mode: ReasoningMode = "enabled"
    effort: str | None = None
    budget_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- request ------------------------------------------------------------------


@dataclass(slots=True)
class ChatRequest:
    """What a client asked for, in neither API's shape.

    ``source`` is the wire format the request arrived in: it says how to read
    ``extra`` at every level.  ``reasoning`` is None when the client did not
    say how the model should reason.  ``web_search`` holds the options of a
    request-level web search (OpenAI's ``web_search_options``; an Anthropic
    client offers a ``web_search`` server tool in ``tools`` instead).  ``tags`` is filled by the classifiers
    (tag -> name of the classifier that set it); ``forced_provider`` by a
    ``provider,model`` model name.  ``headers`` holds the request headers of
    the source API that are part of the request (Anthropic's ``anthropic-beta``,
    ``anthropic-version``...), names in lower case: relayed to an upstream of
    the same API, reported lossy to the other, as ``extra`` is.
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
    reasoning: Reasoning | None = None
    web_search: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    forced_provider: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def last_user_text(self) -> str:
        """The text of the last user message ('' if there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return ""

    def system_text(self) -> str:
        return "\n".join(b.text for b in self.system)


# --- response -----------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    """Token counts.  ``input_tokens`` excludes cached tokens, as Anthropic counts;
    OpenAI's ``prompt_tokens`` is ``input_tokens + cache_read + cache_creation``.
    ``reasoning_tokens`` is the part of ``output_tokens`` the model spent
    reasoning, where the API says (OpenAI's).  ``cache_creation_1h_tokens`` is the part of ``cache_creation_tokens`` written
    to the cache for an hour rather than five minutes, which costs more
    (Anthropic's ``cache_creation.ephemeral_1h_input_tokens``)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    reasoning_tokens: int = 0
    cache_creation_1h_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens

    def to_json(self) -> dict[str, Any]:
        out = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.cache_read_tokens:
            out["cache_read_tokens"] = self.cache_read_tokens
        if self.cache_creation_tokens:
            out["cache_creation_tokens"] = self.cache_creation_tokens
        if self.reasoning_tokens:
            out["reasoning_tokens"] = self.reasoning_tokens
        if self.cache_creation_1h_tokens:
            out["cache_creation_1h_tokens"] = self.cache_creation_1h_tokens
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
    """A fresh random id in the style the APIs use (``msg_…``, ``chatcmpl-…``, ``resp_…``)."""
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
