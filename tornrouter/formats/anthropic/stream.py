"""Anthropic Messages streams <-> canonical stream events.

The wire events (https://docs.anthropic.com/en/api/messages-streaming):
``message_start``, then per content block ``content_block_start``,
``content_block_delta``\\*, ``content_block_stop``, then ``message_delta`` and
``message_stop``; ``ping`` anywhere, ``error`` ends the stream.

Fields the canonical events do not name travel in their ``extra``: the
message's in ``MessageStart.extra``; a ``content_block_delta`` event's own in
``BlockDelta.extra``; a ``message_delta``'s ``delta`` fields (``container``,
``stop_details``: fields of the final message) in ``MessageDelta.extra``, and
the event's own under its ``EVENT_EXTRA`` key.  The encoder writes them back
where they came from when the events came from Anthropic (``source``), and
otherwise lists their names in ``lossy``.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

import orjson

from ...accumulate import BLOCK_EXTRA, EVENT_EXTRA, StreamOrder
from ...canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
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
    new_id,
)
from ...sse import ServerSentEvent
from ..base import others
from ..lossy import Carry
from .decode import block_from_wire
from .shapes import (
    STOP_TO_WIRE,
    error_type_for,
    stop_from_wire,
    usage_from_wire,
    usage_to_wire,
)

# https://docs.anthropic.com/en/api/errors
ERROR_STATUS = MappingProxyType(
    {
        "invalid_request_error": 400,
        "authentication_error": 401,
        "billing_error": 402,
        "permission_error": 403,
        "not_found_error": 404,
        "request_too_large": 413,
        "rate_limit_error": 429,
        "api_error": 500,
        "timeout_error": 504,
        "overloaded_error": 529,
    }
)

_MESSAGE_KEYS = frozenset({"id", "type", "role", "content", "model", "stop_reason", "stop_sequence", "usage"})
_DELTA_EVENT_KEYS = frozenset({"type", "index", "delta"})
_STOP_KEYS = frozenset({"stop_reason", "stop_sequence"})
_MESSAGE_DELTA_KEYS = frozenset({"type", "delta", "usage"})
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


class AnthropicStreamDecoder:
    """Anthropic stream events (the SSE ``event`` name and its parsed ``data``) -> canonical events.

    ``ping``, unknown event types and unknown delta types give nothing.  A
    block type the canonical model lacks (``server_tool_use``, tool results)
    starts an ``Opaque`` block whose ``input_json_delta`` fragments still
    arrive as ``tool_input`` deltas.  Raises ``ValueError`` on an event that
    lacks a field it must have.
    """

    def feed_sse(self, sse: ServerSentEvent) -> list[StreamEvent]:
        """One SSE event as the upstream sent it; ``ValueError`` if it is not JSON."""
        data = sse.json()
        if not isinstance(data, dict):
            raise ValueError(f"Anthropic stream data is not an object: {sse.data[:100]!r}")
        return self.feed(sse.event, data)

    def close(self) -> list[StreamEvent]:
        """The byte stream ended.  Anthropic streams always end with an event of
        their own, so nothing is implied; a missing end is the caller's to judge."""
        return []

    def feed(self, event_type: str | None, data: dict[str, Any]) -> list[StreamEvent]:
        kind = event_type or data.get("type")
        try:
            if kind == "content_block_delta":
                return self._delta(data)
            if kind == "content_block_start":
                return [BlockStart(data["index"], block_from_wire(data["content_block"]))]
            if kind == "content_block_stop":
                return [BlockStop(data["index"])]
            if kind == "message_start":
                message = data["message"]
                usage = usage_from_wire(message.get("usage") or {})
                extra = others(message, _MESSAGE_KEYS)
                return [MessageStart(message.get("id") or new_id("msg"), message.get("model") or "", usage, extra)]
            if kind == "message_delta":
                delta = data.get("delta") or {}
                usage = usage_from_wire(data["usage"]) if data.get("usage") else None
                stop = stop_from_wire(delta.get("stop_reason"))
                extra = others(delta, _STOP_KEYS)
                if len(data) > 3:
                    extra[EVENT_EXTRA] = others(data, _MESSAGE_DELTA_KEYS)
                return [MessageDelta(stop, delta.get("stop_sequence"), usage, extra)]
            if kind == "message_stop":
                return [MessageStop()]
            if kind == "error":
                error = data.get("error") or {}
                status = ERROR_STATUS.get(error.get("type"), 502)
                return [StreamError(status, error.get("message") or "upstream stream error")]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed Anthropic {kind} event: {exc!r}") from exc
        return []

    @staticmethod
    def _delta(data: dict[str, Any]) -> list[StreamEvent]:
        delta, index = data["delta"], data["index"]
        extra = others(data, _DELTA_EVENT_KEYS) if len(data) > 3 else {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [BlockDelta(index, "text", delta["text"], extra)]
        if kind == "input_json_delta":
            return [BlockDelta(index, "tool_input", delta["partial_json"], extra)]
        if kind == "thinking_delta":
            return [BlockDelta(index, "thinking", delta["thinking"], extra)]
        if kind == "signature_delta":
            return [BlockDelta(index, "signature", delta["signature"], extra)]
        if kind == "citations_delta":
            extra["citation"] = delta["citation"]
            return [BlockDelta(index, "text", "", extra)]
        return []


def _event(name: str, payload: dict[str, Any]) -> bytes:
    # JSON escapes \n and \r, so the payload is always one data line.
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class AnthropicStreamEncoder(Carry):
    """Canonical events -> the exact bytes of an Anthropic Messages stream.

    ``encode`` refuses (``StreamOrderError``) any event the stream grammar
    forbids -- a delta for a block never started, a second start, a stop out of
    order, anything after ``message_stop`` or ``error`` -- so a client never
    sees a stream its SDK would reject.  ``source`` is the format the events
    were decoded from: their extras are written back when it is Anthropic,
    named in ``lossy`` when it is OpenAI.  A block this API cannot carry (an
    OpenAI ``Opaque``) is left out, the wire indices staying dense.
    """

    target = "anthropic"

    def __init__(self, *, source: Format | None = None) -> None:
        super().__init__(source)
        self._order = StreamOrder()
        self._wire: dict[int, int] = {}  # canonical block index -> wire index, for the blocks sent
        self._usage = Usage()

    @property
    def terminated(self) -> bool:
        """True once ``message_stop`` or ``error`` has been written: nothing may follow."""
        return self._order.terminated

    def take_over(self, start: MessageStart, events: int) -> None:
        """Go on from a relayed stream: its error event needs nothing of it."""
        self._order.check(start)

    def finish_with_error(self, message: str, status: int = 502) -> bytes:
        """End the stream with an ``error`` event, e.g. when the upstream fails mid-stream."""
        return self.encode(StreamError(status, message))

    def encode(self, event: StreamEvent) -> bytes:
        self._order.check(event)
        if isinstance(event, BlockDelta):
            index = self._wire.get(event.index)
            if BLOCK_EXTRA in event.extra:  # fields of the block, not a delta this API has
                if self.foreign is not None:
                    self.lose_all(self.foreign.delta(event.extra))
                return b""
            return b"" if index is None else self._delta(index, event)
        if isinstance(event, BlockStart):
            return self._block_start(event)
        if isinstance(event, BlockStop):
            index = self._wire.get(event.index)
            return (
                b"" if index is None else _event("content_block_stop", {"type": "content_block_stop", "index": index})
            )
        if isinstance(event, MessageStart):
            return self._message_start(event)
        if isinstance(event, MessageDelta):
            return self._message_delta(event)
        if isinstance(event, MessageStop):
            return MESSAGE_STOP
        error = {"type": error_type_for(event.status), "message": event.message}
        return _event("error", {"type": "error", "error": error})

    def _message_start(self, event: MessageStart) -> bytes:
        self._usage = event.usage
        message = {
            "id": event.id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": event.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_to_wire(event.usage, keep_extra=self.keep),
        }
        return _event("message_start", {"type": "message_start", "message": self.extra(message, event.extra, "")})

    def _block_start(self, event: BlockStart) -> bytes:
        block = event.block
        follow: list[BlockDelta] = []  # what the block already holds, sent as deltas as the API does
        if isinstance(block, Text):
            wire = self.extra({"type": "text", "text": ""}, block.extra, "text.")
            if block.text:
                follow.append(BlockDelta(event.index, "text", block.text))
        elif isinstance(block, ToolCall):
            wire = self.extra(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}, block.extra, "tool_call."
            )
            arguments = block.raw_arguments or (json.dumps(block.input, ensure_ascii=False) if block.input else "")
            if arguments:
                follow.append(BlockDelta(event.index, "tool_input", arguments))
        elif isinstance(block, Thinking):
            if block.redacted is not None:
                wire = self.extra({"type": "redacted_thinking", "data": block.redacted}, block.extra, "thinking.")
            else:
                wire = self.extra({"type": "thinking", "thinking": "", "signature": ""}, block.extra, "thinking.")
                if block.thinking:
                    follow.append(BlockDelta(event.index, "thinking", block.thinking))
                if block.signature:
                    follow.append(BlockDelta(event.index, "signature", block.signature))
        elif isinstance(block, Opaque) and block.format == "anthropic":
            wire = block.data
        else:
            self.lose(f"content.{block.data.get('type') if isinstance(block, Opaque) else block.type}")
            return b""
        index = self._wire[event.index] = len(self._wire)
        out = _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": wire})
        return out + b"".join(self._delta(index, delta) for delta in follow)

    def _delta(self, index: int, event: BlockDelta) -> bytes:
        kind, extra = event.kind, event.extra
        if kind == "text":
            if "citation" in extra:
                delta = {"type": "citations_delta", "citation": extra["citation"]}
                extra = {k: v for k, v in extra.items() if k != "citation"}
            else:
                delta = {"type": "text_delta", "text": event.value}
        elif kind == "tool_input":
            delta = {"type": "input_json_delta", "partial_json": event.value}
        elif kind == "thinking":
            delta = {"type": "thinking_delta", "thinking": event.value}
        else:
            delta = {"type": "signature_delta", "signature": event.value}
        payload = {"type": "content_block_delta", "index": index, "delta": delta}
        if extra:
            self.extra(payload, extra, "")
        return _event("content_block_delta", payload)

    def _message_delta(self, event: MessageDelta) -> bytes:
        stop = event.stop_reason
        delta = {
            "stop_reason": STOP_TO_WIRE.get(stop, "end_turn") if stop else None,
            "stop_sequence": event.stop_sequence,
        }
        payload = {"type": "message_delta", "delta": delta, "usage": self._delta_usage(event.usage)}
        for key, value in self.extra({}, event.extra, "").items():
            if key == EVENT_EXTRA:
                payload.update(value)
            else:
                delta[key] = value
        return _event("message_delta", payload)

    def _delta_usage(self, usage: Usage | None) -> dict[str, Any]:
        """The counts the delta gives.  They are running totals: the SDK overwrites the
        start's count with each one present, so a zero is left out rather than sent."""
        if usage is None:
            return {"output_tokens": self._usage.output_tokens}
        wire = usage_to_wire(usage, keep_extra=self.keep)
        return {k: v for k, v in wire.items() if v != 0 or k == "output_tokens"}
