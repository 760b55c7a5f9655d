"""Gemini ``streamGenerateContent?alt=sse`` -> canonical stream events.

Each SSE ``data`` is a whole ``GenerateContentResponse`` holding the parts
generated since the last one: text and thought parts are fragments of the text
or the thinking so far, a function call comes whole in one part, and the
candidate's ``finishReason`` (with the final ``usageMetadata``) comes in the
last.  Consecutive fragments of one kind make one block; a function call is a
block of its own, its arguments one ``tool_input`` delta.  An ``error`` object
in place of a response ends the stream with its status.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
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
from .decode import PartReader
from .shapes import finish_from_wire, usage_from_wire


class GeminiStreamDecoder:
    """One Gemini stream; ``reader`` applies the signature rules of ``decode``."""

    def __init__(self, reader: PartReader | None = None) -> None:
        self.reader = reader or PartReader()
        self._started = False
        self._done = False
        self._index = -1
        self._open: str | None = None  # the kind of the open text or thinking block
        self._calls = False
        self._usage: Usage | None = None

    def feed_sse(self, sse: ServerSentEvent) -> list[StreamEvent]:
        data = orjson.loads(sse.data)
        if not isinstance(data, dict):
            raise ValueError(f"Gemini stream data is not an object: {sse.data[:100]!r}")
        return self.feed(data)

    def close(self) -> list[StreamEvent]:
        if self._done:
            return []
        self._done = True
        return [StreamError(502, "upstream stream ended before it finished")]

    def feed(self, data: dict[str, Any]) -> list[StreamEvent]:
        if self._done:
            return []
        out: list[StreamEvent] = []
        error = data.get("error")
        if isinstance(error, dict):
            self._done = True
            code = error.get("code")
            return [StreamError(code if isinstance(code, int) and code >= 400 else 502,
                                error.get("message") or "upstream stream error")]
        try:
            if not self._started:
                self._started = True
                out.append(MessageStart(data.get("responseId") or new_id("msg"), data.get("modelVersion") or ""))
            if data.get("usageMetadata"):
                self._usage = usage_from_wire(data["usageMetadata"])
            candidates = data.get("candidates") or []
            if not candidates:
                if (data.get("promptFeedback") or {}).get("blockReason"):
                    return out + self._end("content_filter")
                return out
            candidate = candidates[0]
            for part in (candidate.get("content") or {}).get("parts") or []:
                for block in self.reader.blocks(part):
                    self._block(block, out)
            finish = candidate.get("finishReason")
            if finish is not None:
                out += self._end(finish_from_wire(finish, self._calls))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed Gemini stream chunk: {exc!r}") from exc
        return out

    def _block(self, block: Any, out: list[StreamEvent]) -> None:
        kind = "text" if isinstance(block, Text) else "thinking" if isinstance(block, Thinking) else None
        if kind is not None and kind == self._open:
            if kind == "text" and block.text:
                out.append(BlockDelta(self._index, "text", block.text))
            elif kind == "thinking":
                if block.thinking:
                    out.append(BlockDelta(self._index, "thinking", block.thinking))
                if block.signature:
                    out.append(BlockDelta(self._index, "signature", block.signature))
            return
        self._close(out)
        self._index += 1
        if isinstance(block, ToolCall):
            self._calls = True
            out.append(BlockStart(self._index, ToolCall(block.id, block.name)))
            out.append(BlockDelta(self._index, "tool_input", orjson.dumps(block.input).decode()))
            out.append(BlockStop(self._index))
        elif isinstance(block, Opaque):
            out.append(BlockStart(self._index, block))
            out.append(BlockStop(self._index))
        elif isinstance(block, Text):
            self._open = "text"
            out.append(BlockStart(self._index, Text("")))
            out.append(BlockDelta(self._index, "text", block.text))
        else:
            self._open = "thinking"
            out.append(BlockStart(self._index, Thinking()))
            if block.thinking:
                out.append(BlockDelta(self._index, "thinking", block.thinking))
            if block.signature:
                out.append(BlockDelta(self._index, "signature", block.signature))

    def _close(self, out: list[StreamEvent]) -> None:
        if self._open is not None:
            out.append(BlockStop(self._index))
            self._open = None

    def _end(self, stop: Any) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        self._close(out)
        self._done = True
        out.append(MessageDelta(stop, usage=self._usage))
        out.append(MessageStop())
        return out
