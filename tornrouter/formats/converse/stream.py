"""Bedrock ``ConverseStream`` events -> canonical stream events.

The provider's event-stream framing hands each frame over as a
``ServerSentEvent`` named after its ``:event-type``: ``messageStart``,
``contentBlockStart`` (a tool use's id and name), ``contentBlockDelta`` (text,
a tool use's input in pieces, reasoning text or signature; a text block has no
start of its own), ``contentBlockStop``, ``messageStop`` (the stop reason),
then ``metadata`` (the usage), which ends the canonical stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...canonical import (
    BlockDelta, BlockStart, BlockStop, MessageDelta, MessageStart, MessageStop, StreamError, StreamEvent, Text,
    Thinking, ToolCall, new_id,
)
from ...sse import ServerSentEvent
from .shapes import stop_from_wire, usage_from_wire


class ConverseStreamDecoder:
    def __init__(self, model: str = "") -> None:
        self.model = model  # Converse names no model in its events
        self._started = False
        self._open: set[int] = set()
        self._stop: Any = None
        self._stopped = False
        self._done = False

    def feed_sse(self, sse: ServerSentEvent) -> list[StreamEvent]:
        data = orjson.loads(sse.data)
        if not isinstance(data, dict):
            raise ValueError(f"Converse stream event is not an object: {sse.data[:100]!r}")
        if sse.event == "error" and isinstance(data.get("error"), dict):  # an exception frame (aws.py)
            self._done = True
            from ..anthropic.stream import ERROR_STATUS

            return [StreamError(ERROR_STATUS.get(data["error"].get("type"), 502), data["error"].get("message") or "error")]
        try:
            return self.feed(sse.event, data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed Converse {sse.event} event: {exc!r}") from exc

    def feed(self, kind: str | None, data: dict[str, Any]) -> list[StreamEvent]:
        if self._done:
            return []
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(MessageStart(new_id("msg"), self.model))
        if kind == "contentBlockStart":
            index = data["contentBlockIndex"]
            use = (data.get("start") or {}).get("toolUse")
            if use is not None:
                self._open.add(index)
                out.append(BlockStart(index, ToolCall(use["toolUseId"], use["name"])))
        elif kind == "contentBlockDelta":
            index, delta = data["contentBlockIndex"], data["delta"]
            if "text" in delta:
                self._start(index, Text(""), out)
                out.append(BlockDelta(index, "text", delta["text"]))
            elif "toolUse" in delta:
                out.append(BlockDelta(index, "tool_input", delta["toolUse"]["input"]))
            elif "reasoningContent" in delta:
                reasoning = delta["reasoningContent"]
                self._start(index, Thinking(), out)
                if "text" in reasoning:
                    out.append(BlockDelta(index, "thinking", reasoning["text"]))
                if "signature" in reasoning:
                    out.append(BlockDelta(index, "signature", reasoning["signature"]))
        elif kind == "contentBlockStop":
            index = data["contentBlockIndex"]
            if index in self._open:
                self._open.discard(index)
                out.append(BlockStop(index))
        elif kind == "messageStop":
            self._stop = stop_from_wire(data.get("stopReason"))
            self._stopped = True
        elif kind == "metadata":
            out += self._end(usage_from_wire(data.get("usage") or {}))
        return out

    def _start(self, index: int, block: Any, out: list[StreamEvent]) -> None:
        if index not in self._open:
            self._open.add(index)
            out.append(BlockStart(index, block))

    def _end(self, usage: Any) -> list[StreamEvent]:
        out: list[StreamEvent] = [BlockStop(i) for i in sorted(self._open)]
        self._open.clear()
        self._done = True
        return [*out, MessageDelta(self._stop or "end_turn", usage=usage), MessageStop()]

    def close(self) -> list[StreamEvent]:
        if self._done:
            return []
        if self._stopped:  # the metadata event is optional
            return self._end(None)
        self._done = True
        return [StreamError(502, "upstream stream ended before it finished")]
