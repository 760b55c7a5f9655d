"""Canonical stream events -> the final ``ChatResponse``.

``StreamOrder`` is the grammar of a canonical stream (drawn at the bottom of
``canonical.py``), checked one event at a time; the accumulator and both stream
encoders run every event through one, so an impossible sequence fails loudly
at the first wrong event instead of producing a garbled answer:

    MessageStart (BlockStart BlockDelta* BlockStop)* MessageDelta MessageStop
    ... or StreamError anywhere, which ends the stream.

Blocks are numbered 0, 1, 2... in the order they start; several may be open at
once, every delta and stop names an open block, and a delta's kind fits its
block.  ``Accumulator`` builds the response as anthropic-sdk-python's
``accumulate_event`` builds a ``Message``.
"""

from __future__ import annotations

import json
from typing import Any

from .canonical import (
    Block,
    BlockDelta,
    BlockStart,
    BlockStop,
    ChatResponse,
    Format,
    MessageDelta,
    MessageStart,
    MessageStop,
    Opaque,
    StreamError,
    StreamEvent,
    Text,
    Thinking,
    ToolCall,
    Usage,
)
from .check import check_block

EVENT_EXTRA = "_event"
"""The key of ``MessageDelta.extra`` under which a decoder keeps the wire fields of the
delta event itself, for a same-format relay; the other keys are fields of the message."""

BLOCK_EXTRA = "_block"
"""The key of a ``BlockDelta``'s ``extra`` under which a decoder gives fields of the
block that arrive after its start (a Responses reasoning item's
``encrypted_content``, a text's final ``annotations``); the accumulator adds
them to the block's ``extra``.  Such a delta's value is empty."""

# The block types each delta kind may extend.
_DELTA_TARGETS: dict[str, tuple[type, ...]] = {
    "text": (Text,),
    "tool_input": (ToolCall, Opaque),
    "thinking": (Thinking,),
    "signature": (Thinking,),
}


class StreamOrderError(ValueError):
    """A stream event that cannot come where it came."""


class StreamOrder:
    """Checks each event against the stream grammar; raises ``StreamOrderError`` on the first violation."""

    __slots__ = ("started", "open", "count", "delta_seen", "terminated")

    def __init__(self) -> None:
        self.started = False
        self.open: dict[int, Block] = {}  # index -> the block as it started
        self.count = 0  # blocks started so far, the next index
        self.delta_seen = False
        self.terminated = False

    def check(self, event: StreamEvent) -> None:
        name = type(event).__name__
        if type(getattr(event, "index", 0)) is not int:
            raise StreamOrderError(f"{name} with an index that is not an integer: {event.index!r}")
        if self.terminated:
            raise StreamOrderError(f"{name} after the end of the stream")
        if isinstance(event, StreamError):
            self.terminated = True
            return
        if not self.started and not isinstance(event, MessageStart):
            raise StreamOrderError(f"{name} before MessageStart")
        if isinstance(event, BlockDelta):
            block = self.open.get(event.index)
            if block is None:
                raise StreamOrderError(f"BlockDelta for block {event.index}, which is not open")
            if not isinstance(block, _DELTA_TARGETS[event.kind]):
                raise StreamOrderError(f"a {event.kind} delta for block {event.index}, a {block.type} block")
        elif isinstance(event, BlockStart):
            if self.delta_seen:
                raise StreamOrderError("BlockStart after MessageDelta")
            if event.index != self.count:
                raise StreamOrderError(f"BlockStart for block {event.index}; the next block is {self.count}")
            try:
                check_block(event.block)
            except ValueError as exc:
                raise StreamOrderError(f"BlockStart {event.index}: {exc}") from None
            self.open[event.index] = event.block
            self.count += 1
        elif isinstance(event, BlockStop):
            if self.open.pop(event.index, None) is None:
                raise StreamOrderError(f"BlockStop for block {event.index}, which is not open")
        elif isinstance(event, MessageStart):
            if self.started:
                raise StreamOrderError("a second MessageStart")
            if not isinstance(event.id, str) or not isinstance(event.model, str):
                raise StreamOrderError("MessageStart needs a string id and model")
            self.started = True
        elif isinstance(event, MessageDelta):
            if self.delta_seen:
                raise StreamOrderError("a second MessageDelta")
            if self.open:
                raise StreamOrderError(f"MessageDelta while blocks {sorted(self.open)} are open")
            self.delta_seen = True
        elif isinstance(event, MessageStop):
            if not self.delta_seen:
                raise StreamOrderError("MessageStop before MessageDelta")
            self.terminated = True
        else:
            raise StreamOrderError(f"not a stream event: {event!r}")


def merge_usage(start: Usage, delta: Usage | None) -> Usage:
    """The final usage: a ``MessageDelta``'s counts are running totals, so its output
    count replaces the start's, as does any other count it gives (nonzero)."""
    if delta is None:
        return start
    return Usage(
        input_tokens=delta.input_tokens or start.input_tokens,
        output_tokens=delta.output_tokens,
        cache_read_tokens=delta.cache_read_tokens or start.cache_read_tokens,
        cache_creation_tokens=delta.cache_creation_tokens or start.cache_creation_tokens,
        extra={**start.extra, **delta.extra},
        reasoning_tokens=delta.reasoning_tokens or start.reasoning_tokens,
        cache_creation_1h_tokens=delta.cache_creation_1h_tokens or start.cache_creation_1h_tokens,
    )


class _OpenBlock:
    """A started block and the fragments its deltas brought so far."""

    __slots__ = ("block", "parts", "signature", "citations", "fields")

    def __init__(self, block: Block) -> None:
        self.block = block
        self.parts: list[str] = []
        self.signature: str | None = None
        self.citations: list[Any] = []
        self.fields: dict[str, Any] = {}  # what BLOCK_EXTRA deltas brought

    def add(self, delta: BlockDelta) -> None:
        if type(delta.value) is not str:
            raise StreamOrderError(f"a {delta.kind} delta that is not a string: {delta.value!r}")
        if delta.kind == "signature":
            self.signature = delta.value  # sent whole; a later one replaces it, as the SDK does
        elif delta.value:
            self.parts.append(delta.value)
        if delta.extra:
            if "citation" in delta.extra:
                self.citations.append(delta.extra["citation"])
            fields = delta.extra.get(BLOCK_EXTRA)
            if isinstance(fields, dict):
                self.fields.update(fields)

    def result(self) -> Block:
        """A new block with everything applied; the started block is left as it was."""
        block, joined = self.block, "".join(self.parts)
        if isinstance(block, Text):
            extra = {**block.extra, **self.fields}
            if self.citations:
                extra["citations"] = [*(extra.get("citations") or ()), *self.citations]
            return Text(block.text + joined, extra, block.refusal)
        if isinstance(block, Thinking):
            signature = block.signature if self.signature is None else self.signature
            return Thinking(block.thinking + joined, signature, block.redacted, {**block.extra, **self.fields})
        if isinstance(block, ToolCall):
            call = ToolCall(block.id, block.name, block.input, block.raw_arguments, {**block.extra, **self.fields})
            if joined.strip():
                parsed = _parse_json(joined)
                if isinstance(parsed, dict):
                    call.input, call.raw_arguments = parsed, None
                else:  # not an object: keep the text so an OpenAI client still gets it verbatim
                    call.input, call.raw_arguments = {}, joined
            return call
        if isinstance(block, Opaque) and joined.strip():
            parsed = _parse_json(joined)
            return Opaque(block.format, {**block.data, "input": joined if parsed is None else parsed})
        return block


def _message_extra(start: MessageStart, delta: MessageDelta | None) -> dict[str, Any]:
    extra = dict(start.extra)
    if delta is not None:
        extra.update((k, v) for k, v in delta.extra.items() if k != EVENT_EXTRA)
    return extra


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class Accumulator:
    """Builds the ``ChatResponse`` a stream amounts to, one event at a time.

    ``add`` raises ``StreamOrderError`` on an event that breaks the grammar.
    ``response()`` may be called at any point after ``MessageStart``: after a
    ``StreamError`` it gives what had arrived, open blocks included, for the
    request log.  The events' blocks are never mutated, so the same events may
    go on to an encoder, before or after.
    """

    def __init__(self, source: Format | None = None) -> None:
        self._order = StreamOrder()
        self._source = source
        self._start: MessageStart | None = None
        self._content: list[Block] = []
        self._open: dict[int, _OpenBlock] = {}
        self._delta: MessageDelta | None = None
        self.error: StreamError | None = None

    @property
    def finished(self) -> bool:
        """True once MessageStop or StreamError has arrived."""
        return self._order.terminated

    def add(self, event: StreamEvent) -> None:
        self._order.check(event)
        if isinstance(event, BlockDelta):
            self._open[event.index].add(event)
        elif isinstance(event, BlockStart):
            self._content.append(event.block)
            self._open[event.index] = _OpenBlock(event.block)
        elif isinstance(event, BlockStop):
            self._content[event.index] = self._open.pop(event.index).result()
        elif isinstance(event, MessageStart):
            self._start = event
        elif isinstance(event, MessageDelta):
            self._delta = event
        elif isinstance(event, StreamError):
            self.error = event

    def response(self) -> ChatResponse:
        """The response so far; raises ``StreamOrderError`` before MessageStart."""
        start = self._start
        if start is None:
            raise StreamOrderError("no MessageStart yet: there is no response to build")
        content = list(self._content)
        for index, open_block in self._open.items():
            content[index] = open_block.result()
        delta = self._delta
        return ChatResponse(
            id=start.id,
            model=start.model,
            content=content,
            stop_reason=delta.stop_reason if delta else None,
            stop_sequence=delta.stop_sequence if delta else None,
            usage=merge_usage(start.usage, delta.usage if delta else None),
            source=self._source,
            extra=_message_extra(start, delta),
        )


def replay(response: ChatResponse, *, text_piece: int = 0) -> list[StreamEvent]:
    """The events a stream of ``response`` would have carried: the inverse of
    ``Accumulator``, for streaming an answer that exists whole (a plugin's, the
    echo provider's).  ``text_piece`` > 0 splits text into deltas of about that
    many characters, on word boundaries, as a model would."""
    usage = response.usage
    events: list[StreamEvent] = [
        MessageStart(response.id, response.model, Usage(usage.input_tokens, 0, usage.cache_read_tokens, usage.cache_creation_tokens,
                                                        cache_creation_1h_tokens=usage.cache_creation_1h_tokens))
    ]
    for index, block in enumerate(response.content):
        if isinstance(block, Text):
            events.append(BlockStart(index, Text("", dict(block.extra))))
            events.extend(BlockDelta(index, "text", piece) for piece in _pieces(block.text, text_piece))
        elif isinstance(block, ToolCall):
            events.append(BlockStart(index, ToolCall(block.id, block.name, {}, extra=dict(block.extra))))
            # Arguments that were not a JSON object go as they came: the
            # accumulator keeps them raw again, for an OpenAI client to get verbatim.
            arguments = json.dumps(block.input, ensure_ascii=False) if block.raw_arguments is None else block.raw_arguments
            if arguments:
                events.append(BlockDelta(index, "tool_input", arguments))
        elif isinstance(block, Thinking):
            events.append(BlockStart(index, Thinking("", None, block.redacted, dict(block.extra))))
            if block.thinking:
                events.append(BlockDelta(index, "thinking", block.thinking))
            if block.signature:
                events.append(BlockDelta(index, "signature", block.signature))
        else:
            events.append(BlockStart(index, block))
        events.append(BlockStop(index))
    events.append(MessageDelta(response.stop_reason, response.stop_sequence, usage))
    events.append(MessageStop())
    return events


def _pieces(text: str, size: int) -> list[str]:
    if size <= 0 or len(text) <= size:
        return [text] if text else []
    pieces, start = [], 0
    while start < len(text):
        end = text.find(" ", start + size)
        end = len(text) if end < 0 else end + 1
        pieces.append(text[start:end])
        start = end
    return pieces
